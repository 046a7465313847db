"""Scale-out on accelerate: what the trainers and the evaluation need when launched as several processes.

A run started with ``accelerate launch --num_processes N ...`` (or torchrun) has ``WORLD_SIZE`` > 1 in its
environment; every process runs the same script. Then, and only then, this module builds one ``accelerate.Accelerator``
and the trainers:

* split each global batch across the processes (SFT: rows of the batch; RL: whole problems, so that an RLOO group
  of k samples never leaves the process that sampled it and its advantages are computed there),
* wrap the model once in DDP (``Accelerator.prepare_model``): the gradient all-reduce happens inside ``backward``,
  nowhere else. DDP averages the gradients over the processes, so each process scales its local loss sum by
  ``N / global tokens`` (``loss_scale``) and the average is the single-process loss of the whole batch,
* clip after the all-reduce (the global gradient) and step the same Adam on every process,
* write checkpoints and logs on the main process only, the others waiting at a barrier.

Without ``WORLD_SIZE`` > 1 nothing here is touched: ``active()`` is False, no Accelerator is built, and the trainers
take their single-process code path unchanged (same numbers as before this module existed).

Only accelerate's own collectives are used besides DDP: ``reduce`` / ``gather_object`` of small per-step scalars
and rows (token counts, rewards for the log, evaluation results), and ``wait_for_everyone``.
"""
from __future__ import annotations

import contextlib
import os

import torch

_ACCELERATOR = None
_WRAPPED = "_scorelib_ddp"  # attribute on a model holding its DDP wrapper (set outside nn.Module's registry)


def world_size_from_env() -> int:
    return int(os.environ.get("WORLD_SIZE", "1") or 1)


def active() -> bool:
    """True in a process started by a multi-process launcher (WORLD_SIZE > 1)."""
    return world_size_from_env() > 1


def accelerator():
    """The process's Accelerator (built on first use); None in a single-process run."""
    global _ACCELERATOR
    if not active():
        return None
    if _ACCELERATOR is None:
        from accelerate import Accelerator

        acc = Accelerator()
        if acc.num_processes != world_size_from_env():
            raise RuntimeError(
                f"{world_size_from_env()} processes were launched but accelerate set up {acc.num_processes}: on a "
                "machine without GPUs launch with ACCELERATE_USE_CPU=true (runbook.md, scale-out section)")
        _ACCELERATOR = acc
    return _ACCELERATOR


def device(default: str = "auto") -> str:
    """Where this process's models go: its accelerator's device under a launcher (cuda:<local rank>), else
    ``default`` (``models.pick_device`` resolves "auto")."""
    acc = accelerator()
    return default if acc is None else str(acc.device)


def rank() -> int:
    acc = accelerator()
    return 0 if acc is None else acc.process_index


def world() -> int:
    acc = accelerator()
    return 1 if acc is None else acc.num_processes


def is_main() -> bool:
    return rank() == 0


def barrier() -> None:
    acc = accelerator()
    if acc is not None:
        acc.wait_for_everyone()


def share(n: int, r: int | None = None, w: int | None = None) -> range:
    """The contiguous slice of n items (rows, problems) that process r of w owns: sizes differ by at most one,
    earlier processes take the extra ones. The whole range in a single process."""
    r = rank() if r is None else r
    w = world() if w is None else w
    lo = r * (n // w) + min(r, n % w)
    return range(lo, lo + n // w + (1 if r < n % w else 0))


def rank_seed(seed: int | None) -> int | None:
    """A sampling seed for this process: the seed itself in a single process (and on process 0), else offset by
    the rank so that processes draw different samples."""
    return None if seed is None else seed + 1_000_003 * rank()


def wrap(model):
    """The model that forward passes with gradients go through: the model itself in a single process, else its
    DDP wrapper (built once per model by ``Accelerator.prepare_model``; DDP broadcasts process 0's weights)."""
    acc = accelerator()
    if acc is None:
        return model
    wrapped = model.__dict__.get(_WRAPPED)
    if wrapped is None:
        wrapped = acc.prepare_model(model)
        object.__setattr__(model, _WRAPPED, wrapped)  # not a registered submodule: parameters() stays the same
    return wrapped


def no_sync(wrapped, sync: bool):
    """A context in which a backward accumulates gradients locally (sync False) or all-reduces them (sync True)."""
    if sync or not hasattr(wrapped, "no_sync"):
        return contextlib.nullcontext()
    return wrapped.no_sync()


def sum_across(values: list[float]) -> list[float]:
    """Element-wise sums of a few floats over the processes (accelerate's reduce); the values themselves alone."""
    acc = accelerator()
    if acc is None:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=acc.device)
    return acc.reduce(t, reduction="sum").tolist()


def any_across(flag: bool) -> bool:
    return sum_across([float(bool(flag))])[0] > 0


def gather_rows(rows: list) -> list:
    """Each process's list of rows, concatenated in rank order on every process (accelerate's gather_object)."""
    if accelerator() is None:
        return list(rows)
    from accelerate.utils import gather_object

    return list(gather_object(list(rows)))


def clip_grad_norm(wrapped, params, max_norm: float) -> torch.Tensor:
    """Clip the (already all-reduced) gradient; accelerate's version where a launcher set one up (it knows FSDP)."""
    acc = accelerator()
    if acc is None:
        return torch.nn.utils.clip_grad_norm_(params, max_norm)
    if hasattr(wrapped, "clip_grad_norm_"):  # FSDP (version 1): the norm over every process's shard
        return wrapped.clip_grad_norm_(max_norm)
    return acc.clip_grad_norm_(params, max_norm)


def zero_backward(wrapped, model) -> None:
    """A synced backward of a zero loss through the wrapped model, for a process with no rows in this update:
    DDP's all-reduce is collective, so every process joins it (adding nothing to the sum)."""
    device = next(model.parameters()).device
    ids = torch.zeros((1, 2), dtype=torch.long, device=device)
    out = wrapped(input_ids=ids).logits
    (out.float().sum() * 0.0).backward()


@contextlib.contextmanager
def full_params(model, writeback: bool = False):
    """Under FSDP, the whole (unsharded) parameters for the duration (a collective: every process enters it);
    elsewhere nothing. Sampling and checkpoints use the unwrapped model (``generate``, ``named_parameters``), so they
    need it."""
    wrapped = model.__dict__.get(_WRAPPED)
    try:
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
    except ImportError:  # pragma: no cover
        FSDP = None
    if FSDP is not None and isinstance(wrapped, FSDP):
        with FSDP.summon_full_params(wrapped, writeback=writeback, rank0_only=False):
            yield
    else:
        yield
