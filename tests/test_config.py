"""Tests of scorelib.config (notebook configs, validation, profiles) and of the CLI's checks.

The CLI tests only ever pass parameters that fail validation: a valid set would start papermill.
"""
from __future__ import annotations

import dataclasses
import math
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scorelib import config as C
from scorelib.config import ConfigError, EvalConfig, PretrainConfig, config_for, field_names, make_config

ROOT = Path(__file__).resolve().parents[1]
PARAMS_DIR = ROOT / "notebooks" / "params"
PROFILES = sorted(PARAMS_DIR.glob("*.yaml"))
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"
PYTHON = str(VENV_PYTHON) if VENV_PYTHON.exists() else sys.executable
CLI_TIMEOUT_S = 60  # hard limit; the checks below expect a few seconds
CLI_FAST_S = 20  # generous on a loaded 2-core machine; validation must not start any compute

needs_profiles = pytest.mark.skipif(not PROFILES, reason=f"no profiles yet: {PARAMS_DIR}/*.yaml does not exist")


# ------------------------------------------------------------------------------------------
# make_config
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("cls", [PretrainConfig, EvalConfig])
def test_defaults_are_valid(cls):
    cfg = make_config(cls, {})
    assert cfg == cls()
    assert dataclasses.is_dataclass(cfg)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.seed = 1  # type: ignore[misc]


def test_unknown_name_lists_valid_parameters():
    with pytest.raises(ConfigError) as e:
        make_config(EvalConfig, {"no_such_param": 1})
    msg = str(e.value)
    assert "no_such_param" in msg
    for name in field_names(EvalConfig):
        assert name in msg
    assert isinstance(e.value, ValueError)


@pytest.mark.parametrize("cls,name,value", [
    (PretrainConfig, "n_test", "5"),  # str for int
    (PretrainConfig, "n_test", True),  # bool for int
    (PretrainConfig, "n_test", False),
    (PretrainConfig, "n_test", 5.0),  # float for int
    (PretrainConfig, "n_test", 5.5),
    (PretrainConfig, "seed", None),
    (PretrainConfig, "lr", "0.1"),  # str for float
    (PretrainConfig, "lr", True),  # bool for float
    (PretrainConfig, "progress", 1),  # int for bool
    (PretrainConfig, "progress", "yes"),
    (PretrainConfig, "run_name", 3),  # int for str
    (PretrainConfig, "error_source", None),
    (EvalConfig, "temperatures", "0.5"),  # str for tuple
    (EvalConfig, "temperatures", True),
    (EvalConfig, "n_boot", [1000]),
])
def test_wrong_types(cls, name, value):
    with pytest.raises(ConfigError, match=name):
        make_config(cls, {name: value})


def test_int_is_accepted_for_float():
    cfg = make_config(PretrainConfig, {"lr": 1 / 1000, "fix_rate": 1})
    assert cfg.fix_rate == 1.0 and isinstance(cfg.fix_rate, float)


@pytest.mark.parametrize("cls,params", [
    (PretrainConfig, {"phase1_steps": -1}),
    (PretrainConfig, {"phase2_steps": -5}),
    (PretrainConfig, {"n_train": 0}),
    (PretrainConfig, {"n_test": -5}),
    (PretrainConfig, {"train_batch_size": 0}),
    (PretrainConfig, {"max_new_tokens": 0}),
    (PretrainConfig, {"fix_rate": 1.5}),
    (PretrainConfig, {"break_rate": -0.1}),
    (PretrainConfig, {"single_frac": float("nan")}),
    (PretrainConfig, {"lr": 0}),
    (PretrainConfig, {"lr": 1.0}),
    (PretrainConfig, {"lr": math.inf}),
    (PretrainConfig, {"error_source": "oracle"}),
    (PretrainConfig, {"d_model": 96, "n_heads": 5}),
    (PretrainConfig, {"n_heads": 0}),
    (PretrainConfig, {"run_name": "../x"}),
    (PretrainConfig, {"run_name": "a/b"}),
    (PretrainConfig, {"run_name": ".."}),
    (PretrainConfig, {"run_name": ""}),
    (PretrainConfig, {"run_name": "has space"}),
    (PretrainConfig, {"device": "tpu"}),
    (EvalConfig, {"task": "math500"}),
    (EvalConfig, {"task": "TOY"}),
    (EvalConfig, {"n_test": 0}),
    (EvalConfig, {"n_transcripts": -1}),
    (EvalConfig, {"temperatures": []}),
    (EvalConfig, {"temperatures": [-0.5]}),
    (EvalConfig, {"temperatures": [0.0, 6.0]}),
    (EvalConfig, {"temperatures": ["hot"]}),
    (EvalConfig, {"run_name": "../x"}),
])
def test_out_of_range(cls, params):
    with pytest.raises(ConfigError) as e:
        make_config(cls, params)
    assert any(k in str(e.value) for k in params)


