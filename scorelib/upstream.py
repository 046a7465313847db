"""Notebook 30's reads of the runs it builds on (notebook 20's Stage I, notebook 10's SFT baselines): the check that
a Stage I run fits this one, the Table 2 analogue's rows from their metrics.json, and the seconds of training from
their histories. Each reads another notebook's config.json under today's parameter names
(``config.saved_config``: runs written with the old names still read).

Running a stage is ``stages``; notebook 30's steps are ``stage2``.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from scorelib.jsonl import read_jsonl


_SAVED_DEFAULTS = {"eval_split": "test"}  # what a run saved before the key existed used


def _differs(saved: dict, cfg, keys) -> list[str]:
    return [k for k in keys if saved.get(k, _SAVED_DEFAULTS.get(k)) != getattr(cfg, k)]


def _saved_config(run_dir: Path, notebook: str) -> dict:
    """A run's config.json under today's parameter names (``config.saved_config``: old runs still read)."""
    from scorelib.config import saved_config
    from scorelib.results import read_json

    return saved_config(read_json(Path(run_dir) / "config.json"), notebook)


def check_stage1_run(cfg, stage1_dir: Path) -> None:
    """Stage II must start from a notebook-20 run made for the same task, model, base and adapter rank."""
    from scorelib.config import ConfigError

    differs = _differs(_saved_config(stage1_dir, "20_stage1_vs_multiturn_rl"), cfg,
                       ("task", "model", "base_run", "lora_rank"))
    if differs:
        raise ConfigError(f"notebook 20's run {Path(stage1_dir).name!r} differs from this run in {differs}")


def table2_rows(cfg, stage1_dir: Path, sft_dir: Path, score_row: dict, temperature: float, tiny: bool
                ) -> tuple[dict, list[str], list[str]]:
    """Rows of the Table 2 analogue: Base, Multi-turn RL and Stage I (notebook 20's evaluation), Self-Refine,
    STaR w/ D+_STaR and Pair-SFT w/ D_SFT (notebook 10's run, when it was made for the same task, model and
    base, and the table is greedy as notebook 10 is), and SCoRe; a row from a run evaluated on another split
    (eval_split) is left out with a note. Returns (rows, missing row names, notes).

    Raises ConfigError when notebook 20's run was made for another task, model, base or adapter rank."""
    from scorelib.results import read_json

    check_stage1_run(cfg, stage1_dir)
    stage1 = read_json(Path(stage1_dir) / "metrics.json")
    sft_rows, notes = {}, []
    rows20 = stage1["rows"].get(str(float(temperature))) or {}
    if _differs(_saved_config(stage1_dir, "20_stage1_vs_multiturn_rl"), cfg, ("eval_split",)):
        notes.append(f"notebook 20's run {Path(stage1_dir).name!r} was evaluated on another split than "
                     f"{cfg.eval_split!r}: its rows are left out")
        rows20 = {}
    if (Path(sft_dir) / "metrics.json").exists():
        sft_cfg = _saved_config(sft_dir, "10_sft_baselines")
        differs = _differs(sft_cfg, cfg, ("task", "model", "base_run", "eval_split"))
        if differs:
            notes.append(f"notebook 10's run {Path(sft_dir).name!r} differs in {differs}: its rows are left out")
        elif temperature != 0:
            notes.append("notebook 10 evaluates greedily: its rows are left out of a table at T != 0")
        else:
            sft_rows = read_json(Path(sft_dir) / "metrics.json")["rows"]
            if sft_cfg.get("n_test") != cfg.n_test:
                notes.append(f"STaR, Pair-SFT and Self-Refine rows come from {sft_cfg.get('n_test')} held-out "
                             f"problems, SCoRe's from {cfg.n_test}")
    rows = {"Base model": rows20.get("Base model"), "Multi-turn RL": rows20.get("Multi-turn RL"),
            "Stage I only": rows20.get("Stage I"), "Self-Refine": sft_rows.get("Self-Refine"),
            "STaR w/ D+_STaR": sft_rows.get("STaR D+_STaR"),
            "Pair-SFT w/ D_SFT": sft_rows.get("Pair-SFT D_SFT"), "SCoRe": score_row}
    if rows["Self-Refine"] is None and tiny:
        del rows["Self-Refine"]  # never run for the tiny model (notebook 10 says why)
    missing = [k for k, v in rows.items() if v is None]
    return {k: v for k, v in rows.items() if v is not None}, missing, notes


def _log_seconds(path: Path) -> tuple[float, float]:
    rows = read_jsonl(path) if Path(path).exists() else []
    return sum(r["sample_s"] for r in rows), sum(r["train_s"] for r in rows)


def training_time(stage1_dir: Path, stage2_dir: Path, seeds) -> pd.DataFrame:
    """Seconds of sampling and of updating per seed: Stage I (notebook 20's log) and every Stage II (and interleaved
    Stage I) round of this run, with the total in minutes. A missing log counts 0 (and shows as such)."""
    rows = []
    for s in seeds:
        s1 = _log_seconds(Path(stage1_dir) / f"history_seed{s}_stage1.jsonl")
        later = [_log_seconds(p) for p in sorted(Path(stage2_dir).glob(f"history_seed{s}_round*.jsonl"))]
        s2 = (sum(x[0] for x in later), sum(x[1] for x in later))
        rows.append(dict(seed=s, stage1_sample_s=s1[0], stage1_train_s=s1[1], stage2_sample_s=s2[0],
                         stage2_train_s=s2[1], total_min=(sum(s1) + sum(s2)) / 60))
    return pd.DataFrame(rows).set_index("seed")
