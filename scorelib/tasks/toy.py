"""The toy world: seeded MATH-style arithmetic problems with exact answers.

Each problem is a record in the MATH/PRM800K format (``problem``, ``solution``,
``answer``, ``subject``, ``level``, ``unique_id``), so the toy world and the real
MATH task share every downstream function (prompting, grading, metrics).

Four skills (``subject``), five difficulty levels (more digits, longer
scratchpads, more chances to slip):

* ``add``   ``Compute $457+386$.``        two numbers of `level` digits
* ``sub``   ``Compute $457-386$.``        two numbers of `level` digits, result > 0
* ``mul``   ``Compute $4571\\times 6$.``   a `level`-digit number times one digit
* ``combo`` ``Compute $(45+38)\\times 6$.`` a sum of two ceil(level/2)-digit numbers, then times one digit

Solutions are column-by-column scratchpads written from the least significant
digit, ending in the paper's answer format ("Final Answer: The final answer is
$X$. I hope it is correct."). Errors in such scratchpads are systematic (a dropped
carry, a wrong borrow), which is what a tiny model actually gets wrong.

Departure from the paper: MATH is replaced by arithmetic a 1M-parameter model can
half-learn in a minute of CPU time; the protocol, answer format and grading are
the paper's.
"""
from __future__ import annotations

import hashlib
import random
import re

from scorelib.grading import FINAL_ANSWER_PREFIX, FINAL_ANSWER_SUFFIX
from scorelib.tasks.problem import Problem

SKILLS = ("add", "sub", "mul", "combo")
LEVELS = (1, 2, 3, 4, 5)
TEST_BUCKET_PERCENT = 20  # a problem whose text hashes into buckets [0, 20) of 100 is test-only
VAL_BUCKET_PERCENT = 10  # buckets [20, 30) are validation-only; [30, 100) are training problems
SPLITS = ("train", "val", "test")


def final_answer(answer: str) -> str:
    """The paper's answer sentence."""
    return f"{FINAL_ANSWER_PREFIX}{answer}{FINAL_ANSWER_SUFFIX}"


def _digits(x: int) -> list[int]:
    """Digits of x, least significant first."""
    return [int(c) for c in reversed(str(x))]


def _from_digits(ds: list[int]) -> int:
    return int("".join(str(d) for d in reversed(ds))) if ds else 0


# A fault (column, delta) adds delta to one column's result: the error a solver makes
# when it slips on one step and carries the slip through the rest of the scratchpad.
Fault = tuple[int, int] | None


def add_steps(a: int, b: int, fault: Fault = None) -> tuple[list[str], int]:
    """Column addition: one 'a_i+b_i+carry=s' step per column."""
    da, db = _digits(a), _digits(b)
    n = max(len(da), len(db))
    da += [0] * (n - len(da))
    db += [0] * (n - len(db))
    steps, out, carry = [], [], 0
    for i, (x, y) in enumerate(zip(da, db)):
        s = x + y + carry
        if fault and fault[0] == i:
            s = max(0, s + fault[1])
        steps.append(f"{x}+{y}+{carry}={s}")
        out.append(s % 10)
        carry = s // 10
    if carry:
        out.append(carry)
    return steps, _from_digits(out)


def sub_steps(a: int, b: int, fault: Fault = None) -> tuple[list[str], int]:
    """Column subtraction (a > b): a borrowed column is written '1x-y-borrow=d'."""
    da, db = _digits(a), _digits(b)
    db += [0] * (len(da) - len(db))
    steps, out, borrow = [], [], 0
    for i, (x, y) in enumerate(zip(da, db)):
        d = x - y - borrow
        borrowed = d < 0
        if borrowed:
            d += 10
        if fault and fault[0] == i:
            d = min(9, max(0, d + fault[1]))
        steps.append(f"1{x}-{y}-{borrow}={d}" if borrowed else f"{x}-{y}-{borrow}={d}")
        out.append(d)
        borrow = int(borrowed)
    return steps, _from_digits(out)


def mul_steps(a: int, d: int, fault: Fault = None) -> tuple[list[str], int]:
    """Multiplication by one digit: one 'a_i*d+carry=p' step per column."""
    steps, out, carry = [], [], 0
    for i, x in enumerate(_digits(a)):
        p = x * d + carry
        if fault and fault[0] == i:
            p = max(0, p + fault[1])
        steps.append(f"{x}*{d}+{carry}={p}")
        out.append(p % 10)
        carry = p // 10
    if carry:
        out.append(carry)
    return steps, _from_digits(out)


