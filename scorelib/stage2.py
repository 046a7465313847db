"""Notebook 30's steps (paper section 5, Stage II; Table 2): Stage II trained from each seed's Stage I checkpoint
(notebook 20's run), evaluated on the held-out problems, the Table 2 analogue built from the rows of notebooks 10,
20 and 30, and the sweep of Stage II settings on the validation split.

One function per step of the notebook, so that its cells read as the paper and the tests can call each step. The
maths is in ``objectives`` (shaped reward, RLOO, k3 KL) and ``rl`` (the trainer); one RL run with checkpoint
selection is ``stages.train_stage``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import pandas as pd

from scorelib import claims, evaluate, stage1, stages, upstream
from scorelib.config import ConfigError
from scorelib.from_base import open_from_base
from scorelib.results import require_run, resolve_model, run_dir
from scorelib.stage1 import SeedRun, stage1_model

NOTEBOOK = "30_score_stage2"
STAGE1_NOTEBOOK = "20_stage1_vs_multiturn_rl"
SFT_NOTEBOOK = "10_sft_baselines"
CURVE_KEYS = ("acc_t1", "acc_t2", "different_answer", "shaped_reward")
SWEEP_REFERENCES = ("Stage I", "default")  # the sweep table's first rows: where Stage II starts, and the main run
SWEEP_TITLE = "Stage II sweep: Δ(t1, t2) of each variant (first seed, validation split)"


def model_name(seed: int, round_: int = 1, stage: str = "stage2") -> str:
    """This notebook's name of one seed's run in one round and stage: its checkpoints/<name>/ and models/<name>/."""
    return f"seed{seed}/round{round_}_{stage}"


@dataclass
class Setup(stage1.Setup):
    """What every step of notebook 30 needs: notebook 20's (``stage1.Setup``) and notebook 20's run."""

    stage1_dir: Path  # notebook 20's run: the Stage I models Stage II starts from

    def settings(self, stage: str = "stage2"):
        """The RL settings of Stage II ('stage2') or of an interleaved round's Stage I ('stage1')."""
        if stage == "stage1":
            return stages.settings("stage1", self.cfg, steps=max(1, self.cfg.stage1_steps))
        return stages.settings(stage, self.cfg)

    def describe(self) -> str:
        return (f"{self.base_described}; Stage I from {self.stage1_dir}; {self.task.describe}; "
                f"{len(self.held_out)} held-out problems ({self.protocol})")


def setup(cfg) -> Setup:
    """Check notebook 20's run (same task, model, base and adapter rank; a Stage I model for every seed) before any
    compute, then open this run's folder and load the base model and the held-out problems."""
    model_ref = resolve_model(cfg)
    stage1_dir = require_run(cfg.results_dir, STAGE1_NOTEBOOK, cfg.stage1_run, "models")
    upstream.check_stage1_run(cfg, stage1_dir)
    missing = [s for s in cfg.seeds if not stage1_model(stage1_dir, s).exists()]
    if missing:
        raise ConfigError(f"notebook 20's run {cfg.stage1_run!r} has no Stage I model for seeds {missing}: "
                          "run it with those seeds")
    opened = open_from_base(NOTEBOOK, cfg, model_ref)
    return Setup(**opened, select_on=stages.selection_problems(opened["task"], cfg), stage1_dir=stage1_dir)


def train_seed(su: Setup, seed: int):
    """Stage II of one seed: ``rounds`` rounds from notebook 20's Stage I model, each round after the first
    preceded by ``stage1_steps`` steps of Stage I from the last Stage II model (the paper's v1 interleaving; none
    when stage1_steps is 0). Round r's runs use RL seed 10 * seed + r - 1 and save their logs as
    history_seed<seed>_round<r>_<stage>.jsonl. Returns the last Stage II run's (policy, log, selected checkpoint,
    its selection score), as ``stages.train_stage``."""
    cfg = su.cfg
    train = su.task.train_problems(cfg.n_train, seed=seed)
    init = stage1_model(su.stage1_dir, seed)
    for r in range(1, cfg.rounds + 1):
        for stage in (("stage1", "stage2") if r > 1 and cfg.stage1_steps > 0 else ("stage2",)):
            name = model_name(seed, r, stage)
            out = stages.train_stage(su.base_for(seed), su.tokenizer, su.task, train, su.settings(stage),
                                     seed * 10 + r - 1, su.run.dir, name, init_dir=init, lora=su.lora,
                                     select_window=cfg.select_window, tiny=su.tiny, device=cfg.device,
                                     dtype=cfg.dtype, progress=cfg.progress, select_problems=su.select_on)
            init = su.run.dir / "models" / name  # where train_stage saved the selected model
            su.run.history(out[1], f"history_seed{seed}_round{r}_{stage}.jsonl")
    return out


