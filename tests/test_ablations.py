"""Notebook 40's ablations (scorelib.ablations): what each row changes from SCoRe's recipe and nothing else, the
fixed first-attempt pool, STaR in Stage II, the paired difference of Δs and claim C7 on hand-made numbers."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from scorelib import ablations, claims, config, rl, rl_settings, stages
from scorelib import metrics as M
from scorelib import results as R
from scorelib.models import build_tiny_model, build_tiny_tokenizer
from scorelib.sft import Trace
from scorelib.tasks import load_task


@pytest.fixture(scope="module")
def tiny():
    tok = build_tiny_tokenizer()
    return tok, build_tiny_model(tok, 16, 1, 2, 32, seed=0)


# ----------------------------------------------------------------------------- what each row changes
STEPS = 100  # notebook 40's default Stage II steps; notebook 20's Stage I steps below are 30, to tell them apart
EXPECTED = {
    "single_turn": {"steps": (STEPS, STEPS + 30), "n_turns": (2, 1), "reward_turn2": (True, False),
                    "alpha": (10.0, 0.0), "beta_turn2": (0.01, 0.0), "start": ("stage1", "base")},
    "no_stage1": {"steps": (STEPS, STEPS + 30), "start": ("stage1", "base")},
    "no_shaping": {"alpha": (10.0, 0.0)},
    "star": {"method": ("reinforce", "star")},
    "gamma": {"steps": (STEPS, STEPS + 30), "alpha": (10.0, 1.0), "gamma": (0.0, 0.8), "start": ("stage1", "base")},
    "offline_y1": {"turn1_source": ("online", "pool")},
}


def test_each_row_changes_one_thing_from_scores_stage2():
    cfg = config.AblationConfig()
    ref = ablations.reference(cfg)
    assert ref == stages.settings("stage2", config.Stage2Config())  # the reference is notebook 30's Stage II
    assert set(cfg.ablation_rows) == set(EXPECTED) == set(ablations.ROWS)
    for row in ablations.ROWS:
        assert ablations.changes(ablations.ablation(row, cfg, 30), ref) == EXPECTED[row], row


def test_without_matched_budget_rows_from_the_base_keep_stage2s_steps():
    cfg = dataclasses.replace(config.AblationConfig(), matched_budget=False)
    ref = ablations.reference(cfg)
    for row in ("single_turn", "no_stage1", "gamma"):
        ch = ablations.changes(ablations.ablation(row, cfg, 30), ref)
        assert "steps" not in ch and ch["start"] == ("stage1", "base")
    assert ablations.changes(ablations.ablation("no_stage1", cfg, 30), ref) == {"start": ("stage1", "base")}


def test_data_budget_of_each_row():
    cfg = config.AblationConfig()
    s = ablations.ablation("star", cfg, 30).settings
    assert ablations.sampled_rows(s) == ablations.sampled_rows(ablations.reference(cfg)) == 100 * 64 * 4
    assert ablations.sampled_rows(ablations.ablation("no_stage1", cfg, 30).settings) == 130 * 64 * 4
    with pytest.raises(ValueError, match="unknown ablation 'nope'"):
        ablations.ablation("nope", cfg, 30)


def test_config_validation():
    ok = config.make_config(config.AblationConfig, {"ablation_rows": ["star"], "steps": 3, "star_rounds": 3})
    assert ok.ablation_rows == ("star",)
    bad = [({"ablation_rows": ["nope"]}, "ablation_rows must be distinct names"),
           ({"ablation_rows": ["star", "star"]}, "ablation_rows must be distinct"),
           ({"ablation_rows": []}, "ablation_rows must be distinct"),
           ({"steps": 2, "star_rounds": 3}, "star_rounds must be in"),
           ({"star_epochs": 0}, "star_epochs must be > 0"),
           ({"star_lr": 2.0}, "star_lr must be in"),
           ({"star_batch_size": 0}, "star_batch_size must be >= 1"),
           ({"sweep": [{"lr": 0.001}]}, "notebook 40 runs no sweep"),
           ({"score_run": "../x"}, "score_run must be letters")]
    for params, msg in bad:
        with pytest.raises(config.ConfigError, match=msg):
            config.make_config(config.AblationConfig, params)
    cfg = config.AblationConfig(stage1_run="a", score_run="b")
    assert [(nb, run) for nb, run, _ in cfg.inputs()] == [("00_toy_world_and_base_model", "default"),
                                                         ("20_stage1_vs_multiturn_rl", "a"), ("30_score_stage2", "b")]


def _write(d, data):
    d.mkdir(parents=True, exist_ok=True)
    (d / "config.json").write_text(json.dumps(data))


def test_score_run_must_share_the_recipe(tmp_path):
    cfg = config.AblationConfig()
    theirs = config.to_dict(config.Stage2Config())
    _write(tmp_path / "same", theirs)
    assert ablations.check_score_run(cfg, tmp_path / "same")["rounds"] == 1
    _write(tmp_path / "lr", {**theirs, "lr": 0.0003})
    with pytest.raises(config.ConfigError, match=r"'lr': \(0.0003, 0.0001\)"):
        ablations.check_score_run(cfg, tmp_path / "lr")
    _write(tmp_path / "rounds", {**theirs, "rounds": 2})
    with pytest.raises(config.ConfigError, match="ran 2 rounds"):
        ablations.check_score_run(cfg, tmp_path / "rounds")
    _write(tmp_path / "seeds", {**theirs, "seeds": [0, 1]})
    with pytest.raises(config.ConfigError, match=r"no SCoRe model for seeds \[2\]"):
        ablations.check_score_run(cfg, tmp_path / "seeds")
    assert ablations.check_score_run(dataclasses.replace(cfg, seeds=(1,)), tmp_path / "seeds")["seeds"] == [0, 1]


def test_score_run_written_with_the_old_parameter_names_is_read(tmp_path):
    # the reporting run's config.json (commit 14439f3) has seed and batch_size, not eval_seed and gen_batch_size
    new = config.to_dict(config.Stage2Config())
    old = {("seed" if k == "eval_seed" else "batch_size" if k == "gen_batch_size" else k): v for k, v in new.items()}
    assert "batch_size" in old and "gen_batch_size" not in old
    _write(tmp_path / "old", old)
    assert ablations.check_score_run(config.AblationConfig(), tmp_path / "old")["gen_batch_size"] == 512
    _write(tmp_path / "old64", {**old, "batch_size": 64})
    with pytest.raises(config.ConfigError, match=r"'gen_batch_size': \(64, 512\)"):
        ablations.check_score_run(config.AblationConfig(), tmp_path / "old64")


# ----------------------------------------------------------------------------- the turn-1 pool
def test_new_trainer_option_defaults_to_online_and_is_checked():
    assert rl_settings.RLSettings().turn1_source == "online"
    with pytest.raises(ValueError, match="turn1_source must be one of"):
        rl_settings.check_settings(rl_settings.RLSettings(turn1_source="offline"))
    with pytest.raises(ValueError, match="needs n_turns >= 2"):
        rl_settings.check_settings(rl_settings.objective("single_turn", turn1_source="pool"))
    with pytest.raises(ValueError, match="unknown objective 'four_turns'"):  # three turns: tests/test_three_turn.py
        rl_settings.check_settings(rl_settings.RLSettings(objective="four_turns"))


def test_step_problems_are_the_trainers_draws():
    s = rl_settings.RLSettings(steps=5, problems_per_step=3)
    for step in range(5):  # the formula rl_train used before step_problems existed
        want = np.random.default_rng([7, step]).choice(20, 3, replace=False)
        assert np.array_equal(rl.step_problems(20, s, 7, step), want)
    assert ablations.pool_problems(20, s, 7) == sorted({int(i) for st in range(5)
                                                         for i in rl.step_problems(20, s, 7, st)})


def test_pool_rows_in_rollout_order():
    pool = {3: [[1], [2]], 5: [[3], [4]]}
    assert rl.pool_rows(pool, np.array([5, 3]), 2) == [[3], [4], [1], [2]]
    with pytest.raises(ValueError, match=r"lacks k = 2 attempts of problems \[4\]"):
        rl.pool_rows(pool, [3, 4], 2)
    with pytest.raises(ValueError, match="lacks k = 3"):
        rl.pool_rows(pool, [3], 3)


def test_rl_train_takes_first_attempts_from_the_pool(tiny, monkeypatch):
    tok, base = tiny
    task = load_task("toy")
    train = task.train_problems(6, seed=0)
    s = dataclasses.replace(stages.settings("stage2", dataclasses.replace(
        config.Stage2Config(), steps=2, problems_per_step=2, k=2, max_new_tokens=6, checkpoint_every=0)),
        turn1_source="pool")
    pool = ablations.y1_pool(base, tok, task, train, s, 3, gen_batch_size=8)
    assert sorted(pool) == ablations.pool_problems(6, s, 3) and all(len(v) == 2 for v in pool.values())
    seen = []
    real = rl.rollout

    def spy(*a, given_y1=None, **kw):
        seen.append(given_y1)
        return real(*a, given_y1=given_y1, **kw)

    monkeypatch.setattr(rl, "rollout", spy)
    policy, ref = stages.start_policy(base, None, 0, 16.0, ("q_proj",))
    log = rl.rl_train(policy, ref, tok, task.protocol, train, s, seed=3, progress=False, reward_fn=task.reward,
                      extract_fn=task.extract, y1_pool=pool)
    assert len(log) == 2
    assert seen == [rl.pool_rows(pool, rl.step_problems(6, s, 3, step), 2) for step in range(2)]
    with pytest.raises(ValueError, match="give y1_pool exactly when"):
        rl.rl_train(policy, ref, tok, task.protocol, train, s, seed=3, progress=False)
    with pytest.raises(ValueError, match="give y1_pool exactly when"):
        rl.rl_train(policy, ref, tok, task.protocol, train, dataclasses.replace(s, turn1_source="online"), seed=3,
                    progress=False, y1_pool=pool)


# ----------------------------------------------------------------------------- STaR in Stage II
def test_star_filter_keeps_correct_second_attempts_and_trains_correct_first_ones(tiny):
    tok, _ = tiny
    task = load_task("toy")
    problems = task.train_problems(2, seed=0)
    eos = tok.eos_token_id
    traces = [Trace(0, (10, eos), (11, eos), "a", "b", False, True),   # i→c: kept, loss on y2 only
              Trace(1, (12, eos), (13, eos), "c", "d", True, True),    # c→c: kept, loss on y1 and y2
              Trace(0, (14, eos), (15, eos), "e", "f", True, False),   # c→i: dropped
              Trace(1, (16, eos), (17, eos), "g", "h", False, False)]  # i→i: dropped
    examples, counts = ablations.star_examples(tok, task.protocol, problems, traces, [eos])
    assert counts == dict(sampled=4, kept=2, fixes=1, keeps=1)
    fix, keep = examples
    trained = lambda e: [t for t, m in zip(e.ids, e.mask) if m]  # noqa: E731
    assert trained(fix) == [11, eos]
    assert trained(keep) == [12, eos, 13, eos]


def test_star_stage2_spends_stage2s_budget_resumes_and_selects(tiny, tmp_path):
    tok, base = tiny
    task = dataclasses.replace(load_task("toy"), reward=lambda y, a: 1.0)  # every attempt "correct": all kept
    train = task.train_problems(8, seed=0)
    s = rl_settings.RLSettings(steps=4, problems_per_step=2, k=2, max_new_tokens=6)
    policy, _ = stages.start_policy(base, None, 0, 16.0, ("q_proj",))
    start = [p.detach().clone() for p in policy.parameters()]
    info, kept, value = ablations.star_stage2(policy, tok, task, train, s, 1, rounds=2, epochs=1.0, lr=1e-2,
                                              star_batch_size=4, checkpoint_dir=tmp_path / "a", gen_batch_size=16)
    assert kept == 2 and np.isnan(value)  # no selection: the last round
    assert sum(r["sampled"] for r in info) == ablations.sampled_rows(s) == 16
    assert [(r["steps_from"], r["steps_to"]) for r in info] == [(0, 2), (2, 4)]
    assert all(r["kept"] == r["sampled"] == r["keeps"] and r["sft_steps"] == 2 for r in info)
    trained = [p.detach().clone() for p in policy.parameters()]
    assert not all(torch.equal(a, b) for a, b in zip(start, trained))
    # rerun from the same checkpoints: the same model, without training again
    again, _ = stages.start_policy(base, None, 0, 16.0, ("q_proj",))
    ablations.star_stage2(again, tok, task, train, s, 1, rounds=2, epochs=1.0, lr=1e-2, star_batch_size=4,
                          checkpoint_dir=tmp_path / "a", gen_batch_size=16)
    assert all(torch.equal(a, b) for a, b in zip(again.parameters(), trained))
    # selection: a score that only falls keeps the start (its weights are put back)
    falling = iter([3.0, 2.0, 1.0])
    third, _ = stages.start_policy(base, None, 0, 16.0, ("q_proj",))
    info, kept, value = ablations.star_stage2(third, tok, task, train, s, 1, rounds=2, epochs=1.0, lr=1e-2,
                                              star_batch_size=4, checkpoint_dir=tmp_path / "b", gen_batch_size=16,
                                              score_fn=lambda m: next(falling))
    assert kept == 0 and value == 3.0 and [r["selection_score"] for r in info] == [2.0, 1.0]
    assert all(torch.equal(a, b) for a, b in zip(third.parameters(), start))
    with pytest.raises(ValueError, match="rounds must be in"):
        ablations.star_stage2(third, tok, task, train, s, 1, rounds=5, epochs=1.0, lr=1e-2, star_batch_size=4,
                              checkpoint_dir=tmp_path / "c")


# ----------------------------------------------------------------------------- Δ differences and claim C7
def test_delta_difference_hand_computed():
    # a: Δ = (+1 - 0 + 0 + 0) / 4 = +25; b: Δ = (0 + 0 + 0 - 1) / 4 = -25; per-problem differences 1, 0, 0, 1
    a1, a2 = [0, 0, 1, 1], [1, 0, 1, 1]
    b1, b2 = [0, 0, 1, 1], [0, 0, 1, 0]
    d = M.delta_difference([a1], [a2], [b1], [b2], n_boot=200, seed=0)
    assert d["diff"] == pytest.approx(50.0) and d["n"] == 4
    assert 0.0 <= d["diff_lo"] <= 50.0 <= d["diff_hi"] <= 100.0
    # every problem differs by the same amount: the CI is that point
    same = M.delta_difference([[0, 0]], [[1, 1]], [[0, 0]], [[0, 0]], n_boot=50)
    assert (same["diff"], same["diff_lo"], same["diff_hi"]) == (100.0, 100.0, 100.0)
    # two seeds of a pooled: their mean; b with one seed
    two = M.delta_difference([[0, 0], [0, 0]], [[1, 0], [0, 0]], [[0, 0]], [[0, 0]], n_boot=10)
    assert two["diff"] == pytest.approx(25.0)
    with pytest.raises(ValueError, match="same problems"):
        M.delta_difference([[0, 1]], [[0, 1]], [[0]], [[0]])


def _diff(d, lo, hi):
    return dict(diff=d, diff_lo=lo, diff_hi=hi, n=100)


def test_claim_c7_flips_with_its_inputs():
    score_row = dict(delta=4.0, delta_lo=2.0, delta_hi=6.0)
    rows = {r: dict(delta=1.0) for r in ablations.ROWS}
    diffs = {r: _diff(-3.0, -5.0, -1.0) for r in ablations.ROWS}
    c = claims.claim_c7(score_row, rows, diffs)
    assert c["holds"] and c["point_below"] and c["claim"] == "C7" and c["missing"] == []
    # one named row's CI reaches 0: the claim no longer holds (its point estimate is still below)
    c = claims.claim_c7(score_row, rows, {**diffs, "no_shaping": _diff(-1.0, -3.0, 0.5)})
    assert not c["holds"] and c["point_below"] and not c["rows"]["no_shaping"]["below"]
    # a row the claim does not name is reported, not judged
    c = claims.claim_c7(score_row, rows, {**diffs, "gamma": _diff(2.0, 1.0, 3.0)})
    assert c["holds"] and "Fig. 8" in c["evidence"]
    # an ablation above SCoRe
    c = claims.claim_c7(score_row, rows, {**diffs, "star": _diff(1.0, -1.0, 3.0)})
    assert not c["holds"] and not c["point_below"]
    # a named row missing: not tested
    c = claims.claim_c7(score_row, {k: v for k, v in rows.items() if k != "star"}, diffs)
    assert not c["holds"] and c["missing"] == ["star"] and "not tested" in c["evidence"]


def test_table4_beside_the_paper():
    row = dict(acc_t1=50.0, acc_t2=51.0, delta=1.0, delta_i2c=3.0, delta_c2i=2.0, fix_own=6.0)
    df = ablations.table4({"SCoRe": row, "no_shaping": row, "gamma": row},
                          {"no_shaping": _diff(-1.0, -2.0, 0.0), "gamma": _diff(0.5, -0.5, 1.5)}, " (toy)")
    assert list(df.index) == ["SCoRe (toy)", "SCoRe (paper, MATH)", "w/o reward shaping (toy)",
                              "w/o reward shaping (paper, MATH)", "multi-turn RL, γ = 0.8, α = 1 (Fig. 8) (toy)"]
    assert df.loc["w/o reward shaping (toy)", "Δ − SCoRe's Δ"] == "-1.0 [-2.0, +0.0]"
    assert df.loc["w/o reward shaping (paper, MATH)", "Δ − SCoRe's Δ"] == "-1.8"
    assert df.loc["SCoRe (paper, MATH)", "Fix own (%)"] == "n/a"


def test_same_point_estimates():
    row = dict(acc_t1=50.0, acc_t2=51.0, delta=1.0, delta_i2c=3.0, delta_c2i=2.0)
    ablations.same_point_estimates(row, dict(row))
    with pytest.raises(ValueError, match="disagree"):
        ablations.same_point_estimates(row, {**row, "acc_t2": 52.0})


def test_cached_reads_another_runs_cache_first(tmp_path):
    calls = []
    assert R.cached(tmp_path / "theirs", "eval", [1], lambda: calls.append(1) or "theirs") == "theirs"
    got = R.cached(tmp_path / "mine", "eval", [1], lambda: calls.append(2) or "mine", read_from=[tmp_path / "theirs"])
    assert got == "theirs" and calls == [1] and not (tmp_path / "mine").exists()
    assert R.cached(tmp_path / "mine", "eval", [2], lambda: "new", read_from=[tmp_path / "theirs"]) == "new"


# ----------------------------------------------------------------------------- notebook 40's steps
def _row_run(row, seed, star=False):
    from scorelib.ablation_study import RowRun

    rounds = [dict(seed=seed, round=1, kept=3)] if star else []
    return RowRun(row, seed, [] if star else [{"step": 0}], rounds, {}, dict(row=row, seed=seed, checkpoint="step0"))


def test_selected_table_is_seed_major_and_star_rounds_are_collected():
    from scorelib import ablation_study

    runs = {r: [_row_run(r, s, star=r == "star") for s in (0, 1)] for r in ("no_shaping", "star")}
    table = ablation_study.selected_table(runs)
    # the order notebook 40 trains in: every row of seed 0, then every row of seed 1
    assert list(table.index) == [("no_shaping", 0), ("star", 0), ("no_shaping", 1), ("star", 1)]
    assert list(ablation_study.star_table(runs).index) == [(0, 1), (1, 1)]
    assert ablation_study.star_table({"no_shaping": runs["no_shaping"]}) is None