def _rand_n_digits(rng: random.Random, n: int) -> int:
    return rng.randint(10 ** (n - 1), 10**n - 1)


def draw_operands(rng: random.Random, skill: str, level: int) -> tuple[int, ...]:
    """Operands of one problem of a skill and level."""
    if skill in ("add", "sub"):
        a, b = _rand_n_digits(rng, level), _rand_n_digits(rng, level)
        if skill == "sub":
            a, b = max(a, b), min(a, b)
            if a == b:  # keep the answer positive
                a, b = (a + 1, b) if a < 10**level - 1 else (a, b - 1)
        return a, b
    if skill == "mul":
        return _rand_n_digits(rng, level), rng.randint(2, 9)
    if skill == "combo":
        n = (level + 1) // 2
        return _rand_n_digits(rng, n), _rand_n_digits(rng, n), rng.randint(2, 9)
    raise ValueError(f"unknown skill {skill!r}; valid skills: {SKILLS}")


def statement(skill: str, ops: tuple[int, ...]) -> str:
    """The problem text in MATH style."""
    expr = {"add": "{}+{}", "sub": "{}-{}", "mul": "{}\\times {}", "combo": "({}+{})\\times {}"}[skill]
    return f"Compute ${expr.format(*ops)}$."


def solve(skill: str, ops: tuple[int, ...], fault: Fault = None) -> tuple[list[str], int]:
    """The scratchpad and answer; a fault makes one step wrong, carried through consistently."""
    if skill == "add":
        return add_steps(*ops, fault=fault)
    if skill == "sub":
        return sub_steps(*ops, fault=fault)
    if skill == "mul":
        return mul_steps(*ops, fault=fault)
    a, b, d = ops
    n1 = len(str(max(a, b)))
    f1 = fault if fault and fault[0] < n1 else None
    f2 = (fault[0] - n1, fault[1]) if fault and fault[0] >= n1 else None
    s1, total = add_steps(a, b, fault=f1)
    s2, ans = mul_steps(total, d, fault=f2)
    return s1 + [f"so {total}."] + s2, ans


def n_columns(skill: str, ops: tuple[int, ...]) -> int:
    """How many scratchpad steps a fault can hit."""
    if skill == "combo":
        return len(str(max(ops[0], ops[1]))) + len(str(ops[0] + ops[1]))
    return len(str(ops[0]))


def write_solution(steps: list[str], answer: int | str) -> str:
    """A scratchpad followed by the paper's answer sentence."""
    return " ".join(steps) + " " + final_answer(str(answer))


def _bucket(text: str) -> int:
    """The statement's hash bucket, 0-99."""
    return int(hashlib.md5(text.encode()).hexdigest()[:8], 16) % 100


def split_of(text: str) -> str:
    """'test', 'val' or 'train': a deterministic split by a hash of the statement, so the three never overlap."""
    h = _bucket(text)
    return "test" if h < TEST_BUCKET_PERCENT else "val" if h < TEST_BUCKET_PERCENT + VAL_BUCKET_PERCENT else "train"


def is_test_problem(text: str) -> bool:
    """Whether the statement belongs to the test split (see split_of)."""
    return _bucket(text) < TEST_BUCKET_PERCENT


def check_level_weights(weights, n_levels: int = len(LEVELS)) -> None:
    """ValueError unless weights are n_levels non-negative numbers, not all 0."""
    ok = (len(weights) == n_levels and all(isinstance(w, (int, float)) and not isinstance(w, bool) and w >= 0
                                           for w in weights) and sum(weights) > 0)
    if not ok:
        raise ValueError(f"level_weights must be {n_levels} non-negative numbers, not all 0; got {tuple(weights)!r}")


