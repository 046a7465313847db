"""Notebook 40's steps (paper §3.4, Table 4; Fig. 8; claim C7): every ablation row trained on every seed with
notebook 30's recipe except the one thing the row changes (``scorelib.ablations``), SCoRe's row read from notebook
30's run, Table 4 with the paired differences from SCoRe, Fig. 8's training curves, and claim C7.

One function per step of the notebook, so that its cells read as the paper and the tests can call each step. What
each row changes is ``ablations.ablation``; training a row is ``ablations.train_row`` (REINFORCE rows through
``stages.train_stage``, the STaR row through ``ablations.star_stage2``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import pandas as pd

from scorelib import ablations, claims, evaluate, plots, stage1, stages, upstream
from scorelib.config import ConfigError
from scorelib.from_base import open_from_base
from scorelib.models import load_model
from scorelib.results import read_json, require_run, resolve_model
from scorelib.rl_settings import RLSettings
from scorelib.tables import temperature_label

NOTEBOOK = "40_ablations"
STAGE1_NOTEBOOK = "20_stage1_vs_multiturn_rl"
SCORE_NOTEBOOK = "30_score_stage2"


@dataclass
class Setup(stage1.Setup):
    """What every step of notebook 40 needs: notebook 20's (``stage1.Setup``; cfg: config.AblationConfig), the
    upstream runs, and the rows to train with SCoRe's Stage II settings they are compared with."""

    stage1_dir: Path  # notebook 20's run: the Stage I model of each seed (rows that start from Stage I)
    score_dir: Path  # notebook 30's run: the SCoRe row and the recipe every row shares
    score_cfg: dict  # notebook 30's run's config
    reference: RLSettings  # SCoRe's Stage II settings (``ablations.reference``)
    rows: dict  # row id -> ablations.Ablation, in ``ablation_rows`` order

    def stage1_model(self, seed: int) -> Path:
        return stage1.stage1_model(self.stage1_dir, seed)

    def describe(self) -> str:
        return (f"{self.base_described}; Stage I from {self.stage1_dir}; SCoRe from {self.score_dir}; "
                f"{self.task.describe}; {len(self.held_out)} held-out problems ({self.protocol})")

    def changes_table(self) -> pd.DataFrame:
        """Written as tables/changes: what each row changes from SCoRe's Stage II, where it starts, its budget."""
        return self.run.table("changes", ablations.changes_table(self.rows, self.reference))


def setup(cfg) -> Setup:
    """Check notebook 20's run (same task, model, base and adapter rank; a Stage I model for every seed) and
    notebook 30's (this run's recipe, one round, every seed) before any compute, then open this run's folder and
    load the base model and the held-out problems."""
    model_ref = resolve_model(cfg)
    stage1_dir = require_run(cfg.results_dir, STAGE1_NOTEBOOK, cfg.stage1_run, "models")
    score_dir = require_run(cfg.results_dir, SCORE_NOTEBOOK, cfg.score_run, "models")
    upstream.check_stage1_run(cfg, stage1_dir)
    score_cfg = ablations.check_score_run(cfg, score_dir)
    stage1_steps = read_json(stage1_dir / "config.json")["steps"]
    missing = [s for s in cfg.seeds if not stage1.stage1_model(stage1_dir, s).exists()]
    if missing:
        raise ConfigError(f"notebook 20's run {cfg.stage1_run!r} has no Stage I model for seeds {missing}")
    opened = open_from_base(NOTEBOOK, cfg, model_ref)
    return Setup(**opened, select_on=stages.selection_problems(opened["task"], cfg), stage1_dir=stage1_dir,
                 score_dir=score_dir, score_cfg=score_cfg, reference=ablations.reference(cfg),
                 rows={r: ablations.ablation(r, cfg, stage1_steps) for r in cfg.ablation_rows})


@dataclass
class RowRun:
    """One seed's run of one row: its training log (REINFORCE rows), its rounds (the STaR row), its evaluations
    (temperature -> TwoTurnEval) and the selected-checkpoints line."""

    row: str
    seed: int
    log: list
    star_rounds: list
    evals: dict
    selected: dict


