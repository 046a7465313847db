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
TIME_LIMIT_S = 5.0  # pathological inputs must finish in ~1 s; 5 s leaves room for a loaded machine


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
    ("\\varnothing", "\\emptyset"),  # one spelling of the empty set
    ("\\{\\}", "\\emptyset"),  # empty set braces
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
    # fractions and \dfrac
    ("\\dfrac{1}{2}", "\\frac{1}{2}", True),  # \dfrac is display-style \frac
    ("\\dfrac{7}{2}", "7/2", True),  # \dfrac vs slash
    ("\\frac{10}{4}", "\\frac{5}{2}", True),  # unreduced fraction has the same value
    ("\\frac{10}{4}", "2.5", True),  # unreduced fraction vs decimal
    ("\\frac{7}{3}", "2\\frac{1}{3}", True),  # mixed number
    ("-0.5", "-\\dfrac12", True),  # negative shorthand \dfrac
    ("\\frac{1}{-2}", "-\\frac{1}{2}", True),  # sign in the denominator
    ("0.50", "\\frac{1}{2}", True),  # trailing zero
    ("5.00", "5", True),  # trailing zeros on an integer
    ("-0", "0", True),  # negative zero
    ("\\frac{2a}{2b}", "\\frac{a}{b}", True),  # symbolic fraction cancels
    ("\\frac{1}{2}x", "\\frac{x}{2}", True),  # coefficient in front vs in the numerator
    # \left( \right) and brackets
    ("\\left[ 1, 2 \\right]", "[1,2]", True),  # \left[ \right] closed interval
    ("\\left( -\\frac{1}{2}, \\frac{3}{2} \\right)", "(-0.5,1.5)", True),  # pair with fractions vs decimals
    ("\\left\\{ 1, 2 \\right\\}", "\\{1,2\\}", True),  # \left\{ set braces
    # units, degrees and \text{}
    ("30^{\\circ}", "30^\\circ", True),  # braced vs bare degree sign
    ("145^\\circ", "145", True),  # MATH500 angle answer without the degree sign
    ("30\\text{ degrees}", "30", True),  # degrees spelled out as a unit
    ("\\frac{270}7\\text{ degrees}", "\\frac{270}{7}", True),  # MATH500 answer: shorthand \frac + unit
    ("12\\text{ inches}", "12", True),  # length unit
    ("18 \\text{ ft}^2", "18", True),  # area unit with a power
    ("4", "4\\text{ units}", True),  # the unit may sit on the gold side
    ("\\text{Monday}", "Monday", True),  # word answer with and without \text
    ("\\text{even}", "\\text{Even}", True),  # capitalisation of a word answer (math-verify)
    ("\\text{(C)}", "(C)", True),  # multiple choice with and without \text
    ("\\textbf{(A)}", "A", True),  # bold multiple-choice letter
    # intervals and unions
    ("(-\\infty,3)\\cup(5,\\infty)", "(-\\infty, 3) \\cup (5, \\infty)", True),  # union, spacing
    ("(-\\infty,3)\\cup(5,\\infty)", "(5,\\infty)\\cup(-\\infty,3)", True),  # union is commutative
    ("(-\\infty, 2) \\cup (3, \\infty)", "(-\\infty,2)\\cup(3,+\\infty)", True),  # +\infty is \infty
    ("(2,12) \\cup (12,102)", "(2,102)\\setminus\\{12\\}", True),  # same set written as a difference
    ("(-\\infty,\\infty)", "\\mathbb{R}", True),  # the whole real line
    ("(2,\\infty)", "x>2", True),  # interval vs inequality (math-verify)
    ("(-\\infty, 0]", "x \\le 0", True),  # half-closed interval vs inequality
    ("x \\in (1,2)", "(1,2)", True),  # "x \in" prefix
    ("\\emptyset", "\\varnothing", True),  # two spellings of the empty set (normalised)
    ("\\emptyset", "\\{\\}", True),  # empty braces are the empty set (normalised)
    # tuples, ordered pairs and matrices
    ("(\\frac12, 3)", "(0.5, 3)", True),  # tuple entries compared by value
    ("(2,-3)", "\\left(2,-3\\right)", True),  # \left( around an ordered pair
    ("\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}", "\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}", True),  # matrix spacing
    ("\\begin{pmatrix} 1/2 \\\\ 0 \\end{pmatrix}", "\\begin{pmatrix} 0.5 \\\\ 0 \\end{pmatrix}", True),  # vector entries by value
    ("\\begin{bmatrix} 1 \\\\ 2 \\end{bmatrix}", "\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", True),  # bracket style of a matrix
    # percentages and thousands separators
    ("25\\%", "25", True),  # "25%" for gold 25 (percent sign dropped, MATH-style)
    ("100\\%", "100", True),  # percent sign dropped
    ("1{,}000{,}000", "1000000", True),  # {,} thousands marks
    ("1,000,000", "1000000", True),  # two plain thousands separators
    ("1,234.5", "1234.5", True),  # thousands separator with decimals
    ("\\$1,\\!000", "1000", True),  # dollars with a MATH thousands mark
    ("\\$5.00", "5", True),  # money with cents
    # roots and pi
    ("3\\sqrt{2}", "\\sqrt{18}", True),  # coefficient moved under the root
    ("\\sqrt{12}", "2\\sqrt3", True),  # simplest radical form vs not
    ("10\\sqrt{2}", "\\sqrt{200}", True),  # larger radicand
    ("\\frac{5\\sqrt{3}}{3}", "\\frac{5}{\\sqrt{3}}", True),  # rationalised denominator
    ("\\sqrt{2}/2", "\\frac{\\sqrt2}{2}", True),  # slash vs \frac around a root
    ("2^{1/2}", "\\sqrt{2}", True),  # fractional power
    ("\\sqrt[3]{8}", "2", True),  # cube root evaluates
    ("\\sqrt[3]{2}", "2^{1/3}", True),  # cube root as a power
    ("\\sqrt{3}+1", "1+\\sqrt3", True),  # reordered sum, bare root
    ("\\frac{\\pi}{2}", "\\frac12\\pi", True),  # pi over 2 vs half pi
    ("\\frac{3\\pi}{4}", "\\frac{3}{4}\\pi", True),  # pi multiple
    ("4\\pi", "\\pi 4", True),  # pi with the coefficient after it
    ("2.0", "\\sqrt{4}", True),  # a decimal that equals a closed form exactly
    # sets, lists and equations
    ("\\{1,2\\}", "1,2", True),  # a set of solutions vs the comma list MATH asks for
    ("1, 2", "2, 1", True),  # "enter all solutions separated by commas": order is free in MATH
    ("1, 2, 3", "3, 2, 1", True),  # longer solution list, reversed
    ("x=1, x=2", "1,2", True),  # solutions written as equations
    ("\\{1\\pm\\sqrt{5},-2\\}", "-2, 1+\\sqrt5, 1-\\sqrt5", True),  # MATH500 set with \pm
    ("x = 5", "x=5", True),  # equation spacing
    ("k = 3", "3", True),  # other variable names as prefix
    ("x+1", "1+x", True),  # commutative sum
    ("3x^2-2x+1", "1-2x+3x^2", True),  # reordered polynomial
    ("1+i", "i+1", True),  # complex number reordered
    # scientific notation
    ("1.5\\times10^{3}", "1500", True),  # \times 10^{n}
    ("1.5 \\times 10^3", "1500", True),  # unbraced exponent
    ("2.5\\times 10^{-3}", "0.0025", True),  # negative exponent
    ("1.5\\cdot 10^{3}", "1500", True),  # \cdot 10^{n}
    ("6.02\\times10^{23}", "602000000000000000000000", True),  # exact, beyond float precision (fast path)
    ("10^{-2}", "0.01", True),  # bare power of ten
    # repeating decimals
    ("\\frac{1}{3}", "0.\\overline{3}", True),  # repeating decimal (math-verify reads it as 0)
    ("0.\\overline{36}", "\\frac{4}{11}", True),  # two-digit period
    ("0.1\\overline{6}", "\\frac{1}{6}", True),  # pre-period digits
    # base subscripts, negative numbers, evaluated expressions
    ("101_2", "101_{2}", True),  # braced base subscript
    ("A3_{16}", "A3_16", True),  # hex digits in base 16
    ("- 5", "-5", True),  # space after the minus sign
    ("5!", "120", True),  # factorial evaluates
    ("\\binom{5}{2}", "10", True),  # binomial coefficient evaluates
    ("\\dbinom{5}{2}", "10", True),  # display binomial
    ("\\log_2 8", "3", True),  # logarithm evaluates
    ("\\cos \\frac{\\pi}{3}", "\\frac{1}{2}", True),  # trig value in radians
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
    # near misses: fractions and decimals
    ("0.33", "\\frac13", False),  # rounded decimal is not the fraction
    ("\\frac{1}{2}", "2", False),  # reciprocal
    ("-\\frac{1}{2}", "\\frac{1}{2}", False),  # sign of a fraction
    ("2\\frac{1}{3}", "\\frac{2}{3}", False),  # mixed number is not a product
    ("0.5", "5", False),  # decimal point matters
    ("1000", "1,000.5", False),  # thousands separator with a fractional part
    ("10", "10.5", False),  # integer vs nearby decimal
    ("0.\\overline{3}", "0.3", False),  # repeating vs terminating decimal
    ("0.\\overline{3}", "\\frac{3}{10}", False),  # repeating decimal is 1/3, not 3/10
    ("0.\\overline{3}", "0", False),  # math-verify alone would read 0.\overline{3} as 0
    # near misses: roots, pi, approximations
    ("\\sqrt{2}", "1.414", False),  # approximation of a root
    ("\\sqrt{2}", "1.41421356", False),  # an 8-digit approximation is still not exact (math-verify rounds to 6 places)
    ("\\pi", "3.14159265", False),  # likewise for pi
    ("\\frac{\\sqrt{2}}{2}", "0.70710678", False),  # and for a root over a number
    ("2\\pi", "6.28", False),  # pi multiple vs decimal
    ("e", "2.718", False),  # Euler's number vs decimal
    ("10\\sqrt{2}", "\\sqrt{20}", False),  # coefficient not squared
    ("\\frac{\\sqrt{3}}{2}", "\\frac{\\sqrt{2}}{2}", False),  # different radicand
    ("\\sqrt[3]{2}", "\\sqrt{2}", False),  # cube root vs square root
    ("-\\sqrt{2}", "\\sqrt{2}", False),  # sign of a root
    ("\\frac{3\\pi}{4}", "\\frac{3\\pi}{2}", False),  # different pi multiple
    ("\\pi", "180", False),  # radians are not degrees
    ("\\frac{\\pi}{3}", "60^\\circ", False),  # nor the other way round (the degree sign is dropped)
    # near misses: intervals, tuples, sets
    ("[2,5)", "[2,5]", False),  # half-open vs closed
    ("[0,1]", "[0,1)", False),  # closed vs half-open
    ("(2,\\infty)", "[2,\\infty)", False),  # open vs closed at the finite end
    ("(-\\infty,3]\\cup(5,\\infty)", "(-\\infty,3)\\cup(5,\\infty)", False),  # one endpoint differs in a union
    ("(0,9) \\cup (9,36)", "(0,36)", False),  # a union that leaves out a point
    ("(2,3)", "(3,2)", False),  # ordered pair order matters
    ("(1,2,3)", "(1,3,2)", False),  # triple order matters
    ("(1,2)", "\\{1,2\\}", False),  # an ordered pair is not a set (math-verify alone says equal)
    ("(2,1)", "\\{1,2\\}", False),  # ... even less when reordered
    ("[1,2]", "\\{1,2\\}", False),  # an interval is not a two-element set
    ("\\{1,2,3\\}", "\\{1,2\\}", False),  # extra element
    ("\\{1\\pm\\sqrt{5},-2\\}", "-2, 1+\\sqrt5", False),  # a missing solution
    ("1,2", "1,3", False),  # a wrong solution in a list
    ("\\emptyset", "0", False),  # the empty set is not zero
    ("\\left( -\\frac{1}{2}, \\frac{3}{2} \\right)", "(-0.5,-1.5)", False),  # one coordinate's sign
    # near misses: matrices
    ("\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}", "\\begin{pmatrix}1&2\\\\4&3\\end{pmatrix}", False),  # swapped entries
    ("\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", "\\begin{pmatrix} 2 \\\\ 1 \\end{pmatrix}", False),  # swapped vector entries
    ("\\begin{pmatrix} -1/3 \\\\ 2/3 \\\\ 5/3 \\end{pmatrix}", "(-1/3, 2/3, 5/3)", False),  # a column vector is not a tuple
    # near misses: expressions and equations
    ("x+1", "x-1", False),  # sign of a term
    ("\\frac{x+1}{x-1}", "\\frac{x-1}{x+1}", False),  # reciprocal expression
    ("x^2+1", "(x-1)(x+1)", False),  # wrong factorisation
    ("\\frac{x}{2}", "2x", False),  # divided vs multiplied
    ("y=2x+3", "y=2x-3", False),  # line with a different intercept
    ("x=5", "6", False),  # equation with a different value
    ("2i", "-2i", False),  # conjugate imaginary
    ("2^{10}", "1000", False),  # 1024 is not 1000
    # near misses: units, percent, words, choices, bases
    ("25\\%", "0.25", False),  # percent signs are dropped, not converted (like the MATH grader)
    ("145", "\\frac{29\\pi}{36}", False),  # degrees vs radians
    ("\\frac{270}7\\text{ degrees}", "38.57", False),  # a rounded value of a fraction
    ("\\text{Monday}", "\\text{Tuesday}", False),  # different word
    ("\\text{(C)}", "\\text{(D)}", False),  # different choice
    ("B", "C", False),  # bare choice letters
    ("101_2", "5", False),  # a base-2 numeral is not graded by its value
    ("1011_2", "1011", False),  # nor equal to the same digits in base 10
    ("4210_{5}", "4210_{6}", False),  # different base
    ("1.5\\times10^{3}", "150", False),  # wrong power of ten
    ("6.02\\times10^{23}", "6.02\\times10^{22}", False),  # off by one exponent
    ("-5", "5", False),  # sign of an integer
    ("\\$18.90", "\\$19.80", False),  # different amount of money
    # malformed LaTeX must not match a number it happens to contain
    ("\\begin{pmatrix} 1 &", "1", False),  # math-verify alone extracts 1 from this
    ("\\left( 1, 2", "2", False),  # unbalanced \left( (math-verify alone reads 2)
    ("1\x002", "1", False),  # a NUL byte inside a number (math-verify alone reads 1)
]


