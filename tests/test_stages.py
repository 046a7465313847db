"""scorelib.stages: starting policies and references, one stage's run with selection, training curves over seeds,
sweeps; scorelib.upstream: notebook 30's reads of notebooks 10's and 20's runs; and the claim checks C5 and C6 on
hand-made numbers."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
import torch

from scorelib import claims, config, evaluate, rl_settings, stage1, stages, upstream
from scorelib.models import build_tiny_model, build_tiny_tokenizer, is_peft, is_tiny
from scorelib.tasks import load_task


@pytest.fixture(scope="module")
def tiny():
    tok = build_tiny_tokenizer()
    return tok, build_tiny_model(tok, 16, 1, 2, 32, seed=0)


def test_start_policy_full_and_lora(tiny):
    tok, base = tiny
    policy, ref = stages.start_policy(base, None, 0, 16.0, ("q_proj",))
    assert policy is not base and ref is not base and not is_peft(policy)
    assert all(p.requires_grad for p in policy.parameters()) and not any(p.requires_grad for p in ref.parameters())
    lora, ref = stages.start_policy(base, None, 2, 4.0, ("q_proj", "v_proj"))
    assert is_peft(lora) and ref is None
    assert not any(isinstance(m, type(lora)) for m in base.modules())  # the base itself was not wrapped


def test_train_stage_selects_saves_and_continues(tiny, tmp_path):
    tok, base = tiny
    task = load_task("toy")
    train = task.train_problems(8, seed=0)
    s = rl_settings.objective("stage1", steps=4, problems_per_step=2, k=2, lr=1e-2, max_new_tokens=6,
                              checkpoint_every=2)
    policy, log, best, reward = stages.train_stage(base, tok, task, train, s, 0, tmp_path, "seed0/stage1", tiny=True)
    assert len(log) == 4 and best.parent == tmp_path / "checkpoints" / "seed0" / "stage1"
    assert best.name in ("step_000002", "step_000004")
    saved = tmp_path / "models" / "seed0" / "stage1"
    assert is_tiny(saved) and (saved / "model.safetensors").exists()
    # Stage II from the saved Stage I model: a full copy, the reference is still the base
    p2, ref = stages.start_policy(base, saved, 0, 16.0, ("q_proj",))
    assert all(torch.equal(a, b) for a, b in zip(p2.parameters(), policy.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(ref.parameters(), base.parameters()))


def test_selection_on_greedy_validation_reward_keeps_the_start_as_a_candidate(tiny, tmp_path, monkeypatch):
    tok, base = tiny
    task = load_task("toy")
    cfg = dataclasses.replace(config.Stage2Config(), select="val_greedy", n_select=6, steps=4, checkpoint_every=2,
                              problems_per_step=2, k=2, max_new_tokens=6)
    val = stages.selection_problems(task, cfg)
    assert [p.unique_id for p in val] == [p.unique_id for p in task.val_problems(6)]
    assert stages.selection_problems(task, dataclasses.replace(cfg, select="train_reward")) is None
    s = stages.settings("stage2", cfg)
    assert s.select == "val_greedy" and rl_settings.kl_weights(s) == (cfg.beta_turn1, cfg.beta1)
    assert stages.objective_reward(s, dict(acc_t1=40.0, acc_t2=50.0)) == 90.0
    assert stages.objective_reward(stages.settings("stage1", cfg), dict(acc_t1=40.0, acc_t2=50.0)) == 50.0
    seen = []
    real = evaluate.evaluate_two_turn

    def spy(model, tokenizer, problems, *a, **kw):
        seen.extend(p.unique_id for p in problems)
        assert kw["temperature"] == 0.0
        return real(model, tokenizer, problems, *a, **kw)

    monkeypatch.setattr(evaluate, "evaluate_two_turn", spy)
    policy, log, best, value = stages.train_stage(base, tok, task, task.train_problems(8, seed=0), s, 0, tmp_path,
                                                  "seed0/stage2", tiny=True, select_problems=val)
    table = json.loads((tmp_path / "checkpoints" / "seed0" / "stage2" / "selection.json").read_text())
    assert [r["step"] for r in table["scores"]] == [0, 2, 4] and table["n_problems"] == 6
    assert value == max(r["score"] for r in table["scores"])
    assert best.name == f"step_{[r['step'] for r in table['scores'] if r['score'] == value][0]:06d}"
    assert set(seen) == {p.unique_id for p in val} and all("/val/" in u for u in seen)  # validation only


def test_curves_average_seeds_and_smooth():
    logs = {"A": [[dict(step=1, acc_t1=10, acc_t2=20, different_answer=50), dict(step=2, acc_t1=30, acc_t2=40, different_answer=30)],
                  [dict(step=1, acc_t1=20, acc_t2=20, different_answer=50), dict(step=2, acc_t1=50, acc_t2=60, different_answer=10)]]}
    c = stages.curves(logs, smooth=1)
    assert c[("A", "acc_t1")].tolist() == [15, 40] and c[("A", "different_answer")].tolist() == [50, 20]
    c2 = stages.curves(logs, smooth=2)
    assert c2[("A", "acc_t1")].tolist() == [15, 27.5]


def _curve(b1, b2, bd, s1, s2, sd, n=10):
    cols = {("MT", "acc_t1"): b1, ("MT", "acc_t2"): b2, ("MT", "different_answer"): bd,
            ("S1", "acc_t1"): s1, ("S1", "acc_t2"): s2, ("S1", "different_answer"): sd}
    return pd.DataFrame({k: np.linspace(*v, 2 * n) for k, v in cols.items()}, index=np.arange(1, 2 * n + 1))


def test_claim_c5():
    collapse = _curve((40, 70), (38, 70), (40, 10), (40, 41), (40, 50), (40, 35))
    c = claims.claim_c5(collapse, "MT", "S1", tail=3)
    assert c["holds"] and c["baseline_collapses"] and c["stage1_keeps_gap"]
    no_collapse = _curve((40, 60), (40, 70), (40, 40), (40, 41), (40, 50), (40, 35))
    assert not claims.claim_c5(no_collapse, "MT", "S1", tail=3)["holds"]


def test_claim_c6():
    def r(d, i2c, c2i, lo, t2=50.0):
        return dict(delta=d, delta_i2c=i2c, delta_c2i=c2i, delta_lo=lo, delta_hi=d + 1, acc_t2=t2)
    rows = {"Base model": r(-3, 2, 5, -4, 41.4), "Multi-turn RL": r(-1, 2, 3, -2, 55.0), "STaR": r(0.4, 2.6, 2.2, -1),
            "SCoRe": r(4.4, 5.8, 1.4, 2, 64.4)}
    c = claims.claim_c6(rows)
    assert c["holds"] and c["final_above"] and "Multi-turn RL 55.0" in c["evidence"]
    assert not claims.claim_c6({**rows, "SCoRe": r(4.4, 5.8, 1.4, -0.5, 64.4)})["holds"]  # CI touches 0
    assert not claims.claim_c6({**rows, "STaR": r(5, 6, 1, 3)})["holds"]  # not the largest
    worse = claims.claim_c6({**rows, "SCoRe": r(4.4, 5.8, 1.4, 2, 54.0)})  # a positive Δ from a worse first attempt
    assert not worse["holds"] and not worse["final_above"] and worse["largest"] and worse["positive"]
    no_final = claims.claim_c6({"STaR": r(0.4, 2.6, 2.2, -1), "SCoRe": r(4.4, 5.8, 1.4, 2, 64.4)})
    assert not no_final["holds"] and "no base or multi-turn RL row" in no_final["evidence"]


def test_claim_c6_needs_something_to_compare():
    c = claims.claim_c6({"SCoRe": dict(delta=3, delta_i2c=4, delta_c2i=1, delta_lo=1, delta_hi=5)})
    assert not c["holds"] and c["evidence"].startswith("not tested")


def test_training_notebooks_need_train_path_on_real_tasks(tmp_path):
    from scorelib import config as C

    for cls in (C.SFTConfig, C.Stage1Config, C.Stage2Config):
        with pytest.raises(C.ConfigError, match="train_path"):
            C.make_config(cls, {"task": "math", "model": "Qwen/Qwen2.5-0.5B"})
    assert C.make_config(C.EvalConfig, {"temperatures": [0, 1]}).temperatures == (0.0, 1.0)


def _write_run(d, config, metrics=None):
    import json

    d.mkdir(parents=True)
    (d / "config.json").write_text(json.dumps(config))
    if metrics is not None:
        (d / "metrics.json").write_text(json.dumps(metrics))


def test_table2_rows_from_other_notebooks(tmp_path):
    from scorelib import config as C

    cfg = C.make_config(C.Stage2Config, {"n_test": 2048})
    same = dict(task="toy", model="", base_run="default", lora_rank=0)
    base_row, sr = dict(delta=-3.0), dict(delta=1.0)
    _write_run(tmp_path / "s1", same, dict(rows={"0.0": {"Base model": base_row, "Multi-turn RL": dict(delta=-4.0),
                                                         "Stage I": dict(delta=-1.0)}}))
    _write_run(tmp_path / "sft", {**same, "n_test": 1024},
               dict(rows={"STaR D+_STaR": dict(delta=-1.6), "Pair-SFT D_SFT": dict(delta=-3.4)}))
    rows, missing, notes = upstream.table2_rows(cfg, tmp_path / "s1", tmp_path / "sft", sr, 0.0, tiny=True)
    assert list(rows) == ["Base model", "Multi-turn RL", "Stage I only", "STaR w/ D+_STaR", "Pair-SFT w/ D_SFT",
                          "SCoRe"] and missing == []
    assert rows["Multi-turn RL"] == dict(delta=-4.0) and rows["Stage I only"] == dict(delta=-1.0)
    assert rows["Base model"] == base_row and "1024" in notes[0]  # different n_test: kept, with a note
    rows, missing, _ = upstream.table2_rows(cfg, tmp_path / "s1", tmp_path / "sft", sr, 0.0, tiny=False)
    assert missing == ["Self-Refine"]  # a real model's table shows that the row is missing
    rows, missing, notes = upstream.table2_rows(cfg, tmp_path / "s1", tmp_path / "sft", sr, 1.0, tiny=True)
    assert set(missing) == {"Base model", "Multi-turn RL", "Stage I only", "STaR w/ D+_STaR", "Pair-SFT w/ D_SFT"}
    assert "greedily" in notes[0]
    _write_run(tmp_path / "sft_math", {**same, "task": "math"}, dict(rows={"STaR D+_STaR": {}}))
    rows, missing, notes = upstream.table2_rows(cfg, tmp_path / "s1", tmp_path / "sft_math", sr, 0.0, tiny=True)
    assert "STaR w/ D+_STaR" in missing and "differs in ['task']" in notes[0]
    rows, missing, _ = upstream.table2_rows(cfg, tmp_path / "s1", tmp_path / "none", sr, 0.0, tiny=True)
    assert set(missing) == {"STaR w/ D+_STaR", "Pair-SFT w/ D_SFT"}
    _write_run(tmp_path / "s1_lora", {**same, "lora_rank": 8}, dict(rows={}))
    with pytest.raises(C.ConfigError, match="lora_rank"):
        upstream.table2_rows(cfg, tmp_path / "s1_lora", tmp_path / "sft", sr, 0.0, tiny=True)


def test_training_time_sums_each_seeds_logs(tmp_path):
    s1, s2 = tmp_path / "20", tmp_path / "30"
    s1.mkdir(), s2.mkdir()
    write = lambda p, rows: p.write_text("".join(json.dumps(r) + "\n" for r in rows))  # noqa: E731
    write(s1 / "history_seed0_stage1.jsonl", [dict(step=1, sample_s=1.0, train_s=0.5), dict(step=2, sample_s=2.0, train_s=0.5)])
    write(s2 / "history_seed0_round1_stage2.jsonl", [dict(step=1, sample_s=3.0, train_s=1.0)])
    write(s2 / "history_seed0_round2_stage1.jsonl", [dict(step=1, sample_s=0.5, train_s=0.5)])
    t = upstream.training_time(s1, s2, [0, 7])
    assert t.loc[0].tolist() == pytest.approx([3.0, 1.0, 3.5, 1.5, 9.0 / 60])
    assert t.loc[7].tolist() == [0.0, 0.0, 0.0, 0.0, 0.0]  # no logs for seed 7


def test_selected_row_means_seconds_per_step(tmp_path):
    log = [dict(step=1, sample_s=1.0, train_s=0.5), dict(step=2, sample_s=2.0, train_s=1.5)]
    row = stages.selected_row(3, log, tmp_path / "step_000002", 0.12345, method="Stage I")
    assert row == dict(seed=3, method="Stage I", checkpoint="step_000002", training_reward=0.123, sample_s=1.5,
                       train_s=1.0)


# ---------------------------------------------------------------- sweeps choose on validation problems only
def _no_test_task(seen: list):
    """The toy task with its test split made unreachable, and every training draw recorded."""
    import dataclasses

    from scorelib.tasks import toy

    task = load_task("toy")

    def no_test(*_):
        raise AssertionError("a sweep asked for test problems")

    def train(n, seed, **kw):
        ps = toy.generate(n, "train", seed=seed, **kw)
        seen.extend(ps)
        return ps

    return dataclasses.replace(task, _test=no_test, _train=train)


def test_sweep_never_touches_test_problems(tiny, tmp_path, monkeypatch):
    from scorelib import config as C
    from scorelib.models import save_model
    from scorelib.results import Run
    from scorelib.tasks import toy

    tok, base = tiny
    evaluated, trained = [], []
    real = evaluate.evaluate_two_turn

    def spy(model, tokenizer, problems, *a, **kw):
        evaluated.append(list(problems))
        return real(model, tokenizer, problems, *a, **kw)

    monkeypatch.setattr(evaluate, "evaluate_two_turn", spy)
    task = _no_test_task(trained)
    cfg = C.make_config(C.Stage1Config, dict(seeds=[0], n_train=8, problems_per_step=2, k=2, steps=1,
                                             checkpoint_every=1, select_window=1, n_test=6, temperatures=[0.0],
                                             n_boot=10, max_new_tokens=4, gen_batch_size=8, sweep=[{"lr": 0.0002}],
                                             n_select=4, progress=False, device="cpu"))
    assert cfg.select == "val_greedy"  # the default: the variant's checkpoint selection is spied on too
    folder = save_model(base, tok, tmp_path / "saved", tiny=True)
    run = Run("20_stage1_vs_multiturn_rl", tmp_path / "run", 0.0)
    run.dir.mkdir()
    rows = stages.run_sweep("stage1", cfg, base, tok, task, run, None, 0, (0, 16.0, ("q_proj",)), True,
                            {"base": (base, "", float("nan")), "saved": (folder, "step_000001", 0.5)})
    assert [r["variant"] for r in rows] == ["base", "saved", "lr-0.0002"]
    assert rows[1]["checkpoint"] == "step_000001" and rows[0]["acc_t1"] == rows[1]["acc_t1"]  # the same weights
    # three rows; the saved copy has the base's weights, so its evaluation comes from the run's cache (as does the
    # variant's when its one step left the weights unchanged): every evaluation that ran saw 6 validation problems,
    # or the 4 that select the variant's checkpoint
    assert (run.dir / "cache" / "eval").is_dir() and 1 <= len(evaluated)
    assert all(len(ps) in (4, 6) for ps in evaluated) and any(len(ps) == 6 for ps in evaluated)
    assert all(p == q for ps in evaluated for p, q in zip(ps, task.val_problems(6)))
    assert all(toy.split_of(p.problem) == "val" for ps in evaluated for p in ps)
    assert trained and all(toy.split_of(p.problem) == "train" for p in trained)
    with pytest.raises(AssertionError, match="test problems"):
        task.eval_problems("test")  # the guard itself works
    # no sweep: nothing is evaluated, not even the references
    evaluated.clear()
    assert stages.run_sweep("stage1", C.sweep_config(cfg, {}), base, tok, task, run, None, 0, (0, 16.0, ()), True,
                            {"base": (base, "", float("nan"))}) == []
    assert evaluated == []


def test_sweep_problems_are_the_validation_split_whatever_eval_split_is():
    from scorelib import config as C

    task = load_task("toy")
    for split in ("test", "val"):
        cfg = C.make_config(C.Stage2Config, {"eval_split": split, "n_test": 16})
        assert stages.sweep_problems(task, cfg) == task.val_problems(16)


def test_table2_rows_leave_out_runs_of_another_split(tmp_path):
    from scorelib import config as C

    same = dict(task="toy", model="", base_run="default", lora_rank=0)  # no eval_split: an older run, on test
    _write_run(tmp_path / "s1", same, dict(rows={"0.0": {"Base model": dict(delta=-3.0)}}))
    _write_run(tmp_path / "sft", {**same, "n_test": 2048}, dict(rows={"STaR D+_STaR": dict(delta=-1.6)}))
    test_cfg = C.make_config(C.Stage2Config, {})
    rows, missing, notes = upstream.table2_rows(test_cfg, tmp_path / "s1", tmp_path / "sft", dict(delta=1.0), 0.0, True)
    assert "Base model" in rows and "STaR w/ D+_STaR" in rows and notes == []
    val_cfg = C.make_config(C.Stage2Config, {"eval_split": "val"})
    rows, missing, notes = upstream.table2_rows(val_cfg, tmp_path / "s1", tmp_path / "sft", dict(delta=1.0), 0.0, True)
    assert list(rows) == ["SCoRe"] and {"Base model", "STaR w/ D+_STaR"} <= set(missing)
    assert "another split" in notes[0] and "differs in ['eval_split']" in notes[1]


# ---------------------------------------------------------------- notebook 30's steps (scorelib.stage2)
def _setup(tmp_path, **overrides):
    """A stage2.Setup over hand-made parts: no model is loaded, the run folder is tmp_path/30."""
    from types import SimpleNamespace

    from scorelib import stage2
    from scorelib.results import Run

    cfg = dataclasses.replace(config.Stage2Config(), **overrides)
    task = SimpleNamespace(train_problems=lambda n, seed: [f"train{seed}"], describe="toy")
    (tmp_path / "30").mkdir(parents=True)
    return stage2.Setup(cfg, Run("30_score_stage2", tmp_path / "30", 0.0), task, "base", "tok", "model-ref",
                        ["p0"], None, tmp_path / "20")


def _fake_train_stage(calls: list):
    def train_stage(base, tokenizer, task, train, settings, seed, run_dir, name, init_dir=None, **kw):
        calls.append((name, init_dir, seed, settings.steps, rl_settings.rewarded(settings)[0],
                      rl_settings.bonus(settings), train))
        return f"policy {name}", [dict(step=1, sample_s=1.0, train_s=2.0)], run_dir / "checkpoints" / name, 0.5
    return train_stage


@pytest.mark.parametrize("stage1_steps", [5, 0])
def test_stage2_rounds_interleave_stage1_and_chain_their_models(tmp_path, monkeypatch, stage1_steps):
    from scorelib import stage2

    calls = []
    monkeypatch.setattr(stages, "train_stage", _fake_train_stage(calls))
    su = _setup(tmp_path, rounds=2, steps=7, stage1_steps=stage1_steps)
    policy, log, best, reward = stage2.train_seed(su, 3)
    run, start = tmp_path / "30", tmp_path / "20" / "models" / "seed3" / "stage1"
    train = ["train3"]
    want = [("seed3/round1_stage2", start, 30, 7, True, 10.0, train)]
    if stage1_steps:  # round 2: Stage I from round 1's Stage II model, then Stage II from that
        want += [("seed3/round2_stage1", run / "models/seed3/round1_stage2", 31, 5, False, 0.0, train),
                 ("seed3/round2_stage2", run / "models/seed3/round2_stage1", 31, 7, True, 10.0, train)]
    else:  # no Stage I steps: round 2's Stage II continues round 1's
        want += [("seed3/round2_stage2", run / "models/seed3/round1_stage2", 31, 7, True, 10.0, train)]
    assert calls == want
    assert (policy, best, reward) == ("policy seed3/round2_stage2", run / "checkpoints/seed3/round2_stage2", 0.5)
    histories = sorted(p.name for p in run.glob("history_*.jsonl"))
    assert histories == sorted(f"history_{c[0].replace('/', '_')}.jsonl" for c in want)


def test_stage2_run_seed_evaluates_the_selected_model(tmp_path, monkeypatch):
    from scorelib import stage2

    monkeypatch.setattr(stages, "train_stage", _fake_train_stage([]))
    seen = {}
    monkeypatch.setattr(stage1, "evaluate_all", lambda model, *a, **kw: seen.update(model=model, **kw) or {0.0: "e"})
    r = stage2.run_seed(_setup(tmp_path, temperatures=(0.0, 1.0)), 2)
    assert (r.seed, r.evals, r.log) == (2, {0.0: "e"}, [dict(step=1, sample_s=1.0, train_s=2.0)])
    assert r.selected == dict(seed=2, checkpoint="round1_stage2", training_reward=0.5, sample_s=1.0, train_s=2.0)
    assert seen["model"] == "policy seed2/round1_stage2" and seen["seed"] == 2
    assert seen["temperatures"] == (0.0, 1.0) and seen["cache_dir"] == tmp_path / "30" / "cache"


def test_stage2_setup_refuses_a_missing_stage1_seed_before_making_the_run(tmp_path):
    from scorelib import stage2

    d = tmp_path / "20_stage1_vs_multiturn_rl" / "r"
    _write_run(d, dict(task="toy", model="m", base_run="default", lora_rank=0))
    (d / "models" / "seed0" / "stage1").mkdir(parents=True)
    cfg = config.make_config(config.Stage2Config, dict(results_dir=str(tmp_path), stage1_run="r", model="m",
                                                       seeds=[0, 5]))
    with pytest.raises(config.ConfigError, match=r"no Stage I model for seeds \[5\]"):
        stage2.setup(cfg)
    assert not (tmp_path / "30_score_stage2").exists()


def _seed_run(seed, c1, c2, different=50.0, temperatures=(0.0,)):
    from types import SimpleNamespace

    from scorelib import stage2

    e = SimpleNamespace(c1=np.array(c1, bool), c2=np.array(c2, bool), summary=dict(different_answer=different))
    return stage2.SeedRun(seed, [dict(step=1, acc_t1=10.0, acc_t2=20.0, different_answer=30.0, shaped_reward=1.0)],
                          {t: e for t in temperatures},
                          dict(seed=seed, checkpoint="step_000002", training_reward=0.12345, sample_s=1.0, train_s=2.0))


def test_stage2_score_at_other_temperatures_writes_one_table_each(tmp_path):
    from scorelib import stage2

    su = _setup(tmp_path, temperatures=(0.0, 1.0, 0.7), n_boot=10)
    runs = [_seed_run(0, [1, 0, 0, 0], [1, 1, 0, 0], temperatures=(0.0, 1.0, 0.7))]
    out = stage2.score_at_other_temperatures(su, runs)
    assert list(out) == ["SCoRe at T=1", "SCoRe at T=0.7"]  # the first temperature is Table 2's
    assert sorted(p.name for p in (tmp_path / "30" / "tables").glob("*.csv")) == ["score_T0.7.csv", "score_T1.csv"]
    assert out["SCoRe at T=1"].loc["SCoRe", "Accuracy@t1"].startswith("25.0")  # 1 of 4 right, then 2 of 4
    assert out["SCoRe at T=1"].loc["SCoRe", "Accuracy@t2"].startswith("50.0")


def test_stage2_tables_of_the_seeds(tmp_path):
    from scorelib import stage2

    runs = [_seed_run(0, [1], [1]), _seed_run(1, [0], [1])]
    sel = stage2.selected_table(runs)
    assert sel.index.tolist() == [0, 1] and sel.loc[1, "training_reward"] == 0.123
    curve = stage2.curves(runs, rounds=2)
    assert list(curve.columns) == [("Stage II (round 2)", k) for k in stage2.CURVE_KEYS]
    assert curve.loc[1].tolist() == [10.0, 20.0, 30.0, 1.0]


def test_stage2_sweep_compares_with_stage1_and_the_main_run(tmp_path, monkeypatch):
    from scorelib import stage2

    seen = {}

    def run_sweep(objective, cfg, base, tok, task, run, init_dir, rl_seed, lora, tiny, references):
        seen.update(objective=objective, init_dir=init_dir, rl_seed=rl_seed, references=references)
        return [dict(variant=k) for k in references] + [dict(variant="alpha-3.0")]

    monkeypatch.setattr(stages, "run_sweep", run_sweep)
    su = _setup(tmp_path, seeds=(4, 5), sweep=({"alpha": 3.0},))
    rows = stage2.sweep(su, _seed_run(4, [1], [1]))
    start = tmp_path / "20" / "models" / "seed4" / "stage1"
    assert seen["objective"] == "stage2" and seen["init_dir"] == start and seen["rl_seed"] == 40
    assert list(seen["references"]) == ["Stage I", "default"]
    assert seen["references"]["Stage I"][0] == start
    assert seen["references"]["default"] == (tmp_path / "30" / "models" / "seed4" / "round1_stage2", "step_000002",
                                             0.12345)
    t2 = stage2.Table2({"SCoRe": dict(delta=1.0, delta_i2c=2.0, delta_c2i=1.0), "Base model": dict(delta=-1.0)},
                       [], ["a note"])
    m = stage2.summary(su, t2, [_seed_run(4, [1], [1])], rows)
    assert m["sweep"] == [dict(variant="alpha-3.0")]  # the reference rows are in the table, not in metrics.json
    assert m["claims"]["C6"] == claims.claim_c6(t2.rows) and m["notes"] == ["a note"] and m["seeds"] == [4, 5]
    assert m["sweep_protocol"] == "validation split, seeds [4] (neither the tuning nor the reporting set)"
    assert stage2.summary(_setup(tmp_path / "b", sweep=()), t2, [], [])["sweep_protocol"] is None


# ---------------------------------------------------------------- the tables every notebook shows (scorelib.tables)
@pytest.mark.parametrize("t,want", [(0, "greedy"), (0.0, "greedy"), (1.0, "T=1"), (0.7, "T=0.7")])
def test_temperature_label(t, want):
    from scorelib import tables

    assert tables.temperature_label(t) == want


def test_beside_paper_puts_the_papers_row_after_ours():
    from scorelib import tables

    ours = {"Base model": dict(delta=-1.0, seeds=3), "Multi-turn RL": dict(delta=0.5), "SCoRe": dict(delta=2.0)}
    paper_rows = {"Base model": dict(delta=-11.2), "SCoRe": dict(delta=4.4)}
    shown = tables.beside_paper(ours, paper_rows, "toy")
    assert list(shown) == ["Base model (toy, 3 seed(s))", "Base model (paper, MATH)",
                           "Multi-turn RL (toy, 1 seed(s))",  # the paper has no such row: none follows
                           "SCoRe (toy, 1 seed(s))", "SCoRe (paper, MATH)"]
    assert shown["SCoRe (paper, MATH)"] is paper_rows["SCoRe"] and shown["SCoRe (toy, 1 seed(s))"] is ours["SCoRe"]
    assert list(tables.beside_paper(ours, {}, "math", "HumanEval")) == [
        "Base model (math, 3 seed(s))", "Multi-turn RL (math, 1 seed(s))", "SCoRe (math, 1 seed(s))"]


def test_columns_and_claims_tables():
    from scorelib import tables

    df = tables.columns({"A": dict(fix_own=12.3456, delta_seed_sd=1.0, other=9), "B": dict(fix_own=50.0)},
                        {"fix own (%)": "fix_own", "Δ sd": "delta_seed_sd"})
    assert df.index.tolist() == ["A", "B"] and df.columns.tolist() == ["fix own (%)", "Δ sd"]
    assert df.loc["A"].tolist() == [12.35, 1.0] and df.loc["B", "fix own (%)"] == 50.0
    assert np.isnan(df.loc["B", "Δ sd"])  # B has no spread over seeds
    c = tables.claims(dict(claim="C6", holds=False, evidence="e6", largest=True), dict(claim="C5", holds=True,
                                                                                    evidence="e5"))
    assert c.index.tolist() == ["C6", "C5"] and c.columns.tolist() == ["holds", "evidence"]
    assert c.loc["C5"].tolist() == [True, "e5"]
