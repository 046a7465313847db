"""The exact fast path: integers, decimals, a/b, \\frac{a}{b}, mixed numbers, repeating decimals and scientific
notation as exact ``Fraction`` values, so most numeric answers are graded in-process without sympy.
``_BASE_NUMBER_RE`` recognises base-n numbers ("52_8"), which only string equality may decide.
"""

from __future__ import annotations

import re
from fractions import Fraction

_NUMBER_RE = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")
_SLASH_RE = re.compile(r"([+-]?\d+)/([+-]?\d+)")
_FRAC_RE = re.compile(r"([+-]?)(\d*)\\frac\{([+-]?\d+)\}\{([+-]?\d+)\}")
_BASE_NUMBER_RE = re.compile(r"[0-9A-Z]+_\d+")
# "0.\overline{3}" = 1/3, "1.2\overline{36}" = 1.2363636...; math-verify reads "0.\overline{3}" as 0.
_REPEATING_RE = re.compile(r"([+-]?)(\d*)\.(\d*)\\overline(?:\{(\d+)\}|(\d))")
# "6.02\times10^{23}", "1.5\cdot10^3": exact, where math-verify's floats lose the low digits.
_SCIENTIFIC_RE = re.compile(
    r"([+-]?(?:\d+(?:\.\d*)?|\.\d+))(?:\\times|\\cdot)10\^(?:\{([+-]?\d+)\}|(\d))"
)
_MAX_FAST_DIGITS = 1000


def _as_fraction(s: str) -> Fraction | None:
    """Exact value of a normalised plain number / simple fraction, or None if it is anything else."""
    if len(s) > _MAX_FAST_DIGITS:
        return None
    try:
        if _NUMBER_RE.fullmatch(s):
            return Fraction(s)
        m = _SLASH_RE.fullmatch(s)
        if m:
            return Fraction(int(m[1]), int(m[2]))
        m = _FRAC_RE.fullmatch(s)
        if m:
            sign, whole, num, den = m.groups()
            value = int(whole or 0) + Fraction(int(num), int(den))  # "1\frac{4}{5}" is 9/5
            return -value if sign == "-" else value
        m = _REPEATING_RE.fullmatch(s)
        if m:
            sign, whole, fixed, cycle = m[1], m[2], m[3], m[4] or m[5]
            value = int(whole or 0) + (
                Fraction(int(fixed or 0)) + Fraction(int(cycle), 10 ** len(cycle) - 1)
            ) / 10 ** len(fixed)
            return -value if sign == "-" else value
        m = _SCIENTIFIC_RE.fullmatch(s)
        if m:
            exponent = int(m[2] or m[3])
            if abs(exponent) <= _MAX_FAST_DIGITS:
                return Fraction(m[1]) * Fraction(10) ** exponent
    except (ValueError, ZeroDivisionError):
        pass
    return None
