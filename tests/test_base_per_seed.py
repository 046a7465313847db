"""One base model a seed: a ``base_run`` holding '{seed}' gives each seed of notebooks 10-50 its own notebook-00 run,
and ``reproduce`` runs notebooks 00 and 01 once a seed. Unit tests of the naming, then a smoke-sized run of the
chain 00, 01, 10, 20, 30 and 50 with two seeds, asserting that each seed started from its own base."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from scorelib import config as C
from scorelib import from_base, stage1
from scorelib.cli import base_seeds_needed, check_inputs, resolve_params
from scorelib.results import MissingInput

ROOT = Path(__file__).resolve().parents[1]


def test_base_run_with_a_seed_field_names_one_run_a_seed():
    cfg = C.Stage1Config(base_run="b{seed}", seeds=(3, 1))
    assert [cfg.base_run_for(s) for s in (0, 3)] == ["b0", "b3"]
    assert cfg.base_runs() == ["b3", "b1"]  # in the order of the seeds
    assert cfg.inputs() == [("00_toy_world_and_base_model", "b3", ""), ("00_toy_world_and_base_model", "b1", "")]
    shared = C.Stage1Config(base_run="default", seeds=(0, 1, 2))
    assert shared.base_runs() == ["default"] and shared.base_run_for(2) == "default"
    assert C.EvalConfig(base_run="b{seed}", seed=7).base_runs() == ["b7"]  # one seed: its own base
    assert C.Stage1Config(base_run="b{seed}", model="some/hub-model").inputs() == []  # a given model: no base run


@pytest.mark.parametrize("bad", ["b{x}", "b{seed}}", "{seed", "b/{seed}", "{SEED}"])
def test_base_run_rejects_other_braces_and_bad_names(bad):
    with pytest.raises(C.ConfigError, match="base_run"):
        C.make_config(C.Stage1Config, {"base_run": bad})


def _profile(tmp_path, **extra) -> str:
    p = yaml.safe_load((ROOT / "notebooks" / "params" / "smoke.yaml").read_text())
    p.update(extra)
    path = tmp_path / "two_bases.yaml"
    path.write_text(yaml.safe_dump(p))
    return str(path)


def test_notebooks_00_and_01_are_named_by_the_base_run_at_their_seed(tmp_path):
    prof = _profile(tmp_path, base_run="b{seed}", seeds=[0, 2])
    for nb in ("00", "01"):
        assert resolve_params(nb, prof, [("seed", "2")], None)[1]["run_name"] == "b2"
        assert resolve_params(nb, prof, [], None)[1]["run_name"] == "b0"  # the notebook's own seed (0)
        assert resolve_params(nb, prof, [("seed", "2"), ("run_name", "mine")], None)[1]["run_name"] == "mine"
    assert "base_run" not in resolve_params("00", prof, [], None)[1]  # not a parameter of notebook 00
    assert resolve_params("20", prof, [], None)[1]["run_name"] == "smoke"  # later notebooks keep run_name
    assert base_seeds_needed(prof, None) == [0, 2]
    assert base_seeds_needed(_profile(tmp_path), None) == []  # the smoke profile: one shared base


def test_a_missing_seeds_base_fails_before_compute_naming_its_seed(tmp_path):
    prof = _profile(tmp_path, base_run="b{seed}", seeds=[0, 1])
    cfg = resolve_params("20", prof, [], str(tmp_path / "results"))[2]
    with pytest.raises(MissingInput, match=r"-p run_name b0 -p seed 0"):
        check_inputs(cfg)
    check_inputs(cfg, {("00_toy_world_and_base_model", "b0"), ("00_toy_world_and_base_model", "b1")})  # planned


def test_base_for_loads_each_seeds_own_base_once(monkeypatch):
    loads = []

    def fake_load(ref, device, dtype):
        loads.append(ref)
        return f"model<{ref}>", None

    monkeypatch.setattr(from_base, "load_model", fake_load)
    monkeypatch.setattr(from_base, "resolve_model", lambda cfg, seed: f"/runs/b{seed}/model")
    cfg = C.Stage1Config(base_run="b{seed}", seeds=(0, 1))
    su = from_base.BaseSetup(cfg, None, None, "model</runs/b0/model>", None, "/runs/b0/model", [])
    assert su.per_seed and su.base_for(0) == "model</runs/b0/model>" and loads == []
    assert su.base_for(1) == su.base_for(1) == "model</runs/b1/model>" and loads == ["/runs/b1/model"]
    assert "seed 1: /runs/b1/model" in su.base_described
    shared = from_base.BaseSetup(C.Stage1Config(seeds=(0, 1)), None, None, "m", None, "/runs/default/model", [])
    assert not shared.per_seed and shared.base_for(1) == "m"
    assert shared.base_described == "base model /runs/default/model"


class FakeSetup:
    """What stage1.run_seed and evaluate_bases touch, with seed s's base the string 'base<s>'."""

    cfg = C.Stage1Config(base_run="b{seed}", seeds=(0, 1), select_window=1)
    per_seed, base, tokenizer, lora, tiny, select_on = True, "base0", None, (), True, None

    class task:
        train_problems = staticmethod(lambda n, seed: [f"problem of seed {seed}"])

    class run:
        dir = Path("/nowhere")
        history = staticmethod(lambda log, name: None)

    def base_for(self, seed):
        return f"base{seed}"

    base_row = from_base.BaseSetup.base_row

    def settings(self, objective):
        return objective