def run_row(su: Setup, seed: int, row: str) -> RowRun:
    """Train one row on one seed (``ablations.train_row``; checkpoints, resumption and selection as notebook 30's),
    save a REINFORCE row's log as history_seed<seed>_<row>.jsonl, evaluate the selected model, then let it go."""
    ab, cfg = su.rows[row], su.cfg
    train = su.task.train_problems(cfg.n_train, seed=seed)
    policy, log, selected = ablations.train_row(ab, su.base_for(seed), su.tokenizer, su.task, train, seed, su.run.dir,
                                                su.stage1_model(seed), cfg, su.lora, su.tiny, su.select_on)
    star_rounds = [dict(seed=seed, **x) for x in log] if ab.method == "star" else []
    if ab.method != "star":
        su.run.history(log, f"history_seed{seed}_{row}.jsonl")
    return RowRun(row, seed, [] if star_rounds else log, star_rounds, stage1.evaluate(su, policy, seed), selected)


def run_all(su: Setup) -> dict[str, list[RowRun]]:
    """Every row on every seed (seed by seed, rows in ``ablation_rows`` order): row -> one RowRun per seed."""
    runs = {r: [] for r in su.rows}
    for seed in su.cfg.seeds:
        for row in su.rows:
            runs[row].append(run_row(su, seed, row))
    return runs


def _seed_major(runs: dict[str, list[RowRun]]) -> list[RowRun]:
    """Every row's runs in the order notebook 40 trains them: every row of the first seed, then of the next."""
    return sorted((r for rs in runs.values() for r in rs), key=lambda r: r.seed)


def selected_table(runs: dict[str, list[RowRun]]) -> pd.DataFrame:
    """The checkpoint each row kept on each seed (seed-major order), for tables/selected_checkpoints."""
    return pd.DataFrame([r.selected for r in _seed_major(runs)]).set_index(["row", "seed"]).round(3)


def star_table(runs: dict[str, list[RowRun]]) -> pd.DataFrame | None:
    """The STaR row's rounds (samples kept, fine-tuning steps, training accuracies), or None without that row."""
    rounds = [x for rs in runs.values() for r in rs for x in r.star_rounds]
    return pd.DataFrame(rounds).set_index(["seed", "round"]).round(2) if rounds else None


class ScoreRow(NamedTuple):
    evals: list  # one per seed: temperature -> TwoTurnEval of notebook 30's selected model
    row: dict  # the pooled row at the first evaluation temperature
    note: str  # where the row comes from


def score_row(su: Setup) -> ScoreRow:
    """Notebook 30's selected model of each seed evaluated on the held-out problems (from notebook 30's cache when
    the code is unchanged): the per-problem outcomes the paired differences need. With notebook 30's seeds the
    pooled row must equal the row notebook 30 stored (checked; ValueError otherwise) and that row is used."""
    cfg, evals = su.cfg, []
    for s in cfg.seeds:
        model = load_model(ablations.score_model_dir(su.score_dir, s), cfg.device, cfg.dtype)[0]
        evals.append(stage1.evaluate(su, model, s, read_from=[su.score_dir / "cache"]))
        del model
    row = evaluate.pooled(evals, cfg.temperatures[0], cfg.n_boot, cfg.eval_seed)
    if list(cfg.seeds) != su.score_cfg["seeds"]:
        return ScoreRow(evals, row, f"SCoRe row: notebook 30's models of seeds {list(cfg.seeds)} "
                                    f"(its stored row pools {su.score_cfg['seeds']})")
    stored = read_json(su.score_dir / "metrics.json")["rows"]["SCoRe"]
    ablations.same_point_estimates(row, stored)  # the same evaluation as notebook 30's
    return ScoreRow(evals, stored, "SCoRe row: notebook 30's stored row (checked against its models' outcomes here)")


class Table4(NamedTuple):
    rows: dict  # temperature -> {"SCoRe" or row id: pooled metrics with 95% CIs}
    differences: dict  # temperature -> {row id: Δ(row) − Δ(SCoRe) with its paired CI}
    tables: dict  # temperature -> the formatted table (written as tables/table4_<label>)


