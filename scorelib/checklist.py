"""The claims checklist of the report (notebook 90): every claim's verdict, with its evidence and the run it came
from, collected from the runs' files.

For each claim of ``scorelib.claims.CLAIMS``:

- where the run stores the numbers the check reads (C1, C2, C4, C6, C7, C8 in ``metrics.json``; C5 from the
  training histories), the verdict is **recomputed** from them with the same function the notebook called, and the
  stored verdict is compared with it (a disagreement is reported: the run was made by other code);
- where it does not (C3 needs every trace's edit ratio), or the recomputation cannot run on an older run's files,
  the **stored** verdict is read (and the reason noted).

A run that is missing (no folder, or no ``metrics.json``: unfinished or failed) is reported as "missing run" with the
command that makes it; an unreadable file as "unreadable" with the error; neither stops the collection.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from scorelib.claims import CLAIMS, Claim
from scorelib.results import read_json

MISSING = "missing run"
NOT_RECORDED = "not recorded"
UNREADABLE = "unreadable"


def notebook_name(number: str, results_dir: str | Path | None = None) -> str:
    """The full name of notebook NUMBER: the registered one, else a run folder of that number under results_dir,
    else the number itself (a notebook not in this checkout yet)."""
    from scorelib.config import NOTEBOOK_CONFIGS

    names = [n for n in NOTEBOOK_CONFIGS if n.split("_", 1)[0] == number]
    if not names and results_dir is not None and Path(results_dir).is_dir():
        names = sorted(p.name for p in Path(results_dir).glob(f"{number}_*") if p.is_dir())
    return names[0] if names else number


def run_command(number: str, run_name: str, results_dir: str | Path | None = None) -> str:
    """The command that makes a run (the runner takes a notebook's number as its name); a run named after a profile
    (default, tune, smoke, ...) is made with that profile, whose parameters it needs (e.g. one base a seed)."""
    from scorelib.cli import notebooks_dir
    from scorelib.config import NOTEBOOK_CONFIGS

    if (notebooks_dir() / "params" / f"{run_name}.yaml").exists():
        cmd = f"python -m scorelib run {number} --profile {run_name}"
    else:
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
            m = read_json(mpath)
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
