"""Exact tests of the RL tensor math on hand-computed tiny cases."""
import math

import pytest
import torch

from scorelib import rl_settings
from scorelib.objectives import (advantages, kl_k3, policy_loss, rloo_advantages, shaped_turn2_reward, signal_rows,
                                 token_logprobs)


def test_kl_is_zero_when_policy_equals_reference():
    logp = torch.log(torch.tensor([[0.5, 0.25, 0.125]]))
    assert torch.equal(kl_k3(logp, logp), torch.zeros(1, 3))


def test_kl_k3_hand_computed():
    # pi = 0.5, ref = 0.25: d = log(0.5) -> exp(d) - d - 1 = 0.5 + log 2 - 1
    out = kl_k3(torch.log(torch.tensor([0.5])), torch.log(torch.tensor([0.25])))
    assert out.item() == pytest.approx(0.5 + math.log(2) - 1, abs=1e-6)
    assert (kl_k3(torch.randn(50), torch.randn(50)) >= 0).all()


def test_rloo_leave_one_out_baseline():
    # rewards 1, 0, 0, 1: each minus the mean of the other three
    adv = rloo_advantages(torch.tensor([[1.0, 0.0, 0.0, 1.0]]))
    assert torch.allclose(adv, torch.tensor([[1 - 1 / 3, -2 / 3, -2 / 3, 1 - 1 / 3]]))
    assert torch.equal(rloo_advantages(torch.ones(2, 4)), torch.zeros(2, 4))  # all equal: no signal
    with pytest.raises(ValueError):
        rloo_advantages(torch.ones(3, 1))


@pytest.mark.parametrize("r1,r2,want", [(0, 1, 11), (1, 1, 1), (0, 0, 0), (1, 0, -10)])
def test_shaped_turn2_reward_alpha_10(r1, r2, want):
    assert shaped_turn2_reward(torch.tensor(float(r1)), torch.tensor(float(r2)), 10.0).item() == want


class _Fixed(torch.nn.Module):
    """A 'model' whose next-token distribution is a fixed table per previous token."""

    def __init__(self, table):
        super().__init__()
        self.table = table

    def forward(self, input_ids, attention_mask=None):
        return type("Out", (), {"logits": torch.log(self.table[input_ids])})()


def test_token_logprobs_hand_computed():
    table = torch.tensor([[0.5, 0.5], [0.25, 0.75]])  # row = previous token, column = next token
    ids = torch.tensor([[0, 1, 1]])
    got = token_logprobs(_Fixed(table), ids, torch.ones_like(ids))
    assert torch.allclose(got, torch.log(torch.tensor([[1.0, 0.5, 0.75]])))


def _loss_grad(adv1, beta1, ref_shift=0.0):
    logp = torch.log(torch.tensor([[1.0, 0.5, 0.5, 0.25, 0.25]])).requires_grad_(True)
    ref = logp.detach() + ref_shift
    m1 = torch.tensor([[0.0, 1, 1, 0, 0]])  # turn-1 tokens
    m2 = torch.tensor([[0.0, 0, 0, 1, 1]])  # turn-2 tokens
    loss, _ = policy_loss(logp, ref, [m1, m2], [torch.tensor([adv1]), torch.tensor([2.0])], [beta1, 0.0])
    loss.backward()
    return logp.grad[0]


def test_stage1_puts_no_reward_gradient_on_turn1_tokens():
    g = _loss_grad(adv1=0.0, beta1=0.0)
    assert torch.equal(g[1:3], torch.zeros(2))  # turn 1: no reward term, and its KL is zero at pi = ref
    assert torch.allclose(g[3:], torch.full((2,), -2.0 / 4))  # turn 2: -A2 / n_tokens each


def test_each_turn_sees_only_its_own_advantage():
    g = _loss_grad(adv1=-1.0, beta1=0.0)
    assert torch.allclose(g[1:3], torch.full((2,), 1.0 / 4)) and torch.allclose(g[3:], torch.full((2,), -2.0 / 4))
    assert g[0] == 0  # the prompt is never trained


def test_turn1_kl_pulls_towards_reference():
    # ref more likely than pi on turn-1 tokens: the KL gradient pushes log pi up (negative gradient)
    g = _loss_grad(adv1=0.0, beta1=1.0, ref_shift=0.5)
    assert (g[1:3] < 0).all()



def test_k3_is_accurate_near_the_reference_in_float32():
    """Small log-ratio differences (a policy a few small steps from its reference): k3 ~ d^2 / 2, which the naive
    float32 exp(d) - d - 1 loses to cancellation."""
    d = torch.tensor([1e-4, -3e-4, 2e-3], dtype=torch.float32)
    got = kl_k3(torch.zeros(3), d)
    want = (torch.exp(d.double()) - d.double() - 1).float()
    assert torch.allclose(got, want, rtol=1e-2)
    assert float(got[0]) == pytest.approx(5e-9, rel=1e-2)


def test_advantages_from_resolved_arguments_by_hand():
    # one group of k = 2, rewards (turn 1, turn 2) = (0, 1), (1, 1); both turns rewarded, alpha = 10
    r = [[0, 1], [1, 1]]
    (a1, a2), logged = advantages(r, k=2, rewarded=(True, True), alpha=10.0)
    assert a1.tolist() == [-1.0, 1.0]  # RLOO of r1 = (0, 1)
    assert a2.tolist() == [10.0, -10.0]  # RLOO of the shaped r2 = (11, 1)
    assert logged == dict(reward=1.5, shaped_reward=6.0)  # mean of r1 + r2 = (1, 2); mean of (11, 1)
    (a1, a2), logged = advantages(r, k=2, rewarded=(False, True))  # Stage I: turn 1 gets nothing, no bonus
    assert a1.tolist() == [0.0, 0.0] and a2.tolist() == [0.0, 0.0] and logged["reward"] == 1.0
    assert signal_rows([a1, a2], 2).tolist() == [False, False]  # the group has no signal
    with pytest.raises(ValueError, match="turn2_baseline"):
        advantages(r, k=2, rewarded=(True, True), turn2_baseline="nope")


def test_advantage_args_resolve_the_objective():
    s = rl_settings.objective("stage2", k=2, alpha=3.0, gamma=0.5)
    assert rl_settings.advantage_args(s) == dict(k=2, rewarded=(True, True), alpha=3.0, gamma=0.5,
                                                 turn2_baseline="group")
    assert rl_settings.advantage_args(rl_settings.objective("stage1", alpha=3.0))["alpha"] == 0.0  # not shaped
