"""The RL trainer (scorelib.rl and the modules it is split into: rl_settings, objectives.advantages, update,
checkpoints): objectives as settings, per-turn advantages on hand-computed rewards, a short run that changes the
parameters, checkpoints, resuming a killed run, and checkpoint selection by training reward."""
from __future__ import annotations

import dataclasses
import itertools
import json

import numpy as np
import pytest
import torch

from scorelib import checkpoints, objectives, prompts, rl, rl_settings, update
from scorelib.models import build_tiny_model, build_tiny_tokenizer
from scorelib.objectives import policy_loss, token_logprobs
from scorelib.rollout import rollout
from scorelib.tasks import toy

# rows grouped by problem, k = 2: problem A (rows 0, 1), problem B (rows 2, 3); columns = turn 1, turn 2
REWARDS = np.array([[0, 1], [1, 1], [1, 0], [0, 0]], dtype=float)


def advantages(rewards, s):
    """objectives.advantages under settings s (rl_settings.advantage_args resolves the objective's turns)."""
    return objectives.advantages(rewards, **rl_settings.advantage_args(s))


def turns(s):
    """(rewarded turns, KL weight per turn, applied bonus) of settings s."""
    return rl_settings.rewarded(s), rl_settings.kl_weights(s), rl_settings.bonus(s)


def test_objectives_are_the_papers_settings():
    # paper values alpha 10, beta1 0.01, beta2 0.1 are the defaults
    assert turns(rl_settings.objective("stage1")) == ((False, True), (0.1, 0.01), 0.0)  # Eq. 3: beta2 holds turn 1
    assert turns(rl_settings.objective("stage2")) == ((True, True), (0.01, 0.01), 10.0)  # Eq. 4 with the shaping bonus
    mt = rl_settings.objective("multi_turn", steps=7, lr=1e-3)
    assert turns(mt) == ((True, True), (0.01, 0.01), 0.0) and (mt.steps, mt.lr) == (7, 1e-3)  # Eq. 2
    st = rl_settings.objective("single_turn")
    assert st.n_turns == 1 and turns(st) == ((True,), (0.01,), 0.0)
    assert rl_settings.RLSettings() == rl_settings.objective("stage1")  # the default objective
    with pytest.raises(ValueError, match="unknown objective"):
        rl_settings.objective("stage3")


def test_kl_weights_take_the_notebooks_betas_by_name():
    kw = dict(beta1=0.02, beta2=0.5)
    assert rl_settings.kl_weights(rl_settings.objective("stage1", **kw)) == (0.5, 0.02)
    assert rl_settings.kl_weights(rl_settings.objective("multi_turn", **kw)) == (0.02, 0.02)
    assert rl_settings.kl_weights(rl_settings.objective("stage2", **kw)) == (0.02, 0.02)  # beta_turn1 None: beta1
    # notebook 30's departure; Stage I ignores it
    assert rl_settings.kl_weights(rl_settings.objective("stage2", beta_turn1=0.3, **kw)) == (0.3, 0.02)
    assert rl_settings.kl_weights(rl_settings.objective("stage1", beta_turn1=0.3, **kw)) == (0.5, 0.02)
    assert rl_settings.kl_weights(rl_settings.objective("single_turn", beta_turn1=0.3, **kw)) == (0.3,)
    assert rl_settings.bonus(rl_settings.objective("stage1", alpha=3.0)) == 0.0
    assert rl_settings.bonus(rl_settings.objective("stage2", alpha=3.0)) == 3.0


def test_applied_resolves_the_objective_into_turns():
    a = rl_settings.applied(rl_settings.objective("single_turn", beta1=0.02, beta_turn1=0.3, micro_batch=4))
    assert (a["n_turns"], a["reward_turn1"], a["reward_turn2"], a["reward_turn3"]) == (1, True, False, False)
    assert (a["alpha"], a["beta_turn1"], a["beta_turn2"], a["beta_turn3"]) == (0.0, 0.3, 0.0, 0.0)
    assert a["micro_batch"] == 4 and not {"objective", "beta1", "beta2"} & set(a)
    assert list(a)[:6] == ["steps", "problems_per_step", "k", "lr", "temperature", "n_turns"]


