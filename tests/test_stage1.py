"""Notebook 20's steps (scorelib.stage1) on hand-made runs: training order, the tables built from the runs, the
summary, and that notebook 30's Setup extends notebook 20's."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from scorelib import config, stage1, stage2, stages, upstream
from scorelib.results import Run


def _run(method: str, seed: int, fix_own: float = 10.0) -> stage1.SeedRun:
    log = [dict(step=i + 1, acc_t1=10.0 * i, acc_t2=10.0 * i + 5, different_answer=50.0, reward=0.1, sample_s=1.0,
                train_s=2.0) for i in range(3)]
    return stage1.SeedRun(seed, log, {0.0: f"eval {method} {seed}"},
                          dict(seed=seed, method=method, checkpoint="step_000002", training_reward=0.5))


def _setup(tmp_path, **kw) -> stage1.Setup:
    cfg = config.Stage1Config(seeds=(3, 5), **kw)
    return stage1.Setup(cfg, Run(stage1.NOTEBOOK, tmp_path, 0.0), None, "base", "tok", "model-ref", ["p0"], None)


def test_run_all_trains_multi_turn_rl_then_stage1_on_each_seed(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(stage1, "run_seed", lambda su, seed, method: calls.append((seed, method)) or _run(method, seed))
    runs = stage1.run_all(_setup(tmp_path))
    assert calls == [(3, "Multi-turn RL"), (3, "Stage I"), (5, "Multi-turn RL"), (5, "Stage I")]
    assert list(runs) == ["Multi-turn RL", "Stage I"] and [r.seed for r in runs["Stage I"]] == [3, 5]
    # the selected lines keep the training order (seed by seed); the table is indexed by method and seed
    assert [(r["seed"], r["method"]) for r in stage1.selected_rows(runs)] == calls
    assert list(stage1.selected_table(runs).index) == [("Multi-turn RL", 3), ("Stage I", 3), ("Multi-turn RL", 5),
                                                       ("Stage I", 5)]


def test_settings_are_the_two_objectives_of_this_runs_parameters(tmp_path):
    su = _setup(tmp_path, beta1=0.02, beta2=0.5)
    assert [su.settings(o).objective for o in stage1.METHODS.values()] == ["multi_turn", "stage1"]
    assert su.settings("stage1").beta2 == 0.5 and su.settings("multi_turn").beta_turn1 is None  # no beta_turn1 here


def test_curves_average_the_seeds_of_each_method():
    runs = {m: [_run(m, 0), _run(m, 1)] for m in stage1.METHODS}
    curve = stage1.curves(runs)
    assert list(curve.columns.levels[0]) == ["Multi-turn RL", "Stage I"]
    # steps 1-3: acc_t1 0, 10, 20 on both seeds; smoothed over (up to) 5 trailing steps: 0, 5, 10
    assert curve[("Stage I", "acc_t1")].tolist() == [0.0, 5.0, 10.0]


def test_spread_table_names_each_method_and_temperature():
    rows_by_t = {0.0: {"Stage I": dict(fix_own=12.3456, different_answer=40.0, delta_seed_sd=1.0)},
                 1.0: {"Stage I": dict(fix_own=20.0, different_answer=50.0)}}
    table = stage1.spread_table(rows_by_t)
    assert list(table.index) == ["Stage I (greedy)", "Stage I (T=1)"]
    assert table.loc["Stage I (greedy)"].tolist() == [12.35, 40.0, 1.0]
    assert math.isnan(table.loc["Stage I (T=1)", "Δ sd over seeds"])  # one seed: no spread


class _Eval:
    def __init__(self, i2c, c2i):
        self.frame = pd.DataFrame(dict(delta_i2c=i2c, delta_c2i=c2i, acc_t1=[0.0, 0.0]), index=[1, 2])

    def by_level(self):
        return self.frame


def test_by_level_puts_the_base_and_each_methods_first_seed_side_by_side():
    runs = {"Multi-turn RL": [stage1.SeedRun(0, [], {0.0: _Eval([1.0, 2.0], [3.0, 4.0])}, {})],
            "Stage I": [stage1.SeedRun(0, [], {0.0: _Eval([5.04, 6.0], [7.0, 8.0])}, {}),
                        stage1.SeedRun(1, [], {0.0: _Eval([9.0, 9.0], [9.0, 9.0])}, {})]}
    table = stage1.by_level([{0.0: _Eval([0.0, 0.5], [1.0, 1.5])}], runs, 0.0)
    assert list(table.columns) == [(m, k) for m in ("Base model", "Multi-turn RL", "Stage I")
                                   for k in ("delta_i2c", "delta_c2i")]
    assert table[("Stage I", "delta_i2c")].tolist() == [5.0, 6.0]  # the first seed, rounded to 0.1


def test_summary_keeps_the_variant_rows_of_the_sweep_only(tmp_path):
    su = _setup(tmp_path, sweep=({"lr": 0.0002},))
    runs = {m: [_run(m, 3)] for m in stage1.METHODS}
    sweep_rows = [dict(variant="base"), dict(variant="default"), dict(variant="lr-0.0002")]
    c5 = dict(claim="C5", holds=False)
    out = stage1.summary(su, {0.0: {"Stage I": {}}}, c5, runs, sweep_rows)
    assert out["sweep"] == [dict(variant="lr-0.0002")] and out["claims"] == dict(C5=c5)
    assert out["rows"] == {"0.0": {"Stage I": {}}} and out["seeds"] == [3, 5]
    assert out["sweep_protocol"] == stage1.sweep_protocol(su) and [r["method"] for r in out["selected"]] == [
        "Multi-turn RL", "Stage I"]
    assert stage1.summary(_setup(tmp_path), {}, c5, runs, [])["sweep_protocol"] is None


def test_rows_pool_each_method_with_the_eval_seed(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(stage1, "pooled", lambda evals, t, n_boot, seed: seen.append((len(evals), t, seed)) or {})
    su = _setup(tmp_path, eval_seed=7)
    rows = stage1.rows_at(su, {0.0: "base"}, {m: [_run(m, 3), _run(m, 5)] for m in stage1.METHODS}, 0.0)
    assert list(rows) == ["Base model", "Multi-turn RL", "Stage I"]
    assert seen == [(1, 0.0, 7), (2, 0.0, 7), (2, 0.0, 7)]


def test_stage2_setup_extends_stage1s(tmp_path):
    assert issubclass(stage2.Setup, stage1.Setup) and stage2.SeedRun is stage1.SeedRun
    assert stage2.stage1_model("d", 4) == stage1.stage1_model("d", 4)
    assert str(stage1.stage1_model("d", 4)).endswith("models/seed4/stage1")


def test_eval_seed_seeds_only_evaluation():
    cfg = config.Stage1Config()
    assert not hasattr(cfg, "seed") and cfg.eval_seed == 0 and cfg.gen_batch_size == 512
    assert np.array_equal(stages.settings("stage1", cfg).steps, cfg.steps)
    with pytest.raises(config.ConfigError, match="unknown parameter"):
        config.make_config(config.Stage1Config, dict(seed=1))


def test_stage2_accepts_a_stage1_run_written_with_the_old_parameter_names(tmp_path):
    # the reporting run's notebook-20 config.json (commit 14439f3) has seed and batch_size
    old = {("seed" if k == "eval_seed" else "batch_size" if k == "gen_batch_size" else k): v
           for k, v in config.to_dict(config.Stage1Config()).items()}
    assert "seed" in old and "eval_seed" not in old
    (tmp_path / "config.json").write_text(json.dumps(old))
    upstream.check_stage1_run(config.Stage2Config(), tmp_path)  # same task, model, base and rank: accepted
    (tmp_path / "config.json").write_text(json.dumps({**old, "lora_rank": 8}))
    with pytest.raises(config.ConfigError, match=r"differs from this run in \['lora_rank'\]"):
        upstream.check_stage1_run(config.Stage2Config(), tmp_path)
    assert config.saved_config(old, stage1.NOTEBOOK)["gen_batch_size"] == old["batch_size"]
