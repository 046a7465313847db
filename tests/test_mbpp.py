"""Tests for scorelib.tasks.mbpp on a small hand-written file in the MBPP JSONL format."""
from __future__ import annotations

import json

import pytest

from scorelib.tasks import mbpp

RECORDS = [
    {"task_id": 2, "text": "Write a function to find the shared elements from the given two lists.",
     "code": "def similar_elements(a, b):\n    return tuple(sorted(set(a) & set(b)))",
     "test_list": ["assert similar_elements((3, 4, 5, 6), (5, 7, 4, 10)) == (4, 5)",
                   "assert similar_elements((1, 2, 3, 4), (5, 4, 3, 7)) == (3, 4)"],
     "test_setup_code": "", "challenge_test_list": []},
    {"task_id": 3, "text": "Write a python function to identify non-prime numbers.",
     "code": "import math\ndef is_not_prime(n):\n    return n < 2 or any(n % i == 0 for i in range(2, math.isqrt(n) + 1))",
     "test_list": ["assert is_not_prime(2) == False", "assert is_not_prime(10) == True",
                   "assert is_not_prime(35) == True"],
     "test_setup_code": "", "challenge_test_list": ["assert is_not_prime(37) == False"]},
    {"task_id": 4, "text": "Write a function to find the n largest integers from a list, in descending order.",
     "code": "import heapq\ndef heap_queue_largest(nums, n):\n    return heapq.nlargest(n, nums)",
     "test_list": ["assert heap_queue_largest([25, 35, 22, 85, 14], 2) == [85, 35]"],
     "test_setup_code": "", "challenge_test_list": []},
    {"task_id": 15, "text": "Write a function to add the constant OFFSET to a number.",
     "code": "def add_offset(x):\n    return x + OFFSET",
     "test_list": ["assert add_offset(1) == 11", "assert add_offset(-10) == 0"],
     "test_setup_code": "OFFSET = 10", "challenge_test_list": []},
    {"task_id": 700, "text": "Write a function to reverse a string.",
     "code": "def rev(s):\n    return s[::-1]",
     "test_list": ["assert rev('abc') == 'cba'"], "test_setup_code": "", "challenge_test_list": []},
    {"task_id": 550, "text": "Write a function to square a number.",
     "code": "def sq(x):\n    return x * x",
     "test_list": ["assert sq(3) == 9"], "test_setup_code": "", "challenge_test_list": []},
]


@pytest.fixture
def mbpp_file(tmp_path):
    path = tmp_path / "mbpp.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in reversed(RECORDS)) + "\n")  # unsorted, blank line
    return path


def test_load_splits(mbpp_file):
    ids = lambda split: [p["task_id"] for p in mbpp.load_mbpp(str(mbpp_file), split)]  # noqa: E731
    assert ids("all") == [2, 3, 4, 15, 550, 700]
    assert ids("prompt") == [2, 3, 4]
    assert ids("test") == [15]
    assert ids("validation") == [550]
    assert ids("train") == [700]
    assert ids("train") == [p["task_id"] for p in mbpp.load_mbpp(mbpp_file)]  # train is the default
    with pytest.raises(ValueError, match="unknown MBPP split"):
        mbpp.load_mbpp(str(mbpp_file), "dev")


def test_split_boundaries_are_the_standard_ones():
    assert mbpp.SPLITS == {"prompt": (1, 10), "test": (11, 510), "validation": (511, 600), "train": (601, 974)}


def test_prompt_format_exact(mbpp_file):
    problems = {p["task_id"]: p for p in mbpp.load_mbpp(str(mbpp_file), "all")}
    shots = [problems[i] for i in mbpp.SHOT_TASK_IDS]
    prompt = mbpp.mbpp_prompt(problems[15], shots)
    expected_shot_2 = (
        "You are an expert Python programmer, and here is your task: "
        "Write a function to find the shared elements from the given two lists. "
        "Your code should pass these tests:\n\n"
        "assert similar_elements((3, 4, 5, 6), (5, 7, 4, 10)) == (4, 5)\n"
        "assert similar_elements((1, 2, 3, 4), (5, 4, 3, 7)) == (3, 4)\n"
        "[BEGIN]\n"
        "def similar_elements(a, b):\n    return tuple(sorted(set(a) & set(b)))\n"
        "[DONE]"
    )
    expected_final = (
        "You are an expert Python programmer, and here is your task: "
        "Write a function to add the constant OFFSET to a number. "
        "Your code should pass these tests:\n\n"
        "assert add_offset(1) == 11\nassert add_offset(-10) == 0\n"
        "[BEGIN]\n"
    )
    assert prompt.startswith(expected_shot_2 + "\n\n")
    assert prompt.endswith("[DONE]\n\n" + expected_final)
    assert prompt.count("[BEGIN]\n") == 4 and prompt.count("[DONE]") == 3
    assert "assert is_not_prime(37)" not in prompt  # challenge tests are not shown
    assert mbpp.mbpp_prompt(problems[15], []) == expected_final  # zero-shot


