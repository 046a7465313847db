"""One optimizer step of the policy (paper section 5): the REINFORCE + KL loss over a batch of rollouts, and the
optimizer it steps.

* **Loss**: ``objectives.policy_loss``: -A_t * log pi on turn t's tokens plus beta_t times the k3 KL there, averaged
  over every attempt token; the advantages come from ``objectives.advantages``, the KL weights from
  ``rl_settings.kl_weights``.
* **Reference**: a frozen copy of the base (full fine-tuning) or, for a LoRA policy, ``ref=None``: the same model
  with its adapter disabled (``reference_logprobs``).
* **Optimizer**: one Adam over the trainable weights, or one per turn (``PerTurnAdam``, ``turn_budget="per_turn"``).
* **Memory**: rows go through the model in length-sorted chunks with gradient accumulation (``policy_update``);
  under a multi-process launcher each process updates on its own rows and DDP all-reduces the gradients
  (``_policy_update_distributed``).

The training loop that calls ``policy_update`` is ``rl.rl_train``.
"""
from __future__ import annotations

import time

import numpy as np
import torch

from scorelib import distributed
from scorelib.models import reference_mode
from scorelib.objectives import policy_loss, token_logprobs
from scorelib.rl_settings import RLSettings
from scorelib.rollout import cpu_token_budget, length_chunks


class PerTurnAdam:
    """One Adam per turn over the same parameters (``turn_budget="per_turn"``): each turn's gradient is clipped
    and normalised on its own, so a turn with large advantages (Stage II's shaped turn 2) cannot drown the other
    turn's signal in a shared clip and a shared second-moment estimate. Behaves as one optimizer for
    checkpoints (state_dict) and learning-rate schedules (param_groups)."""

    def __init__(self, params, lr: float, n_turns: int):
        params = list(params)
        self.opts = [torch.optim.Adam(params, lr=lr) for _ in range(n_turns)]

    @property
    def param_groups(self) -> list:
        return [g for o in self.opts for g in o.param_groups]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for o in self.opts:
            o.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict:
        return dict(per_turn=[o.state_dict() for o in self.opts])

    def load_state_dict(self, state: dict) -> None:
        for o, st in zip(self.opts, state["per_turn"]):
            o.load_state_dict(st)


def make_optimizer(policy, s: RLSettings):
    """Adam over the trainable weights (one per turn when s.turn_budget is "per_turn")."""
    params = [p for p in policy.parameters() if p.requires_grad]
    return PerTurnAdam(params, s.lr, s.n_turns) if s.turn_budget == "per_turn" else torch.optim.Adam(params, lr=s.lr)


def reference_logprobs(policy, ref, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                       temperature: float = 1.0, forward_model=None) -> torch.Tensor:
    """log-probs under the frozen reference: `ref` when given, else `policy` with its LoRA adapter disabled
    (called through ``forward_model``, the policy's distributed wrapper, when one is given)."""
    with torch.no_grad():
        if ref is not None:
            return token_logprobs(ref, input_ids, attention_mask, temperature)
        with reference_mode(policy):
            return token_logprobs(forward_model or policy, input_ids, attention_mask, temperature)


def _token_chunks(attention_mask: torch.Tensor, masks: list[torch.Tensor], micro_batch, token_budget, device):
    """(rows, width, the turns' masks cropped to width) of each chunk of ``rollout.length_chunks`` that holds
    attempt tokens: rows sorted by length, at most ``micro_batch`` rows and ``token_budget`` padded tokens each."""
    for rows in length_chunks(attention_mask.sum(1).tolist(), micro_batch, token_budget):
        width = int(attention_mask[rows].sum(1).max())
        ms = [m[rows, :width].to(device) for m in masks]
        if float(sum(m.sum() for m in ms)) > 0:
            yield rows, width, ms


def _add_kl(kl_sum: list[float], kl: torch.Tensor, ms: list[torch.Tensor]) -> None:
    """Add a chunk's per-token KL, summed over each turn's tokens, to ``kl_sum`` (one total per turn)."""
    kl = kl.detach()
    for t, m in enumerate(ms):
        kl_sum[t] += float((kl * m).sum())


def _step_turns(opt: PerTurnAdam, params: list, turn_grads: list[list], clip) -> float:
    """A ``PerTurnAdam``'s step: each turn's gradient (None for a parameter it did not reach) set on the
    parameters, clipped by ``clip()`` (which returns the norm before clipping) and stepped by that turn's Adam.
    Returns the root of the sum of the squared per-turn norms."""
    norms = []
    for o, grads in zip(opt.opts, turn_grads):
        for p, g in zip(params, grads):
            p.grad = g
        norms.append(float(clip()))
        o.step()
    return float(np.sqrt(sum(x * x for x in norms)))


