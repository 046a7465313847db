"""The paper's claims C1-C8 (digest section 10) in code, in one place.

One check per claim, each a function of the numbers a notebook measured that returns a verdict: a dict with
``claim``, ``holds``, ``evidence`` and the verdict's parts (C1's check returns a bare boolean). The notebooks call
them (01 ``c1_holds``, 10 ``claim_c2``-``claim_c4``, 20 ``claim_c5``, 30 ``claim_c6``, 40 ``claim_c7``, 50
``claim_c8``) and store the verdicts in their ``metrics.json``.

Then the registry ``CLAIMS``: what each claim says, the paper's evidence, the notebook and report field naming the
run that checks it, where that run stores the verdict, and how to recompute it from the run's files (the same check
on the stored numbers). ``scorelib.checklist`` collects every run's verdicts for the report (notebook 90).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from scorelib.jsonl import read_jsonl
from scorelib.sft import PAIR_DPLUS, STAR_D, STAR_DPLUS


# ------------------------------------------------------------------ C1 (notebook 01: the base model)
def c1_holds(m: dict) -> bool:
    """Claim C1 on a metrics dict: intrinsic self-correction is useless or harmful (Δ ≤ 0 and Δc→i ≥ Δi→c)."""
    return bool(m["delta"] <= 0 and m["delta_c2i"] >= m["delta_i2c"])


# ------------------------------------------------------------------ C2-C4 (notebook 10: STaR and Pair-SFT)
NEAR_ZERO_EDIT = 0.05  # an edit-distance ratio below this is "no real change" (a copy or a one-digit edit)


def _ci_contains_zero(row: dict, key: str = "delta") -> bool:
    return row[f"{key}_lo"] <= 0 <= row[f"{key}_hi"]


def claim_c2(base: dict, rows: dict) -> dict:
    """C2: STaR on D_STaR changes answers, right ones included (the lower end of its Δc→i CI above the
    base's Δc→i); the D+ variants learn not to change answers, checked as Δ ≈ 0 (the CI of Δ contains 0)."""
    star_d = rows[STAR_D]
    plus = {m: rows[m] for m in (STAR_DPLUS, PAIR_DPLUS)}
    part_a = star_d["delta_c2i_lo"] > base["delta_c2i"]
    part_b = all(_ci_contains_zero(r) for r in plus.values())
    evidence = (f"STaR D_STaR Δc→i {star_d['delta_c2i']:.1f} [{star_d['delta_c2i_lo']:.1f}, {star_d['delta_c2i_hi']:.1f}] "
                f"vs base {base['delta_c2i']:.1f}; " + "; ".join(
                    f"{m} Δ {r['delta']:.1f} [{r['delta_lo']:.1f}, {r['delta_hi']:.1f}]" for m, r in plus.items()))
    return dict(claim="C2", holds=bool(part_a and part_b), star_changes_more=bool(part_a), plus_no_change=bool(part_b),
                evidence=evidence)


def near_zero_share(ratios) -> float:
    r = np.asarray(ratios, dtype=float)
    return 100.0 * float((r < NEAR_ZERO_EDIT).mean()) if r.size else float("nan")


def claim_c3(base_ratios, pair_data, pair_model, star_model) -> dict:
    """C3: Pair-SFT's own traces collapse to minimal edits (more mass near 0 than its training data
    and than the base) while STaR keeps the base's distribution (near-0 share within 10 points)."""
    b, d, p, s = (near_zero_share(x) for x in (base_ratios, pair_data, pair_model, star_model))
    pair_collapses = p > d + 10 and p > b + 10
    star_keeps = abs(s - b) <= 10
    return dict(claim="C3", holds=bool(pair_collapses and star_keeps), pair_collapses=bool(pair_collapses),
                star_keeps_base_shape=bool(star_keeps),
                evidence=(f"share of traces with edit ratio < {NEAR_ZERO_EDIT}: base {b:.0f}%, Pair-SFT data {d:.0f}%, "
                          f"Pair-SFT model {p:.0f}%, STaR model {s:.0f}%"))


def claim_c4(curve) -> dict:
    """C4: over the Pair-SFT epoch the correction rate rises on fixed first attempts but falls on the
    model's own first attempts (Fig. 4), by the end-minus-start change of each series; ``gap`` is the
    weaker finding that the own-attempt series gains less than both fixed ones."""
    change = {c: float(curve[c].iloc[-1] - curve[c].iloc[0]) for c in curve.columns}
    fixed = [v for c, v in change.items() if c.startswith("fixed")]
    own = [v for c, v in change.items() if c.startswith("own")]
    ok = bool(fixed and own) and all(np.isfinite(fixed + own))
    holds = ok and min(fixed) > 0 and own[0] < 0
    gap = ok and own[0] < min(fixed)
    return dict(claim="C4", holds=bool(holds), gap=bool(gap), change=change,
                evidence="change over the epoch (points): " + ", ".join(f"{c} {v:+.1f}" for c, v in change.items()))


# ------------------------------------------------------------------ C5 and C6 (notebooks 20 and 30)
def claim_c5(curve: pd.DataFrame, baseline: str, stage1: str, tail: int = 10) -> dict:
    """C5: standard multi-turn RL collapses (its training turn-2 accuracy is no better than turn 1 at the
    end, and its turn-2 different-answer rate falls), while Stage I keeps a gap (turn 2 above turn 1) and
    keeps changing answers more than the baseline does."""
    end = curve.tail(tail).mean()
    start = curve.head(tail).mean()
    gap_b = end[(baseline, "acc_t2")] - end[(baseline, "acc_t1")]
    gap_s = end[(stage1, "acc_t2")] - end[(stage1, "acc_t1")]
    diff_b = (start[(baseline, "different_answer")], end[(baseline, "different_answer")])
    diff_s = end[(stage1, "different_answer")]
    collapse = gap_b <= 0.5 and diff_b[1] < diff_b[0]
    keeps = gap_s > 0.5 and diff_s > diff_b[1]
    return dict(claim="C5", holds=bool(collapse and keeps), baseline_collapses=bool(collapse),
                stage1_keeps_gap=bool(keeps),
                evidence=(f"mean of the last {tail} training steps: {baseline} turn 2 - turn 1 = {gap_b:+.1f} points, "
                          f"different answers {diff_b[0]:.0f}% -> {diff_b[1]:.0f}%; {stage1} turn 2 - turn 1 = "
                          f"{gap_s:+.1f}, different answers {diff_s:.0f}%"))


def claim_c6(rows: dict, score_name: str = "SCoRe", base_name: str = "Base model",
             multi_turn_name: str = "Multi-turn RL") -> dict:
    """C6: SCoRe has the largest Δ of all methods shown, positive (its 95% CI above 0), with Δi→c > Δc→i, and its
    final accuracy (Acc@t2) above the base's and above standard multi-turn RL's (where those rows are shown: a
    positive Δ bought with a worse first attempt is not self-correction worth having)."""
    s = rows[score_name]
    others = {k: r for k, r in rows.items() if k != score_name and r is not None}
    if not others:
        return dict(claim="C6", holds=False, largest=False, positive=False, i2c_above_c2i=False, final_above=False,
                    evidence="not tested: no other method's row to compare with")
    largest = all(s["delta"] > r["delta"] for r in others.values())
    positive = s.get("delta_lo", s["delta"]) > 0
    direction = s["delta_i2c"] > s["delta_c2i"]
    finals = {k: others[k]["acc_t2"] for k in (base_name, multi_turn_name) if k in others and "acc_t2" in others[k]}
    final_above = "acc_t2" in s and bool(finals) and all(s["acc_t2"] > v for v in finals.values())
    return dict(claim="C6", holds=bool(largest and positive and direction and final_above), largest=bool(largest),
                positive=bool(positive), i2c_above_c2i=bool(direction), final_above=bool(final_above),
                evidence=(f"SCoRe Δ {s['delta']:+.1f} [{s.get('delta_lo', float('nan')):+.1f}, "
                          f"{s.get('delta_hi', float('nan')):+.1f}], Δi→c {s['delta_i2c']:.1f} vs Δc→i "
                          f"{s['delta_c2i']:.1f}, Acc@t2 {s.get('acc_t2', float('nan')):.1f} (" +
                          (", ".join(f"{k} {v:.1f}" for k, v in finals.items()) or "no base or multi-turn RL row") +
                          "); others' Δ: " + ", ".join(f"{k} {r['delta']:+.1f}" for k, r in others.items())))


# ------------------------------------------------------------------ C7 (notebook 40: ablations)
C7_ROWS = ("single_turn", "no_stage1", "no_shaping", "star")  # the ablations claim C7 names (digest section 10)


def claim_c7(score_row: dict, rows: dict, differences: dict, claimed=C7_ROWS) -> dict:
    """C7: each ablation the claim names (single-turn RL, no Stage I, no reward shaping, STaR in Stage II) has a
    lower Δ than full SCoRe, judged by the 95% CI of the difference Δ(ablation) − Δ(SCoRe): it holds when every
    named row's CI lies below 0. ``point_below``: the weaker finding that every point estimate is below SCoRe's.
    ``rows``/``differences``: row id -> pooled metrics / delta_difference result (rows not named are reported in the
    evidence, not judged). A named row that is missing makes the claim untested (holds False)."""
    from scorelib.ablations import LABELS  # the rows' display names (imported here: ablations loads the trainer)

    missing = [r for r in claimed if r not in rows or r not in differences]
    detail = {r: dict(delta=rows[r]["delta"], **{k: differences[r][k] for k in ("diff", "diff_lo", "diff_hi")},
                      below=bool(differences[r]["diff_hi"] < 0)) for r in rows if r in differences}
    text = "; ".join(f"{LABELS.get(r, r)} Δ {d['delta']:+.1f}, minus SCoRe's {d['diff']:+.1f} "
                     f"[{d['diff_lo']:+.1f}, {d['diff_hi']:+.1f}]" for r, d in detail.items())
    head = f"SCoRe Δ {score_row['delta']:+.1f} [{score_row.get('delta_lo', math.nan):+.1f}, " \
           f"{score_row.get('delta_hi', math.nan):+.1f}]; "
    if missing:
        return dict(claim="C7", holds=False, point_below=False, rows=detail, missing=missing,
                    evidence=head + f"not tested: rows {missing} missing; " + text)
    below = all(detail[r]["below"] for r in claimed)
    point = all(detail[r]["diff"] < 0 for r in claimed)
    return dict(claim="C7", holds=bool(below), point_below=bool(point), rows=detail, missing=[],
                evidence=head + text)


# ------------------------------------------------------------------ C8 (notebook 50: inference-compute scaling)
def claim_c8(scaling: dict, model: str = "SCoRe") -> dict:
    """C8: at the largest budget, sequential sampling with self-correction beats parallel sampling under majority
    vote for SCoRe: sequential − parallel > 0 with its 95% CI above 0 (bootstrap over problems, seeds together).

    ``scaling``: model name -> rows (one per budget, ``scaling_table(...).reset_index().to_dict("records")``, as
    notebook 50 stores them in metrics.json); other models' rows at that budget go into the evidence."""
    if not scaling.get(model):
        return dict(claim="C8", holds=False, budget=None, diff=None, diff_lo=None, diff_hi=None,
                    evidence=f"not tested: no {model} rows")
    rows = {name: max(r, key=lambda x: x["budget"]) for name, r in scaling.items() if r}
    s = rows[model]
    holds = bool(s["diff"] > 0 and s["diff_lo"] > 0)
    others = "; ".join(f"{name}: sequential {r['sequential']:.1f}, parallel {r['parallel']:.1f}, "
                       f"difference {r['diff']:+.1f} [{r['diff_lo']:+.1f}, {r['diff_hi']:+.1f}]"
                       for name, r in rows.items() if name != model)
    return dict(claim="C8", holds=holds, budget=int(s["budget"]), diff=float(s["diff"]), diff_lo=float(s["diff_lo"]),
                diff_hi=float(s["diff_hi"]),
                evidence=(f"budget {int(s['budget'])}, {model}: sequential {s['sequential']:.1f} vs parallel "
                          f"{s['parallel']:.1f}, difference {s['diff']:+.1f} [{s['diff_lo']:+.1f}, "
                          f"{s['diff_hi']:+.1f}] (95% CI, {s['n']} problems x {s['seeds']} seed(s)); one sample "
                          f"{s['single']:.1f}" + (f". {others}" if others else "")))


# ------------------------------------------------------------------ the registry: each claim's text, run and check
def _c1(m: dict, run_dir: Path) -> dict:
    return dict(claim="C1", holds=c1_holds(m),
                evidence=(f"base model at T={m.get('temperature', 0):g}: Δ {m['delta']:+.1f} "
                          f"[{m.get('delta_lo', float('nan')):+.1f}, {m.get('delta_hi', float('nan')):+.1f}], "
                          f"Δi→c {m['delta_i2c']:.1f} vs Δc→i {m['delta_c2i']:.1f} ({m.get('n', '?')} problems)"))


def _c2(m: dict, run_dir: Path) -> dict:
    return claim_c2(m["rows"]["Base model"], m["rows"])


def _c4(m: dict, run_dir: Path) -> dict:
    curve = pd.DataFrame(m["fig4"])  # notebook 10 stores curve.reset_index(): the first column is the index
    return claim_c4(curve.set_index(curve.columns[0]).astype(float))


def _c5(m: dict, run_dir: Path) -> dict:
    from scorelib.stages import curves

    logs = {name: [read_jsonl(run_dir / f"history_seed{s}_{key}.jsonl") for s in m["seeds"]]
            for name, key in (("Multi-turn RL", "multi_turn"), ("Stage I", "stage1"))}
    return claim_c5(curves(logs), "Multi-turn RL", "Stage I")  # as notebook 20 calls them


def _c6(m: dict, run_dir: Path) -> dict:
    return claim_c6(m["rows"])


def _c7(m: dict, run_dir: Path) -> dict:
    rows = {r: x for r, x in m["rows"].items() if r != "SCoRe"}  # as notebook 40 calls it: the ablation rows
    return claim_c7(m["rows"]["SCoRe"], rows, m["differences"])


def _c8(m: dict, run_dir: Path) -> dict:
    return claim_c8(m["scaling"])


@dataclass(frozen=True)
class Claim:
    """One claim: its text (digest section 10), the paper's evidence, the notebook (number) and the report's config
    field naming the run that checks it, where the run stores its verdict (a dotted path in ``metrics.json``), and
    how to recompute it from the run's files (None: read the stored verdict)."""

    id: str
    text: str
    paper: str
    notebook: str
    run_field: str
    stored: str
    recompute: Callable[[dict, Path], dict] | None = None


CLAIMS: tuple[Claim, ...] = (
    Claim("C1", "The base model's intrinsic self-correction is useless or harmful: Δ ≤ 0 and Δc→i ≥ Δi→c",
          "§3.2, base row (−11.2)", "01", "eval_run", "c1_holds", _c1),
    Claim("C2", "STaR on D_STaR learns to change answers, correct ones included (Δc→i grows); the D⁺ variants "
          "learn not to change answers (Δ ≈ 0)", "§3.1", "10", "sft_run", "claims.C2", _c2),
    Claim("C3", "Pair-SFT collapses to minimal edits although its training data had large edits; STaR keeps the "
          "base's bimodal edit distribution", "Figure 3", "10", "sft_run", "claims.C3"),
    Claim("C4", "Distribution shift: during SFT the correction rate rises on fixed first attempts but falls on the "
          "model's own first attempts", "Figure 4", "10", "sft_run", "claims.C4", _c4),
    Claim("C5", "Standard multi-turn RL collapses (both turns rise together, Δ ≈ 0, the turn-2 change frequency "
          "falls); Stage I keeps a gap and keeps changing answers", "Figure 5", "20", "stage1_run", "claims.C5", _c5),
    Claim("C6", "SCoRe gives the largest positive Δ of all methods, with Δi→c > Δc→i", "§3.2 (+4.4; 5.8 vs 1.4)",
          "30", "score_run", "claims.C6", _c6),
    Claim("C7", "Each ablation (single-turn RL, no Stage I, no reward shaping, STaR instead of REINFORCE in Stage "
          "II) gives a lower Δ than full SCoRe", "§3.4", "40", "ablations_run", "claims.C7", _c7),
    Claim("C8", "With self-correction, sequential sampling (K samples + one correction each) beats parallel "
          "sampling (2K samples) under majority vote at equal budget", "§3.5 (+10.5 vs +7.4 at 32)", "50",
          "scaling_run", "claims.C8", _c8),
)


def claim(claim_id: str) -> Claim:
    for c in CLAIMS:
        if c.id == claim_id:
            return c
    raise KeyError(f"no claim {claim_id!r}; valid: {[c.id for c in CLAIMS]}")