def test_stage1_trains_and_evaluates_each_seed_from_its_own_base(monkeypatch):
    evaluated, trained = {}, []
    monkeypatch.setattr(stage1, "evaluate", lambda su, model, seed, read_from=(): evaluated.setdefault(seed, model))
    assert stage1.evaluate_bases(FakeSetup()) == ["base0", "base1"]
    assert evaluated == {0: "base0", 1: "base1"}

    def fake_train(base, tokenizer, task, train, settings, seed, *args, **kwargs):
        trained.append((base, train[0], seed))
        return f"policy from {base}", [], 0, 0.0

    monkeypatch.setattr(stage1.stages, "train_stage", fake_train)
    monkeypatch.setattr(stage1.stages, "selected_row", lambda *a, **k: {})
    monkeypatch.setattr(stage1, "evaluate", lambda su, model, seed, read_from=(): model)
    runs = [stage1.run_seed(FakeSetup(), s, "Stage I") for s in (1, 0)]
    assert trained == [("base1", "problem of seed 1", 1), ("base0", "problem of seed 0", 0)]
    assert [r.evals for r in runs] == ["policy from base1", "policy from base0"]


@pytest.fixture(scope="module")
def two_bases(tmp_path_factory):
    """`reproduce` of notebooks 00-30 and 50 on the smoke profile with two seeds, each from its own base."""
    tmp = tmp_path_factory.mktemp("two_bases")
    prof, out = _profile(tmp, base_run="b{seed}", seeds=[0, 1]), tmp / "results"
    proc = subprocess.run([sys.executable, "-m", "scorelib", "reproduce", "--profile", prof, "--results", str(out),
                           "--only", "00", "01", "10", "20", "30", "50"],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out


def _weights(model_dir: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(next(model_dir.glob("*.safetensors"))))


def test_reproduce_runs_00_and_01_once_a_seed(two_bases):
    for nb in ("00_toy_world_and_base_model", "01_base_model_self_correction"):
        for s in (0, 1):
            d = two_bases / nb / f"b{s}"
            assert (d / "done.json").exists(), d
            assert json.loads((d / "config.json").read_text())["seed"] == s
    w0, w1 = (_weights(two_bases / "00_toy_world_and_base_model" / f"b{s}" / "model") for s in (0, 1))
    assert w0.keys() == w1.keys() and any(not torch.equal(w0[k], w1[k]) for k in w0)  # two different bases
    times = json.loads((two_bases / "reproduce_two_bases.json").read_text())["seconds"]
    assert {"00_toy_world_and_base_model/b0", "00_toy_world_and_base_model/b1",
            "20_stage1_vs_multiturn_rl"} <= set(times)


def test_later_notebooks_pool_the_base_row_over_both_bases(two_bases):
    t20 = (two_bases / "20_stage1_vs_multiturn_rl" / "smoke" / "tables" / "evaluation_greedy.csv").read_text()
    assert "Base model (toy, greedy, 2 seed(s))" in t20
    nb20 = (two_bases / "20_stage1_vs_multiturn_rl" / "smoke" / "20_stage1_vs_multiturn_rl.ipynb").read_text()
    assert "one base model a seed (seed 0: " in nb20 and "b1/model" in nb20
    m30 = json.loads((two_bases / "30_score_stage2" / "smoke" / "metrics.json").read_text())
    assert m30["rows"]["Base model"]["seeds"] == 2
    t1 = json.loads((two_bases / "10_sft_baselines" / "smoke" / "metrics.json").read_text())["rows"]
    assert t1["Base model"]["seeds"] == 2
    nb50 = (two_bases / "50_inference_scaling" / "smoke" / "50_inference_scaling.ipynb").read_text()
    assert "one base model a seed" in nb50
