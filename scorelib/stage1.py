"""Notebook 20's steps (paper §3.2 and §5.1, Eq. 2 and 3; Fig. 5; claim C5): standard multi-turn RL and SCoRe's
Stage I trained from the same base on each seed, evaluated on the held-out problems, their training curves, and the
sweep of Stage I settings on the validation split.

One function per step of the notebook, so that its cells read as the paper and the tests can call each step. The
objectives are ``rl_settings.OBJECTIVES`` (``multi_turn``, ``stage1``); one RL run with checkpoint selection is
``stages.train_stage``. Notebook 30 (``scorelib.stage2``) builds on this module's ``Setup``, ``SeedRun`` and
``evaluate``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from scorelib import metrics, plots, stages, tables
from scorelib.from_base import BaseSetup, open_from_base
from scorelib.evaluate import evaluate_all, pooled
from scorelib.models import is_tiny
from scorelib.protocol import describe as describe_protocol
from scorelib.results import resolve_model

NOTEBOOK = "20_stage1_vs_multiturn_rl"
METHODS = {"Multi-turn RL": "multi_turn", "Stage I": "stage1"}  # table name -> objective, in training order
SWEEP_REFERENCES = ("base", "default")  # the sweep table's first rows: the base, and the main run's first seed
SWEEP_TITLE = "Stage I sweep: Δ(t1, t2) of each variant (first seed, validation split)"
SPREAD_HEADERS = {"fix own (%)": "fix_own", "different answer (%)": "different_answer",
                  "Δ sd over seeds": "delta_seed_sd"}


def model_name(seed: int, objective: str) -> str:
    """This notebook's name of one seed's run of one objective: its checkpoints/<name>/ and models/<name>/."""
    return f"seed{seed}/{objective}"


@dataclass
class Setup(BaseSetup):
    """What every step of an RL notebook needs: ``BaseSetup`` (cfg: config.Stage1Config; notebook 30's
    config.Stage2Config) and the problems that select checkpoints."""

    select_on: list | None  # validation problems behind checkpoint selection (None: by training reward)

    @property
    def tiny(self) -> bool:
        return is_tiny(self.model_ref)

    @property
    def lora(self) -> tuple:
        return (self.cfg.lora_rank, self.cfg.lora_alpha, self.cfg.lora_targets)

    @property
    def protocol(self) -> str:
        return describe_protocol(self.cfg.eval_split, self.cfg.seeds)

    def settings(self, objective: str):
        """The RL settings of one objective from this run's parameters (``stages.settings``)."""
        return stages.settings(objective, self.cfg)

    def describe(self) -> str:
        return (f"{self.base_described}; {self.task.describe}; {len(self.held_out)} held-out problems "
                f"({self.protocol}); run folder {self.run.dir}")


def setup(cfg) -> Setup:
    """Open this run's folder, load the base model (the reference policy of both methods) and the held-out
    problems; a missing base run fails before any compute."""
    opened = open_from_base(NOTEBOOK, cfg, resolve_model(cfg))
    return Setup(**opened, select_on=stages.selection_problems(opened["task"], cfg))


@dataclass
class SeedRun:
    """One seed's run of one method: its training log, its evaluations (temperature -> TwoTurnEval) and the
    selected-checkpoints line."""

    seed: int
    log: list
    evals: dict
    selected: dict


def evaluate(su: Setup, policy, seed: int, read_from=()) -> dict:
    """temperature -> TwoTurnEval of a policy on the held-out problems at every evaluation temperature, kept under
    the run's cache/ by their inputs (a rerun after a kill reuses them); ``read_from``: other runs' cache folders
    looked in first (``evaluate.evaluate_all``)."""
    cfg = su.cfg
    return evaluate_all(policy, su.tokenizer, su.task, su.held_out, seed=seed, progress=cfg.progress,
                        temperatures=cfg.temperatures, max_new_tokens=cfg.max_new_tokens,
                        batch_size=cfg.gen_batch_size, n_boot=cfg.n_boot, cache_dir=su.run.dir / "cache",
                        read_from=read_from)


def run_seed(su: Setup, seed: int, method: str) -> SeedRun:
    """Train one method (a key of METHODS) on one seed from the base (``stages.train_stage``: RL seed = seed;
    checkpoints, resumption, selection), save its log as history_seed<seed>_<objective>.jsonl, evaluate the
    selected model, then let it go."""
    objective = METHODS[method]
    cfg, name = su.cfg, model_name(seed, objective)
    train = su.task.train_problems(cfg.n_train, seed=seed)
    policy, log, best, best_reward = stages.train_stage(
        su.base_for(seed), su.tokenizer, su.task, train, su.settings(objective), seed, su.run.dir, name, lora=su.lora,
        select_window=cfg.select_window, tiny=su.tiny, device=cfg.device, dtype=cfg.dtype, progress=cfg.progress,
        select_problems=su.select_on)
    su.run.history(log, f"history_{name.replace('/', '_')}.jsonl")
    selected = stages.selected_row(seed, log, best, best_reward, method=method)
    return SeedRun(seed, log, evaluate(su, policy, seed), selected)


def run_all(su: Setup) -> dict[str, list[SeedRun]]:
    """Both methods on every seed (seed by seed, multi-turn RL first): method -> one SeedRun per seed."""
    runs = {method: [] for method in METHODS}
    for seed in su.cfg.seeds:
        for method in METHODS:
            runs[method].append(run_seed(su, seed, method))
    return runs


