"""Notebook configs: one frozen dataclass per notebook, field names = parameter names.

The notebook's tagged ``parameters`` cell holds the same names as literals; the
runner checks any override against the dataclass before any compute (unknown name,
wrong type, out-of-range value), and the notebook builds its config from its
parameters with ``from_params``. Profiles (``notebooks/params/<profile>.yaml``) are
flat maps of parameter name to value shared by all notebooks: each notebook takes
the names it has.

Every name below is importable from here (``from scorelib.config import X``, ``config.X``); the submodules hold:

- ``checks``: ``ConfigError``, the valid tasks, splits and dtypes, the checks the configs share, and sweeps
  (``sweep_config``, ``sweep_label``, the ``*_SWEEP_KEYS``);
- ``runs``: the parameters every notebook shares (``RunParams``, ``Common``, ``FromBase``...) and the configs of
  notebooks 00, 01 and 10;
- ``rl``: the configs of the RL notebooks 20, 30, 40 and 45 (``RLCommon``, ``ABLATION_ROWS``...);
- ``scaling_report``: the configs of notebooks 50 and 90 (``REPORT_RUN_FIELDS``);
- ``params``: the registry ``NOTEBOOK_CONFIGS``, configs from parameters and back (``make_config``,
  ``from_params``, ``to_dict``, ``saved_config``) and profiles.
"""
from __future__ import annotations

from scorelib.config.checks import (DTYPES, EVAL_SPLITS, RL_OPTION_KEYS, STAGE1_SWEEP_KEYS, STAGE2_SWEEP_KEYS, TASKS,
                                    ConfigError, sweep_config, sweep_label)
from scorelib.config.params import (NOTEBOOK_CONFIGS, PATH_FIELDS, RENAMED, absolute_path, check_profile_keys,
                                    config_for, field_names, from_params, load_profile, make_config, profile_params,
                                    saved_config, to_dict)
from scorelib.config.rl import (ABLATION_ROWS, AblationConfig, RLCommon, Stage1Config, Stage2Config,
                                ThreeTurnConfig)
from scorelib.config.runs import (SEED_FIELD, Common, EvalConfig, FromBase, FromBaseParams, PretrainConfig,
                                  RunParams, Seed, SFTConfig)
from scorelib.config.scaling_report import REPORT_RUN_FIELDS, ReportConfig, ScalingConfig
