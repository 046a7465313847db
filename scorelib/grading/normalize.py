"""Answer normalisation (MATH / PRM800K grader style): a canonical string form in which notational variants
("\\dfrac34" and "\\frac{3}{4}", "5\\text{ cm}" and "5", "x=3" and "3") compare equal as strings.

``normalize_answer`` caches answers up to ``_MAX_CACHED_LEN`` characters (lru_cache of 65,536 entries).
"""

from __future__ import annotations

import re
from functools import lru_cache

from .extract import _brace_partners

_TEXT_CMD = r"\\(?:textbf|textrm|text|mbox|mathrm|mathbf)"
_TEXT_OPEN_RE = re.compile(_TEXT_CMD + r"\{")
_TEXT_CMD_AT_END_RE = re.compile(_TEXT_CMD + r"$")
_UNIT_POWER_RE = re.compile(r"\s*\^\s*(?:\d|\{\d\})\s*$")  # "cm^2", "inches^{3}"
_DROP_SUBSTRINGS = (
    "\\displaystyle", "^{\\circ}", "^\\circ", "\\circ", "\\degree", "°", "\\%", "%", "\\$", "$",
)
# Spacing commands (\! \, \; \: \<space> \quad ~) go; a "\\\\" row break is matched first and kept.
_SPACING_RE = re.compile(r"(\\\\)|\\[!,;: ]|\\q?quad(?![a-zA-Z])|~")
_LEFT_RIGHT_RE = re.compile(r"\\(?:left|right)(?![a-zA-Z])\.?")
_FRAC_VARIANT_RE = re.compile(r"\\[dt]frac(?![a-zA-Z])")
_THOUSANDS_MARK_RE = re.compile(r"\{,\}|,\\!")
# "\frac12" -> "\frac{1}{2}", "\frac{270}7" -> "\frac{270}{7}", "\frac9{19}" -> "\frac{9}{19}".
_FRAC_DIGITS_RE = re.compile(r"\\frac(\d)(\d)")
_FRAC_BRACE_DIGIT_RE = re.compile(r"\\frac(\{[^{}]*\})(\d)")
_FRAC_DIGIT_BRACE_RE = re.compile(r"\\frac(\d)\{")
_SQRT_BARE_RE = re.compile(r"\\sqrt(\w)")
_LEADING_DOT_RE = re.compile(r"(?<![\d.])\.(\d)")
_THOUSANDS_RE = re.compile(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?")
_VARIABLE_PREFIX_RE = re.compile(r"^[a-zA-Z]\w?(?:=|\\in(?![a-zA-Z]))")
_CHOICE_RE = re.compile(r"^\(([A-Ea-e])\)$")
_BRACED_BASE_RE = re.compile(r"(\w)_\{(\d+)\}")
_EMPTY_SET_RE = re.compile(r"\\varnothing(?![a-zA-Z])|^\\\{\\\}$")  # \varnothing, \{\} -> \emptyset


def _drop_trailing_units(s: str) -> str:
    """Remove a units suffix such as "5\\text{ cm}" or "864 \\mbox{ inches}^2" (only after other content)."""
    body = _UNIT_POWER_RE.sub("", s.rstrip())
    if not body.endswith("}"):
        return s
    last = len(body) - 1
    opening = next((o for o, c in _brace_partners(body).items() if c == last), None)
    cmd = _TEXT_CMD_AT_END_RE.search(body, 0, opening) if opening is not None else None
    if cmd is None or not body[: cmd.start()].strip():
        return s
    return body[: cmd.start()]


def _strip_text_commands(s: str) -> str:
    """Drop a trailing units \\text{...}, then unwrap every other \\text{X} / \\mbox{X} / ... to X."""
    s = _drop_trailing_units(s)
    partners = _brace_partners(s)
    cut: set[int] = set()
    for m in _TEXT_OPEN_RE.finditer(s):
        close = partners.get(m.end() - 1)
        if close is not None:
            cut.update(range(m.start(), m.end()))
            cut.add(close)
    return "".join(c for i, c in enumerate(s) if i not in cut) if cut else s


_MAX_CACHED_LEN = 1000  # the cache holds 65,536 entries: keep megabyte-long answers out of it


def normalize_answer(s: str) -> str:
    """Canonical string form of an answer so that notational variants compare equal as strings."""
    return _normalize_cached(s) if len(s) <= _MAX_CACHED_LEN else _normalize(s)


@lru_cache(maxsize=65536)
def _normalize_cached(s: str) -> str:
    return _normalize(s)


def _normalize(s: str) -> str:
    s = s.replace("\n", " ").strip()
    s = _LEFT_RIGHT_RE.sub("", s)
    s = _FRAC_VARIANT_RE.sub(r"\\frac", s)
    s = _THOUSANDS_MARK_RE.sub("", s)
    s = _SPACING_RE.sub(r"\1", s)
    for sub in _DROP_SUBSTRINGS:
        s = s.replace(sub, "")
    s = _strip_text_commands(s)
    s = s.replace(" ", "")
    s = _VARIABLE_PREFIX_RE.sub("", s, count=1)
    s = s.rstrip(".")
    s = _FRAC_DIGITS_RE.sub(r"\\frac{\1}{\2}", s)
    s = _FRAC_BRACE_DIGIT_RE.sub(r"\\frac\1{\2}", s)
    s = _FRAC_DIGIT_BRACE_RE.sub(r"\\frac{\1}{", s)
    s = _SQRT_BARE_RE.sub(r"\\sqrt{\1}", s)
    s = _LEADING_DOT_RE.sub(r"0.\1", s)
    if _THOUSANDS_RE.fullmatch(s):
        s = s.replace(",", "")
    s = _CHOICE_RE.sub(r"\1", s)
    s = _BRACED_BASE_RE.sub(r"\1_\2", s)  # "4210_{5}" -> "4210_5"
    s = _EMPTY_SET_RE.sub(r"\\emptyset", s)
    return s
