"""The MATH task (Hendrycks et al. 2021) with the PRM800K train/test split used by SCoRe.

SCoRe (Kumar et al. 2024, Sec. 6 and App.) trains on MATH with the PRM800K split
(Lightman et al. 2023): the 7,500 MATH training problems plus 4,500 of the 5,000 MATH
test problems (about 12,000) are for training, and the remaining 500 test problems
(MATH500) are for evaluation. MATH500 is identified by its ``unique_id`` paths
(e.g. ``"test/precalculus/807.json"``).

The data never ships with the project: the user points :func:`load_math` at a copy.
Accepted formats, all giving :class:`~scorelib.tasks.problem.Problem` records (the toy
world's record type too, so prompting, grading and metrics are shared):

* JSONL: one object a line with ``problem``, ``solution``, ``answer``, ``subject``,
  ``level`` and optionally ``unique_id`` (the PRM800K ``math_splits/*.jsonl`` files);
* parquet with the same columns (e.g. a Hugging Face export), read with pandas;
* a ``.json`` file holding one such object or a list of them;
* a directory in the original Hendrycks layout (``<split>/<subject>/<n>.json``, each
  with ``problem``, ``level``, ``type``, ``solution``). ``unique_id`` is the path
  relative to the directory, prefixed with the directory's name when that name is
  ``train`` or ``test``, so ``MATH/test`` gives MATH500's ``test/precalculus/807.json``.

Field rules: ``level`` may be an int, ``"Level 3"`` or ``"Level ?"`` (stored as an int,
0 when unknown); ``subject`` falls back on Hendrycks' ``type``; a missing ``answer`` is
taken from the last ``\\boxed{}`` of the solution; a missing ``unique_id`` becomes
``"<file name>/<index>"``.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from scorelib.grading import extract_answer
from scorelib.jsonl import iter_jsonl
from scorelib.tasks.problem import Problem

__all__ = [
    "default_math500_path",
    "load_math",
    "load_math_splits",
    "prm800k_split",
]

log = logging.getLogger(__name__)

_PARQUET_SUFFIXES = (".parquet", ".pq")
_LEVEL_RE = re.compile(r"\d+")
_SPLIT_DIR_NAMES = ("train", "test")

# A record read from disk: (where it came from, for error messages; the raw mapping; fallback id).
_Raw = tuple[str, dict, str]


# ---------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------


def load_math(path: str | Path) -> list[Problem]:
    """Load MATH-format problems from a JSONL, parquet or ``.json`` file or a Hendrycks directory.

    Raises FileNotFoundError if ``path`` does not exist, and ValueError (naming the file and
    the line or row) for malformed JSON, a record without ``problem``, a record with neither
    an ``answer`` nor a ``\\boxed{}`` answer in its ``solution``, a duplicate ``unique_id``,
    or a file with no records.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"MATH data not found: {path}")
    if path.is_dir():
        raws = _read_hendrycks_dir(path)
    elif path.suffix.lower() in _PARQUET_SUFFIXES:
        raws = _read_parquet(path)
    elif path.suffix.lower() == ".json":
        raws = _read_json(path)
    else:
        raws = _read_jsonl(path)

    problems: list[Problem] = []
    first_seen: dict[str, str] = {}
    for where, record, fallback_id in raws:
        problem = _to_problem(record, where, fallback_id)
        if problem.unique_id in first_seen:
            raise ValueError(
                f"{where}: duplicate unique_id {problem.unique_id!r} (first at {first_seen[problem.unique_id]})"
            )
        first_seen[problem.unique_id] = where
        problems.append(problem)
    if not problems:
        raise ValueError(f"{path}: no MATH records (empty file or directory)")
    return problems


def _read_jsonl(path: Path) -> Iterator[_Raw]:
    for index, (lineno, record) in enumerate(iter_jsonl(path, objects=False)):
        yield f"{path}:{lineno}", record, f"{path.name}/{index}"


def _read_json(path: Path) -> Iterator[_Raw]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}:{e.lineno}: malformed JSON ({e.msg})") from None
    records = data if isinstance(data, list) else [data]
    for index, record in enumerate(records):
        yield f"{path}, record {index}", record, f"{path.name}/{index}"


def _read_parquet(path: Path) -> Iterator[_Raw]:
    import pandas as pd

    frame = pd.read_parquet(path)
    if len(frame) and "problem" not in frame.columns:
        raise ValueError(f"{path}: no 'problem' column (columns: {list(frame.columns)})")
    for index, record in enumerate(frame.to_dict(orient="records")):
        yield f"{path}, row {index}", record, f"{path.name}/{index}"


