"""Self-correction metrics of SCoRe (Kumar et al. 2024, arXiv 2409.12917).

Implements the evaluation quantities defined in §2 of the paper ("Preliminaries
and Problem Setup": Accuracy@t1, Accuracy@t2, Δ(t1,t2), Δ^{i→c}(t1,t2) and
Δ^{c→i}(t1,t2), as reported in Tables 2-4), plus the diagnostics used in the
analysis sections: the edit-distance ratio between the two attempts and the
frequency of proposing a different answer in turn 2 (§4, Figs. 3-5, the
behaviour-collapse study), accuracy over k sequential attempts (§6.2, Fig. 7)
and a per-difficulty breakdown. All rates are in percentage points (0-100), like
the paper's tables, and confidence intervals come from a paired percentile
bootstrap over problems.

Pure numpy/pandas; no torch.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "METRIC_KEYS",
    "PAPER_COLUMNS",
    "two_turn_metrics",
    "bootstrap_ci",
    "summarize",
    "summarize_attempts",
    "delta_difference",
    "edit_distance_ratio",
    "different_answer_rate",
    "sequential_accuracy",
    "metrics_by_group",
    "format_table",
]

METRIC_KEYS: tuple[str, ...] = ("acc_t1", "acc_t2", "delta", "delta_i2c", "delta_c2i")

# Keys that get a bootstrap CI: the paper's five columns plus the "fix own" rate.
_CI_KEYS: tuple[str, ...] = METRIC_KEYS + ("fix_own",)

PAPER_COLUMNS: dict[str, str] = {
    "acc_t1": "Accuracy@t1",
    "acc_t2": "Accuracy@t2",
    "delta": "Δ(t1,t2)",
    "delta_i2c": "Δ^{i→c}(t1,t2)",
    "delta_c2i": "Δ^{c→i}(t1,t2)",
    "fix_own": "Fix own (%)",
    "n": "n",
}

# Upper bound on elements of one resampled index block, so memory stays bounded for big n.
_BOOT_BLOCK_ELEMS = 1 << 22


# --------------------------------------------------------------------------- validation


def _as_bool_vector(x: Any, name: str) -> np.ndarray:
    """Coerce a list/array of bools or 0/1 numbers to a 1-D bool array, rejecting anything else."""
    arr = np.asarray(x)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one entry per problem), got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty; metrics need at least one problem")
    if arr.dtype == bool:
        return arr
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise ValueError(f"{name} must hold bools or 0/1 numbers, got dtype {arr.dtype}")
    ok = (arr == 0) | (arr == 1)
    if not np.all(ok):
        bad = arr[~ok][0]
        raise ValueError(f"{name} must hold only 0/1 (or True/False), found {bad!r}")
    return arr.astype(bool)


def _pair(c1: Any, c2: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validate the turn-1/turn-2 correctness vectors as an aligned pair."""
    a = _as_bool_vector(c1, "c1")
    b = _as_bool_vector(c2, "c2")
    if a.shape[0] != b.shape[0]:
        raise ValueError(
            f"c1 and c2 must have equal length (one entry per problem), got {a.shape[0]} and {b.shape[0]}"
        )
    return a, b


# --------------------------------------------------------------------------- core metrics


def _from_counts(n_i2c, n_c2i, n_cc, n):
    """Compute all rates from the joint-outcome counts so Δ = Δi→c − Δc→i holds exactly."""
    n_c1 = n_cc + n_c2i
    n_c2 = n_cc + n_i2c
    n_wrong1 = n - n_c1
    scale = 100.0 / n
    out = {
        "acc_t1": n_c1 * scale,
        "acc_t2": n_c2 * scale,
        "delta": (n_i2c - n_c2i) * scale,
        "delta_i2c": n_i2c * scale,
        "delta_c2i": n_c2i * scale,
    }
    with np.errstate(divide="ignore", invalid="ignore"):
        out["fix_own"] = np.where(n_wrong1 > 0, 100.0 * n_i2c / np.maximum(n_wrong1, 1), np.nan)
    return out