@pytest.mark.parametrize("pred, gold, expected", EQUIV_CASES)
def test_is_equiv(pred, gold, expected):
    assert is_equiv(pred, gold) is expected


def test_at_least_sixty_equivalent_and_sixty_non_equivalent_pairs():
    assert sum(expected for _, _, expected in EQUIV_CASES) >= 60
    assert sum(not expected for _, _, expected in EQUIV_CASES) >= 60
    assert len({(pred, gold) for pred, gold, _ in EQUIV_CASES}) == len(EQUIV_CASES)  # no duplicates


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
        ("0.\\overline{3}", "\\frac13", True),  # repeating decimal
        ("0.\\overline{3}", "0", False),
        ("6.02\\times10^{23}", "602000000000000000000000", True),  # scientific notation
        ("1.5\\cdot10^{-3}", "0.0015", True),
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
    "10^{1000000}",  # a million-digit power of ten
    "10^{99999}",  # just under the exponent guard: evaluated or timed out in the worker
    "99999^{99999}",  # huge power with a non-trivial base
    "9999!",  # just under the factorial guard
    "\\binom{1000000000}{100000000}",  # huge binomial coefficient
    "e^{e^{e^{e}}}",  # symbolic tower
    "\\left(" * 10_000 + "1" + "\\right)" * 10_000,  # 10,000 nested \left( \right)
    "+".join(["x"] * 10_000),  # 20,000-character sum
    "\\frac{1}{",  # truncated fraction
    "\\sqrt{",  # truncated root
    "\\begin{pmatrix} 1 &",  # truncated matrix (math-verify alone extracts 1)
    "\\left( 1, 2",  # \left( without \right
    "1, 2 \\right)",  # \right) without \left
    "1\x002",  # NUL byte inside a number (math-verify alone extracts 1)
    "\x00",  # only a NUL byte
    "\ud800\udfff",  # lone surrogates: not encodable as UTF-8
    "\u202e1\u200b\ufeff",  # bidi override, zero-width space, BOM
    "\ufffd\u00bd\u221e",  # replacement char, vulgar fraction, infinity sign
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
    "\\boxed{" + "{" * 500_000 + "}" * 499_999,  # 1 MB, almost balanced
    "\\boxed{" + "1" * 1_000_000 + "}",  # 1 MB answer: a million-digit number
    "final answer is $" * 60_000,  # 1 MB of anchors
    "\\boxed{" * 150_000,  # 1 MB of unclosed \boxed
    "\x00\ud800" * 500_000,  # 1 MB of NUL bytes and lone surrogates
]


