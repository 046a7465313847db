"""The symbolic path, run inside the worker subprocess (``python -I scorelib/grading/__main__.py``).

``_symbolic_equiv``: math-verify equivalence, refused where a finite decimal only approximates an exact value,
with a sympy ``simplify(a - b) == 0`` fallback when math-verify cannot parse a side. ``_serve`` is the worker
loop: JSON [pred, gold, timeout_s] request lines in, "1"/"0" lines out, each bounded by a SIGALRM soft timeout.
Nothing here runs in the grading process itself; ``worker`` is the parent side.
"""

from __future__ import annotations

import json
import re
import sys

from .exact import _as_fraction
from .normalize import normalize_answer

def _symbolic_equiv(pred: str, gold: str) -> bool:
    """math-verify equivalence; if either side fails to parse, sympy simplify(a - b) == 0."""
    from math_verify import parse, verify

    gold_parsed = parse(f"${gold}$", parsing_timeout=None)
    pred_parsed = parse(f"${pred}$", parsing_timeout=None)
    if verify(gold_parsed, pred_parsed, timeout_seconds=None):
        return not _decimal_approximation(pred, gold, pred_parsed, gold_parsed)
    if _parsed(gold_parsed) and _parsed(pred_parsed):
        return False  # math-verify already compared the sympy forms, simplify included
    return _sympy_equiv(normalize_answer(pred), normalize_answer(gold))


_DECIMAL_RE = re.compile(r"[+-]?\d*\.\d+")
_DECIMAL_REL_TOL = 1e-12


def _decimal_approximation(pred: str, gold: str, pred_parsed: list, gold_parsed: list) -> bool:
    """True when one answer is a finite decimal that only approximates the other's exact value.

    math-verify compares a float with a number after rounding both to 6 decimal places, so it
    grades "1.41421356" equal to "\\sqrt{2}". MATH asks for exact answers (the fast path already
    grades "0.333" unequal to "\\frac13"), so a decimal must match the other side's exact value to
    a relative 1e-12 (the precision of the decimal literals math-verify turns into floats).
    """
    from sympy import Expr, N, Rational

    try:
        norm_pred, norm_gold = normalize_answer(pred), normalize_answer(gold)
        for decimal, other, other_parsed in ((norm_pred, norm_gold, gold_parsed), (norm_gold, norm_pred, pred_parsed)):
            if not _DECIMAL_RE.fullmatch(decimal) or _as_fraction(other) is not None or not _parsed(other_parsed):
                continue
            expr = other_parsed[0]
            if not isinstance(expr, Expr) or expr.free_symbols or not expr.is_number:
                continue
            value = Rational(decimal)
            difference = abs(N(expr - value, 30))
            return bool(difference > _DECIMAL_REL_TOL * max(1, abs(value)))
    except Exception:
        pass
    return False


def _parsed(extractions: list) -> bool:
    """Whether math-verify produced a sympy object (not just its raw-string fallback)."""
    return bool(extractions) and not isinstance(extractions[0], str)


def _sympy_equiv(pred: str, gold: str) -> bool:
    """simplify(a - b) == 0 on the normalised strings parsed by latex2sympy2_extended."""
    from latex2sympy2_extended import latex2sympy
    from sympy import Expr, simplify

    a = latex2sympy(pred)
    b = latex2sympy(gold)
    return isinstance(a, Expr) and isinstance(b, Expr) and simplify(a - b) == 0


class _SoftTimeout(BaseException):
    """Raised by SIGALRM in the worker; a BaseException so library `except Exception` can't eat it."""


def _serve() -> None:
    """Worker loop: read JSON [pred, gold, timeout_s] lines, answer "1"/"0" lines."""
    import logging
    import signal

    logging.disable(logging.CRITICAL)  # math-verify warns on every disabled internal timeout

    def on_alarm(signum, frame):
        raise _SoftTimeout

    signal.signal(signal.SIGALRM, on_alarm)
    _symbolic_equiv("\\frac{1}{2}", "0.5")  # warm up imports and the LaTeX parser
    out = sys.stdout.buffer
    out.write(b"ready\n")
    out.flush()
    for line in sys.stdin.buffer:
        ok = False
        try:
            pred, gold, timeout_s = json.loads(line)
            signal.setitimer(signal.ITIMER_REAL, timeout_s)
            try:
                ok = bool(_symbolic_equiv(pred, gold))
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
        except BaseException:
            ok = False
        out.write(b"1\n" if ok else b"0\n")
        out.flush()
