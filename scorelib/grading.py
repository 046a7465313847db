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
"""

from __future__ import annotations

import atexit
import json
import os
import re
import select
import subprocess
import sys
import threading
import time
import warnings
from fractions import Fraction
from functools import lru_cache

FINAL_ANSWER_PREFIX = "Final Answer: The final answer is $"
FINAL_ANSWER_SUFFIX = "$. I hope it is correct."

# ---------------------------------------------------------------------------------------
# Extraction
# ---------------------------------------------------------------------------------------

# Matches "The final answer is $" with or without "Final Answer:"; linear (no nested quantifiers).
_FINAL_ANSWER_RE = re.compile(r"final answer is\s*\$", re.IGNORECASE)
_BOX_COMMANDS = ("\\boxed", "\\fbox")


def _brace_partners(s: str, start: int = 0) -> dict[int, int]:
    """Map each '{' at or after start to its matching '}' in one linear pass (skips \\{ and \\})."""
    partners: dict[int, int] = {}
    stack: list[int] = []
    i = start
    while i < len(s):
        c = s[i]
        if c == "\\":
            i += 2
            continue
        if c == "{":
            stack.append(i)
        elif c == "}" and stack:
            partners[stack.pop()] = i
        i += 1
    return partners


def _last_boxed(text: str) -> str | None:
    """Content of the last \\boxed{...} / \\fbox{...} (or "\\boxed X"), or None if absent/unclosed."""
    start, cmd = max((text.rfind(c), c) for c in _BOX_COMMANDS)
    if start < 0:
        return None
    i = start + len(cmd)
    while i < len(text) and text[i] == " ":
        i += 1
    if i < len(text) and text[i] == "{":
        end = _brace_partners(text, i).get(i)
        return text[i + 1 : end] if end is not None else None
    # "\boxed 5$" form: the argument runs to the closing math delimiter.
    end = text.find("$", i)
    return text[i : end if end >= 0 else len(text)]


def _dollar_span(text: str, start: int) -> str:
    """Text from start up to the next unescaped '$' (or end of line if the '$' is missing)."""
    if text.startswith("$", start):  # "$$...$$" display math
        start += 1
    i = start
    while True:
        j = text.find("$", i)
        if j < 0:
            eol = text.find("\n", start)
            return text[start : eol if eol >= 0 else len(text)]
        if j > 0 and text[j - 1] == "\\":  # "\$" is a literal dollar sign, not a delimiter
            i = j + 1
            continue
        return text[start:j]


def extract_answer(text: str) -> str | None:
    """The final answer in a response: last "final answer is $X$", else last \\boxed{X}, else None."""
    if not text:
        return None
    last = None
    for last in _FINAL_ANSWER_RE.finditer(text):
        pass
    if last is not None:
        span = _dollar_span(text, last.end())
        boxed = _last_boxed(span)  # e.g. "The final answer is $5 + 4 = \boxed{9}$"
        answer = (boxed if boxed is not None else span).strip()
        if answer:
            return answer
    boxed = _last_boxed(text)
    if boxed is None or not boxed.strip():
        return None
    return boxed.strip()


# ---------------------------------------------------------------------------------------
# Normalisation (MATH / PRM800K grader style)
# ---------------------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------------------
# Exact fast path: integers, decimals, a/b, \frac{a}{b}, mixed numbers
# ---------------------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------------------
# Size guards: refuse inputs that could make sympy run (uninterruptibly) forever
# ---------------------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------------------
# Symbolic path (runs inside the worker subprocess)
# ---------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------
# Worker management (parent side)
# ---------------------------------------------------------------------------------------

_STARTUP_TIMEOUT_S = 60.0
_GRACE_S = 0.25  # hard kill this long after the worker's own soft timeout should have fired


class _WorkerError(Exception):
    """The worker timed out, died or could not start; the check counts as not equivalent."""


class _Worker:
    """A persistent `python -I grading.py` subprocess answering symbolic-equivalence queries."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-I", os.path.abspath(__file__)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            bufsize=0,
            start_new_session=True,  # Ctrl-C in the terminal must not hit the worker
        )
        try:
            ready = self._read_line(time.monotonic() + _STARTUP_TIMEOUT_S) == b"ready"
        except _WorkerError:
            ready = False
        if not ready:
            self.kill()
            warnings.warn("scorelib.grading: symbolic worker failed to start; symbolic checks return False")
            raise _WorkerError("grading worker failed to start")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def ask(self, pred: str, gold: str, timeout_s: float) -> bool:
        request = json.dumps([pred, gold, timeout_s]).encode() + b"\n"
        try:
            self.proc.stdin.write(request)
        except OSError as e:
            raise _WorkerError("grading worker died") from e
        return self._read_line(time.monotonic() + timeout_s + _GRACE_S) == b"1"

    def _read_line(self, deadline: float) -> bytes:
        fd = self.proc.stdout.fileno()
        buf = b""
        while not buf.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                raise _WorkerError("grading worker timed out")
            chunk = os.read(fd, 4096)
            if not chunk:
                raise _WorkerError("grading worker died")
            buf += chunk
        return buf.strip()

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()


_worker: _Worker | None = None
_worker_lock = threading.Lock()


def _reset_after_fork() -> None:
    """A forked child must not share the parent's worker pipes or a possibly-held lock."""
    global _worker, _worker_lock
    _worker = None
    _worker_lock = threading.Lock()


def _shutdown_worker() -> None:
    """Kill the worker at interpreter exit."""
    if _worker is not None:
        _worker.kill()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)
atexit.register(_shutdown_worker)


@lru_cache(maxsize=65536)
def _heavy_equiv(pred: str, gold: str, timeout_s: float) -> bool:
    """Symbolic equivalence via the worker; raises _WorkerError (never cached) on timeout/crash."""
    global _worker
    with _worker_lock:
        try:
            if _worker is None or not _worker.alive():
                _worker = None
                _worker = _Worker()
            return _worker.ask(pred, gold, timeout_s)
        except (_WorkerError, OSError) as e:
            if _worker is not None:
                _worker.kill()
                _worker = None
            raise _WorkerError(str(e)) from e


# ---------------------------------------------------------------------------------------
# Public grading API
# ---------------------------------------------------------------------------------------


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


if __name__ == "__main__":
    _serve()