def test_stage1_advantages_reward_turn2_only():
    (a1, a2), logged = advantages(REWARDS, rl_settings.objective("stage1", k=2))
    assert torch.equal(a1, torch.zeros(4))  # no reward signal on turn-1 tokens
    assert a2.tolist() == [0.0, 0.0, 0.0, 0.0]  # A: r2 = 1, 1; B: 0, 0 -> leave-one-out differences 0
    (a1, a2), _ = advantages(np.array([[0, 1], [0, 0], [1, 1], [1, 1]]), rl_settings.objective("stage1", k=2))
    assert a2.tolist() == [1.0, -1.0, 0.0, 0.0] and not a1.any()
    assert logged["reward"] == pytest.approx(0.5)  # mean turn-2 reward of REWARDS


def test_stage2_advantages_with_shaping():
    (a1, a2), logged = advantages(REWARDS, rl_settings.objective("stage2", k=2))
    # shaped r2 = r2 + 10 (r2 - r1): rows 11, 1, -10, 0; RLOO within A and within B
    assert a2.tolist() == [10.0, -10.0, -10.0, 10.0]
    assert a1.tolist() == [-1.0, 1.0, 1.0, -1.0]  # turn 1: its own reward only (gamma = 0)
    assert logged["shaped_reward"] == pytest.approx((11 + 1 - 10 + 0) / 4)
    assert logged["reward"] == pytest.approx((1 + 2 + 1 + 0) / 4)  # r1 + r2, unshaped


def test_stage2_first_attempt_baseline_removes_the_bonus_y1_term():
    # REWARDS: in A both turn-2 answers are right, in B both wrong; the group baseline's +-10 above came only from
    # the bonus's -alpha * r1, fixed before turn 2 starts. With the y1-aware baseline turn 2 sees 11 x RLOO(r2).
    (a1, a2), _ = advantages(REWARDS, rl_settings.objective("stage2", k=2, turn2_baseline="first_attempt"))
    assert a2.tolist() == [0.0, 0.0, 0.0, 0.0] and a1.tolist() == [-1.0, 1.0, 1.0, -1.0]
    r = np.array([[0, 1], [0, 0], [1, 1], [1, 0]])  # A: i->c, i->i; B: c->c, c->i
    (_, a2), _ = advantages(r, rl_settings.objective("stage2", k=2, turn2_baseline="first_attempt"))
    assert a2.tolist() == [11.0, -11.0, 11.0, -11.0]
    (_, g2), _ = advantages(r, rl_settings.objective("stage2", k=2))
    assert g2.tolist() == [11.0, -11.0, 11.0, -11.0]  # same r1 within each group: both baselines agree
    with pytest.raises(ValueError, match="turn2_baseline"):
        advantages(r, rl_settings.objective("stage2", k=2, turn2_baseline="nope"))


def test_difference_baseline_scores_a_copy_zero():
    # rows (r1, r2): A: i->c, i->i; B: c->c, c->i. r2 - r1 = 1, 0 | 0, -1; RLOO within each group of 2: 1, -1 | 1, -1
    r = np.array([[0, 1], [0, 0], [1, 1], [1, 0]])
    (a1, a2), _ = advantages(r, rl_settings.objective("stage2", k=2, turn2_baseline="difference"))
    assert a2.tolist() == [11.0, -11.0, 11.0, -11.0] and a1.tolist() == [0.0, 0.0, 0.0, 0.0]
    # A group whose first attempts differ and whose second attempts copy them (shaped r2 = 1, 0): group RLOO gives
    # turn 2 +-1 for y1's correctness alone; the difference baseline gives 0.
    r = np.array([[1, 1], [0, 0]])
    (_, g2), _ = advantages(r, rl_settings.objective("stage2", k=2))
    (_, d2), _ = advantages(r, rl_settings.objective("stage2", k=2, turn2_baseline="difference"))
    assert g2.tolist() == [1.0, -1.0] and d2.tolist() == [0.0, 0.0]
    (_, s2), _ = advantages(np.array([[1, 1], [0, 1], [1, 0], [0, 0]]),
                            rl_settings.objective("stage1", k=4, turn2_baseline="difference"))
    # Stage I (alpha 0): r2 - r1 = 0, 1, -1, 0; leave-one-out means 0, -1/3, 1/3, 0
    assert s2.tolist() == pytest.approx([0.0, 4 / 3, -4 / 3, 0.0])


