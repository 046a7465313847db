"""Pure tensor math of the RL objectives (paper section 5): log-probs, KL, RLOO, shaping, and each turn's
advantages.

Shapes: N rows (= problems x k samples), L tokens. Position t of a per-token tensor
refers to token ids[:, t] (its log-probability given ids[:, :t]); position 0 is 0.

``advantages`` takes the objective as resolved arguments (the turns it rewards, the bonus alpha as applied, ...):
``rl_settings.advantage_args`` resolves them from a run's settings; the trainer that uses them is ``rl``.
"""
from __future__ import annotations

import torch


def token_logprobs(model, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                   temperature: float = 1.0) -> torch.Tensor:
    """(N, L) log pi(ids[t] | ids[<t]) for t >= 1 under the model's softmax at `temperature` (the
    distribution the samples came from); column 0 is 0."""
    logits = model(input_ids=input_ids, attention_mask=attention_mask).logits[:, :-1].float()  # (N, L-1, V)
    if temperature != 1.0:
        logits = logits / temperature
    logp = torch.log_softmax(logits, dim=-1).gather(-1, input_ids[:, 1:, None]).squeeze(-1)  # (N, L-1)
    return torch.nn.functional.pad(logp, (1, 0))


def kl_k3(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Per-token k3 estimator of KL(pi || ref) on tokens sampled from pi: exp(d) - d - 1, d = ref - pi.

    Unbiased, always >= 0, and exactly 0 where pi equals the reference (Schulman's "k3"). Computed as
    expm1(d) - d: near the reference (|d| ~ 1e-4, e.g. after a few small steps) exp(d) - d - 1 in float32 cancels to
    0 or rounding noise, while expm1 keeps d^2 / 2 to about 2 * eps / |d| relative error.
    """
    d = ref_logp - logp
    return torch.expm1(d) - d


def rloo_advantages(rewards: torch.Tensor) -> torch.Tensor:
    """(P, k) rewards -> (P, k) advantages: each sample's reward minus the mean of the other k-1."""
    k = rewards.shape[-1]
    if k < 2:
        raise ValueError("RLOO needs k >= 2 samples per prompt")
    return rewards - (rewards.sum(-1, keepdim=True) - rewards) / (k - 1)


def shaped_turn2_reward(r1: torch.Tensor, r2: torch.Tensor, alpha: float) -> torch.Tensor:
    """Stage II's turn-2 reward r2 + alpha * (r2 - r1): with alpha = 10, 11 / 1 / 0 / -10 for i->c / c->c / i->i / c->i."""
    return r2 + alpha * (r2 - r1)


def shaped_rewards(rewards: torch.Tensor, alpha: float) -> torch.Tensor:
    """(N, T) rewards of T attempts -> the rewards each turn is trained on: turn 1's r1, turn t >= 2's
    r_t + alpha * (r_t - r_{t-1}), a bonus on each attempt's improvement over the one before (the three-turn
    extension's Stage 2; with T = 2 column 2 is ``shaped_turn2_reward``)."""
    r = torch.as_tensor(rewards, dtype=torch.float32)
    if r.ndim != 2 or r.shape[1] < 1:
        raise ValueError(f"rewards must be (N, T) with T >= 1 attempts, got shape {tuple(r.shape)}")
    out = r.clone()
    out[:, 1:] = r[:, 1:] + alpha * (r[:, 1:] - r[:, :-1])
    return out


def policy_loss(logp: torch.Tensor, ref_logp: torch.Tensor, masks: list[torch.Tensor], advantages: list[torch.Tensor],
                betas: list[float]) -> tuple[torch.Tensor, torch.Tensor]:
    """REINFORCE + KL loss, one term per turn: -A_t * log pi on turn t's tokens, plus beta_t * KL there.

    logp, ref_logp, masks: (N, L); advantages: (N,) per turn. Each turn's tokens see only that
    turn's advantage (gamma = 0). Averaged over all attempt tokens. Returns (loss, per-token KL).
    """
    kl = kl_k3(logp, ref_logp)
    n_tok = sum(m.sum() for m in masks).clamp(min=1)
    loss = sum(((-a[:, None] * logp + b * kl) * m).sum() for m, a, b in zip(masks, advantages, betas)) / n_tok
    return loss, kl


TURN2_BASELINES = ("group", "first_attempt", "difference")  # advantages' turn2_baseline


def advantages(rewards, k: int, rewarded: tuple, alpha: float = 0.0, gamma: float = 0.0,
               turn2_baseline: str = "group") -> tuple[list[torch.Tensor], dict]:
    """Per-turn RLOO advantages from (N, T) binary rewards (rows grouped by problem, k per group), and the rewards
    as used (turn-2 shaped) for logging. ``rewarded``: per turn, whether its tokens are rewarded (its length is the
    number of turns, 1 to 3); ``alpha``: the shaping bonus as applied (0: no shaping); ``gamma``: turn 1's return is
    r1 + gamma * r2 (two turns); ``turn2_baseline``: one of TURN2_BASELINES (two turns).

    E.g. one group of k = 2 with rewards (0, 1), (1, 1), both turns rewarded, alpha = 10: turn 2's shaped rewards
    are 11 and 1, so turn 1's advantages are (-1, 1) and turn 2's (10, -10)."""
    r = torch.as_tensor(rewards, dtype=torch.float32)
    n_turns, rew = len(rewarded), rewarded
    r1 = r[:, 0]
    if n_turns == 1:
        a1 = rloo_advantages(r1.view(-1, k)).view(-1) if rew[0] else torch.zeros_like(r1)
        return [a1], dict(reward=float(r1.mean()), shaped_reward=float(r1.mean()))
    if n_turns == 3:
        return _advantages_three(r, k, rew, alpha)
    r2 = shaped_turn2_reward(r1, r[:, 1], alpha)
    # Discounting adds the *unshaped* turn-2 reward: a shaped one would put a negative weight (1 - gamma*alpha)
    # on a right first attempt. Turn 1 gets no return at all where it is not rewarded (Stage I).
    g1 = r1 + gamma * r[:, 1] if rew[0] else torch.zeros_like(r1)
    a1 = rloo_advantages(g1.view(-1, k)).view(-1) if rew[0] else torch.zeros_like(r1)
    if turn2_baseline == "first_attempt":
        # The bonus's -alpha * r1 term is fixed once y1 is written, so it adds no expected gradient to turn 2's tokens;
        # a baseline may depend on y1, and subtracting that term leaves (1 + alpha) x RLOO(r2). Same expected
        # gradient; whether the variance is lower depends on how r2 correlates with r1 (hence a sweep, not a default).
        a2 = (1 + alpha) * rloo_advantages(r[:, 1].view(-1, k)).view(-1)
    elif turn2_baseline == "difference":
        # Any function of y1 is a valid baseline for turn 2's tokens (y1 is written before y2 is sampled): subtracting
        # (1 + alpha) * r1 leaves (1 + alpha)(r2 - r1), RLOO-centred. A copy of y1 then scores exactly 0 and a re-solve
        # +-(1 + alpha) by what it changed, so the advantage no longer carries y1's correctness, which the group
        # baseline leaves in turn 2 whenever the group's first attempts differ. Same expected gradient (tested).
        a2 = (1 + alpha) * rloo_advantages((r[:, 1] - r1).view(-1, k)).view(-1)
    elif turn2_baseline == "group":
        a2 = rloo_advantages(r2.view(-1, k)).view(-1)
    else:
        raise ValueError(f"turn2_baseline must be one of {TURN2_BASELINES}, got {turn2_baseline!r}")
    a2 = a2 if rew[1] else torch.zeros_like(r2)
    used = (r1 if rew[0] else 0.0) + (r[:, 1] if rew[1] else 0.0)
    return [a1, a2], dict(reward=float(torch.as_tensor(used).mean()), shaped_reward=float(r2.mean()))


def _advantages_three(r: torch.Tensor, k: int, rew: tuple, alpha: float) -> tuple[list[torch.Tensor], dict]:
    """Three turns: each rewarded turn's RLOO advantage of its own shaped reward (turn 1: r1; turn t >= 2:
    r_t + alpha * (r_t - r_{t-1}), ``shaped_rewards``), 0 for a turn not rewarded. Logs the unshaped reward of the
    rewarded turns (summed; what checkpoint selection by training reward reads) and the shaped one."""
    shaped = shaped_rewards(r, alpha)
    adv = [rloo_advantages(shaped[:, t].reshape(-1, k)).reshape(-1) if rew[t] else torch.zeros(r.shape[0])
           for t in range(3)]
    used = sum((r[:, t] for t in range(3) if rew[t]), torch.zeros(r.shape[0]))
    got = sum((shaped[:, t] for t in range(3) if rew[t]), torch.zeros(r.shape[0]))
    return adv, dict(reward=float(used.mean()), shaped_reward=float(got.mean()),
                     shaped_t2=float(shaped[:, 1].mean()), shaped_t3=float(shaped[:, 2].mean()))


def signal_rows(advantages: list[torch.Tensor], k: int) -> torch.Tensor:
    """(N,) booleans: rows whose RLOO group (k consecutive rows) has a non-zero advantage in some turn."""
    nonzero = torch.stack([a != 0 for a in advantages]).any(0).view(-1, k).any(1)
    return nonzero.repeat_interleave(k)