def policy_update(policy, ref, opt, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                  masks: list[torch.Tensor], advantages: list[torch.Tensor], betas: list[float],
                  micro_batch: int | None = None, max_grad_norm: float = 1.0, temperature: float = 1.0,
                  token_budget: int | None | str = "auto") -> dict:
    """One optimizer step of the REINFORCE + KL loss (objectives.policy_loss) over a batch of rollouts.

    Rows are right-padded (each row's tokens, then padding): under a causal mask no real token attends to the
    padding after it, so chunks run without an attention mask (the fused causal attention path). Rows go
    through the model in chunks (``rollout.length_chunks``: sorted by length, at most ``micro_batch`` rows and
    ``token_budget`` padded tokens ("auto": ``rollout.cpu_token_budget``), each cropped to its longest row)
    with gradient accumulation, so that a real vocabulary's (rows, tokens, vocab) log-softmax fits in memory and
    little compute goes to padding; the result equals the full-batch loss. With a ``PerTurnAdam`` each turn's loss (averaged over that turn's
    tokens) has its own gradient, clipped to max_grad_norm and stepped by its own Adam. Returns the loss, the
    gradient norm before clipping, the mean per-token KL of each turn and the seconds spent in the reference
    pass, the policy's forward + backward, and the optimizer step.
    """
    if bool((attention_mask[:, 1:] > attention_mask[:, :-1]).any()):
        raise ValueError("policy_update needs right-padded rows (real tokens first, then padding)")
    if distributed.active():  # this process's rows of a batch split across processes
        return _policy_update_distributed(policy, ref, opt, input_ids, attention_mask, masks, advantages, betas,
                                          micro_batch, max_grad_norm, temperature, token_budget)
    device = next(policy.parameters()).device
    token_budget = cpu_token_budget(policy, "update") if token_budget == "auto" else token_budget
    n_tok = float(sum(m.sum() for m in masks).clamp(min=1))
    per_turn = isinstance(opt, PerTurnAdam)
    params = [p for p in policy.parameters() if p.requires_grad]
    turn_tok = [max(1.0, float(m.sum())) for m in masks]
    turn_grads = [[None] * len(params) for _ in masks]
    kl_sum = [0.0] * len(masks)
    loss_total = 0.0
    sec = dict(ref_s=0.0, policy_s=0.0)
    opt.zero_grad(set_to_none=True)
    policy.train()
    for rows, width, ms in _token_chunks(attention_mask, masks, micro_batch, token_budget, device):
        ids = input_ids[rows, :width].to(device)
        chunk_tok = float(sum(m.sum() for m in ms))
        t0 = time.perf_counter()
        ref_logp = reference_logprobs(policy, ref, ids, None, temperature)
        t1 = time.perf_counter()
        logp = token_logprobs(policy, ids, None, temperature)
        adv = [a[rows].to(device) for a in advantages]
        loss, kl = policy_loss(logp, ref_logp, ms, adv, betas)
        if per_turn:  # each turn's own mean loss, its gradient kept apart
            for t in range(len(ms)):
                chunk_turn_tok = float(ms[t].sum())
                if chunk_turn_tok == 0:
                    continue
                loss_t, _ = policy_loss(logp, ref_logp, [ms[t]], [adv[t]], [betas[t]])
                grads = torch.autograd.grad(loss_t * (chunk_turn_tok / turn_tok[t]), params,
                                            retain_graph=True, allow_unused=True)
                for i, g in enumerate(grads):
                    if g is not None:
                        turn_grads[t][i] = g if turn_grads[t][i] is None else turn_grads[t][i] + g
        else:
            (loss * (chunk_tok / n_tok)).backward()
        sec["ref_s"] += t1 - t0
        sec["policy_s"] += time.perf_counter() - t1
        loss_total += float(loss.detach()) * chunk_tok / n_tok
        _add_kl(kl_sum, kl, ms)
    t0 = time.perf_counter()
    if per_turn:
        grad_norm = _step_turns(opt, params, turn_grads,
                                lambda: torch.nn.utils.clip_grad_norm_(params, max_grad_norm))
    else:
        grad_norm = torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
        opt.step()
    sec["step_s"] = time.perf_counter() - t0
    policy.eval()
    return dict(loss=loss_total, grad_norm=float(grad_norm),
                **{f"kl_t{t + 1}": kl_sum[t] / max(1.0, float(m.sum())) for t, m in enumerate(masks)}, **sec)