def selected_rows(runs: dict[str, list[SeedRun]]) -> list[dict]:
    """The selected-checkpoints lines in training order (seed by seed, each method in METHODS order)."""
    return [runs[m][i].selected for i in range(len(runs["Stage I"])) for m in METHODS]


def selected_table(runs: dict[str, list[SeedRun]]) -> pd.DataFrame:
    """One line per method and seed (in training order): the checkpoint kept, its score, seconds per step."""
    return pd.DataFrame(selected_rows(runs)).set_index(["method", "seed"]).round(3)


def curves(runs: dict[str, list[SeedRun]]) -> pd.DataFrame:
    """Fig. 5's training curves: per method, the mean over seeds of acc_t1, acc_t2 and different_answer per step,
    smoothed over 5 steps (``stages.curves``)."""
    return stages.curves({method: [r.log for r in rs] for method, rs in runs.items()})


def evaluate_bases(su: Setup) -> list[dict]:
    """The base's evaluations (``evaluate``), one a base model: each seed's own base (its sampling seeded by the
    seed), or the one shared base (seeded by eval_seed)."""
    return [evaluate(su, base, seed) for seed, base in su.base_row(su.cfg.eval_seed)]


def rows_at(su: Setup, base_evals: list[dict], runs: dict[str, list[SeedRun]], t: float) -> dict:
    """The evaluation rows at one temperature: the base (pooled over its base models when each seed has its own),
    then each method, pooled over seeds with 95% CIs (the bootstrap seeded by eval_seed)."""
    cfg = su.cfg
    rows = {"Base model": pooled(base_evals, t, cfg.n_boot, cfg.eval_seed)}
    rows.update({m: pooled([r.evals for r in rs], t, cfg.n_boot, cfg.eval_seed) for m, rs in runs.items()})
    return rows


def evaluation_table(su: Setup, rows: dict, t: float) -> pd.DataFrame:
    """Write one temperature's rows as tables/evaluation_<greedy|T1> (values with CIs); returns the table."""
    label = tables.temperature_label(t)
    shown = {f"{k} ({su.cfg.task}, {label}, {r.get('seeds', 1)} seed(s))": r for k, r in rows.items()}
    return su.run.table(f"evaluation_{label.replace('=', '')}", metrics.format_table(shown))


def spread_table(rows_by_t: dict) -> pd.DataFrame:
    """Per method and temperature: the share of wrong first attempts fixed, the different-answer rate and the
    spread of Δ over seeds."""
    flat = {f"{k} ({tables.temperature_label(t)})": r for t, rows in rows_by_t.items() for k, r in rows.items()}
    return tables.columns(flat, SPREAD_HEADERS)


def by_level(base_evals: list[dict], runs: dict[str, list[SeedRun]], t: float) -> pd.DataFrame:
    """The Fig. 6 analogue: Δi→c and Δc→i per difficulty level of the (first seed's) base and of each method's first
    seed at temperature t (points, % of the level's problems)."""
    evals = {"Base model": base_evals[0][t], **{m: rs[0].evals[t] for m, rs in runs.items()}}
    return pd.concat({m: e.by_level()[["delta_i2c", "delta_c2i"]] for m, e in evals.items()}, axis=1).round(1)


def sweep(su: Setup, runs: dict[str, list[SeedRun]]) -> list[dict]:
    """The sweep's rows (``stages.run_sweep`` of Stage I on the first seed, judged on the validation split): the
    base and the main run's first seed (SWEEP_REFERENCES), then one row per variant; [] when ``sweep`` is empty."""
    s0 = su.cfg.seeds[0]
    first = runs["Stage I"][0].selected
    references = dict(zip(SWEEP_REFERENCES, [
        (su.base_for(s0), "", float("nan")),
        (su.run.dir / "models" / model_name(s0, "stage1"), first["checkpoint"], first["training_reward"])]))
    return stages.run_sweep("stage1", su.cfg, su.base_for(s0), su.tokenizer, su.task, su.run, None, s0, su.lora,
                            su.tiny, references)


def sweep_protocol(su: Setup) -> str:
    """What the sweep is judged on: the first seed on the validation split."""
    return describe_protocol("val", (su.cfg.seeds[0],))


def write_sweep(su: Setup, rows: list[dict], title: str = SWEEP_TITLE) -> pd.DataFrame:
    """Write the sweep table (tables/sweep, rounded) and its figure (figures/sweep_deltas); returns the table."""
    table = pd.DataFrame(rows).set_index("variant")
    su.run.figure("sweep_deltas", plots.sweep_deltas(table.reset_index(), title))
    return su.run.table("sweep", table.round({c: 2 for c in stages.SWEEP_COLUMNS}))


def summary(su: Setup, rows_by_t: dict, c5: dict, runs: dict[str, list[SeedRun]], sweep_rows: list[dict]) -> dict:
    """metrics.json: the evaluation rows per temperature, claim C5, the selected checkpoints, the sweep's variant
    rows and the protocols the numbers were measured under."""
    cfg = su.cfg
    return dict(rows={str(t): r for t, r in rows_by_t.items()}, claims=dict(C5=c5), seeds=list(cfg.seeds),
                selected=selected_rows(runs), sweep=sweep_rows[len(SWEEP_REFERENCES):], protocol=su.protocol,
                sweep_protocol=sweep_protocol(su) if cfg.sweep else None)


def stage1_model(run_dir: str | Path, seed: int) -> Path:
    """This notebook's selected Stage I model of one seed (notebook 30's starting point)."""
    return Path(run_dir) / "models" / model_name(seed, "stage1")