def test_zero_steps_are_allowed():
    cfg = make_config(PretrainConfig, {"phase1_steps": 0, "phase2_steps": 0})
    assert (cfg.phase1_steps, cfg.phase2_steps) == (0, 0)


@pytest.mark.parametrize("name", ["default", "smoke", "run-1", "a_b.c", "2024-01-01"])
def test_good_run_names(name):
    assert make_config(PretrainConfig, {"run_name": name}).run_name == name


def test_lists_become_tuples():
    cfg = make_config(EvalConfig, {"temperatures": [0.0, 0.5, 1]})
    assert cfg.temperatures == (0.0, 0.5, 1)
    assert isinstance(cfg.temperatures, tuple)
    assert make_config(EvalConfig, {"temperatures": (1.0,)}).temperatures == (1.0,)
    assert make_config(EvalConfig, {"temperatures": 0.7}).temperatures == (0.7,)  # a scalar is one temperature
    assert C.to_dict(cfg)["temperatures"] == [0.0, 0.5, 1]
    hash(cfg)  # frozen and hashable: no lists inside


def test_bool_temperatures_are_rejected():
    with pytest.raises(ConfigError):
        make_config(EvalConfig, {"temperatures": [True, False]})


def test_base_run_is_checked_like_run_name():
    with pytest.raises(ConfigError):
        make_config(EvalConfig, {"base_run": "../x"})


def test_odd_head_dim_is_rejected():
    with pytest.raises(ConfigError):
        make_config(PretrainConfig, {"d_model": 6, "n_heads": 2})


def test_from_params_takes_only_the_config_names():
    ns = {"n_test": 7, "seed": 3, "np": object(), "unrelated": "x"}
    cfg = C.from_params(EvalConfig, ns)
    assert (cfg.n_test, cfg.seed) == (7, 3)
    with pytest.raises(ConfigError):
        C.from_params(EvalConfig, {"n_test": "7"})


# ------------------------------------------------------------------------------------------
# config_for, field_names, profiles
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name,cls", [
    ("00", PretrainConfig),
    ("00_toy_world_and_base_model", PretrainConfig),
    ("01", EvalConfig),
    ("01_base_model_self_correction", EvalConfig),
    ("01_base_model_self_correction.ipynb", EvalConfig),
    ("notebooks/01_base_model_self_correction.ipynb", EvalConfig),
])
def test_config_for(name, cls):
    assert config_for(name) is cls


@pytest.mark.parametrize("name", ["99", "no_such_notebook", "01_base_model_self_correction_x", "0", "",
                                  "01_base_model_self_correction.py"])
def test_config_for_rejects(name):
    with pytest.raises(ConfigError) as e:
        config_for(name)
    for valid in C.NOTEBOOK_CONFIGS:
        assert valid in str(e.value)


def test_field_names_common_first():
    """Every config starts with RunParams' fields, after `seed` where one seed drives everything (``C.Seed``); a
    notebook whose `seeds` drive training has `eval_seed` instead, never both."""
    common = field_names(C.RunParams)
    assert field_names(C.Common) == ["seed"] + common
    for cls in C.NOTEBOOK_CONFIGS.values():
        names = field_names(cls)
        lead = ["seed"] if issubclass(cls, C.Seed) else []
        assert names[: len(lead) + len(common)] == lead + common, cls.__name__
        assert len(set(names)) == len(names)
        assert not {"seed", "eval_seed"} <= set(names), cls.__name__
    sft = field_names(C.SFTConfig)  # notebook 10: the names its code reads
    assert "eval_seed" in sft and "seed" not in sft and "batch_size" not in sft
    assert {"sft_batch_size", "gen_batch_size"} <= set(sft)