@pytest.mark.parametrize("response", PATHOLOGICAL_RESPONSES, ids=lambda s: repr(s[:20]))
def test_pathological_responses_are_bounded(response):
    start = time.monotonic()
    assert reward(response, "1") == 0.0
    assert time.monotonic() - start < TIME_LIMIT_S


def test_one_megabyte_response_is_extracted_quickly():
    """A 1 MB response (e.g. a degenerate generation) still yields its final answer in bounded time."""
    for response, expected in [
        ("x" * 1_000_000 + final_answer("5"), "5"),
        ("\\boxed{1} " + "y " * 500_000, "1"),
        ("$\\boxed{" + "1+" * 500_000 + "1}$", "1+" * 500_000 + "1"),
    ]:
        start = time.monotonic()
        assert extract_answer(response) == expected
        assert reward(response, "5") == (1.0 if expected == "5" else 0.0)
        assert time.monotonic() - start < TIME_LIMIT_S


def test_custom_timeout_is_respected():
    start = time.monotonic()
    assert is_equiv("(x+y+z+w)^{43}", "1", timeout_s=0.2) is False
    assert time.monotonic() - start < TIME_LIMIT_S


@pytest.mark.skipif(not hasattr(signal, "SIGSTOP"), reason="needs POSIX signals")
def test_hung_worker_is_killed_and_replaced():
    """A worker that stops answering (e.g. stuck in C code) is killed; the next call gets a new one."""
    assert is_equiv("2\\sqrt{2}", "\\sqrt{8}")  # make sure a worker is running
    stuck = grading.worker._worker
    os.kill(stuck.proc.pid, signal.SIGSTOP)
    start = time.monotonic()
    assert is_equiv("3\\sqrt{3}", "\\sqrt{27}") is False  # unanswered -> not equivalent
    assert time.monotonic() - start < TIME_LIMIT_S
    assert stuck.proc.poll() is not None  # the stuck worker was killed
    assert is_equiv("3\\sqrt{3}", "\\sqrt{27}") is True  # timeouts are not cached; fresh worker
    assert grading.worker._worker is not stuck


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
