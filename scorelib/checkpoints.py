"""RL checkpoints: a run's trainable weights, optimizer state and log, saved every ``checkpoint_every`` steps to
``step_NNNNNN/`` (atomically: a kill leaves the old checkpoint or the new one), loaded to resume, and selected
after the run: by training reward (``best_checkpoint``, the paper's rule) or by any score of the weights
(``best_checkpoint_by``, e.g. greedy reward on validation problems).

The training loop that writes them is ``rl.rl_train``; ``stages.train_stage`` selects and keeps one.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch


def _trainable_state(model) -> dict:
    """The weights a checkpoint keeps: every trainable parameter, copied to the CPU."""
    return {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}


def save_checkpoint(path: str | Path, policy, opt, step: int, log: list[dict], run: dict | None = None) -> Path:
    """Trainable weights, optimizer state and the log, written to a temporary folder then renamed
    (``results.atomic_path``: a kill leaves the old checkpoint or the new one). Only the newest checkpoint keeps
    its optimizer state (the one resumption needs): older ones lose theirs."""
    from scorelib.results import atomic_path, fault_point

    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.mkdir(parents=True)
        torch.save(_trainable_state(policy), tmp / "trainable.pt")
        torch.save(opt.state_dict(), tmp / "optimizer.pt")
        (tmp / "state.json").write_text(json.dumps(dict(step=step, log=log, run=run or {})))
    for old in checkpoints(path.parent):
        if old != path and (old / "optimizer.pt").exists():
            (old / "optimizer.pt").unlink()
    fault_point("checkpoint")
    return path


def checkpoints(checkpoint_dir: str | Path) -> list[Path]:
    """Complete checkpoints in step order."""
    d = Path(checkpoint_dir)
    return sorted(p for p in d.glob("step_*") if p.is_dir() and not p.name.endswith(".tmp")
                  and (p / "state.json").exists()) if d.is_dir() else []


def load_checkpoint(path: str | Path, policy, opt=None) -> tuple[int, list[dict]]:
    """Load trainable weights (and the optimizer state) into place; returns (step, log)."""
    path = Path(path)
    state = torch.load(path / "trainable.pt", map_location="cpu")
    params = dict(policy.named_parameters())
    missing = sorted(set(state) - set(params))
    if missing:
        raise ValueError(f"checkpoint {path} has weights the model lacks, e.g. {missing[:3]}")
    with torch.no_grad():
        for n, v in state.items():
            params[n].copy_(v.to(params[n].device, params[n].dtype))
    if opt is not None:
        if not (path / "optimizer.pt").exists():
            raise FileNotFoundError(f"{path} has no optimizer state (only the newest checkpoint keeps it)")
        opt.load_state_dict(torch.load(path / "optimizer.pt", map_location="cpu"))
    data = json.loads((path / "state.json").read_text())
    return int(data["step"]), list(data["log"])


def best_checkpoint(checkpoint_dir: str | Path, window: int = 10) -> tuple[Path, float]:
    """The checkpoint with the highest mean training reward over the `window` steps before it."""
    best, best_r = None, -np.inf
    for c in checkpoints(checkpoint_dir):
        data = json.loads((c / "state.json").read_text())
        recent = data["log"][-window:]
        r = float(np.mean([x["reward"] for x in recent])) if recent else -np.inf
        if r > best_r:
            best, best_r = c, r
    if best is None:
        raise FileNotFoundError(f"no checkpoints in {checkpoint_dir}")
    return best, best_r


def best_checkpoint_by(checkpoint_dir: str | Path, policy, score_fn) -> tuple[Path, float, list[dict]]:
    """The checkpoint whose weights score highest under ``score_fn(policy) -> float`` (e.g. greedy reward on
    validation problems; ties go to the earlier checkpoint). Every complete checkpoint is a candidate, the
    starting policy's ``step_000000`` too when the run saved it. Leaves the last candidate's weights loaded.
    Returns (path, score, one dict of step and score per candidate)."""
    scored = []
    for c in checkpoints(checkpoint_dir):
        step, _ = load_checkpoint(c, policy)
        policy.eval()
        scored.append(dict(checkpoint=c, step=step, score=float(score_fn(policy))))
    if not scored:
        raise FileNotFoundError(f"no checkpoints in {checkpoint_dir}")
    best = max(scored, key=lambda r: (r["score"], -r["step"]))
    return best["checkpoint"], best["score"], [dict(step=r["step"], score=r["score"]) for r in scored]
