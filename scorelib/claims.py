"""The paper's claims C1-C8 (digest section 10) in one place: what each says, which notebook and run checks it,
and where its verdict and evidence live in that run's files.

Each notebook checks the claims it touches with a ``claim_c*`` function (C1 ``metrics.c1_holds``, C2-C4 in
``sft``, C5-C6 in ``score``, C7-C8 in the ablation and scaling notebooks' modules) and stores the verdict in its
run's ``metrics.json``. ``collect`` gathers every verdict for the report:

- where the run stores the numbers the check reads (C1, C2, C4, C6, C7, C8 in ``metrics.json``; C5 from the
  training histories), the verdict is **recomputed** from them with the same function the notebook called, and the
  stored verdict is compared with it (a disagreement is reported: the run was made by other code);
- where it does not (C3 needs every trace's edit ratio), or the recomputation cannot run on an older run's files,
  the **stored** verdict is read (and the reason noted).

A run that is missing (no folder, or no ``metrics.json``: unfinished or failed) is reported as "missing run" with the
command that makes it; an unreadable file as "unreadable" with the error; neither stops the collection.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pandas as pd

MISSING = "missing run"
NOT_RECORDED = "not recorded"
UNREADABLE = "unreadable"


def _c1(m: dict, run_dir: Path) -> dict:
    from scorelib.metrics import c1_holds

    return dict(claim="C1", holds=c1_holds(m),
                evidence=(f"base model at T={m.get('temperature', 0):g}: Δ {m['delta']:+.1f} "
                          f"[{m.get('delta_lo', float('nan')):+.1f}, {m.get('delta_hi', float('nan')):+.1f}], "
                          f"Δi→c {m['delta_i2c']:.1f} vs Δc→i {m['delta_c2i']:.1f} ({m.get('n', '?')} problems)"))


def _c2(m: dict, run_dir: Path) -> dict:
    from scorelib.sft import claim_c2

    return claim_c2(m["rows"]["Base model"], m["rows"])


def _c4(m: dict, run_dir: Path) -> dict:
    from scorelib.sft import claim_c4

    curve = pd.DataFrame(m["fig4"])  # notebook 10 stores curve.reset_index(): the first column is the index
    return claim_c4(curve.set_index(curve.columns[0]).astype(float))


def _c5(m: dict, run_dir: Path) -> dict:
    from scorelib.score import claim_c5, curves

    def log(seed: int, key: str) -> list[dict]:
        path = run_dir / f"history_seed{seed}_{key}.jsonl"
        return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]

    logs = {name: [log(s, key) for s in m["seeds"]] for name, key in (("Multi-turn RL", "multi_turn"),
                                                                        ("Stage I", "stage1"))}
    return claim_c5(curves(logs), "Multi-turn RL", "Stage I")  # as notebook 20 calls them


def _c6(m: dict, run_dir: Path) -> dict:
    from scorelib.score import claim_c6

    return claim_c6(m["rows"])


def _c7(m: dict, run_dir: Path) -> dict:
    from scorelib.ablations import claim_c7

    rows = {r: x for r, x in m["rows"].items() if r != "SCoRe"}  # as notebook 40 calls it: the ablation rows
    return claim_c7(m["rows"]["SCoRe"], rows, m["differences"])


def _c8(m: dict, run_dir: Path) -> dict:
    from scorelib.scaling import claim_c8

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


def notebook_name(number: str, results_dir: str | Path | None = None) -> str:
    """The full name of notebook NUMBER: the registered one, else a run folder of that number under results_dir,
    else the number itself (a notebook not in this checkout yet)."""
    from scorelib.config import NOTEBOOK_CONFIGS

    names = [n for n in NOTEBOOK_CONFIGS if n.split("_", 1)[0] == number]
    if not names and results_dir is not None and Path(results_dir).is_dir():
        names = sorted(p.name for p in Path(results_dir).glob(f"{number}_*") if p.is_dir())
    return names[0] if names else number


def run_command(number: str, run_name: str, results_dir: str | Path | None = None) -> str:
    """The command that makes a run (the runner takes a notebook's number as its name)."""
    from scorelib.config import NOTEBOOK_CONFIGS

    cmd = f"python -m scorelib run {number} -p run_name {run_name}"
    if results_dir is not None:
        cmd += f" --results {results_dir}"
    if not any(n.split("_", 1)[0] == number for n in NOTEBOOK_CONFIGS):
        cmd += f"  (notebook {number} is not in this checkout yet)"
    return cmd


def _dig(data: dict, dotted: str):
    for part in dotted.split("."):
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return data


def _stored(c: Claim, m: dict) -> dict | None:
    """The verdict a run stored, as a dict with 'holds' and 'evidence' (C1 stores a bare boolean)."""
    v = _dig(m, c.stored)
    if v is None:
        return None
    return dict(claim=c.id, holds=v, evidence="") if isinstance(v, bool) else v


@dataclass
class Verdict:
    """One claim's verdict from one run."""

    claim: str
    text: str
    paper: str
    notebook: str  # the notebook's full name where known, else its number
    run: str
    run_dir: Path
    status: str  # "holds", "does not hold", MISSING, NOT_RECORDED or UNREADABLE
    holds: bool | None = None
    evidence: str = ""
    source: str = ""  # "recomputed" (from the run's numbers, with the notebook's function) or "stored"
    note: str = ""  # e.g. the command that makes a missing run, or a stored verdict that disagrees
    details: dict = field(default_factory=dict)  # the verdict's parts (e.g. C6's 'largest', 'positive')

    def row(self) -> dict:
        return {"claim": self.claim, "verdict": self.status, "evidence": self.evidence or self.note,
                "run": f"{self.notebook}/{self.run}", "how": self.source,
                "note": self.note if self.evidence else ""}


def _verdict_of(c: Claim, m: dict, run_dir: Path) -> tuple[dict | None, str, str]:
    """(verdict dict, source, note) of one claim on a readable metrics.json."""
    stored = _stored(c, m)
    if c.recompute is None:
        return stored, "stored", ""
    try:
        fresh = c.recompute(m, run_dir)
    except (KeyError, TypeError, ValueError, IndexError, OSError, ImportError) as e:  # lacks what the check reads
        if stored is None:
            raise
        return stored, "stored", f"not recomputed ({type(e).__name__}: {e}): the stored verdict is shown"
    note = ""
    if stored is not None and bool(stored.get("holds")) != bool(fresh["holds"]):
        note = (f"the run stored holds={bool(stored.get('holds'))}, its numbers give {bool(fresh['holds'])} "
                "(made by other code?)")
    if not fresh.get("evidence") and stored is not None:
        fresh = {**fresh, "evidence": stored.get("evidence", "")}
    return fresh, "recomputed", note


def collect(results_dir: str | Path, runs: dict[str, str], claims: tuple[Claim, ...] = CLAIMS,
            command_results: str | Path | None = None) -> list[Verdict]:
    """Every claim's verdict with its evidence and run, from the runs named by ``runs`` (the report config's run
    fields, e.g. {"eval_run": "default", "sft_run": "default", ...}; a field not given means "default").
    ``command_results``: the --results folder to put in the command shown for a missing run (default: the
    results folder itself)."""
    results_dir = Path(results_dir)
    out = []
    for c in claims:
        name = notebook_name(c.notebook, results_dir)
        run_name = runs.get(c.run_field, "default")
        d = results_dir / name / run_name
        v = Verdict(c.id, c.text, c.paper, name, run_name, d, MISSING)
        mpath = d / "metrics.json"
        if not mpath.exists():
            why = "no run folder" if not d.exists() else "the run has no metrics.json (unfinished or failed)"
            v.note = f"{why}: {run_command(c.notebook, run_name, command_results or results_dir)}"
            out.append(v)
            continue
        try:
            m = json.loads(mpath.read_text())
            if not isinstance(m, dict):
                raise ValueError("metrics.json is not a JSON object")
            verdict, v.source, v.note = _verdict_of(c, m, d)
        except Exception as e:  # a malformed file is reported, not raised: the report shows every other claim
            v.status, v.note = UNREADABLE, f"{mpath}: {type(e).__name__}: {e}"
            out.append(v)
            continue
        if verdict is None:
            v.status, v.note = NOT_RECORDED, (f"{mpath} has no {c.stored} (a run made before the check existed?): "
                                              f"rerun with --force")
        else:
            v.holds = bool(verdict.get("holds"))
            v.status = "holds" if v.holds else "does not hold"
            v.evidence = str(verdict.get("evidence", ""))
            v.details = {k: x for k, x in verdict.items() if k not in ("claim", "holds", "evidence")}
        out.append(v)
    return out


def table(verdicts: list[Verdict]) -> pd.DataFrame:
    """The checklist: claim, verdict, evidence, the run it came from, and how the verdict was obtained."""
    return pd.DataFrame([v.row() for v in verdicts]).set_index("claim")
