"""Tests for scorelib.grading: answer extraction, MATH-style equivalence and the binary reward."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from scorelib import grading
from scorelib.grading import (
    FINAL_ANSWER_PREFIX,
    FINAL_ANSWER_SUFFIX,
    extract_answer,
    is_equiv,
    normalize_answer,
    reward,
)

MATH500_PATH = Path(__file__).resolve().parents[1].parent / "shared/data/math500.jsonl"
TIME_LIMIT_S = 3.0  # pathological inputs must finish in ~1 s; 3 s leaves room for a loaded machine


def final_answer(x: str) -> str:
    return f"{FINAL_ANSWER_PREFIX}{x}{FINAL_ANSWER_SUFFIX}"


# ------------------------------------------------------------------------------------------
# Extraction
# ------------------------------------------------------------------------------------------

EXTRACTION_CASES = [
    # The exact format the toy world and the SCoRe prompts use.
    ("Some work.\n" + final_answer("42"), "42"),
    # LaTeX with nested braces inside the $...$ answer.
    (final_answer("\\frac{\\sqrt{3}}{2}"), "\\frac{\\sqrt{3}}{2}"),
    # Missing ". I hope it is correct." tail.
    ("Final Answer: The final answer is $7$", "7"),
    # Missing "Final Answer:" prefix.
    ("So the final answer is $x^2 + 1$.", "x^2 + 1"),
    # Missing closing "$": take the rest of the line.
    ("The final answer is $12\nmore text", "12"),
    # Surrounding whitespace is stripped.
    ("The final answer is $  3.5  $. I hope it is correct.", "3.5"),
    # "\$" inside the answer is a literal dollar, not the closing delimiter.
    ("The final answer is $\\$18.90$. I hope it is correct.", "\\$18.90"),
    # Last occurrence wins (e.g. turn-2 revision after a turn-1 answer).
    (final_answer("3") + "\nWait, I made a mistake.\n" + final_answer("5"), "5"),
    # A \boxed inside the final-answer span is unwrapped (MATH500 has "$5 + 4 + 2 = \boxed{11}.$").
    ("The final answer is $5 + 4 + 2 = \\boxed{11}.$", "11"),
    # Fallback: \boxed{...} with nested braces, scanned by brace matching.
    ("Hence the answer is $\\boxed{\\frac{1}{2}}$.", "\\frac{1}{2}"),
    # Fallback: \fbox works like \boxed.
    ("Answer: \\fbox{17}", "17"),
    # Last \boxed wins.
    ("First $\\boxed{1}$, then actually $\\boxed{2}$.", "2"),
    # Escaped braces inside \boxed do not unbalance the scanner.
    ("$\\boxed{\\{1, 2\\}}$", "\\{1, 2\\}"),
    # "\boxed 5" without braces (seen in MATH solutions).
    ("so $\\boxed 5$.", "5"),
    # Final-answer format takes precedence over an earlier \boxed.
    ("$\\boxed{9}$ ... " + final_answer("10"), "10"),
    # An empty final-answer span falls back to \boxed.
    ("$\\boxed{8}$ The final answer is $ $.", "8"),
    # "$$...$$" display math after the anchor.
    ("The final answer is $$\\frac{1}{4}$$", "\\frac{1}{4}"),
    # No answer at all.
    ("I could not solve this problem.", None),
    # Empty response.
    ("", None),
    # Unclosed \boxed{ (truncated generation) yields no answer.
    ("The answer is $\\boxed{\\frac{1}{2}", None),
    # Empty \boxed{}.
    ("$\\boxed{}$", None),
]


@pytest.mark.parametrize("text, expected", EXTRACTION_CASES)
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected


# ------------------------------------------------------------------------------------------
# Normalisation
# ------------------------------------------------------------------------------------------

NORMALIZE_CASES = [
    ("\\left( 3, \\frac{\\pi}{2} \\right)", "(3,\\frac{\\pi}{2})"),  # \left/\right and spaces go
    ("\\dfrac{3}{4}", "\\frac{3}{4}"),  # \dfrac -> \frac
    ("\\frac 59", "\\frac{5}{9}"),  # shorthand fraction gets braces
    ("\\frac{270}7\\text{ degrees}", "\\frac{270}{7}"),  # trailing unit dropped, brace added
    ("864 \\mbox{ inches}^2", "864"),  # unit with a power dropped
    ("90^\\circ", "90"),  # degrees dropped
    ("\\$32,\\!348", "32348"),  # dollar sign and thousands separator dropped
    ("11,\\! 111,\\! 111,\\! 100", "11111111100"),  # spaced thousands separators
    ("58,500", "58500"),  # plain thousands separator
    ("(1,2)", "(1,2)"),  # but tuples keep their comma
    ("x \\in [-2,7]", "[-2,7]"),  # "x \in" prefix dropped
    ("y = 2x + 3", "2x+3"),  # short "y =" prefix dropped
    (".0000672", "0.0000672"),  # leading zero added
    ("\\text{(C)}", "C"),  # multiple-choice letter
    ("4210_{5}", "4210_5"),  # base subscript braces
    ("\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", "\\begin{pmatrix}1\\\\2\\end{pmatrix}"),  # row break kept
    ("5.", "5"),  # trailing period
]


@pytest.mark.parametrize("raw, expected", NORMALIZE_CASES)
def test_normalize_answer(raw, expected):
    assert normalize_answer(raw) == expected


# ------------------------------------------------------------------------------------------
# Equivalence
# ------------------------------------------------------------------------------------------

EQUIV_CASES = [
    # --- equivalent ---
    ("\\frac{1}{2}", "0.5", True),  # fraction vs decimal (exact fast path)
    ("0.5", "\\frac12", True),  # shorthand \frac12
    (".5", "0.5", True),  # missing leading zero
    ("\\dfrac{3}{4}", "0.75", True),  # \dfrac
    ("\\tfrac{3}{4}", "3/4", True),  # \tfrac vs slash fraction
    ("-\\frac{3}{4}", "-0.75", True),  # negative fraction
    ("\\frac{-3}{4}", "-\\frac{3}{4}", True),  # sign inside the numerator
    ("1\\frac{4}{5}", "\\frac{9}{5}", True),  # mixed number
    ("-12", "-12.0", True),  # negative integer vs decimal
    ("843", "843", True),  # identical integers
    ("\\left( 3, \\frac{\\pi}{2} \\right)", "(3,\\frac{\\pi}{2})", True),  # \left( \right)
    ("90^\\circ", "90", True),  # degrees
    ("90^{\\circ}", "90", True),  # braced degrees
    ("5\\text{ cm}", "5", True),  # text units
    ("15\\mbox{ cm}^2", "15", True),  # squared units
    ("50\\%", "50", True),  # percent sign
    ("1,000", "1000", True),  # thousands separator
    ("10,\\!080", "10080", True),  # MATH-style thousands separator
    ("\\$18.90", "18.9", True),  # currency and trailing zero
    ("(1, 2)", "(1,2)", True),  # tuple spacing
    ("(3, 4]", "(3,4]", True),  # half-open interval spacing
    ("(-\\infty, 0]", "(-\\infty,0]", True),  # interval with infinity
    ("\\sqrt2", "\\sqrt{2}", True),  # bare \sqrt argument
    ("2\\sqrt{2}", "\\sqrt{8}", True),  # symbolic simplification (math-verify)
    ("\\frac{\\sqrt{3}}{3}", "\\frac{1}{\\sqrt{3}}", True),  # rationalised denominator
    ("2\\pi", "\\pi \\cdot 2", True),  # pi with explicit product
    ("x=5", "5", True),  # "x =" prefix
    ("\\text{Evelyn}", "Evelyn", True),  # text answer
    ("\\text{(C)}", "C", True),  # multiple choice
    ("x^2+2x+1", "(x+1)^2", True),  # polynomial identity
    ("6 - 5i", "-5i+6", True),  # complex number, reordered
    ("\\{1,2\\}", "\\{2,1\\}", True),  # sets are unordered
    ("-2,1", "1,-2", True),  # list of all solutions, any order
    ("y = 2x + 3", "y=3+2x", True),  # equation of a line, reordered
    ("\\begin{pmatrix} -1/3 \\\\ 2/3 \\end{pmatrix}", "\\begin{pmatrix} -\\frac13 \\\\ \\frac23 \\end{pmatrix}", True),  # vectors
    ("4210_{5}", "4210_5", True),  # base subscript with braces
    ("2^{10}", "1024", True),  # evaluated power
    ("\\frac{1}{2}.", "\\frac{\\sqrt{4}}{4}", True),  # math-verify can't parse "x." -> sympy fallback
    ("e^{-x^2}", "\\frac{1}{e^{x^2}}", True),  # a symbolic tower is not refused by the size guards
    # --- not equivalent ---
    ("3", "4", False),  # different integers
    ("12", "-12", False),  # sign matters
    ("\\frac{1}{2}", "\\frac{1}{3}", False),  # different fractions
    ("0.333", "\\frac13", False),  # truncated decimal is not exact
    ("1,000", "1", False),  # thousands separator, not a decimal comma
    ("\\sqrt{2}", "2", False),  # sqrt is not dropped
    ("\\pi", "3.14", False),  # pi approximations are wrong
    ("(1,2)", "[1,2]", False),  # open vs closed interval
    ("(3,4]", "(3,4)", False),  # half-open vs open interval
    ("(1,2)", "12", False),  # tuple is not a number
    ("x^2", "x^3", False),  # different powers
    ("2x", "2y", False),  # different variables
    ("\\infty", "-\\infty", False),  # sign of infinity
    ("\\text{east}", "\\text{west}", False),  # different words
    ("52_8", "52", False),  # base-8 numeral is not decimal 52
    ("52_8", "42", False),  # nor is it graded by its decimal value
    ("1.5\\%", "0.015", False),  # like the MATH grader, percent signs are dropped, not converted
    ("", "0", False),  # empty prediction
    (None, "5", False),  # no extracted answer
]


@pytest.mark.parametrize("pred, gold, expected", EQUIV_CASES)
def test_is_equiv(pred, gold, expected):
    assert is_equiv(pred, gold) is expected


def test_at_least_forty_equivalence_pairs():
    assert len(EQUIV_CASES) >= 40


def test_fast_path_never_uses_the_heavy_path(monkeypatch):
    """Plain numbers must be decided by Fraction, without math-verify or the worker."""

    def boom(*args, **kwargs):
        raise AssertionError("heavy path used")

    monkeypatch.setattr(grading, "_heavy_equiv", boom)
    for pred, gold, expected in [
        ("843", "843.0", True),
        ("-12", "12", False),
        ("3/4", "\\frac{3}{4}", True),
        ("0.75", "\\dfrac34", True),
        ("1,000", "1000", True),
        ("7", "8", False),
    ]:
        assert is_equiv(pred, gold) is expected


# ------------------------------------------------------------------------------------------
# Robustness: pathological inputs are bounded in time and never raise
# ------------------------------------------------------------------------------------------

PATHOLOGICAL = [
    "9^{9^{9^9}}",  # power tower (refused by the size guard)
    "9^9^9",  # unbraced power tower
    "10^{10^{10}}",  # hangs math-verify without a guard
    "2^{1000000}",  # huge exponent
    "100000!",  # huge factorial
    "(" * 10_000 + "1" + ")" * 10_000,  # 10,000 nested brackets
    "{" * 10_000 + "1" + "}" * 10_000,  # 10,000 nested braces
    "\\frac{" * 5_000,  # unclosed commands
    "\\text{" * 3_000,  # unclosed \text (quadratic-scan trap)
    "1+" * 10_000 + "1",  # 20,000-character expression
    "x" * 20_000,  # 20,000 characters of one symbol
    "1" * 20_000,  # 20,000-digit integer (beyond int's str limit)
    "\\frac{",  # malformed LaTeX
    "}{",  # malformed LaTeX
    "\\",  # lone backslash
    "$$$",  # stray dollars
    "\\frac{1}{0}",  # division by zero
    "(x+y+z+w)^{41}",  # expensive expansion: hits the worker's soft timeout
    "\\prod_{k=1}^{99999} k",  # expensive product
]


@pytest.mark.parametrize("pred", PATHOLOGICAL, ids=lambda s: repr(s[:20]))
@pytest.mark.parametrize("gold", ["1", "(x+y+z+w)^{40}+1"])
def test_pathological_inputs_are_bounded(pred, gold):
    start = time.monotonic()
    result = is_equiv(pred, gold)
    assert time.monotonic() - start < TIME_LIMIT_S
    assert result is False


@pytest.mark.parametrize("pred", PATHOLOGICAL, ids=lambda s: repr(s[:20]))
def test_pathological_identical_strings_are_equal(pred):
    start = time.monotonic()
    assert is_equiv(pred, pred) is True
    assert time.monotonic() - start < TIME_LIMIT_S


PATHOLOGICAL_RESPONSES = [
    "\\boxed{" * 3_000,  # thousands of unclosed \boxed
    "{" * 20_000,  # 20,000 open braces
    "final answer is $" * 1_000,  # thousands of final-answer anchors
    "The final answer is $" + "{" * 20_000,  # unterminated huge answer
    "\\boxed{" + "{" * 10_000 + "}" * 9_999,  # almost balanced
    "$" * 20_000,  # only dollars
    "a" * 20_000,  # no answer
    "\\boxed{" + "(" * 10_000 + "1" + ")" * 10_000 + "}",  # deep nesting inside the answer
]


@pytest.mark.parametrize("response", PATHOLOGICAL_RESPONSES, ids=lambda s: repr(s[:20]))
def test_pathological_responses_are_bounded(response):
    start = time.monotonic()
    assert reward(response, "1") == 0.0
    assert time.monotonic() - start < TIME_LIMIT_S


def test_custom_timeout_is_respected():
    start = time.monotonic()
    assert is_equiv("(x+y+z+w)^{43}", "1", timeout_s=0.2) is False
    assert time.monotonic() - start < TIME_LIMIT_S


@pytest.mark.skipif(not hasattr(signal, "SIGSTOP"), reason="needs POSIX signals")
def test_hung_worker_is_killed_and_replaced():
    """A worker that stops answering (e.g. stuck in C code) is killed; the next call gets a new one."""
    assert is_equiv("2\\sqrt{2}", "\\sqrt{8}")  # make sure a worker is running
    stuck = grading._worker
    os.kill(stuck.proc.pid, signal.SIGSTOP)
    start = time.monotonic()
    assert is_equiv("3\\sqrt{3}", "\\sqrt{27}") is False  # unanswered -> not equivalent
    assert time.monotonic() - start < TIME_LIMIT_S
    assert stuck.proc.poll() is not None  # the stuck worker was killed
    assert is_equiv("3\\sqrt{3}", "\\sqrt{27}") is True  # timeouts are not cached; fresh worker
    assert grading._worker is not stuck


def test_concurrent_calls_from_threads():
    """Graders running in threads share the worker safely and get correct answers."""
    cases = [("2\\sqrt{2}", "\\sqrt{8}", True), ("x^2-1", "(x-1)(x+1)", True), ("\\sqrt{3}", "3", False)]
    results: list[bool] = []

    def work(pred, gold, expected):
        for _ in range(5):
            results.append(is_equiv(pred, gold) is expected)

    threads = [threading.Thread(target=work, args=case) for case in cases * 2]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results and all(results)


# ------------------------------------------------------------------------------------------
# Reward
# ------------------------------------------------------------------------------------------

REWARD_CASES = [
    (final_answer("\\frac{1}{2}"), "0.5", 1.0),  # correct, different notation
    (final_answer("3"), "4", 0.0),  # wrong answer
    ("no final answer here", "4", 0.0),  # unparseable response
    (final_answer("3") + "\n" + final_answer("4"), "4", 1.0),  # revised (last) answer counts
]


@pytest.mark.parametrize("response, gold, expected", REWARD_CASES)
def test_reward(response, gold, expected):
    assert reward(response, gold) == expected


# ------------------------------------------------------------------------------------------
# MATH500 reference solutions
# ------------------------------------------------------------------------------------------


def test_math500_reference_solutions_grade_correct():
    """Every MATH500 reference solution's extracted answer must grade equal to its `answer` field."""
    if not MATH500_PATH.exists():
        pytest.skip(f"MATH500 split not found at {MATH500_PATH}")
    rows = [json.loads(line) for line in MATH500_PATH.read_text().splitlines() if line.strip()]
    misses = [
        (row["unique_id"], row["answer"], extract_answer(row["solution"]))
        for row in rows
        if not is_equiv(extract_answer(row["solution"]), row["answer"])
    ]
    print(f"MATH500: {len(rows) - len(misses)}/{len(rows)} reference solutions graded correct")
    assert len(rows) == 500
    assert not misses, misses