def test_profile_params_filters():
    profile = {"n_test": 64, "n_train": 100, "temperatures": [0.0], "phase1_steps": 3, "nonsense": 1}
    assert C.profile_params(EvalConfig, profile) == {"n_test": 64, "temperatures": [0.0]}
    assert C.profile_params(PretrainConfig, profile) == {"n_test": 64, "n_train": 100, "phase1_steps": 3}
    assert C.profile_params(EvalConfig, {}) == {}


def test_load_profile(tmp_path):
    p = tmp_path / "p.yaml"
    p.write_text("n_test: 16\ntemperatures: [0.0, 1.0]\n")
    assert C.load_profile(p) == {"n_test": 16, "temperatures": [0.0, 1.0]}
    (tmp_path / "empty.yaml").write_text("")
    assert C.load_profile(tmp_path / "empty.yaml") == {}
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError):
        C.load_profile(tmp_path / "list.yaml")
    with pytest.raises(ConfigError):
        C.load_profile(tmp_path / "missing.yaml")


@needs_profiles
@pytest.mark.parametrize("path", PROFILES, ids=[p.stem for p in PROFILES])
def test_shipped_profiles_are_valid(path):
    profile = C.load_profile(path)
    known = set().union(*(field_names(c) for c in C.NOTEBOOK_CONFIGS.values()))
    plain = {k.split("/", 1)[-1] for k in profile}
    assert plain <= known, f"{path.name}: names no notebook has: {sorted(plain - known)}"
    for name, cls in C.NOTEBOOK_CONFIGS.items():
        params = C.profile_params(cls, profile, name)
        if profile.get("task", "toy") != "toy" and "train_path" not in profile and cls in (C.SFTConfig, C.Stage1Config,
                                                                                           C.Stage2Config,
                                                                                           C.AblationConfig,
                                                                                           C.ThreeTurnConfig):
            # a real-task profile leaves the user's training file to them: the training notebooks say so
            with pytest.raises(ConfigError, match="train_path"):
                make_config(cls, params)
            continue
        make_config(cls, params)


# ------------------------------------------------------------------------------------------
# CLI: bad parameters fail fast, print the choices and create nothing
# ------------------------------------------------------------------------------------------

