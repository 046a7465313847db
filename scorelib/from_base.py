"""What every notebook that starts from a base model opens first (notebooks 10, 20, 30, 40, 45 and 50): the base
model (``model``, else notebook 00's run ``base_run``; one base a seed when ``base_run`` holds '{seed}'), the task,
this run's folder and the held-out problems.

Each of those notebooks' modules (``baselines``, ``stage1``, ``stage2``, ``inference_scaling``) extends
``BaseSetup`` with what it alone needs, and builds it from ``open_from_base`` after checking its upstream runs.
"""
from __future__ import annotations

from dataclasses import dataclass

from scorelib.config import SEED_FIELD
from scorelib.models import load_model
from scorelib.results import Run, resolve_model
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
    model_ref: str  # the first seed's base model
    held_out: list

    def model_ref_for(self, seed: int) -> str:
        """Where seed ``seed``'s base model comes from (``results.resolve_model``): one base a seed when the
        config's ``base_run`` holds '{seed}', else the one shared base (or ``model``)."""
        if self.cfg.model or SEED_FIELD not in self.cfg.base_run:
            return self.model_ref
        return resolve_model(self.cfg, seed=seed)

    def base_for(self, seed: int):
        """Seed ``seed``'s base model: the policy its training starts from and the reference of its KL penalty.
        The first seed's is ``base``; another seed's is loaded once and kept."""
        ref = self.model_ref_for(seed)
        if ref == self.model_ref:
            return self.base
        others = self.__dict__.setdefault("_other_bases", {})  # not a field: subclasses add fields without defaults
        if ref not in others:
            others[ref] = load_model(ref, device=self.cfg.device, dtype=self.cfg.dtype)[0]
        return others[ref]

    def base_row(self, shared_seed: int) -> list[tuple[int, object]]:
        """(sampling seed, base model) behind a table's base row: each seed's own base with that seed when each seed
        has one, else the one shared base once, with ``shared_seed``."""
        if self.per_seed:
            return [(s, self.base_for(s)) for s in self.cfg.base_seeds()]
        return [(shared_seed, self.base)]

    @property
    def base_described(self) -> str:
        """'base model <ref>', or each seed's base model when each seed has its own."""
        if not self.per_seed:
            return f"base model {self.model_ref}"
        return "one base model a seed (" + ", ".join(f"seed {s}: {self.model_ref_for(s)}"
                                                     for s in self.cfg.base_seeds()) + ")"

    @property
    def per_seed(self) -> bool:
        """Whether the run's seeds start from different base models."""
        return not self.cfg.model and len(self.cfg.base_runs()) > 1


def open_from_base(notebook: str, cfg, model_ref: str) -> dict:
    """``BaseSetup``'s fields: load the task, open this run's folder (``Run.start``), load the base model
    ``model_ref`` (resolved by the caller with ``results.resolve_model``, before any upstream check) and draw the
    held-out problems of ``cfg.eval_split``."""
    for base_run in [] if cfg.model else cfg.base_runs():  # each exists and was made for this task, before any compute
        resolve_model(cfg, base_run)
    task = load_task(cfg.task, cfg.data_path, cfg.train_path)
    run = Run.start(notebook, cfg)
    base, tokenizer = load_model(model_ref, device=cfg.device, dtype=cfg.dtype)
    return dict(cfg=cfg, run=run, task=task, base=base, tokenizer=tokenizer, model_ref=model_ref,
                held_out=task.eval_problems(cfg.eval_split, cfg.n_test))
