"""What every notebook that starts from a base model opens first (notebooks 10, 20, 30 and 50): the base model
(``model``, else notebook 00's run ``base_run``), the task, this run's folder and the held-out problems.

Each of those notebooks' modules (``baselines``, ``stage1``, ``stage2``, ``inference_scaling``) extends
``BaseSetup`` with what it alone needs, and builds it from ``open_from_base`` after checking its upstream runs.
"""
from __future__ import annotations

from dataclasses import dataclass

from scorelib.models import load_model
from scorelib.results import Run
from scorelib.tasks import load_task


@dataclass
class BaseSetup:
    """A notebook's config, run folder, task, base model (and tokenizer, and where it came from) and held-out
    problems."""

    cfg: object
    run: Run
    task: object
    base: object
    tokenizer: object
    model_ref: str
    held_out: list


def open_from_base(notebook: str, cfg, model_ref: str) -> dict:
    """``BaseSetup``'s fields: load the task, open this run's folder (``Run.start``), load the base model
    ``model_ref`` (resolved by the caller with ``results.resolve_model``, before any upstream check) and draw the
    held-out problems of ``cfg.eval_split``."""
    task = load_task(cfg.task, cfg.data_path, cfg.train_path)
    run = Run.start(notebook, cfg)
    base, tokenizer = load_model(model_ref, device=cfg.device, dtype=cfg.dtype)
    return dict(cfg=cfg, run=run, task=task, base=base, tokenizer=tokenizer, model_ref=model_ref,
                held_out=task.eval_problems(cfg.eval_split, cfg.n_test))