def test_correct_and_wrong_programs(mbpp_file):
    problems = {p["task_id"]: p for p in mbpp.load_mbpp(str(mbpp_file), "all")}
    p = problems[15]
    prog = mbpp.build_program(p, "def add_offset(x):\n    return x + OFFSET")
    assert prog.startswith("OFFSET = 10\n") and prog.rstrip().endswith("assert add_offset(-10) == 0")
    ok = mbpp.check_completion(p, "def add_offset(x):\n    return x + OFFSET\n[DONE]\nextra text [BEGIN]")
    assert ok.passed, ok.stderr
    wrong = mbpp.check_completion(p, "def add_offset(x):\n    return x + 1\n[DONE]")
    assert not wrong.passed and wrong.reason.startswith("failed: AssertionError")
    fenced = mbpp.check_completion(p, "```python\ndef add_offset(x):\n    return OFFSET + x\n```\n[DONE]")
    assert fenced.passed, fenced.stderr
    early_exit = mbpp.check_completion(p, "def add_offset(x):\n    return 0\nimport sys\nsys.exit(0)")
    assert not early_exit.passed
    # every reference solution passes its own tests (and the challenge tests)
    refs = [problems[i] for i in sorted(problems)]
    results = mbpp.check_many(refs, [r["code"] for r in refs], workers=2)
    assert all(r.passed for r in results), [r.reason for r in results]
    challenge = mbpp.build_program(problems[3], problems[3]["code"], include_challenge=True)
    assert "assert is_not_prime(37) == False" in challenge
    with pytest.raises(ValueError):
        mbpp.check_many(refs, [])


def test_clean_response():
    assert mbpp.clean_response("def f():\n    pass\n[DONE]\nmore") == "def f():\n    pass\n"
    assert mbpp.clean_response("x = 1") == "x = 1"


def test_sanitized_variant_fields(tmp_path):
    rec = {"task_id": 602, "prompt": "Write a function to double x.", "code": "def dbl(x):\n    return 2 * x",
           "test_imports": ["import math"], "test_list": ["assert dbl(math.floor(2.5)) == 4"]}
    path = tmp_path / "sanitized.jsonl"
    path.write_text(json.dumps(rec) + "\n")
    (p,) = mbpp.load_mbpp(str(path), "train")
    assert p["text"] == rec["prompt"] and p["test_setup_code"] == "import math"
    assert mbpp.check_completion(p, p["code"]).passed


def write_lines(path, lines):
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_malformed_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        mbpp.load_mbpp(str(tmp_path / "nope.jsonl"))
    good = json.dumps(RECORDS[0])
    bad = tmp_path / "bad.jsonl"
    cases = [
        ([good, "{oops"], r"bad\.jsonl:2: not valid JSON"),
        ([good, "[]"], r"bad\.jsonl:2: expected a JSON object"),
        ([json.dumps({k: v for k, v in RECORDS[0].items() if k != "test_list"})], r"bad\.jsonl:1: record lacks test_list"),
        ([json.dumps({**RECORDS[0], "task_id": "two"})], r"bad\.jsonl:1: task_id must be an integer"),
        ([json.dumps({**RECORDS[0], "test_list": "assert True"})], r"bad\.jsonl:1: test_list must be a list of strings"),
        ([json.dumps({**RECORDS[0], "test_list": []})], r"bad\.jsonl:1: test_list is empty"),
        ([json.dumps({**RECORDS[0], "code": None})], r"bad\.jsonl:1: code must be a string"),
        ([good, "", good], r"bad\.jsonl:3: duplicate task_id 2 \(first on line 1\)"),
        ([""], r"no problems"),
    ]
    for lines, pattern in cases:
        with pytest.raises(ValueError, match=pattern):
            mbpp.load_mbpp(write_lines(bad, lines), "all")
    binary = tmp_path / "bin.jsonl"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ValueError, match="bin.jsonl"):
        mbpp.load_mbpp(str(binary), "all")
