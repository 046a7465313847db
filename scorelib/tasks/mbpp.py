"""MBPP (Austin et al. 2021): the paper's code training set.

Read from a user-supplied JSONL file in the original ``mbpp.jsonl`` format
(974 records, task_ids 1..974), one object per line with ``task_id`` (int),
``text`` (the task), ``code`` (a reference solution), ``test_list`` (assert
statements), ``test_setup_code`` and ``challenge_test_list``. The
"sanitized" variant's ``prompt`` (instead of ``text``) and ``test_imports``
(prepended to the setup code) are accepted too.

Standard split by task_id (as in the original release and the HF dataset):
1-10 few-shot prompts, 11-510 test, 511-600 validation, 601-974 train.

Prompt: the canonical 3-shot format of Austin et al., as used by
lm-evaluation-harness (shots: tasks 2, 3 and 4, joined by a blank line)::

    You are an expert Python programmer, and here is your task: {text} Your code should pass these tests:

    {test_list joined by newlines}
    [BEGIN]
    {code}
    [DONE]

for each shot, and the problem itself ending at ``[BEGIN]\\n``; the model's
answer is cut at ``[DONE]``. Programs run in :mod:`scorelib.sandbox`.
"""
from __future__ import annotations

import os

from scorelib.jsonl import iter_jsonl
from scorelib.sandbox import ExecResult, run_many, run_python
from scorelib.tasks.humaneval import extract_code

__all__ = ["load_mbpp", "mbpp_prompt", "build_program", "check_completion", "check_many", "clean_response",
           "SPLITS", "SHOT_TASK_IDS"]

#: task_id ranges (inclusive) of the standard split
SPLITS = {"prompt": (1, 10), "test": (11, 510), "validation": (511, 600), "train": (601, 974)}
#: the canonical few-shot examples (Austin et al.; lm-evaluation-harness)
SHOT_TASK_IDS = (2, 3, 4)

_TEMPLATE = ("You are an expert Python programmer, and here is your task: {text} "
             "Your code should pass these tests:\n\n{tests}\n[BEGIN]\n")


def _normalize(rec: object, where: str) -> dict:
    if not isinstance(rec, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(rec).__name__}")
    rec = dict(rec)
    if "text" not in rec and isinstance(rec.get("prompt"), str):  # sanitized MBPP
        rec["text"] = rec["prompt"]
    missing = [k for k in ("task_id", "text", "code", "test_list") if k not in rec]
    if missing:
        raise ValueError(f"{where}: record lacks {', '.join(missing)}")
    tid = rec["task_id"]
    if isinstance(tid, str) and tid.strip().isdigit():
        tid = int(tid)
    if not isinstance(tid, int) or isinstance(tid, bool):
        raise ValueError(f"{where}: task_id must be an integer, got {rec['task_id']!r}")
    rec["task_id"] = tid
    for k in ("text", "code"):
        if not isinstance(rec[k], str):
            raise ValueError(f"{where}: {k} must be a string")
    setup = rec.get("test_setup_code") or ""
    imports = rec.get("test_imports") or []
    if not isinstance(setup, str):
        raise ValueError(f"{where}: test_setup_code must be a string")
    for k, v in (("test_list", rec["test_list"]), ("challenge_test_list", rec.get("challenge_test_list") or []),
                 ("test_imports", imports)):
        if not isinstance(v, list) or not all(isinstance(t, str) for t in v):
            raise ValueError(f"{where}: {k} must be a list of strings")
    if not rec["test_list"]:
        raise ValueError(f"{where}: test_list is empty")
    rec["test_setup_code"] = "\n".join([*imports, setup]).strip("\n") if imports else setup
    rec["challenge_test_list"] = rec.get("challenge_test_list") or []
    return rec


def load_mbpp(path: str, split: str = "train") -> list[dict]:
    """MBPP problems of `split` ("train", "test", "validation", "prompt" or "all")
    from the JSONL file `path`, sorted by task_id.

    Raises FileNotFoundError for a missing file, ValueError (naming file and
    line) for a malformed line, a record lacking a field, a wrongly typed field
    or a duplicate task_id, and ValueError for an unknown split.
    """
    if split != "all" and split not in SPLITS:
        raise ValueError(f"unknown MBPP split {split!r}; expected one of {sorted(SPLITS) + ['all']}")
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"MBPP file not found: {path}")
    problems: list[dict] = []
    seen: dict[int, int] = {}
    for lineno, raw in iter_jsonl(path, objects=False):
        where = f"{path}:{lineno}"
        rec = _normalize(raw, where)
        if rec["task_id"] in seen:
            raise ValueError(f"{where}: duplicate task_id {rec['task_id']} (first on line {seen[rec['task_id']]})")
        seen[rec["task_id"]] = lineno
        problems.append(rec)
    if not problems:
        raise ValueError(f"{path}: no problems in file")
    problems.sort(key=lambda p: p["task_id"])
    if split == "all":
        return problems
    lo, hi = SPLITS[split]
    return [p for p in problems if lo <= p["task_id"] <= hi]


def _block(problem: dict) -> str:
    return _TEMPLATE.format(text=problem["text"], tests="\n".join(problem["test_list"]))


def mbpp_prompt(problem: dict, shots: list[dict], delimiter: str = "\n\n") -> str:
    """The few-shot prompt: each shot as ``... [BEGIN]\\n{code}\\n[DONE]``, then
    `problem` ending at ``[BEGIN]\\n``; blocks joined by `delimiter`. The
    canonical shots are the problems with task_id in :data:`SHOT_TASK_IDS`."""
    parts = [_block(s) + s["code"] + "\n[DONE]" for s in shots]
    parts.append(_block(problem))
    return delimiter.join(parts)


def clean_response(response: str) -> str:
    """The code in a model answer: cut at the first ``[DONE]`` (the stop marker);
    if it contains a fenced block, the code of that block."""
    code = response.split("[DONE]", 1)[0]
    if "```" in code:
        code = extract_code(code)
    return code


def build_program(problem: dict, code: str, include_challenge: bool = False) -> str:
    """test_setup_code + code + the asserts of test_list (and challenge_test_list)."""
    tests = list(problem["test_list"]) + (list(problem.get("challenge_test_list") or []) if include_challenge else [])
    setup = problem.get("test_setup_code") or ""
    return (setup + "\n" if setup else "") + code + "\n\n" + "\n".join(tests) + "\n"


def check_completion(problem: dict, response: str, timeout_s: float = 5.0, **kw) -> ExecResult:
    """Run `problem`'s tests on a model response (``[DONE]`` and anything after it removed)."""
    return run_python(build_program(problem, clean_response(response)), timeout_s=timeout_s, **kw)


def check_many(problems: list[dict], responses: list[str], workers: int = 2, timeout_s: float = 5.0,
               **kw) -> list[ExecResult]:
    """:func:`check_completion` for each (problem, response) pair, in order."""
    if len(problems) != len(responses):
        raise ValueError(f"{len(problems)} problems but {len(responses)} responses")
    programs = [build_program(p, clean_response(r)) for p, r in zip(problems, responses)]
    return run_many(programs, workers=workers, timeout_s=timeout_s, **kw)
