"""The three-turn extension (notebook 45): shaped rewards, advantages, masks and KL weights of three turns, the
per-turn optimiser with three turns, the refused settings, the Stage 1(b) reference, the metrics of three attempts
and the notebook's settings, each on hand-computed cases."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from scorelib import checkpoints, config, metrics, objectives, prompts, rl, rl_settings, stages, three_turn, update
from scorelib.models import build_tiny_model, build_tiny_tokenizer, save_model
from scorelib.objectives import policy_loss, token_logprobs
from scorelib.rollout import attempt_seg, rollout
from scorelib.tasks import load_task, toy

# One RLOO group of four three-attempt reward patterns (rows: samples; columns: attempts 1, 2, 3).
GROUP = np.array([[0, 1, 1],   # i -> c -> c
                  [1, 0, 1],   # c -> i -> c
                  [1, 1, 0],   # c -> c -> i
                  [0, 0, 0]],  # i -> i -> i
                 dtype=float)
# alpha = 10: turn t >= 2 gets r_t + 10 (r_t - r_{t-1}); turn 1 gets r1.
SHAPED = [[0, 11, 1],
          [1, -10, 11],
          [1, 1, -10],
          [0, 0, 0]]


def advantages(rewards, s):
    """objectives.advantages under settings s (rl_settings.advantage_args resolves the objective's turns)."""
    return objectives.advantages(rewards, **rl_settings.advantage_args(s))


def test_shaped_rewards_by_hand():
    assert objectives.shaped_rewards(torch.tensor(GROUP), 10.0).tolist() == SHAPED
    assert objectives.shaped_rewards(torch.tensor(GROUP), 0.0).tolist() == GROUP.tolist()  # no bonus: the rewards
    two = torch.tensor(GROUP[:, :2])  # with two attempts its second column is the two-turn bonus
    assert torch.equal(objectives.shaped_rewards(two, 10.0)[:, 1], objectives.shaped_turn2_reward(two[:, 0], two[:, 1],
                                                                                                  10.0))
    with pytest.raises(ValueError, match=r"\(N, T\)"):
        objectives.shaped_rewards(torch.tensor([1.0, 0.0]), 10.0)


def test_stage2_advantages_of_three_turns_by_hand():
    """RLOO of each column of SHAPED (each value minus the mean of the other three), e.g. turn 2 of row 1:
    11 - (-10 + 1 + 0) / 3 = 14."""
    s = rl_settings.objective("three_turn_stage2", k=4)
    adv, log = advantages(GROUP, s)
    f = 2 / 3
    assert torch.stack(adv).tolist() == [pytest.approx(x) for x in ([-f, f, f, -f], [14, -14, f, -f],
                                                                     [f, 14, -14, -f])]
    assert log["reward"] == pytest.approx((2 + 2 + 2 + 0) / 4)  # r1 + r2 + r3, unshaped, mean over rows
    assert log["shaped_reward"] == pytest.approx((12 + 2 + -8 + 0) / 4)  # the sum of the three shaped rewards
    assert (log["shaped_t2"], log["shaped_t3"]) == pytest.approx((2 / 4, 2 / 4))


def test_stage1a_and_stage1b_advantages_reward_one_turn_each():
    f = 2 / 3  # RLOO of (1, 0, 1, 0) and of (1, 1, 0, 0): +-2/3
    adv, log = advantages(GROUP, rl_settings.objective("three_turn_stage1a", k=4))
    assert torch.stack(adv).tolist() == [pytest.approx(x) for x in ([0] * 4, [f, -f, f, -f], [0] * 4)]
    assert log["reward"] == pytest.approx(0.5)  # r2 alone
    adv, log = advantages(GROUP, rl_settings.objective("three_turn_stage1b", k=4))
    assert torch.stack(adv).tolist() == [pytest.approx(x) for x in ([0] * 4, [0] * 4, [f, f, -f, -f])]
    assert log["reward"] == pytest.approx(0.5)  # r3 alone (alpha 0: no bonus)


def test_two_groups_are_centred_apart():
    rewards = np.vstack([GROUP[:2], GROUP[2:]])  # k = 2: rows (0, 1) and (2, 3) are two problems' groups
    adv, _ = advantages(rewards, rl_settings.objective("three_turn_stage2", k=2))
    assert adv[1].tolist() == [21.0, -21.0, 1.0, -1.0]  # 11 - (-10), -10 - 11; 1 - 0, 0 - 1
    assert adv[2].tolist() == [-10.0, 10.0, -10.0, 10.0]  # 1 - 11; -10 - 0


def test_objective_presets():
    a, b, c = (rl_settings.objective(n, alpha=10.0, beta1=0.01, beta2=0.1) for n in
               ("three_turn_stage1a", "three_turn_stage1b", "three_turn_stage2"))
    for s in (a, b, c):
        assert s.n_turns == 3 and s.gamma == 0 and s.turn2_baseline == "group"
        rl_settings.check_settings(s)
    def turns(s):
        return rl_settings.rewarded(s), rl_settings.bonus(s), rl_settings.kl_weights(s)

    assert turns(a) == ((False, True, False), 0.0, (0.1, 0.01, 0.01))
    assert turns(b) == ((False, False, True), 0.0, (0.1, 0.1, 0.01))
    assert turns(c) == ((True, True, True), 10.0, (0.01, 0.01, 0.01))
    old = rl_settings.objective("stage2")  # the two-turn objectives keep their settings
    assert old.n_turns == 2 and rl_settings.rewarded(old) == (True, True)


@pytest.mark.parametrize("kw,match", [
    (dict(objective="four_turns"), "unknown objective 'four_turns'"),
    (dict(objective="three_turn_stage2", gamma=0.8), "gamma .* defined for two turns"),
    (dict(objective="three_turn_stage2", turn2_baseline="first_attempt"),
     "turn2_baseline 'first_attempt' is defined for two turns"),
    (dict(objective="three_turn_stage1a", turn1_source="pool"), "turn1_source 'pool' .* defined for two turns"),
])
def test_refused_settings(kw, match):
    with pytest.raises(ValueError, match=match):
        rl_settings.check_settings(rl_settings.RLSettings(**kw))


@pytest.fixture(scope="module")
def tiny():
    tok = build_tiny_tokenizer()
    return tok, toy.generate(16, "train", seed=0)


def fresh(tok, seed=0):
    return build_tiny_model(tok, 16, 1, 2, 32, seed=seed)


def text_reward(response, gold):
    return float(len(response) % 2)


def three_turn_rollout(tok, problems):
    return rollout(fresh(tok, seed=3), tok, [p.problem for p in problems[:4]], [p.answer for p in problems[:4]],
                   prompts.TOY, text_reward, n_turns=3, k=2, temperature=1.0, max_new_tokens=8, seed=1)


def test_update_inputs_masks_and_kl_weights_of_three_turns(tiny):
    tok, problems = tiny
    ro = three_turn_rollout(tok, problems)
    s = rl_settings.objective("three_turn_stage1b", k=2, lr=0.5)
    opt = torch.optim.Adam(fresh(tok).parameters())
    adv, rew, masks, betas, signal, keep, lr = rl._update_inputs(ro, s, opt, 0)
    assert betas == [0.1, 0.1, 0.01] and lr == 0.5 and len(adv) == 3
    for t, m in enumerate(masks):  # each mask is exactly its attempt's tokens, and the three never overlap
        assert torch.equal(m.bool(), ro.segments == attempt_seg(t + 1)) and m.sum() > 0
    assert float(sum(masks).max()) == 1.0
    assert adv[0].abs().sum() == 0 and adv[1].abs().sum() == 0  # 1(b) trains turn 3 only
    r3 = ro.rewards[:, 2].reshape(-1, 2)  # k = 2: RLOO leaves the partner out: (x - y, y - x) per problem
    want = np.stack([r3[:, 0] - r3[:, 1], r3[:, 1] - r3[:, 0]], axis=1).reshape(-1)
    assert adv[2].tolist() == pytest.approx(want.tolist())


def test_per_turn_adam_with_three_turns_is_three_first_adam_steps(tiny):
    """PerTurnAdam with three turns: each turn's loss (averaged over its tokens) has its own gradient, stepped by
    its own Adam. Adam's first step moves a weight by lr * g / (|g| + eps), so after one update each weight has
    moved by -lr * sum over turns of g_t / (|g_t| + eps), g_t the gradient of turn t's loss at the start."""
    tok, problems = tiny
    ro = three_turn_rollout(tok, problems)
    masks = [ro.attempt_mask(t + 1).float() for t in range(3)]
    adv = [torch.tensor([1.0, -1.0, 0.5, -0.5, 1.0, -1.0, 0.5, -0.5]), torch.zeros(8),
           torch.tensor([-0.3, 0.3, 2.0, -2.0, 0.0, 0.0, 1.0, -1.0])]
    betas = [0.1, 0.0, 0.01]  # turn 2: no advantage, no KL: its Adam moves nothing
    ref, lr = fresh(tok, seed=5), 1e-3
    start = fresh(tok, seed=4)
    with torch.no_grad():
        ref_logp = token_logprobs(ref, ro.input_ids, ro.attention_mask)
    grads = []
    for t in range(3):
        start.zero_grad()
        loss, _ = policy_loss(token_logprobs(start, ro.input_ids, ro.attention_mask), ref_logp, [masks[t]], [adv[t]],
                              [betas[t]])
        loss.backward()
        grads.append([p.grad.clone() for p in start.parameters()])
    assert all(float(g.abs().sum()) == 0 for g in grads[1])  # the silent turn
    got = fresh(tok, seed=4)
    opt = update.make_optimizer(got, rl_settings.objective("three_turn_stage2", lr=lr, turn_budget="per_turn"))
    assert isinstance(opt, update.PerTurnAdam) and len(opt.opts) == 3
    out = update.policy_update(got, ref, opt, ro.input_ids, ro.attention_mask, masks, adv, betas, max_grad_norm=1e9)
    assert {"kl_t1", "kl_t2", "kl_t3"} <= set(out)
    for i, (p0, p1) in enumerate(zip(start.parameters(), got.parameters())):
        step = sum(g[i] / (g[i].abs() + 1e-8) for g in grads)
        assert torch.allclose(p1, p0.detach() - lr * step, atol=1e-6)
    state = opt.state_dict()  # three Adam states, each having taken one step
    assert len(state["per_turn"]) == 3
    again = update.make_optimizer(fresh(tok), rl_settings.objective("three_turn_stage2", turn_budget="per_turn"))
    again.load_state_dict(state)
    assert [o.state_dict()["state"][0]["step"] for o in again.opts] == [1, 1, 1]


def test_a_three_turn_run_logs_every_turn(tiny):
    tok, problems = tiny
    s = rl_settings.objective("three_turn_stage2", steps=2, problems_per_step=2, k=2, lr=1e-2, max_new_tokens=6,
                              turn_budget="per_turn")
    policy = fresh(tok)
    log = rl.rl_train(policy, fresh(tok), tok, prompts.TOY, problems, s, progress=False, reward_fn=text_reward)
    assert [r["step"] for r in log] == [1, 2]
    assert {"acc_t1", "acc_t2", "acc_t3", "different_answer", "different_answer_t3", "kl_t1", "kl_t2", "kl_t3",
            "shaped_t2", "shaped_t3"} <= set(log[0])
    assert log[0]["kl_t3"] == pytest.approx(0.0, abs=1e-6) and log[-1]["kl_t3"] > 0  # turn 3 trained


class Killed(Exception):
    pass


def test_a_killed_three_turn_run_resumes_exactly(tiny, tmp_path):
    """Three turns with the per-turn budget (three Adams in the checkpoint): killed in step 3, resumed from step 2's
    checkpoint, it ends with the uninterrupted run's log and weights."""
    tok, problems = tiny
    s = rl_settings.objective("three_turn_stage2", steps=4, problems_per_step=2, k=2, lr=1e-2, max_new_tokens=6,
                              turn_budget="per_turn", checkpoint_every=2)
    whole = fresh(tok)
    log_whole = rl.rl_train(whole, fresh(tok), tok, prompts.TOY, problems, s, progress=False, reward_fn=text_reward,
                            checkpoint_dir=tmp_path / "whole")
    calls = {"n": 0}

    def dies_in_step_3(response, gold):
        calls["n"] += 1
        if calls["n"] > 2 * 2 * 2 * 3:  # 2 steps x 2 problems x k=2 x 3 turns, then the process "dies"
            raise Killed
        return text_reward(response, gold)

    with pytest.raises(Killed):
        rl.rl_train(fresh(tok), fresh(tok), tok, prompts.TOY, problems, s, progress=False, reward_fn=dies_in_step_3,
                    checkpoint_dir=tmp_path / "killed")
    assert [c.name for c in checkpoints.checkpoints(tmp_path / "killed")] == ["step_000002"]
    resumed = fresh(tok)
    log = rl.rl_train(resumed, fresh(tok), tok, prompts.TOY, problems, s, progress=False, reward_fn=text_reward,
                      checkpoint_dir=tmp_path / "killed")
    assert [(r["step"], r["reward"], r["acc_t3"]) for r in log] == [(r["step"], r["reward"], r["acc_t3"])
                                                                    for r in log_whole]
    for a, b in zip(resumed.parameters(), whole.parameters()):
        assert torch.allclose(a, b, atol=1e-6)


def test_stage1b_reference_is_the_given_model(tiny, tmp_path):
    """stages.train_stage with ``reference``: a run started from model A with A as the reference has zero KL at its
    first step; with the base (another model) as the reference it does not. The reference's fingerprint is part of
    the run's identity."""
    tok, _ = tiny
    task = load_task("toy")
    train = task.train_problems(64, seed=0)
    a = fresh(tok, seed=7)
    save_model(a, tok, tmp_path / "a", tiny=True)
    s = rl_settings.objective("three_turn_stage1b", steps=1, problems_per_step=2, k=2, max_new_tokens=6)
    kw = dict(init_dir=tmp_path / "a", tiny=True, device="cpu", dtype="float32")
    _, log, _, _ = stages.train_stage(fresh(tok, seed=0), tok, task, train, s, 0, tmp_path, "held", reference=a, **kw)
    assert log[0]["kl_t1"] == pytest.approx(0.0, abs=1e-6) and log[0]["kl_t3"] == pytest.approx(0.0, abs=1e-6)
    _, log, _, _ = stages.train_stage(fresh(tok, seed=0), tok, task, train, s, 0, tmp_path, "base", **kw)
    assert log[0]["kl_t1"] > 1e-4  # against the base
    with pytest.raises(ValueError, match="differs in"):  # another reference: another run
        stages.train_stage(fresh(tok, seed=0), tok, task, train, dataclasses.replace(s, steps=2), 0, tmp_path, "held",
                           reference=fresh(tok, seed=8), **kw)


def test_objective_reward_reads_the_third_attempt():
    summary = dict(acc_t1=10.0, acc_t2=20.0, acc_t3=30.0)
    names = ("three_turn_stage1a", "three_turn_stage1b", "three_turn_stage2", "stage1", "stage2")
    got = {n: stages.objective_reward(rl_settings.objective(n), summary) for n in names}
    assert got == dict(three_turn_stage1a=20.0, three_turn_stage1b=30.0, three_turn_stage2=60.0, stage1=20.0,
                       stage2=30.0)


def test_summarize_attempts_by_hand():
    a = np.array([[0, 1, 1], [1, 1, 0], [0, 0, 1], [1, 1, 1]], dtype=bool)
    b = np.array([[0, 0, 1], [1, 1, 1], [0, 1, 1], [0, 1, 1]], dtype=bool)
    m = metrics.summarize_attempts([a, b], n_boot=200, seed=0)
    assert (m["acc_t1"], m["acc_t2"], m["acc_t3"]) == pytest.approx((37.5, 75.0, 87.5))  # 3, 6, 7 of 8
    assert m["delta_t1_t2"] == pytest.approx(37.5) and m["delta_t2_t3"] == pytest.approx(12.5)
    assert m["delta_t1_t3"] == pytest.approx(50.0)
    assert m["delta_i2c_t2_t3"] == pytest.approx(25.0) and m["delta_c2i_t2_t3"] == pytest.approx(12.5)  # 2 and 1
    assert m["n"] == 4 and m["seeds"] == 2
    pair = metrics.summarize_seeds([a[:, 1], b[:, 1]], [a[:, 2], b[:, 2]], n_boot=200, seed=0)
    assert (m["acc_t3_lo"], m["acc_t3_hi"], m["delta_t2_t3_lo"]) == (pair["acc_t2_lo"], pair["acc_t2_hi"],
                                                                     pair["delta_lo"])
    assert m["acc_t2_lo"] == pair["acc_t1_lo"]  # the same resampled problems for every pair of attempts
    for k in three_turn.KEYS:
        assert m[f"{k}_lo"] <= m[k] <= m[f"{k}_hi"], k
    with pytest.raises(ValueError, match="T >= 2"):
        metrics.summarize_attempts([a[:, :1]])


def test_paper_rows_and_table():
    assert three_turn.paper_row("Stage 1(b)") == dict(acc_t1=16.6, acc_t2=18.4, acc_t3=23.2, delta_t1_t2=1.8,
                                                      delta_t2_t3=4.8, delta_t1_t3=6.6)
    ours = metrics.summarize_attempts([np.array([[0, 1, 1], [1, 1, 1]], dtype=bool)], n_boot=50)
    t = three_turn.table({"Stage 2": ours}, "toy", "greedy")
    assert list(t.index) == ["Stage 2 (toy, greedy, 1 seed(s))", "Stage 2 (paper, Gemma-2 2B)"]
    assert t.loc["Stage 2 (paper, Gemma-2 2B)", "Accuracy@t3"] == "24.0"
    assert t.loc["Stage 2 (toy, greedy, 1 seed(s))", "Δ(t1,t2)"].startswith("50.0 [")


def test_the_notebooks_stages_use_notebook_30s_recipe():
    cfg = config.ThreeTurnConfig(beta_turn1=0.05)
    by_stage = three_turn.stage_settings(cfg)
    ref = stages.settings("stage2", config.Stage2Config())  # notebook 30's Stage II at its defaults
    for key, s in by_stage.items():
        differs = {f.name for f in dataclasses.fields(s) if getattr(s, f.name) != getattr(ref, f.name)}
        # Stage 1(a)/(b) take Stage I's joint loss (notebook 20), Stage 2 notebook 30's per-turn budget
        assert differs <= {"objective", "beta_turn1"} | ({"turn_budget"} if key != "stage2" else set()), differs
    assert [by_stage[k].turn_budget for k in ("stage1a", "stage1b", "stage2")] == ["joint", "joint", "per_turn"]
    assert rl_settings.kl_weights(by_stage["stage2"])[0] == 0.05
    assert rl_settings.kl_weights(by_stage["stage1a"])[0] == cfg.beta2
    table = three_turn.settings_table(by_stage)
    assert table.loc["beta_turn1"].tolist() == [cfg.beta2, cfg.beta2, 0.05]
    assert table.loc["reward_turn3"].tolist() == [False, True, True]
    assert config.ThreeTurnConfig().seeds == (0,) and config.ThreeTurnConfig().turn_budget == "per_turn"


@pytest.mark.parametrize("kw,match", [(dict(gamma=0.8), "gamma"), (dict(turn2_baseline="difference"), "group"),
                                      (dict(sweep=({"lr": 0.001},)), "no sweep")])
def test_config_refuses_two_turn_options(kw, match):
    with pytest.raises(config.ConfigError, match=match):
        config.make_config(config.ThreeTurnConfig, kw)


def test_paper_rows_are_every_stages_row_with_its_differences():
    rows = three_turn.paper_rows()
    assert list(rows) == ["Base model", "Stage 1(a)", "Stage 1(b)", "Stage 2"]
    assert rows["Stage 1(b)"] == three_turn.paper_row("Stage 1(b)")
    assert rows["Stage 2"]["delta_t1_t3"] == 1.0  # 24.0 - 23.0