def generate(n: int, split: str = "train", seed: int = 0, skills: tuple[str, ...] = SKILLS,
             levels: tuple[int, ...] = LEVELS, level_weights: tuple[float, ...] | None = None) -> list[Problem]:
    """n problems of one split, skills uniformly and levels by weight (default uniform); same seed, same list.

    Draws are independent, so the small level-1 pools (e.g. one-digit sums) repeat: each
    level keeps its share, and a repeated problem counts once per draw in every metric.
    Train, val and test never share a problem (the split is by a hash of the statement, see split_of).
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    for s in skills:
        if s not in SKILLS:
            raise ValueError(f"unknown skill {s!r}; valid skills: {SKILLS}")
    for lv in levels:
        if lv not in LEVELS:
            raise ValueError(f"unknown level {lv!r}; valid levels: {LEVELS}")
    weights = list(level_weights) if level_weights is not None else [1.0] * len(levels)
    check_level_weights(weights, len(levels))
    rng = random.Random(f"toy-{split}-{seed}")
    out: list[Problem] = []
    draws = 0
    while len(out) < n:
        draws += 1
        if draws > 100 * n + 10_000:  # only if the chosen skills and levels have (almost) no problem in this split
            raise ValueError(f"could not draw {n} {split} problems from skills {skills} and levels {levels}")
        skill, level = rng.choice(skills), rng.choices(levels, weights)[0]
        ops = draw_operands(rng, skill, level)
        text = statement(skill, ops)
        if split_of(text) != split:
            continue
        steps, ans = solve(skill, ops)
        out.append(Problem(text, write_solution(steps, ans), str(ans), skill, level,
                           f"toy/{split}/{seed}/{len(out)}"))
    return out


_STATEMENT = re.compile(r"^Compute \$(?:\((\d+)\+(\d+)\)\\times (\d)|(\d+)([+-])(\d+)|(\d+)\\times (\d))\$\.$")


def parse_statement(text: str) -> tuple[str, tuple[int, ...]]:
    """(skill, operands) of a toy statement; ValueError for anything else."""
    m = _STATEMENT.match(text)
    if not m:
        raise ValueError(f"not a toy-world statement: {text[:80]!r}")
    g = m.groups()
    if g[0] is not None:
        return "combo", (int(g[0]), int(g[1]), int(g[2]))
    if g[3] is not None:
        return ("add" if g[4] == "+" else "sub"), (int(g[3]), int(g[5]))
    return "mul", (int(g[6]), int(g[7]))


def corrupt_solution(p: Problem, rng: random.Random) -> tuple[str, str]:
    """A wrong solution of p with one injected slip carried through: (solution, answer)."""
    skill, ops = parse_statement(p.problem)
    for _ in range(20):
        fault = (rng.randrange(n_columns(skill, ops)), rng.choice((-2, -1, 1, 2)))
        steps, ans = solve(skill, ops, fault)
        if str(ans) != p.answer:
            return write_solution(steps, ans), str(ans)
    steps, ans = solve(skill, ops)  # every slip cancelled out (rare): change the last digit instead
    wrong = ans + 1
    return write_solution(steps, wrong), str(wrong)


# ------------------------------------------------------------------------------------------
# A second way to write a solution out (the "re-solve" a second attempt can take)
# ------------------------------------------------------------------------------------------
# The same column algorithm, written differently: it opens with "Again:", restates the expression ("457+386
# gives"), then writes each step as "7+6+0 is 13," instead of "7+6+0=13". A second attempt that re-derives the
# answer this way looks unlike a copy of the first (a large edit distance, as a real model's rewrite does), the
# one-token opening makes "copy or re-solve" a single decision, and restating the expression puts the operands
# next to the steps that read them, as in a first attempt (without it a tiny model re-solved far worse than it
# solved: runbook.md, 2026-11-30).
ALT_PREFIX = "Again:"
_STEP = re.compile(r"^(1?\d)([+*-])(\d)([+-])(\d+)=(\d+)$")


def alt_step(step: str) -> str:
    """One scratchpad step in the second style: '7+6+0=13' -> '7+6+0 is 13,'; '15-8-0=7' -> '15-8-0 is 7,';
    '4*6+2=26' -> '4*6+2 is 26,'; 'so 83.' -> 'that is 83,'."""
    if step.startswith("so "):
        return f"that is {step[3:].rstrip('.')},"
    m = _STEP.match(step)
    if not m:
        raise ValueError(f"not a scratchpad step: {step!r}")
    x, op, y, op2, c, r = m.groups()
    return f"{x}{op}{y}{op2}{c} is {r},"


def alt_solution(p: Problem, fault: Fault = None) -> tuple[str, str]:
    """p's solution written in the second style (with an optional fault carried through): (solution, answer)."""
    skill, ops = parse_statement(p.problem)
    steps, ans = solve(skill, ops, fault)
    expr = {"add": "{}+{}", "sub": "{}-{}", "mul": "{}\\times {}", "combo": "({}+{})\\times {}"}[skill].format(*ops)
    return " ".join([ALT_PREFIX, expr, "gives"] + [alt_step(s) for s in steps]) + " " + final_answer(str(ans)), str(ans)
