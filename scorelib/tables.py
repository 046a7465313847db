"""The small tables the notebooks show: our rows beside the paper's, a few columns per method, the claims,
and the label of an evaluation temperature. Files are written by ``results.Run.table``; these only build.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd


def temperature_label(t: float) -> str:
    """How a table names an evaluation temperature: 'greedy' for 0 (the paper's evaluation), else 'T=<t>'."""
    return "greedy" if t == 0 else f"T={t:g}"


def beside_paper(rows: Mapping[str, dict], paper_rows: Mapping[str, dict], task: str, paper_name: str = "MATH"
                 ) -> dict[str, dict]:
    """Our rows, each labelled '<name> (<task>, <n> seed(s))' and followed by the paper's row of the same name
    (labelled '<name> (paper, <paper_name>)') where the paper has one: what ``metrics.format_table`` renders.

    >>> list(beside_paper({"SCoRe": {"seeds": 3}, "Mine": {}}, {"SCoRe": {}}, "toy"))
    ['SCoRe (toy, 3 seed(s))', 'SCoRe (paper, MATH)', 'Mine (toy, 1 seed(s))']
    """
    shown = {}
    for name, row in rows.items():
        shown[f"{name} ({task}, {row.get('seeds', 1)} seed(s))"] = row
        if name in paper_rows:
            shown[f"{name} (paper, {paper_name})"] = paper_rows[name]
    return shown


def columns(rows: Mapping[str, dict], headers: Mapping[str, str], digits: int = 2) -> pd.DataFrame:
    """One line per method: the values of its row under ``headers`` (header -> key), NaN where a row lacks the
    key, rounded to ``digits``."""
    return pd.DataFrame({name: {h: r.get(key, np.nan) for h, key in headers.items()}
                         for name, r in rows.items()}).T.round(digits)


def claims(*verdicts: dict) -> pd.DataFrame:
    """The claims table: one line per claim check (``claims.claim_c6`` and the like), whether it holds and why."""
    return pd.DataFrame([{k: v[k] for k in ("claim", "holds", "evidence")} for v in verdicts]).set_index("claim")
