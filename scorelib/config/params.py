"""Configs from parameters and back: the notebooks' registry, building and checking a config from overrides,
profiles, and a run's saved config.

- ``NOTEBOOK_CONFIGS`` (notebook name -> config class) and ``config_for``;
- ``make_config`` (overrides -> a checked config; ``_coerce`` checks each value's type, ``absolute_path`` makes
  ``PATH_FIELDS`` absolute), ``from_params`` (a notebook's parameters -> its config), ``to_dict`` (the reverse);
- ``saved_config``: a saved config.json under today's names (``RENAMED``);
- profiles: ``load_profile``, ``check_profile_keys`` and ``profile_params``.
"""
from __future__ import annotations

import dataclasses
import difflib
import typing
from dataclasses import fields
from pathlib import Path

import yaml

from scorelib.config.checks import ConfigError
from scorelib.config.rl import AblationConfig, Stage1Config, Stage2Config, ThreeTurnConfig
from scorelib.config.runs import EvalConfig, PretrainConfig, SFTConfig
from scorelib.config.scaling_report import ReportConfig, ScalingConfig

NOTEBOOK_CONFIGS: dict[str, type] = {
    "00_toy_world_and_base_model": PretrainConfig,
    "01_base_model_self_correction": EvalConfig,
    "10_sft_baselines": SFTConfig,
    "20_stage1_vs_multiturn_rl": Stage1Config,
    "30_score_stage2": Stage2Config,
    "40_ablations": AblationConfig,
    "45_three_turn": ThreeTurnConfig,
    "50_inference_scaling": ScalingConfig,
    "90_report": ReportConfig,  # reads every other notebook's runs: keep it last
}


def config_for(notebook: str) -> type:
    """The config class of a notebook, by its name with or without '.ipynb' (or a unique prefix)."""
    name = Path(notebook).name.removesuffix(".ipynb")
    matches = [n for n in NOTEBOOK_CONFIGS if n == name or n.startswith(name)]
    if len(matches) != 1:
        raise ConfigError(f"unknown notebook {notebook!r}; valid: {sorted(NOTEBOOK_CONFIGS)}")
    return NOTEBOOK_CONFIGS[matches[0]]


def field_names(cls) -> list[str]:
    return [f.name for f in fields(cls)]


def _coerce(name: str, value, typ):
    """Check (and gently convert: int -> float, list or one number -> tuple) a value against a field's type."""
    if typ is tuple and (isinstance(value, (int, float, str, dict)) and not isinstance(value, bool)):
        # `-p seeds 3` or `-p lora_targets q_proj` means a list of one; `-p temperatures 0.7` means one temperature
        value = (value,)
    ok = {
        bool: lambda v: isinstance(v, bool),
        int: lambda v: isinstance(v, int) and not isinstance(v, bool),
        float: lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        str: lambda v: isinstance(v, str),
        tuple: lambda v: isinstance(v, (list, tuple)),
    }[typ]
    if not ok(value):
        raise ConfigError(f"parameter {name!r} must be of type {typ.__name__}, got {value!r} ({type(value).__name__})")
    return float(value) if typ is float else tuple(value) if typ is tuple else value


PATH_FIELDS = ("data_path", "train_path", "model")


def absolute_path(value: str) -> str:
    """A user path made absolute: from the current folder if it exists there, else from the project
    root (notebooks run with notebooks/ as their folder); a hub id or a missing path is returned as is."""
    if not value:
        return value
    p = Path(value).expanduser()
    if p.is_absolute():
        return str(p)
    if p.exists():
        return str(p.resolve())
    root = Path(__file__).resolve().parents[2] / p  # scorelib/config/params.py -> the project root
    return str(root.resolve()) if root.exists() else value