def test_discounted_turn1_return():
    (a1, a2), _ = advantages(REWARDS, rl_settings.objective("multi_turn", k=2, gamma=0.8))
    g1 = REWARDS[:, 0] + 0.8 * REWARDS[:, 1]  # 0.8, 1.8, 1.0, 0.0
    assert a1.tolist() == pytest.approx([g1[0] - g1[1], g1[1] - g1[0], g1[2] - g1[3], g1[3] - g1[2]])
    assert a2.tolist() == [0.0, 0.0, 0.0, 0.0]  # turn 2: r2 = 1, 1 (A) and 0, 0 (B), no shaping


def test_single_turn_advantages():
    (a1,), _ = advantages(REWARDS[:, :1], rl_settings.objective("single_turn", k=2))
    assert a1.tolist() == [-1.0, 1.0, 1.0, -1.0]


@pytest.fixture(scope="module")
def tiny():
    tok = build_tiny_tokenizer()
    return tok, toy.generate(16, "train", seed=0)


def fresh(tok, seed=0):
    return build_tiny_model(tok, 16, 1, 2, 32, seed=seed)


# a reward that varies (so RLOO advantages are not all zero) and depends only on the text
def text_reward(response, gold):
    return float(len(response) % 2)


def settings(**kw):
    budget = dict(steps=4, problems_per_step=2, k=2, lr=1e-2, max_new_tokens=6)
    return rl_settings.objective("stage2", **{**budget, **kw})


