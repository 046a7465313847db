"""Pure tensor math of the RL objectives (paper section 5): log-probs, KL, RLOO, shaping.

Shapes: N rows (= problems x k samples), L tokens. Position t of a per-token tensor
refers to token ids[:, t] (its log-probability given ids[:, :t]); position 0 is 0.
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