def make_config(cls, params: dict):
    """Build and validate a config from a dict of overrides; unknown names fail with the valid ones.

    Path parameters (data_path, train_path, a local model folder) are made absolute first."""
    valid = field_names(cls)
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise ConfigError(f"unknown parameter(s) {unknown} for {cls.__name__}; valid parameters: {valid}")
    hints = typing.get_type_hints(cls)
    values = {k: _coerce(k, v, hints[k]) for k, v in params.items()}
    values = {k: absolute_path(v) if k in PATH_FIELDS else v for k, v in values.items()}
    if isinstance(values.get("temperatures"), tuple):  # 0 and 0.0 must name the same result ("0.0")
        values["temperatures"] = tuple(float(t) if isinstance(t, (int, float)) and not isinstance(t, bool) else t
                                       for t in values["temperatures"])
    cfg = cls(**values)
    cfg.validate()
    return cfg


def from_params(cls, namespace: dict):
    """The config of a notebook from its parameters (the names of its fields in `namespace`)."""
    return make_config(cls, {k: namespace[k] for k in field_names(cls) if k in namespace})


def to_dict(cfg) -> dict:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(cfg).items()}


# Parameters renamed since the reporting run (commit 14439f3) wrote its config.json files: notebook -> {old: new}.
# Code that reads another notebook's saved config.json goes through saved_config, so old runs still read.
RENAMED = {nb: {"seed": "eval_seed", "batch_size": "gen_batch_size"}
           for nb in ("20_stage1_vs_multiturn_rl", "30_score_stage2", "40_ablations", "45_three_turn")}
RENAMED["00_toy_world_and_base_model"] = {"batch_size": "train_batch_size"}  # pretraining's batch
RENAMED["01_base_model_self_correction"] = {"batch_size": "gen_batch_size"}


def saved_config(saved: dict, notebook: str) -> dict:
    """A run's saved config.json (a dict) under today's parameter names (RENAMED); a new name already there wins."""
    renames = RENAMED.get(notebook, {})
    return {renames.get(k, k): v for k, v in saved.items() if k not in renames or renames[k] not in saved}


def load_profile(path: str | Path) -> dict:
    """A flat YAML map of parameter name to value (an empty file is an empty profile)."""
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"no profile file {p}")
    data = yaml.safe_load(p.read_text()) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"profile {p} must be a map of parameter name to value")
    check_profile_keys(data, f"profile {p}")
    return data


def check_profile_keys(profile: dict, where: str = "profile") -> None:
    """Every key of a profile names a parameter of some notebook (a profile is shared: each notebook takes the
    names it has), and "NN/name" a parameter of notebook NN; a misspelt key fails, naming it and the valid keys."""
    by_number = {n.split("_", 1)[0]: n for n in NOTEBOOK_CONFIGS}
    known = sorted(set().union(*(field_names(c) for c in NOTEBOOK_CONFIGS.values())))
    for key in map(str, profile):
        number, _, name = key.rpartition("/")
        if number and number not in by_number:
            raise ConfigError(f"{where}: key {key!r}: no notebook numbered {number!r}; valid: {sorted(by_number)}")
        valid = field_names(NOTEBOOK_CONFIGS[by_number[number]]) if number else known
        if name not in valid:
            close = difflib.get_close_matches(name, valid, n=1)
            raise ConfigError(f"{where}: unknown key {key!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
                              + (f"; notebook {by_number[number]}'s parameters: {valid}" if number else
                                 f": no notebook has it; valid keys: {valid}, or 'NN/name' for notebook NN alone"))


def profile_params(cls, profile: dict, notebook: str = "") -> dict:
    """The entries of a shared profile that this notebook's config has. A key "NN/name" (NN a notebook's number,
    e.g. "30/sweep") applies to that notebook alone and wins over a plain "name"."""
    names = set(field_names(cls))
    out = {k: v for k, v in profile.items() if k in names}
    numbers = {n.split("_", 1)[0] for n in NOTEBOOK_CONFIGS}
    for key, value in profile.items():
        if "/" not in str(key):
            continue
        number, name = str(key).split("/", 1)
        if number not in numbers:
            raise ConfigError(f"profile key {key!r}: no notebook numbered {number!r}; valid: {sorted(numbers)}")
        if notebook.split("_", 1)[0] == number:
            if name not in names:
                raise ConfigError(f"profile key {key!r}: notebook {notebook} has no parameter {name!r}")
            out[name] = value
    return out