def run_cli(*args: str) -> tuple[subprocess.CompletedProcess, float]:
    t0 = time.perf_counter()
    proc = subprocess.run([PYTHON, "-m", "scorelib", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=CLI_TIMEOUT_S)
    return proc, time.perf_counter() - t0


def assert_failed_fast(proc, seconds, results: Path):
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert seconds < CLI_FAST_S, f"took {seconds:.1f} s"
    assert "Traceback" not in proc.stderr, proc.stderr
    assert not results.exists(), f"{results} was created"
    assert "[scorelib] running" not in proc.stdout


@pytest.mark.parametrize("param,value,expect", [
    ("no_such_param", "1", "valid parameters"),
    ("n_test", "-5", "n_test must be >= 1"),
    ("n_test", "abc", "must be of type int"),
    ("n_test", "1.5", "must be of type int"),
    ("n_test", "true", "must be of type int"),
    ("temperatures", "[-1]", "temperatures"),
    ("run_name", "../x", "run_name"),
])
def test_cli_run_rejects_bad_parameter(tmp_path, param, value, expect):
    results = tmp_path / "results"
    proc, seconds = run_cli("run", "01_base_model_self_correction", "-p", param, value, "--results", str(results))
    assert_failed_fast(proc, seconds, results)
    err = proc.stderr
    assert expect in err, err
    if param == "no_such_param":
        for name in field_names(EvalConfig):
            assert name in err


def test_cli_run_rejects_unknown_notebook(tmp_path):
    results = tmp_path / "results"
    proc, seconds = run_cli("run", "99_nothing", "--results", str(results))
    assert_failed_fast(proc, seconds, results)
    for name in C.NOTEBOOK_CONFIGS:
        assert name in proc.stderr


def test_cli_run_rejects_bad_parameter_after_profile_file(tmp_path):
    prof = tmp_path / "mine.yaml"
    prof.write_text("n_test: 8\n")
    results = tmp_path / "results"
    proc, seconds = run_cli("run", "00", "--profile", str(prof), "-p", "fix_rate", "1.5", "--results", str(results))
    assert_failed_fast(proc, seconds, results)
    assert "fix_rate" in proc.stderr


@needs_profiles
def test_cli_reproduce_rejects_unknown_profile(tmp_path):
    results = tmp_path / "results"
    proc, seconds = run_cli("reproduce", "--profile", "no_such_profile", "--results", str(results))
    assert_failed_fast(proc, seconds, results)
    assert "no_such_profile" in proc.stderr
    assert "valid profiles" in proc.stderr
    for p in PROFILES:
        assert p.stem in proc.stderr


@pytest.mark.parametrize("cls, sweep, expect", [
    (C.Stage2Config, [{"foo": 1}], "cannot vary ['foo']"),
    (C.Stage2Config, [{1: 2}], "cannot vary ['1']"),
    (C.Stage2Config, [{}], "must be a mapping"),
    (C.Stage2Config, [3], "must be a mapping"),
    (C.Stage2Config, [{"alpha": -1}], "alpha must be >= 0"),
    (C.Stage2Config, [{"lr": 2.0}], "lr must be in (0, 1)"),
    (C.Stage2Config, [{"k": 1}], "k must be >= 2"),
    (C.Stage2Config, [{"steps": 2.5}], "whole numbers"),
    (C.Stage2Config, [{"steps": 10**400}], "numbers below 1e9"),
    (C.Stage2Config, [{"lr": float("nan")}], "numbers below 1e9"),
    (C.Stage2Config, [{"alpha": True}], "numbers below 1e9"),
    (C.Stage2Config, [{"alpha": "3"}], "numbers below 1e9"),
    (C.Stage2Config, [{"turn2_baseline": "nope"}], "turn2_baseline must be"),
    (C.Stage2Config, [{"alpha": 3}, {"alpha": 3.0}], "sweep variants repeat"),
    (C.Stage2Config, [{"alpha": 10}], "changes nothing"),
    (C.Stage2Config, [{"beta2": 1.0}], "cannot vary ['beta2']"),  # one round of Stage II has no beta2
    (C.Stage1Config, [{"alpha": 3}], "cannot vary ['alpha']"),  # Stage I has no bonus
    (C.Stage1Config, [{"turn2_baseline": "first_attempt"}], "cannot vary ['turn2_baseline']"),
])
def test_bad_sweep_variants_are_refused(cls, sweep, expect):
    with pytest.raises(C.ConfigError) as e:
        C.make_config(cls, dict(sweep=sweep))
    assert expect in str(e.value)


def test_a_bad_main_setting_is_not_blamed_on_a_sweep_variant():
    with pytest.raises(C.ConfigError) as e:
        C.make_config(C.Stage2Config, dict(k=1, sweep=[{"alpha": 3}]))
    assert "sweep variant" not in str(e.value) and "k must be >= 2" in str(e.value)
    with pytest.raises(C.ConfigError, match="one round"):
        C.make_config(C.Stage2Config, dict(rounds=2, sweep=[{"alpha": 3}]))


def test_sweep_variants_make_their_own_configs():
    cfg = C.make_config(C.Stage2Config, dict(sweep=[{"alpha": 3}, {"lr": 3e-5, "steps": 50},
                                                    {"turn2_baseline": "first_attempt"}], steps=100))
    assert [C.sweep_label(v) for v in cfg.sweep] == ["alpha-3", "lr-3e-05_steps-50", "turn2_baseline-first_attempt"]
    v = C.sweep_config(cfg, cfg.sweep[1])
    assert (v.lr, v.steps, v.alpha, v.sweep) == (3e-5, 50, cfg.alpha, ())
    assert isinstance(v.steps, int) and isinstance(C.sweep_config(cfg, {"alpha": 3}).alpha, float)
    assert C.sweep_label({"steps": 1000000}) != C.sweep_label({"steps": 1000001})
    assert C.sweep_label({"lr": 1.000001e-4}) != C.sweep_label({"lr": 1.0000011e-4})
    assert C.make_config(C.Stage2Config, dict(sweep={"alpha": 3})).sweep == ({"alpha": 3},)  # `-p sweep '{alpha: 3}'`
    with pytest.raises(C.ConfigError, match="unknown parameter"):  # only the RL notebooks sweep
        C.make_config(C.EvalConfig, dict(sweep=[{"alpha": 3}]))


def test_profile_keys_scoped_to_one_notebook():
    profile = {"steps": 5, "30/steps": 7, "20/sweep": [{"beta2": 1.0}], "run_name": "x"}
    assert C.profile_params(C.Stage1Config, profile, "20_stage1_vs_multiturn_rl") == dict(
        steps=5, sweep=[{"beta2": 1.0}], run_name="x")
    assert C.profile_params(C.Stage2Config, profile, "30_score_stage2") == dict(steps=7, run_name="x")
    with pytest.raises(ConfigError, match="no notebook numbered"):
        C.profile_params(C.Stage2Config, {"99/steps": 1}, "30_score_stage2")
    with pytest.raises(ConfigError, match="has no parameter 'sweep'"):
        C.profile_params(C.EvalConfig, {"01/sweep": []}, "01_base_model_self_correction")


# ------------------------------------------------------------------------------------------
# The tuning protocol: eval_split, and the tune and default profiles
# ------------------------------------------------------------------------------------------

EVALUATING = [C.PretrainConfig, C.EvalConfig, C.SFTConfig, C.Stage1Config, C.Stage2Config]


@pytest.mark.parametrize("cls", EVALUATING)
def test_eval_split_is_checked(cls):
    assert cls().eval_split == "test"
    assert make_config(cls, {"eval_split": "val"}).eval_split == "val"
    for bad in ("train", "validation", "TEST", ""):
        with pytest.raises(ConfigError, match="eval_split must be one of"):
            make_config(cls, {"eval_split": bad})


def test_eval_split_val_on_a_real_task_needs_train_path(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text("{}")
    with pytest.raises(ConfigError, match="eval_split 'val' on task 'math' needs train_path"):
        make_config(EvalConfig, {"task": "math", "model": str(tmp_path / "m"), "eval_split": "val"})
    train = tmp_path / "train.jsonl"
    train.write_text("")
    cfg = make_config(EvalConfig, {"task": "math", "model": str(tmp_path / "m"), "eval_split": "val",
                                   "train_path": str(train)})
    assert cfg.eval_split == "val"


@needs_profiles
def test_tune_profile_is_the_tuning_run_and_default_the_reporting_run():
    from scorelib import protocol
    from scorelib.cli import resolve_params

    for name, cls in C.NOTEBOOK_CONFIGS.items():
        _, params, cfg = resolve_params(name, "tune", [], None)
        seeds = (cfg.seed,) if name.startswith("0") else cfg.seeds
        # notebooks 00 and 01 run once a base model: their run is named by base_run at their seed
        assert params["run_name"] == ("tune100" if name.startswith("0") else "tune") and cfg.eval_split == "val", name
        assert protocol.kind(cfg.eval_split, seeds) == "tuning", name
        assert getattr(cfg, "base_run", "tune{seed}") == "tune{seed}"
        _, ref_params, ref = resolve_params(name, "default", [], None)
        seeds = (ref.seed,) if name.startswith("0") else ref.seeds
        assert ref.eval_split == "test" and protocol.kind(ref.eval_split, seeds) == "reporting", name
        assert ref_params["run_name"] == ("seed0" if name.startswith("0") else "default"), name
        if hasattr(ref, "base_runs"):  # each reporting seed starts from its own base
            assert ref.base_runs() == [f"seed{s}" for s in ref.base_seeds()], name
    _, _, cfg = resolve_params("30", "tune", [], None)
    assert (cfg.stage1_run, cfg.sft_run) == ("tune", "tune") and cfg.seeds == (100, 101, 102)
    for nb in ("20", "30"):  # the sweeps are tuning tools: the tune profile runs them, the reporting run does not
        assert resolve_params(nb, "tune", [], None)[2].sweep and not resolve_params(nb, "default", [], None)[2].sweep