def run_seed(su: Setup, seed: int) -> SeedRun:
    """Train one seed's Stage II (``train_seed``), evaluate the selected model (``stage1.evaluate``), then let it go."""
    policy, log, best, best_reward = train_seed(su, seed)
    return SeedRun(seed, log, stage1.evaluate(su, policy, seed), stages.selected_row(seed, log, best, best_reward))


def selected_table(runs: list[SeedRun]) -> pd.DataFrame:
    """One line per seed: the checkpoint kept, its selection score and the seconds per step."""
    return pd.DataFrame([r.selected for r in runs]).set_index("seed").round(3)


def curves(runs: list[SeedRun], rounds: int) -> pd.DataFrame:
    """The last round's training curves (``stages.curves``: mean over seeds, smoothed), rounded for the table."""
    return stages.curves({f"Stage II (round {rounds})": [r.log for r in runs]}, keys=CURVE_KEYS).round(2)


def pooled(su: Setup, runs: list[SeedRun], temperature: float) -> dict:
    """SCoRe's row at one temperature: metrics pooled over seeds with 95% CIs (``evaluate.pooled``)."""
    return evaluate.pooled([r.evals for r in runs], temperature, su.cfg.n_boot, su.cfg.eval_seed)


class Table2(NamedTuple):
    rows: dict  # method -> pooled metrics (95% CIs), in the paper's order
    missing: list  # names of rows whose run is absent
    notes: list  # why a present run's rows were left out, or differ


def table2_rows(su: Setup, runs: list[SeedRun]) -> Table2:
    """The Table 2 analogue's rows at the first evaluation temperature (``upstream.table2_rows``: Base, Multi-turn RL
    and Stage I from notebook 20's run, STaR and Pair-SFT from notebook 10's ``sft_run``, SCoRe from ``runs``)."""
    cfg, t = su.cfg, su.cfg.temperatures[0]
    sft_dir = run_dir(cfg.results_dir, SFT_NOTEBOOK, cfg.sft_run)
    return Table2(*upstream.table2_rows(cfg, su.stage1_dir, sft_dir, pooled(su, runs, t), t, su.tiny))


def score_at_other_temperatures(su: Setup, runs: list[SeedRun]) -> dict[str, pd.DataFrame]:
    """SCoRe's pooled row at each evaluation temperature after the first, each written as
    tables/score_T<t>; returns 'SCoRe at T=<t>' -> the table."""
    from scorelib.metrics import format_table

    return {f"SCoRe at T={t:g}": su.run.table(f"score_T{t:g}", format_table({"SCoRe": pooled(su, runs, t)}))
            for t in su.cfg.temperatures[1:]}


def sweep(su: Setup, first: SeedRun) -> list[dict]:
    """The sweep's rows (``stages.run_sweep`` on the first seed, judged on the validation split): Stage I and the
    main run's first seed (``SWEEP_REFERENCES``), then one row per variant; [] when ``sweep`` is empty."""
    s0 = su.cfg.seeds[0]
    start = stage1_model(su.stage1_dir, s0)
    references = dict(zip(SWEEP_REFERENCES, [
        (start, "", float("nan")),
        (su.run.dir / "models" / model_name(s0), first.selected["checkpoint"], first.selected["training_reward"])]))
    return stages.run_sweep("stage2", su.cfg, su.base_for(s0), su.tokenizer, su.task, su.run, start, s0 * 10, su.lora,
                            su.tiny, references)


sweep_protocol = stage1.sweep_protocol  # the first seed on the validation split, as notebook 20's sweep


def write_sweep(su: Setup, rows: list[dict]) -> pd.DataFrame:
    """Write the sweep table (tables/sweep, rounded) and its figure (figures/sweep_deltas); returns the table."""
    return stage1.write_sweep(su, rows, SWEEP_TITLE)


def summary(su: Setup, table2: Table2, runs: list[SeedRun], sweep_rows: list[dict]) -> dict:
    """metrics.json: the Table 2 rows, claim C6, the selected checkpoints, the sweep's variant rows and the
    protocols the numbers were measured under."""
    cfg = su.cfg
    return dict(rows=table2.rows, missing=table2.missing, notes=table2.notes,
                claims=dict(C6=claims.claim_c6(table2.rows)),
                seeds=list(cfg.seeds), selected=[r.selected for r in runs],
                sweep=sweep_rows[len(SWEEP_REFERENCES):], protocol=su.protocol,
                sweep_protocol=sweep_protocol(su) if cfg.sweep else None)