def table4(su: Setup, runs: dict[str, list[RowRun]], score: ScoreRow) -> Table4:
    """At every evaluation temperature: SCoRe's row and each ablation's, pooled over seeds, the difference of each
    row's Δ from SCoRe's (``ablations.difference``: paired, seeds kept together), and the formatted Table 4 beside
    the paper's rows (``ablations.table4``), written as tables/table4_greedy, tables/table4_T1, ..."""
    cfg, first = su.cfg, su.cfg.temperatures[0]
    rows, diffs, shown = {}, {}, {}
    for t in cfg.temperatures:
        ref = score.row if t == first else evaluate.pooled(score.evals, t, cfg.n_boot, cfg.eval_seed)
        rows[t] = {"SCoRe": ref, **{r: evaluate.pooled([x.evals for x in rs], t, cfg.n_boot, cfg.eval_seed)
                                     for r, rs in runs.items()}}
        diffs[t] = {r: ablations.difference([x.evals for x in rs], score.evals, t, cfg.n_boot, cfg.eval_seed)
                    for r, rs in runs.items()}
        label = temperature_label(t)
        suffix = f" ({cfg.task}, {label}, {len(cfg.seeds)} seed(s))"
        shown[t] = su.run.table(f"table4_{label.replace('=', '')}", ablations.table4(rows[t], diffs[t], suffix))
    return Table4(rows, diffs, shown)


def accuracy_bars(su: Setup, t4: Table4):
    """Fig. (Table 4 as bars): Acc@t1 and Acc@t2 of SCoRe and each row at the first evaluation temperature,
    written as figures/table4_accuracy_bars."""
    named = {ablations.LABELS.get(r, r): x for r, x in t4.rows[su.cfg.temperatures[0]].items()}
    return su.run.figure("table4_accuracy_bars",
                         plots.accuracy_bars(named, title="Ablations: Acc@t1 and Acc@t2"))


def fig8(su: Setup, runs: dict[str, list[RowRun]]) -> dict | None:
    """Fig. 8: the γ row's training curves beside notebook 20's multi-turn RL and Stage I (tables/fig8_curves,
    figures/fig8_discount), and whether it collapses by claim C5's test (its first part). None without the row."""
    if "gamma" not in runs:
        return None
    name = ablations.LABELS["gamma"]
    curve = stages.curves({name: [r.log for r in runs["gamma"]],
                           **ablations.stage1_histories(su.stage1_dir, su.cfg.seeds)})
    su.run.table("fig8_curves", curve.round(2))
    su.run.figure("fig8_discount", plots.rl_curves(curve, title="Fig. 8: multi-turn RL with γ = 0.8, α = 1"))
    c = claims.claim_c5(curve, name, name)  # its first part: does the γ run collapse?
    return dict(collapses=c["baseline_collapses"], evidence=c["evidence"].split("; ")[0])


def claim_c7(su: Setup, t4: Table4) -> dict:
    """Claim C7 on the first evaluation temperature's rows (``claims.claim_c7``)."""
    t = su.cfg.temperatures[0]
    rows = t4.rows[t]
    return claims.claim_c7(rows["SCoRe"], {r: x for r, x in rows.items() if r != "SCoRe"}, t4.differences[t])


def claims_table(su: Setup, c7: dict) -> pd.DataFrame:
    """Written as tables/claims: C7's verdict, whether every point estimate is below SCoRe's, and the evidence."""
    table = pd.DataFrame([{k: c7[k] for k in ("claim", "holds", "point_below", "evidence")}])
    return su.run.table("claims", table.set_index("claim"))


def summary(su: Setup, t4: Table4, runs: dict[str, list[RowRun]], c7: dict, fig8_result: dict | None) -> dict:
    """metrics.json: the rows and differences (first evaluation temperature, and by temperature), the paper's
    Table 4, claim C7, Fig. 8's verdict, what each row changes, the selected checkpoints and the protocol."""
    cfg, t = su.cfg, su.cfg.temperatures[0]
    selected = [r.selected for r in _seed_major(runs)]
    return dict(rows=t4.rows[t], differences=t4.differences[t], labels=ablations.LABELS,
                rows_by_temperature={str(x): r for x, r in t4.rows.items()},
                differences_by_temperature={str(x): d for x, d in t4.differences.items()},
                paper=ablations.PAPER_TABLE4, claims=dict(C7=c7), fig8=fig8_result,
                changes={r: ablations.changes(ab, su.reference) for r, ab in su.rows.items()},
                seeds=list(cfg.seeds), selected=selected, score_run=cfg.score_run, protocol=su.protocol)