def test_short_run_changes_parameters_and_logs_every_step(tiny):
    tok, problems = tiny
    policy, ref = fresh(tok), fresh(tok)
    before = [p.detach().clone() for p in policy.parameters()]
    log = rl.rl_train(policy, ref, tok, prompts.TOY, problems, settings(), progress=False, reward_fn=text_reward)
    assert [r["step"] for r in log] == [1, 2, 3, 4]
    assert {"acc_t1", "acc_t2", "different_answer", "kl_t1", "kl_t2", "reward", "shaped_reward", "sample_s",
            "train_s", "loss"} <= set(log[0])
    assert log[0]["kl_t1"] == pytest.approx(0.0, abs=1e-6)  # step 1: policy = reference
    assert log[-1]["kl_t1"] > 0
    assert any(not torch.equal(a, b) for a, b in zip(before, policy.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(fresh(tok).parameters(), ref.parameters()))  # the reference is frozen


def test_single_turn_run(tiny):
    tok, problems = tiny
    log = rl.rl_train(fresh(tok), fresh(tok), tok, prompts.TOY, problems,
                      rl_settings.objective("single_turn", steps=2, problems_per_step=2, k=2, max_new_tokens=6),
                      progress=False, reward_fn=text_reward)
    assert len(log) == 2 and "acc_t2" not in log[0] and "kl_t2" not in log[0]


class Killed(Exception):
    pass


@pytest.mark.parametrize("options", [{}, dict(turn_budget="per_turn", lr_warmup=2, lr_schedule="cosine",
                                                drop_flat_groups=True)])
def test_killed_run_resumes_exactly(tiny, tmp_path, options):
    tok, problems = tiny
    s = settings(checkpoint_every=2, steps=5, **options)
    whole = fresh(tok)
    log_whole = rl.rl_train(whole, fresh(tok), tok, prompts.TOY, problems, s, progress=False, reward_fn=text_reward,
                            checkpoint_dir=tmp_path / "whole")
    calls = {"n": 0}

    def dies_in_step_4(response, gold):
        calls["n"] += 1
        if calls["n"] > 3 * 2 * 2 * 2:  # 3 steps x 2 problems x k=2 x 2 turns, then the process "dies"
            raise Killed
        return text_reward(response, gold)

    ckpt = tmp_path / "killed"
    with pytest.raises(Killed):
        rl.rl_train(fresh(tok), fresh(tok), tok, prompts.TOY, problems, s, progress=False, reward_fn=dies_in_step_4,
                    checkpoint_dir=ckpt)
    assert [c.name for c in checkpoints.checkpoints(ckpt)] == ["step_000002"]  # step 3 ran but was never saved
    resumed = fresh(tok)
    log = rl.rl_train(resumed, fresh(tok), tok, prompts.TOY, problems, s, progress=False, reward_fn=text_reward,
                      checkpoint_dir=ckpt)
    assert [r["step"] for r in log] == [1, 2, 3, 4, 5]
    assert [r["reward"] for r in log] == [r["reward"] for r in log_whole]
    for a, b in zip(resumed.parameters(), whole.parameters()):
        assert torch.allclose(a, b, atol=1e-6)
    assert [c.name for c in checkpoints.checkpoints(ckpt)] == ["step_000002", "step_000004", "step_000005"]
    # a finished run started again does nothing more
    again = fresh(tok)
    assert len(rl.rl_train(again, fresh(tok), tok, prompts.TOY, problems, s, progress=False, reward_fn=text_reward,
                           checkpoint_dir=ckpt)) == 5
    for a, b in zip(again.parameters(), whole.parameters()):
        assert torch.allclose(a, b, atol=1e-6)  # loaded from the last checkpoint


def test_best_checkpoint_by_training_reward(tmp_path, tiny):
    tok, _ = tiny
    model = fresh(tok)
    opt = torch.optim.Adam(model.parameters())
    log = [dict(step=i + 1, reward=r) for i, r in enumerate([0.1, 0.2, 0.9, 0.8, 0.3, 0.1])]
    for step in (2, 4, 6):
        checkpoints.save_checkpoint(tmp_path / f"step_{step:06d}", model, opt, step, log[:step])
    best, r = checkpoints.best_checkpoint(tmp_path, window=2)
    assert best.name == "step_000004" and r == pytest.approx(0.85)
    (tmp_path / "step_000008.tmp").mkdir()  # an interrupted write is ignored
    assert [c.name for c in checkpoints.checkpoints(tmp_path)] == ["step_000002", "step_000004", "step_000006"]
    assert json.loads((best / "state.json").read_text())["step"] == 4
    with pytest.raises(FileNotFoundError):
        checkpoints.best_checkpoint(tmp_path / "none")


def test_bad_settings(tiny):
    tok, problems = tiny
    with pytest.raises(ValueError, match="problems_per_step"):
        rl.rl_train(fresh(tok), None, tok, prompts.TOY, problems[:1], settings(), progress=False)
    with pytest.raises(ValueError, match="k >= 2"):
        rl.rl_train(fresh(tok), None, tok, prompts.TOY, problems, settings(k=1), progress=False)


def test_discount_with_shaping_never_penalises_a_right_first_attempt():
    s = rl_settings.objective("stage2", k=2, gamma=0.8)
    (a1, _), _ = advantages(np.array([[1, 1], [0, 1]]), s)  # both fix/keep turn 2; only turn 1 differs
    assert a1[0] > 0 > a1[1]  # the right first attempt is the better one for turn 1
    (a1, _), _ = advantages(np.array([[0, 1], [0, 0]]), rl_settings.objective("stage1", k=2, gamma=0.8))
    assert not a1.any()  # Stage I's turn 1 gets no return, discounted or not


def test_token_logprobs_at_a_temperature():
    from scorelib.objectives import token_logprobs

    class Fixed(torch.nn.Module):
        def forward(self, input_ids, attention_mask):
            logits = torch.tensor([[[2.0, 0.0], [0.0, 0.0]]])
            return type("Out", (), {"logits": logits})()

    ids = torch.tensor([[0, 0]])
    lp1 = token_logprobs(Fixed(), ids, torch.ones_like(ids))
    lp2 = token_logprobs(Fixed(), ids, torch.ones_like(ids), temperature=2.0)
    assert lp1[0, 1].item() == pytest.approx(2 - np.log(np.exp(2) + 1))
    assert lp2[0, 1].item() == pytest.approx(1 - np.log(np.exp(1) + 1))


def test_resume_refuses_a_different_run_and_only_the_newest_checkpoint_keeps_optimizer_state(tiny, tmp_path):
    tok, problems = tiny
    s = settings(checkpoint_every=2)
    rl.rl_train(fresh(tok), fresh(tok), tok, prompts.TOY, problems, s, progress=False, reward_fn=text_reward,
                checkpoint_dir=tmp_path)
    names = [c.name for c in checkpoints.checkpoints(tmp_path)]
    assert names == ["step_000002", "step_000004"]
    assert [(tmp_path / n / "optimizer.pt").exists() for n in names] == [False, True]
    with pytest.raises(ValueError, match="different run"):
        rl.rl_train(fresh(tok), fresh(tok), tok, prompts.TOY, problems, settings(checkpoint_every=2, lr=1e-3),
                    progress=False, reward_fn=text_reward, checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match="seed"):
        rl.rl_train(fresh(tok), fresh(tok), tok, prompts.TOY, problems, s, seed=1, progress=False,
                    reward_fn=text_reward, checkpoint_dir=tmp_path)


def test_a_checkpoint_written_before_a_new_setting_existed_still_resumes(tiny, tmp_path):
    tok, problems = tiny
    s = settings(checkpoint_every=2, steps=2)
    rl.rl_train(fresh(tok), fresh(tok), tok, prompts.TOY, problems, s, progress=False, reward_fn=text_reward,
                checkpoint_dir=tmp_path)
    state = tmp_path / "step_000002" / "state.json"
    data = json.loads(state.read_text())
    del data["run"]["settings"]["turn2_baseline"]  # as written before that setting existed
    state.write_text(json.dumps(data))
    more = dataclasses.replace(s, steps=2)
    log = rl.rl_train(fresh(tok), fresh(tok), tok, prompts.TOY, problems, more, progress=False,
                      reward_fn=text_reward, checkpoint_dir=tmp_path)
    assert [r["step"] for r in log] == [1, 2]  # resumed (finished): nothing retrained
    with pytest.raises(ValueError, match="different run"):  # a non-default value is still a different run
        rl.rl_train(fresh(tok), fresh(tok), tok, prompts.TOY, problems,
                    dataclasses.replace(s, turn2_baseline="first_attempt"), progress=False, reward_fn=text_reward,
                    checkpoint_dir=tmp_path)


@pytest.mark.parametrize("k", [2, 3])
def test_both_turn2_baselines_have_the_same_expected_gradient(k):
    # A tabular turn-2 policy: right with probability p[r1] after a first attempt rewarded r1 (a Bernoulli with logit
    # theta[r1], so d log pi / d theta[r1] = r2 - p[r1]). First attempts are right with probability q. Enumerate every
    # outcome of a group of k samples and compare E[A2 * score] under both baselines, for each theta.
    q, p, alpha = 0.4, {0: 0.3, 1: 0.9}, 10.0
    grads = {}
    for tb in ("group", "first_attempt", "difference"):
        g = {0: 0.0, 1: 0.0}
        for outcome in itertools.product([0, 1], repeat=2 * k):
            r = np.array(outcome, dtype=float).reshape(k, 2)
            prob = np.prod([(q if a else 1 - q) * (p[a] if b else 1 - p[a]) for a, b in r.astype(int)])
            (_, a2), _ = advantages(r, rl_settings.objective("stage2", k=k, alpha=alpha, turn2_baseline=tb))
            for i in range(k):
                g[int(r[i, 0])] += prob * float(a2[i]) * (r[i, 1] - p[int(r[i, 0])])
        grads[tb] = g
    assert grads["group"][0] == pytest.approx(grads["first_attempt"][0], abs=1e-9)
    assert grads["group"][1] == pytest.approx(grads["first_attempt"][1], abs=1e-9)
    assert grads["group"][0] == pytest.approx(grads["difference"][0], abs=1e-9)
    assert grads["group"][1] == pytest.approx(grads["difference"][1], abs=1e-9)
    assert abs(grads["group"][0]) > 0.1 and abs(grads["group"][1]) > 0.01  # real gradients, not zeros


@pytest.mark.parametrize("micro_batch,budget", [(None, None), (2, None), (None, 40), (3, 25)])
def test_chunked_update_equals_the_full_batch_masked_loss(tiny, micro_batch, budget):
    """policy_update's length-sorted chunks without an attention mask give the gradient of the one-batch loss
    computed with the padding mask (right-padded rows: the padding is invisible under the causal mask)."""
    tok, problems = tiny
    ro = rollout(fresh(tok, seed=3), tok, [p.problem for p in problems[:4]], [p.answer for p in problems[:4]],
                 prompts.TOY, text_reward, n_turns=2, k=2, temperature=1.0, max_new_tokens=8, seed=1)
    assert len(set(ro.attention_mask.sum(1).tolist())) > 1  # rows of different lengths
    s = settings(k=2)
    adv, _ = advantages(ro.rewards, s)
    masks = [ro.attempt_mask(t + 1).float() for t in range(2)]
    betas = [0.1, 0.01]
    ref = fresh(tok, seed=5)
    want = fresh(tok, seed=4)
    logp = token_logprobs(want, ro.input_ids, ro.attention_mask)
    with torch.no_grad():
        ref_logp = token_logprobs(ref, ro.input_ids, ro.attention_mask)
    loss, _ = policy_loss(logp, ref_logp, masks, adv, betas)
    loss.backward()
    got = fresh(tok, seed=4)
    opt = torch.optim.SGD(got.parameters(), lr=0.0)  # lr 0: compare gradients, weights unchanged
    out = update.policy_update(got, ref, opt, ro.input_ids, ro.attention_mask, masks, adv, betas,
                               micro_batch=micro_batch, max_grad_norm=1e9, token_budget=budget)
    assert out["loss"] == pytest.approx(float(loss.detach()), rel=1e-4)  # float sums in another order
    for (name, a), b in zip(want.named_parameters(), got.parameters()):
        assert torch.allclose(a.grad, b.grad, rtol=1e-4, atol=1e-7), name
    assert {"ref_s", "policy_s", "step_s", "grad_norm"} <= set(out)


def test_update_refuses_left_padded_rows(tiny):
    tok, _ = tiny
    ids = torch.tensor([[0, 5, 6], [5, 6, 7]])
    att = torch.tensor([[0, 1, 1], [1, 1, 1]])
    m = torch.ones(2, 3)
    with pytest.raises(ValueError, match="right-padded"):
        update.policy_update(fresh(tok), None, torch.optim.SGD(fresh(tok).parameters(), lr=0.1), ids, att, [m],
                             [torch.zeros(2)], [0.0])


def test_learning_rate_schedule_by_hand():
    s = settings(lr=1.0, steps=10, lr_warmup=2, lr_schedule="cosine")
    assert [rl_settings.lr_at(s, i) for i in (0, 1)] == pytest.approx([1 / 3, 2 / 3])
    assert rl_settings.lr_at(s, 2) == pytest.approx(1.0) and rl_settings.lr_at(s, 9) == pytest.approx(0.1)
    assert rl_settings.lr_at(s, 5) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * 3 / 7)))
    assert [rl_settings.lr_at(settings(lr=0.5, steps=4), i) for i in range(4)] == [0.5] * 4
    for bad in (dict(lr_schedule="linear"), dict(turn_budget="both"), dict(lr_warmup=4, steps=4), dict(k=1)):
        with pytest.raises(ValueError):
            rl_settings.check_settings(settings(**bad))


