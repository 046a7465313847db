"""Answer extraction and equivalence grading: the verifier r̂(y, y*) of SCoRe (Kumar et al. 2024).

Sec. 3 (Preliminaries and Problem Setup) assumes a reward function r̂(y, y*) that checks a
response y against the oracle answer y*; for MATH (Sec. 6) responses end with the
Minerva-style line "Final Answer: The final answer is $X$. I hope it is correct.".
X is parsed out and graded against the reference by mathematical equivalence
(MATH/PRM800K-style string normalisation, then math-verify, then a sympy
``simplify(a - b) == 0`` fallback). The reward r̂ is binary: 1.0 if equivalent, else 0.0.

Grading never raises and is bounded in wall time: cheap exact checks (normalised string
equality, exact ``Fraction`` comparison of numbers, fractions, mixed numbers, repeating
decimals and scientific notation) decide most answers in-process; anything that needs
symbolic maths runs in a persistent worker subprocess that is killed and recreated when it
exceeds its time budget, after size guards have refused power towers, huge
exponents/factorials, deep nesting, overlong inputs and malformed LaTeX.

Where math-verify is more lenient than MATH grading, structural checks decide instead: a
braced set is never equal to a tuple or interval, and a finite decimal must equal an exact
answer's value (math-verify rounds floats to 6 places, accepting "1.41421356" for
"\\sqrt{2}").

Modules, in the order a grade passes through them: ``extract`` (the final answer in a response),
``normalize`` (canonical strings), ``exact`` (the exact ``Fraction`` fast path), ``guards`` (inputs refused
before the symbolic path), ``worker`` (the worker subprocess, parent side) and ``symbolic`` (what the worker
runs; ``__main__`` is its entry point). This module holds the public grading functions ``is_equiv`` and
``reward`` and re-exports the names used elsewhere; ``is_equiv`` reads its helpers from this module's namespace,
so a test that monkeypatches e.g. ``grading._heavy_equiv`` patches the function ``is_equiv`` calls.
"""

from __future__ import annotations

from . import worker  # noqa: F401 - grading.worker._worker is the live worker process
from .exact import _BASE_NUMBER_RE, _as_fraction
from .extract import FINAL_ANSWER_PREFIX, FINAL_ANSWER_SUFFIX, extract_answer  # noqa: F401 - re-exported
from .guards import _malformed, _set_vs_tuple, _too_risky
from .normalize import normalize_answer
from .worker import _heavy_equiv


def is_equiv(pred: str | None, gold: str, timeout_s: float = 1.0) -> bool:
    """True iff pred is mathematically equivalent to gold; never raises, bounded by ~timeout_s."""
    try:
        if pred is None:
            return False
        norm_pred, norm_gold = normalize_answer(pred), normalize_answer(gold)
        if norm_pred == norm_gold:
            return True
        if not norm_pred or not norm_gold:
            return False
        exact_pred, exact_gold = _as_fraction(norm_pred), _as_fraction(norm_gold)
        if exact_pred is not None and exact_gold is not None:
            return exact_pred == exact_gold
        if _BASE_NUMBER_RE.fullmatch(norm_pred) or _BASE_NUMBER_RE.fullmatch(norm_gold):
            return False  # "52_8" is base 8; math-verify would read it as 52, so strings decide
        if _set_vs_tuple(norm_pred, norm_gold):
            return False  # the ordered pair "(2,1)" is not the set "\{1,2\}"
        if _too_risky(pred) or _too_risky(gold) or _malformed(pred) or _malformed(gold):
            return False
        return _heavy_equiv(pred.strip(), gold.strip(), max(float(timeout_s), 0.01))
    except Exception:
        return False


def reward(response: str, gold: str) -> float:
    """Binary SCoRe reward r̂: 1.0 if the extracted final answer is equivalent to gold, else 0.0."""
    return 1.0 if is_equiv(extract_answer(response), gold) else 0.0
