"""Checks that refuse an answer pair before the symbolic path.

Size guards refuse inputs that could make sympy run (uninterruptibly) forever: overlong or deeply nested
input, numeric power towers, huge exponents or factorials (``_too_risky``). ``_malformed`` refuses LaTeX that
is not a complete expression, and ``_set_vs_tuple`` decides a braced set against a tuple or interval as
unequal (math-verify compares them element by element).
"""

from __future__ import annotations

import re

from .extract import _brace_partners

_MAX_HEAVY_LEN = 400
_MAX_DEPTH = 30
_BIG_EXPONENT_RE = re.compile(r"\^\{?\s*[+-]?\d{6}|\d{5}\s*!")
_VARIABLE_RE = re.compile(r"(?<![\\a-zA-Z])[a-zA-Z]")  # a letter that does not belong to a \command


def _too_risky(s: str) -> bool:
    """True for inputs too long, too deeply nested, numeric power towers or huge exponents/factorials."""
    if len(s) > _MAX_HEAVY_LEN or _BIG_EXPONENT_RE.search(s):
        return True
    partners = _brace_partners(s)
    depth = 0
    for i, c in enumerate(s):
        if c in "({[":
            depth += 1
            if depth > _MAX_DEPTH:
                return True
        elif c in ")}]":
            depth -= 1
        elif c == "^":
            j = i + 1
            while j < len(s) and s[j] == " ":
                j += 1
            if j < len(s) and s[j] == "{":
                end = partners.get(j)
                if end is None:
                    return True
                exponent = s[j:end]
                if "^" in exponent and not _VARIABLE_RE.search(exponent):  # 9^{9^{9^9}}, not e^{-x^2}
                    return True
            elif "^" in s[j : j + 3]:  # 9^9^9
                return True
    return False


_CONTROL_CHAR_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_LEFT_RE = re.compile(r"\\left(?![a-zA-Z])")
_RIGHT_RE = re.compile(r"\\right(?![a-zA-Z])")
_BEGIN_RE = re.compile(r"\\begin\{")
_END_RE = re.compile(r"\\end\{")


def _malformed(s: str) -> bool:
    """True for LaTeX that is not a complete expression: unbalanced braces, brackets, \\left/\\right or
    \\begin/\\end, or control characters. math-verify extracts *some* number from such text
    (it reads "\\begin{pmatrix} 1 &" and "1<NUL>2" as 1), so these never reach the symbolic path."""
    if _CONTROL_CHAR_RE.search(s):
        return True
    depth = 0
    i = 0
    while i < len(s):
        c = s[i]
        if c == "\\":
            i += 2  # \{ \} are literal braces (sets), not groups
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth < 0:
                return True
        i += 1
    if depth:
        return True
    # Intervals mix bracket kinds ("(3,4]"), so only the counts must agree.
    if s.count("(") + s.count("[") != s.count(")") + s.count("]"):
        return True
    if len(_LEFT_RE.findall(s)) != len(_RIGHT_RE.findall(s)):
        return True
    return len(_BEGIN_RE.findall(s)) != len(_END_RE.findall(s))


def _set_vs_tuple(a: str, b: str) -> bool:
    """True when one normalised answer is a braced set "\\{...\\}" and the other a tuple or interval.

    math-verify compares a set with a tuple element by element, so it grades the ordered pair
    "(2,1)" equal to the set "\\{1,2\\}"; in MATH these are different kinds of answer.
    """

    def is_set(x: str) -> bool:
        return x.startswith("\\{") and x.endswith("\\}")

    def is_tuple(x: str) -> bool:
        return x[:1] in "([" and x[-1:] in ")]" and len(x) > 1

    return (is_set(a) and is_tuple(b)) or (is_set(b) and is_tuple(a))