def test_signal_rows_by_hand():
    a1 = torch.tensor([0.0, 0.0, 1.0, -1.0, 0.0, 0.0])
    a2 = torch.tensor([0.0, 0.0, 0.0, 0.0, 0.5, -0.5])
    assert objectives.signal_rows([a1, a2], 2).tolist() == [False, False, True, True, True, True]
    assert objectives.signal_rows([a1], 3).tolist() == [True] * 6  # one non-zero row makes its whole group count


def test_per_turn_budget_with_one_silent_turn_is_plain_adam_on_that_turn(tiny):
    """With turn 2 silent (advantage 0, beta 0) the per-turn update is one Adam step on turn 1's loss averaged over
    turn 1's tokens (turn 2's Adam sees zero gradients and moves nothing)."""
    tok, problems = tiny
    ro = rollout(fresh(tok, seed=3), tok, [p.problem for p in problems[:4]], [p.answer for p in problems[:4]],
                 prompts.TOY, text_reward, n_turns=2, k=2, temperature=1.0, max_new_tokens=8, seed=1)
    masks = [ro.attempt_mask(t + 1).float() for t in range(2)]
    adv = [torch.tensor([1.0, -1.0, 0.5, -0.5, 1.0, -1.0, 0.5, -0.5]), torch.zeros(8)]
    ref = fresh(tok, seed=5)
    want = fresh(tok, seed=4)
    opt = torch.optim.Adam(want.parameters(), lr=1e-3)
    with torch.no_grad():
        ref_logp = token_logprobs(ref, ro.input_ids, ro.attention_mask)
    loss, _ = policy_loss(token_logprobs(want, ro.input_ids, ro.attention_mask), ref_logp, masks[:1], adv[:1], [0.1])
    loss.backward()
    opt.step()
    got = fresh(tok, seed=4)
    per_turn = update.make_optimizer(got, settings(lr=1e-3, turn_budget="per_turn"))
    assert isinstance(per_turn, update.PerTurnAdam) and len(per_turn.opts) == 2
    update.policy_update(got, ref, per_turn, ro.input_ids, ro.attention_mask, masks, adv, [0.1, 0.0], max_grad_norm=1e9)
    for a, b in zip(want.parameters(), got.parameters()):
        assert torch.allclose(a, b, atol=1e-6)