def _policy_update_distributed(policy, ref, opt, input_ids, attention_mask, masks, advantages, betas, micro_batch,
                               max_grad_norm, temperature, token_budget) -> dict:
    """``policy_update`` on this process's rows when several processes share a batch (``distributed``).

    The single-process loss is the mean over the whole batch's attempt tokens (per turn with a ``PerTurnAdam``). Each
    process weights its chunks by (processes / global tokens), with the global count summed over the processes first;
    DDP averages the gradients in the last chunk's backward (the earlier ones accumulate under ``no_sync``), so the
    all-reduced gradient is the single-process one. Clipping sees that global gradient, and every process steps the
    same Adam. A process with no rows joins the all-reduce with a zero gradient. With a ``PerTurnAdam`` each turn
    runs its own pass over the chunks (forward and backward again: DDP reduces one backward per forward), its
    gradient set aside, then each turn's gradient is clipped and stepped as in the single-process path."""
    device = next(policy.parameters()).device
    wrapped = distributed.wrap(policy)
    world = distributed.world()
    token_budget = cpu_token_budget(policy, "update") if token_budget == "auto" else token_budget
    per_turn = isinstance(opt, PerTurnAdam)
    params = [p for p in policy.parameters() if p.requires_grad]
    local_tok = [float(m.sum()) for m in masks]
    turn_tok_global = distributed.sum_across(local_tok)
    n_tok = max(1.0, sum(turn_tok_global))
    turn_tok = [max(1.0, x) for x in turn_tok_global]
    chunks = list(_token_chunks(attention_mask, masks, micro_batch, token_budget, device))
    kl_sum = [0.0] * len(masks)
    loss_local = 0.0
    sec = dict(ref_s=0.0, policy_s=0.0)

    def one_pass(turn: int | None) -> None:
        """Forward + backward over this process's chunks: the joint loss (turn None) or one turn's; the gradient is
        all-reduced in the last backward."""
        nonlocal loss_local
        live = [c for c in chunks if turn is None or float(c[2][turn].sum()) > 0]
        if not live:
            distributed.zero_backward(wrapped, policy)
            return
        for j, (rows, width, ms) in enumerate(live):
            ids = input_ids[rows, :width].to(device)
            t0 = time.perf_counter()
            ref_logp = reference_logprobs(policy, ref, ids, None, temperature, forward_model=wrapped)
            t1 = time.perf_counter()
            with distributed.no_sync(wrapped, sync=j + 1 == len(live)):
                logp = token_logprobs(wrapped, ids, None, temperature)
                adv = [a[rows].to(device) for a in advantages]
                if turn is None:
                    chunk_tok = float(sum(m.sum() for m in ms))
                    loss, kl = policy_loss(logp, ref_logp, ms, adv, betas)
                    (loss * (world * chunk_tok / n_tok)).backward()
                    loss_local += float(loss.detach()) * chunk_tok / n_tok
                else:
                    chunk_turn_tok = float(ms[turn].sum())
                    loss_t, _ = policy_loss(logp, ref_logp, [ms[turn]], [adv[turn]], [betas[turn]])
                    (loss_t * (world * chunk_turn_tok / turn_tok[turn])).backward()
                    loss, kl = policy_loss(logp.detach(), ref_logp, ms, adv, betas)
                    if turn == 0:  # the logged joint loss and KL, once
                        loss_local += float(loss) * float(sum(m.sum() for m in ms)) / n_tok
            sec["ref_s"] += t1 - t0
            sec["policy_s"] += time.perf_counter() - t1
            if turn is None or turn == 0:
                _add_kl(kl_sum, kl, ms)

    opt.zero_grad(set_to_none=True)
    policy.train()
    if per_turn:
        turn_grads = []
        for t in range(len(masks)):
            one_pass(t)
            turn_grads.append([p.grad for p in params])
            opt.zero_grad(set_to_none=True)
        # no tokens of a turn anywhere: no gradient for it (the single-process path skips it too)
        turn_grads = [g if turn_tok_global[t] else [None] * len(params) for t, g in enumerate(turn_grads)]
        t0 = time.perf_counter()
        grad_norm = _step_turns(opt, params, turn_grads,
                                lambda: distributed.clip_grad_norm(wrapped, params, max_grad_norm))
    else:
        one_pass(None)
        t0 = time.perf_counter()
        grad_norm = distributed.clip_grad_norm(wrapped, params, max_grad_norm)
        opt.step()
    sec["step_s"] = time.perf_counter() - t0
    policy.eval()
    summed = distributed.sum_across([loss_local, *kl_sum])
    return dict(loss=summed[0], grad_norm=float(grad_norm),
                **{f"kl_t{t + 1}": summed[1 + t] / max(1.0, turn_tok_global[t]) for t in range(len(masks))}, **sec)