def _read_hendrycks_dir(root: Path) -> Iterator[_Raw]:
    prefix = Path(root.name) if root.name in _SPLIT_DIR_NAMES else Path()
    for file in sorted(root.rglob("*.json"), key=_natural_key):
        try:
            record = json.loads(file.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise ValueError(f"{file}:{e.lineno}: malformed JSON ({e.msg})") from None
        yield str(file), record, (prefix / file.relative_to(root)).as_posix()


def _natural_key(path: Path) -> tuple:
    """Sort "algebra/10.json" after "algebra/9.json"."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.as_posix()))


def _missing(value) -> bool:
    """None, NaN (pandas' missing value) or a blank string."""
    if value is None:
        return True
    if isinstance(value, float) and value != value:
        return True
    return isinstance(value, str) and not value.strip()


def _text(value) -> str:
    if _missing(value):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # a numeric parquet column turns "5" into 5.0
    return str(value)


def _parse_level(value) -> int:
    """5, 5.0, "5", "Level 5" -> 5; "Level ?", "?", missing -> 0."""
    if _missing(value) or isinstance(value, bool):
        return 0
    if isinstance(value, (int, float)):
        return int(value) if abs(value) < 1e9 else 0
    match = _LEVEL_RE.search(str(value))
    return int(match.group()) if match else 0


def _to_problem(record, where: str, fallback_id: str) -> Problem:
    if not isinstance(record, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(record).__name__}")
    problem = _text(record.get("problem"))
    if not problem.strip():
        raise ValueError(f"{where}: record has no 'problem'")
    solution = _text(record.get("solution"))
    answer = _text(record.get("answer")).strip()
    if not answer:
        answer = extract_answer(solution) or ""
    if not answer:
        raise ValueError(f"{where}: record has no 'answer' and its 'solution' has no \\boxed{{}} answer")
    subject = _text(record.get("subject")) or _text(record.get("type"))
    unique_id = _text(record.get("unique_id")) or fallback_id
    return Problem(
        problem=problem,
        solution=solution,
        answer=answer,
        subject=subject,
        level=_parse_level(record.get("level")),
        unique_id=unique_id,
    )


# ---------------------------------------------------------------------------------------
# The PRM800K split: train on everything but MATH500, evaluate on MATH500
# ---------------------------------------------------------------------------------------


def _text_key(text: str) -> str:
    """Problem text with runs of whitespace collapsed, for duplicate detection."""
    return " ".join(text.split())


def prm800k_split(problems: Iterable[Problem], test_ids: Iterable[str]) -> tuple[list[Problem], list[Problem]]:
    """Split ``problems`` into (train, test) by the PRM800K convention.

    ``test_ids`` are the ``unique_id``s of the evaluation problems (MATH500, e.g.
    ``"test/precalculus/807.json"``). A problem whose id is in ``test_ids`` goes to test;
    every other problem goes to train, except one whose problem text (whitespace
    normalised) equals a test problem's text: MATH has a few duplicated problems under
    different ids, and such a copy would leak the test problem into training, so it is
    dropped from both. Order is preserved.
    """
    problems = list(problems)
    test_ids = set(test_ids)
    test = [p for p in problems if p.unique_id in test_ids]
    test_texts = {_text_key(p.problem) for p in test}
    train = [p for p in problems if p.unique_id not in test_ids and _text_key(p.problem) not in test_texts]
    dropped = len(problems) - len(test) - len(train)
    if dropped:
        log.info("prm800k_split: dropped %d training problem(s) that duplicate a test problem", dropped)
    return train, test


def load_math_splits(train_path: str | Path, test_path: str | Path) -> tuple[list[Problem], list[Problem]]:
    """Load (train, test) for MATH with no test problem leaking into train.

    ``test = load_math(test_path)`` (MATH500 for the paper). ``train = load_math(train_path)``
    minus every problem whose ``unique_id`` is a test id or whose whitespace-normalised problem
    text is a test problem's text. So ``train_path`` may be PRM800K's 12,000-problem train
    split or the full 12,500-problem MATH set (train + test): either way the 500 test problems
    are removed from training.
    """
    test = load_math(test_path)
    test_ids = {p.unique_id for p in test}
    test_texts = {_text_key(p.problem) for p in test}
    all_train = load_math(train_path)
    train = [p for p in all_train if p.unique_id not in test_ids and _text_key(p.problem) not in test_texts]
    if len(train) < len(all_train):
        log.info(
            "load_math_splits: removed %d of %d training problems that are in the test set",
            len(all_train) - len(train),
            len(all_train),
        )
    if not train:
        raise ValueError(f"{train_path}: no training problems left after removing the test set {test_path}")
    return train, test


def default_math500_path() -> Path | None:
    """``<project root>/../shared/data/math500.jsonl`` if it exists (tests and CI only), else None."""
    project_root = Path(__file__).resolve().parents[2]
    path = project_root.parent / "shared" / "data" / "math500.jsonl"
    return path if path.is_file() else None