def test_start_checkpoint_and_selection_by_a_score(tiny, tmp_path):
    tok, problems = tiny
    s = settings(steps=4, checkpoint_every=2, select="val_greedy")
    policy = fresh(tok)
    rl.rl_train(policy, fresh(tok), tok, prompts.TOY, problems, s, progress=False, reward_fn=text_reward,
                checkpoint_dir=tmp_path)
    assert [c.name for c in checkpoints.checkpoints(tmp_path)] == ["step_000000", "step_000002", "step_000004"]
    start = fresh(tok)
    checkpoints.load_checkpoint(tmp_path / "step_000000", policy)
    for a, b in zip(policy.parameters(), start.parameters()):
        assert torch.equal(a, b)  # step 0 is the starting policy
    # a score that prefers the start; then a flat score: ties go to the earliest candidate
    best, score, table = checkpoints.best_checkpoint_by(tmp_path, policy, lambda m: 0.0)
    assert best.name == "step_000000" and score == 0.0 and [r["step"] for r in table] == [0, 2, 4]
    w0 = next(start.parameters()).detach()
    best, _, _ = checkpoints.best_checkpoint_by(tmp_path, policy,
                                                lambda m: -float((next(m.parameters()) - w0).abs().sum()))
    assert best.name == "step_000000"
    best, _, _ = checkpoints.best_checkpoint_by(tmp_path, policy,
                                                lambda m: float((next(m.parameters()) - w0).abs().sum()))
    assert best.name != "step_000000"
    # training-reward selection never picks the start (it has no training steps to judge it by)
    assert checkpoints.best_checkpoint(tmp_path, window=2)[0].name != "step_000000"
