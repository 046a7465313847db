"""A plain masked language-model training loop, shared by pretraining and SFT.

Each example is (token ids, loss mask): the loss is the next-token cross-entropy
on the positions the mask marks, averaged over those tokens. Batches are drawn
from length buckets (so padding stays small), in a seeded order.
"""
from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from scorelib import distributed


@dataclass
class Example:
    """Token ids and a 0/1 mask of the positions trained as targets."""

    ids: list[int]
    mask: list[int]


def collate(batch: list[Example], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-pad to (B, L): input ids, attention mask, labels (-100 where not trained)."""
    width = max(len(e.ids) for e in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    att = torch.zeros((len(batch), width), dtype=torch.long)
    labels = torch.full((len(batch), width), -100, dtype=torch.long)
    for i, e in enumerate(batch):
        n = len(e.ids)
        ids[i, :n] = torch.tensor(e.ids)
        att[i, :n] = 1
        m = torch.tensor(e.mask, dtype=torch.bool)
        labels[i, :n][m] = ids[i, :n][m]
    return ids.to(device), att.to(device), labels.to(device)


def bucketed_batches(examples: list[Example], batch_size: int, rng: random.Random, pool: int = 4) -> list[list[Example]]:
    """One pass over the data in random batches; each pool of `pool` batches is sorted by length to cut padding."""
    order = list(range(len(examples)))
    rng.shuffle(order)
    batches = []
    for s in range(0, len(order), batch_size * pool):
        chunk = sorted(order[s:s + batch_size * pool], key=lambda i: len(examples[i].ids))
        batches += [[examples[i] for i in chunk[j:j + batch_size]] for j in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def lr_at(step: int, total: int, lr: float, warmup: int, final_frac: float = 0.1) -> float:
    """Linear warm-up, then cosine decay to final_frac * lr."""
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return lr * (final_frac + (1 - final_frac) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def train_masked_lm(model, examples: list[Example], steps: int, batch_size: int, lr: float, pad_id: int,
                    warmup: int = 50, weight_decay: float = 0.01, seed: int = 0, log_every: int = 25,
                    progress: bool = True, desc: str = "train", optimizer=None, callback=None,
                    checkpoint_dir=None, checkpoint_every: int = 100) -> list[dict]:
    """Train for a number of steps (cycling over the data); returns the logged history.

    ``callback(step)`` (if given) runs after each optimizer step with the 1-based step number, in
    eval mode (e.g. to probe the model at fractions of an epoch); training resumes afterwards.

    ``checkpoint_dir``: every ``checkpoint_every`` steps and at the end, the weights, the optimizer, the history and
    the position in the data go to checkpoint_dir/last.pt (written atomically); a call with the same settings
    resumes there and ends as an uninterrupted run would (the batches are replayed from the seed). A checkpoint of
    other settings is an error. Not with ``callback`` (its probes would be lost) or under a launcher."""
    if not examples:
        raise ValueError("no training examples")
    if steps < 1 or batch_size < 1 or lr <= 0:
        raise ValueError(f"steps, batch_size and lr must be positive, got {steps}, {batch_size}, {lr}")
    device = next(model.parameters()).device
    rng = random.Random(seed)
    torch.manual_seed(seed)
    dist = distributed.active()
    if checkpoint_dir is not None and (callback is not None or dist):
        raise ValueError("checkpoint_dir cannot be combined with a callback or a multi-process launch")
    wrapped = distributed.wrap(model) if dist else model  # DDP under a launcher, built before the optimizer
    opt = optimizer or torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr,
                                         betas=(0.9, 0.98), weight_decay=weight_decay)
    model.train()
    history, queue, t0 = [], [], time.perf_counter()
    run_loss, run_tok, refills, start = 0.0, 0, 0, 0
    ckpt = Path(checkpoint_dir) / "last.pt" if checkpoint_dir is not None else None
    signature = dict(steps=steps, batch_size=batch_size, lr=lr, warmup=warmup, weight_decay=weight_decay, seed=seed,
                     n_examples=len(examples), n_tokens=sum(len(e.ids) for e in examples))
    if ckpt is not None and ckpt.exists():
        state = torch.load(ckpt, map_location="cpu", weights_only=False)
        if state["signature"] != signature:
            raise ValueError(f"{ckpt} is a checkpoint of other settings ({state['signature']} against {signature}): "
                             "delete it to start afresh")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        history, start, run_loss, run_tok = state["history"], state["step"], state["run_loss"], state["run_tok"]
        for _ in range(state["refills"]):  # the same shuffles as the uninterrupted run, then its place in the last
            queue = bucketed_batches(examples, batch_size, rng)
        refills, queue = state["refills"], queue[: state["queue_len"]]
        t0 -= state["elapsed"]
    for step in tqdm(range(start, steps), desc=desc, disable=not progress or not distributed.is_main(), leave=False,
                     initial=start, total=steps):
        if not queue:
            queue = bucketed_batches(examples, batch_size, rng)
            refills += 1
        if dist:  # every process drew the same global batch: each trains its share of the rows
            for g in opt.param_groups:
                g["lr"] = lr_at(step, steps, lr, warmup)
            loss_sum, n_tok = _distributed_step(model, wrapped, opt, queue.pop(), pad_id, device)
            run_loss += loss_sum
            run_tok += n_tok
        else:
            ids, att, labels = collate(queue.pop(), pad_id, device)
            for g in opt.param_groups:
                g["lr"] = lr_at(step, steps, lr, warmup)
            loss = model(input_ids=ids, attention_mask=att, labels=labels).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            n_tok = int((labels[:, 1:] != -100).sum())
            run_loss += loss.item() * n_tok
            run_tok += n_tok
        if (step + 1) % log_every == 0 or step + 1 == steps:
            if dist:  # each process summed its own rows' loss; run_tok already counts the global batches
                run_loss = distributed.sum_across([run_loss])[0]
            history.append(dict(step=step + 1, loss=run_loss / max(1, run_tok), lr=opt.param_groups[0]["lr"],
                                seconds=time.perf_counter() - t0))
            run_loss, run_tok = 0.0, 0
        if callback is not None:
            model.eval()
            callback(step + 1)
            model.train()
        if ckpt is not None and ((step + 1) % checkpoint_every == 0 or step + 1 == steps):
            from scorelib.results import atomic_path, fault_point

            with atomic_path(ckpt) as tmp:
                torch.save(dict(signature=signature, model=model.state_dict(), optimizer=opt.state_dict(),
                                history=history, step=step + 1, run_loss=run_loss, run_tok=run_tok, refills=refills,
                                queue_len=len(queue), elapsed=time.perf_counter() - t0), tmp)
            fault_point("checkpoint")
    model.eval()
    return history


def target_tokens(batch: list[Example]) -> int:
    """Tokens the loss averages over in a batch: the masked positions after the first (as ``collate`` labels them
    and the model's shifted loss counts them)."""
    return sum(sum(e.mask[1:]) for e in batch)


def _distributed_step(model, wrapped, opt, batch: list[Example], pad_id: int, device) -> tuple[float, int]:
    """One optimizer step on this process's share of a global batch (rows ``distributed.share``).

    The single-process loss is the mean over the global batch's target tokens. Here each process's loss is its rows'
    token sum times (processes / global tokens): DDP averages the gradients over the processes in ``backward``, so
    the all-reduced gradient is the single-process one, however the tokens fall between the shards. Clipping then
    sees the global gradient and Adam steps the same on every process. Returns (this process's loss sum, the
    global batch's target tokens)."""
    n_global = target_tokens(batch)
    mine = [batch[i] for i in distributed.share(len(batch))]
    opt.zero_grad(set_to_none=True)
    n_local = target_tokens(mine) if mine else 0
    loss_sum = 0.0
    if n_local:
        ids, att, labels = collate(mine, pad_id, device)
        loss = wrapped(input_ids=ids, attention_mask=att, labels=labels).loss * n_local
        (loss * (distributed.world() / max(1, n_global))).backward()
        loss_sum = float(loss.detach())
    else:  # no rows (or no target tokens) here this step: join the all-reduce with a zero gradient
        distributed.zero_backward(wrapped, model)
    distributed.clip_grad_norm(wrapped, list(model.parameters()), 1.0)
    opt.step()
    return loss_sum, n_global
