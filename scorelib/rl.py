"""Multi-turn policy gradient (paper section 5): one trainer, the objectives are settings.

REINFORCE with a leave-one-out baseline over k samples per problem (RLOO) and a
per-token k3 KL penalty against a frozen reference policy, added to the loss (not
to the reward). Each attempt's tokens are weighted only by that attempt's own
advantage (gamma = 0).

* standard multi-turn RL: reward_turn1=True, reward_turn2=True, alpha=0, beta_turn1=beta_turn2=beta1
* Stage I:  reward_turn1=False (turn 1 is only held near the reference by beta_turn1=beta2), reward_turn2=True
* Stage II: reward_turn1=True, reward_turn2=True, alpha=10 (turn-2 reward shaped), beta1 on both

Departures: a first version, written for the foundation issue to show that the toy
base's latent ability to fix its own mistakes can be amplified; the SCoRe issue
extends it (checkpoints, resumption, LoRA reference, discounting, logging).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from scorelib.grading import reward as grade_reward
from scorelib.models import reference_mode
from scorelib.objectives import policy_loss, rloo_advantages, shaped_turn2_reward, token_logprobs
from scorelib.prompts import Protocol
from scorelib.rollout import attempt_seg, rollout


@dataclass(frozen=True)
class RLSettings:
    """One RL run's objective and budget."""

    steps: int = 100
    problems_per_step: int = 32
    k: int = 4  # samples per problem (RLOO group)
    lr: float = 1e-4
    temperature: float = 1.0  # the paper samples at T=1 during training
    reward_turn1: bool = False  # Stage I: False; multi-turn RL and Stage II: True
    reward_turn2: bool = True
    alpha: float = 0.0  # Stage II reward shaping on turn 2
    beta_turn1: float = 0.1  # KL weight on turn-1 tokens (beta2 in Stage I, beta1 otherwise)
    beta_turn2: float = 0.01  # KL weight on turn-2 tokens (beta1)
    max_new_tokens: int = 160


def reference_logprobs(policy, ref, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """log-probs under the frozen reference: `ref` when given, else `policy` with its LoRA adapter disabled."""
    with torch.no_grad():
        if ref is not None:
            return token_logprobs(ref, input_ids, attention_mask)
        with reference_mode(policy):
            return token_logprobs(policy, input_ids, attention_mask)


def policy_update(policy, ref, opt, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                  masks: list[torch.Tensor], advantages: list[torch.Tensor], betas: list[float],
                  micro_batch: int | None = None, max_grad_norm: float = 1.0) -> dict:
    """One optimizer step of the REINFORCE + KL loss (objectives.policy_loss) over a batch of rollouts.

    Rows are processed ``micro_batch`` at a time (gradient accumulation, each chunk cropped to its
    longest row) so that a real vocabulary's (rows, tokens, vocab) log-softmax fits in memory; the
    result equals the full-batch loss. Returns the loss and the mean per-token KL of each turn.
    """
    device = next(policy.parameters()).device
    n = input_ids.shape[0]
    mb = micro_batch or n
    n_tok = float(sum(m.sum() for m in masks).clamp(min=1))
    kl_sum = [0.0] * len(masks)
    loss_total = 0.0
    opt.zero_grad(set_to_none=True)
    policy.train()
    for s in range(0, n, mb):
        rows = slice(s, s + mb)
        width = int(attention_mask[rows].sum(1).max())  # rows are right-padded
        ids, att = input_ids[rows, :width].to(device), attention_mask[rows, :width].to(device)
        ms = [m[rows, :width].to(device) for m in masks]
        chunk_tok = float(sum(m.sum() for m in ms))
        if chunk_tok == 0:
            continue
        logp = token_logprobs(policy, ids, att)
        ref_logp = reference_logprobs(policy, ref, ids, att)
        loss, kl = policy_loss(logp, ref_logp, ms, [a[rows].to(device) for a in advantages], betas)
        (loss * (chunk_tok / n_tok)).backward()
        loss_total += float(loss.detach()) * chunk_tok / n_tok
        kl = kl.detach()
        for t, m in enumerate(ms):
            kl_sum[t] += float((kl * m).sum())
    torch.nn.utils.clip_grad_norm_([p for p in policy.parameters() if p.requires_grad], max_grad_norm)
    opt.step()
    policy.eval()
    return dict(loss=loss_total, **{f"kl_t{t + 1}": kl_sum[t] / max(1.0, float(m.sum())) for t, m in enumerate(masks)})


def rl_train(policy, ref, tokenizer, protocol: Protocol, problems: list, s: RLSettings, seed: int = 0,
             progress: bool = True, reward_fn=grade_reward, micro_batch: int | None = None) -> list[dict]:
    """Train `policy` in place against the frozen reference `ref` (None: a LoRA policy's own base,
    adapter disabled). Returns per-step logs."""
    rng = np.random.default_rng(seed)
    opt = torch.optim.Adam([p for p in policy.parameters() if p.requires_grad], lr=s.lr)
    if ref is not None:
        ref.eval()
    log = []
    for step in tqdm(range(s.steps), desc="rl", disable=not progress, leave=False):
        t0 = time.perf_counter()
        batch = [problems[i] for i in rng.choice(len(problems), s.problems_per_step, replace=False)]
        ro = rollout(policy, tokenizer, [p.problem for p in batch], [p.answer for p in batch], protocol,
                     reward_fn, n_turns=2, k=s.k, temperature=s.temperature, max_new_tokens=s.max_new_tokens,
                     batch_size=len(batch) * s.k, seed=seed * 100_003 + step)
        t1 = time.perf_counter()
        r = torch.tensor(ro.rewards, dtype=torch.float32)  # (N, 2)
        r1, r2 = r[:, 0], shaped_turn2_reward(r[:, 0], r[:, 1], s.alpha)
        adv1 = rloo_advantages(r1.view(-1, s.k)).view(-1) if s.reward_turn1 else torch.zeros_like(r1)
        adv2 = rloo_advantages(r2.view(-1, s.k)).view(-1) if s.reward_turn2 else torch.zeros_like(r2)
        m1, m2 = ro.attempt_mask(1).float(), ro.attempt_mask(2).float()  # (N, L)
        upd = policy_update(policy, ref, opt, ro.input_ids, ro.attention_mask, [m1, m2], [adv1, adv2],
                            [s.beta_turn1, s.beta_turn2], micro_batch=micro_batch)
        c = ro.correct
        log.append(dict(step=step + 1, acc_t1=100 * c[:, 0].mean(), acc_t2=100 * c[:, 1].mean(), **upd,
                        sample_s=t1 - t0, train_s=time.perf_counter() - t1))
    return log