def two_turn_metrics(c1: Any, c2: Any) -> dict[str, float]:
    """Point estimates of the §2 two-turn metrics (percent) so one call fills a table row."""
    a, b = _pair(c1, c2)
    n = int(a.shape[0])
    n_i2c = int(np.count_nonzero(~a & b))
    n_c2i = int(np.count_nonzero(a & ~b))
    n_cc = int(np.count_nonzero(a & b))
    raw = _from_counts(n_i2c, n_c2i, n_cc, n)
    out: dict[str, Any] = {k: float(raw[k]) for k in METRIC_KEYS}
    out["fix_own"] = float(raw["fix_own"])
    out["n"] = n
    return out


def bootstrap_ci(
    c1: Any,
    c2: Any,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, tuple[float, float]]:
    """Paired percentile-bootstrap CIs (percent) for the five metrics and fix_own, resampling problems jointly."""
    a, b = _pair(c1, c2)
    if not isinstance(n_boot, (int, np.integer)) or isinstance(n_boot, bool) or n_boot < 1:
        raise ValueError(f"n_boot must be a positive integer, got {n_boot!r}")
    if not (0.0 < float(level) < 1.0):
        raise ValueError(f"level must lie strictly between 0 and 1, got {level!r}")
    n_boot = int(n_boot)
    n = int(a.shape[0])

    # One code per problem for its joint (t1, t2) outcome: 0 = i→i, 1 = i→c, 2 = c→i, 3 = c→c.
    codes = (2 * a.astype(np.int64) + b.astype(np.int64))
    rng = np.random.default_rng(seed)
    counts = np.empty((n_boot, 4), dtype=np.int64)
    block = max(1, _BOOT_BLOCK_ELEMS // n)
    for start in range(0, n_boot, block):  # blocks of resamples, not one iteration per resample
        m = min(block, n_boot - start)
        idx = rng.integers(0, n, size=(m, n))
        flat = codes[idx] + 4 * np.arange(m, dtype=np.int64)[:, None]
        counts[start:start + m] = np.bincount(flat.ravel(), minlength=4 * m).reshape(m, 4)

    stats = _from_counts(counts[:, 1], counts[:, 2], counts[:, 3], n)
    alpha = 100.0 * (1.0 - float(level)) / 2.0
    qs = [alpha, 100.0 - alpha]
    out: dict[str, tuple[float, float]] = {}
    for key in _CI_KEYS:
        vals = np.asarray(stats[key], dtype=float)
        vals = vals[np.isfinite(vals)]  # fix_own is undefined in resamples with no wrong attempt 1
        if vals.size == 0:
            out[key] = (float("nan"), float("nan"))
        else:
            lo, hi = np.percentile(vals, qs)
            out[key] = (float(lo), float(hi))
    return out


def summarize(c1: Any, c2: Any, n_boot: int = 1000, seed: int = 0) -> dict:
    """Point estimates plus <key>_lo/<key>_hi bootstrap bounds, the row format format_table expects."""
    out: dict[str, Any] = two_turn_metrics(c1, c2)
    for key, (lo, hi) in bootstrap_ci(c1, c2, n_boot=n_boot, seed=seed).items():
        out[f"{key}_lo"] = lo
        out[f"{key}_hi"] = hi
    return out


def summarize_seeds(c1s: Sequence[Any], c2s: Sequence[Any], n_boot: int = 1000, seed: int = 0,
                    level: float = 0.95) -> dict:
    """summarize() for several seeds evaluated on the same problems: point estimates of all seeds'
    outcomes together (= the mean over seeds), CIs from a paired bootstrap that resamples problems
    with all of their seeds' outcomes (a cluster bootstrap), plus the per-seed standard deviation."""
    pairs = [_pair(a, b) for a, b in zip(c1s, c2s)]
    if not pairs or len({a.shape[0] for a, _ in pairs}) != 1:
        raise ValueError("summarize_seeds needs one or more seeds with the same number of problems")
    a = np.stack([p[0] for p in pairs])  # (S, N)
    b = np.stack([p[1] for p in pairs])
    s_count, n = a.shape
    out: dict[str, Any] = two_turn_metrics(a.ravel(), b.ravel())
    codes = 2 * a.astype(np.int64) + b.astype(np.int64)  # (S, N)
    per_problem = np.stack([(codes == c).sum(0) for c in range(4)], axis=1)  # (N, 4) counts over seeds
    rng = np.random.default_rng(seed)
    counts = np.empty((n_boot, 4), dtype=np.int64)
    block = max(1, _BOOT_BLOCK_ELEMS // n)
    for start in range(0, n_boot, block):
        m = min(block, n_boot - start)
        idx = rng.integers(0, n, size=(m, n))
        counts[start:start + m] = per_problem[idx].sum(1)
    stats = _from_counts(counts[:, 1], counts[:, 2], counts[:, 3], s_count * n)
    alpha = 100.0 * (1.0 - float(level)) / 2.0
    for key in _CI_KEYS:
        vals = np.asarray(stats[key], dtype=float)
        vals = vals[np.isfinite(vals)]
        lo, hi = np.percentile(vals, [alpha, 100.0 - alpha]) if vals.size else (np.nan, np.nan)
        out[f"{key}_lo"], out[f"{key}_hi"] = float(lo), float(hi)
    per_seed = [two_turn_metrics(x, y) for x, y in zip(a, b)]
    for key in (*METRIC_KEYS, "fix_own"):
        vals = [r[key] for r in per_seed]
        out[f"{key}_seed_sd"] = float(np.std(vals, ddof=1)) if len(vals) > 1 else float("nan")
    out["n"] = n  # problems; each counted once per seed in the estimates
    out["seeds"] = s_count
    return out


def summarize_attempts(corrects: Sequence[Any], n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> dict:
    """Metrics of T >= 2 sequential attempts, from one (N, T) correctness matrix per seed (the same N problems):
    ``acc_t{t}`` for every attempt and, for each pair of consecutive attempts, ``delta_t{t}_t{t+1}``,
    ``delta_i2c_t{t}_t{t+1}`` and ``delta_c2i_t{t}_t{t+1}`` (with T > 2 also ``delta_t1_t{T}``, last against first),
    each with ``_lo``/``_hi`` bounds: ``summarize_seeds`` of each pair of attempts (a cluster bootstrap over problems
    that resamples the same problems for every pair, so an attempt's CI is the same whichever pair gives it)."""
    arrs = [np.asarray(c) for c in corrects]
    if not arrs or any(a.ndim != 2 for a in arrs) or len({a.shape for a in arrs}) != 1 or arrs[0].shape[1] < 2:
        raise ValueError("summarize_attempts needs one or more (N, T) matrices of the same shape with T >= 2, got "
                         f"shapes {[a.shape for a in arrs]}")
    n_att = arrs[0].shape[1]
    pairs = [(t, t + 1) for t in range(n_att - 1)] + ([(0, n_att - 1)] if n_att > 2 else [])
    out: dict[str, Any] = {}
    for a, b in pairs:
        s = summarize_seeds([x[:, a] for x in arrs], [x[:, b] for x in arrs], n_boot=n_boot, seed=seed, level=level)
        tag = f"t{a + 1}_t{b + 1}"
        for ours, theirs in ((f"acc_t{a + 1}", "acc_t1"), (f"acc_t{b + 1}", "acc_t2"), (f"delta_{tag}", "delta"),
                             (f"delta_i2c_{tag}", "delta_i2c"), (f"delta_c2i_{tag}", "delta_c2i")):
            for suffix in ("", "_lo", "_hi", "_seed_sd"):
                out.setdefault(ours + suffix, s[theirs + suffix])
        out["n"], out["seeds"] = s["n"], s["seeds"]
    return out


def delta_difference(c1a: Sequence[Any], c2a: Sequence[Any], c1b: Sequence[Any], c2b: Sequence[Any],
                     n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> dict:
    """Δ of method a minus Δ of method b (points), both evaluated on the same problems (each with one or more
    seeds, as in summarize_seeds), with a paired cluster-bootstrap CI: each resample draws problems and keeps
    every seed's outcomes of both methods on them, so the two Δs share the problems' difficulty.
    Returns dict(diff, diff_lo, diff_hi, n)."""
    def stacked(c1s, c2s):
        pairs = [_pair(a, b) for a, b in zip(c1s, c2s)]
        if not pairs:
            raise ValueError("delta_difference needs at least one seed of each method")
        return np.stack([b.astype(np.int64) - a.astype(np.int64) for a, b in pairs])  # (S, N): -1, 0 or +1

    da, db = stacked(c1a, c2a), stacked(c1b, c2b)
    if da.shape[1] != db.shape[1]:
        raise ValueError(f"both methods must be evaluated on the same problems, got {da.shape[1]} and {db.shape[1]}")
    if not isinstance(n_boot, (int, np.integer)) or isinstance(n_boot, bool) or n_boot < 1:
        raise ValueError(f"n_boot must be a positive integer, got {n_boot!r}")
    n = da.shape[1]
    pa, pb = da.mean(0), db.mean(0)  # (N,) each problem's Δ averaged over a method's seeds
    diff = 100.0 * float(pa.mean() - pb.mean())
    rng = np.random.default_rng(seed)
    per = pa - pb
    stats = np.empty(n_boot)
    block = max(1, _BOOT_BLOCK_ELEMS // n)
    for start in range(0, n_boot, block):
        m = min(block, n_boot - start)
        stats[start:start + m] = 100.0 * per[rng.integers(0, n, size=(m, n))].mean(1)
    alpha = 100.0 * (1.0 - float(level)) / 2.0
    lo, hi = np.percentile(stats, [alpha, 100.0 - alpha])
    return dict(diff=diff, diff_lo=float(lo), diff_hi=float(hi), n=int(n))


# --------------------------------------------------------------------------- diagnostics


def edit_distance_ratio(y1: str, y2: str) -> float:
    """Edit distance between attempts normalised by |y1|+|y2| (§4 collapse diagnostic), in [0, 1].

    The paper only says "edit distance normalised by the total length of both
    responses"; we use the insert/delete (no-substitution) variant computed by
    difflib: ``1 - SequenceMatcher(None, y1, y2, autojunk=False).ratio()``, i.e.
    (|y1| + |y2| - 2·matched) / (|y1| + |y2|). Identical strings give 0, strings
    with no common characters give 1, and two empty strings are defined as 0.0.
    difflib's Ratcliff/Obershelp matching is greedy, so ``matched`` can fall short
    of the longest common subsequence: the value is an upper bound on the exact
    insert/delete distance and can differ slightly when the arguments are swapped.
    """
    if not isinstance(y1, str) or not isinstance(y2, str):
        raise TypeError(f"edit_distance_ratio expects two str, got {type(y1).__name__} and {type(y2).__name__}")
    if not y1 and not y2:
        return 0.0
    ratio = difflib.SequenceMatcher(None, y1, y2, autojunk=False).ratio()
    return float(min(1.0, max(0.0, 1.0 - ratio)))


def different_answer_rate(a1: Sequence[str | None], a2: Sequence[str | None]) -> float:
    """Percent of problems whose turn-2 answer differs from turn 1's, to detect non-correcting collapse (§4).

    Answers are extracted strings or None (no answer found); None vs None counts
    as the same answer, None vs a string as different, strings compare exactly.
    """
    l1, l2 = list(a1), list(a2)
    if len(l1) != len(l2):
        raise ValueError(f"a1 and a2 must have equal length (one answer per problem), got {len(l1)} and {len(l2)}")
    if not l1:
        raise ValueError("a1/a2 are empty; different_answer_rate needs at least one problem")
    for name, seq in (("a1", l1), ("a2", l2)):
        for x in seq:
            if x is not None and not isinstance(x, str):
                raise ValueError(f"{name} must hold str or None, found {type(x).__name__}: {x!r}")
    n_diff = sum(1 for x, y in zip(l1, l2) if x != y)
    return 100.0 * n_diff / len(l1)


def sequential_accuracy(correct: Any) -> np.ndarray:
    """Accuracy (percent) of each of k sequential attempts, the curve of Fig. 7."""
    arr = np.asarray(correct)
    if arr.ndim != 2:
        raise ValueError(f"correct must be a 2-D (n_problems, k_attempts) matrix, got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"correct is empty (shape {arr.shape}); need at least one problem and one attempt")
    flat = _as_bool_vector(arr.reshape(-1), "correct")
    return 100.0 * flat.reshape(arr.shape).mean(axis=0)


def metrics_by_group(c1: Any, c2: Any, groups: Any) -> pd.DataFrame:
    """Two-turn metrics per group (e.g. MATH difficulty level) to see where self-correction helps."""
    a, b = _pair(c1, c2)
    g = np.asarray(groups, dtype=object)
    if g.ndim != 1:
        raise ValueError(f"groups must be 1-D (one label per problem), got shape {g.shape}")
    if g.shape[0] != a.shape[0]:
        raise ValueError(f"groups must have the same length as c1/c2, got {g.shape[0]} and {a.shape[0]}")
    try:
        values = sorted(set(g.tolist()))
    except TypeError as exc:
        raise ValueError(f"group labels must be mutually sortable: {exc}") from exc
    rows = {}
    for v in values:
        mask = np.array([x == v for x in g.tolist()], dtype=bool)
        rows[v] = two_turn_metrics(a[mask], b[mask])
    cols = list(_CI_KEYS) + ["n"]
    df = pd.DataFrame.from_dict(rows, orient="index")[cols]
    df["n"] = df["n"].astype(int)
    df.index.name = "group"
    return df


# --------------------------------------------------------------------------- tables


def _fmt(x: Any) -> str:
    """One-decimal rendering without a stray '-0.0'."""
    if x is None or (isinstance(x, (float, np.floating)) and math.isnan(x)):
        return "n/a"
    s = f"{float(x):.1f}"
    return "0.0" if s == "-0.0" else s


def format_table(
    rows: Mapping[str, Mapping[str, Any]],
    keys: Sequence[str] = METRIC_KEYS,
    ci: bool = True,
) -> pd.DataFrame:
    """Render method → metrics dicts as a paper-style string table ("52.6 [50.4, 54.8]")."""
    keys = tuple(keys)
    table: dict[str, dict[str, str]] = {}
    for method, row in rows.items():
        cells: dict[str, str] = {}
        for key in keys:
            if key not in row:
                raise KeyError(f"row {method!r} has no value for metric {key!r}")
            val = row[key]
            if key == "n":
                cells[PAPER_COLUMNS.get(key, key)] = str(int(val))
                continue
            text = _fmt(val)
            lo, hi = row.get(f"{key}_lo"), row.get(f"{key}_hi")
            have_ci = (
                ci
                and lo is not None
                and hi is not None
                and not (math.isnan(float(lo)) or math.isnan(float(hi)))
            )
            if have_ci:
                text = f"{text} [{_fmt(lo)}, {_fmt(hi)}]"
            cells[PAPER_COLUMNS.get(key, key)] = text
        table[method] = cells
    columns = [PAPER_COLUMNS.get(k, k) for k in keys]
    df = pd.DataFrame.from_dict(table, orient="index", columns=columns) if table else pd.DataFrame(columns=columns)
    df.index.name = "Method"
    return df


