"""JSON Lines, read and written in one place: one JSON value a line, blank lines skipped.

    rows = read_jsonl("answers.jsonl")               # a list of dicts; a bad line raises JSONLError
    for lineno, row in iter_jsonl("HumanEval.jsonl.gz"):  # .gz is read transparently
        ...
    write_jsonl(run_dir / "history.jsonl", rows)     # atomic: the old file or the new one, never half

A malformed file raises ``JSONLError`` (a ValueError) naming the file and the line:
``answers.jsonl:3: not valid JSON (Expecting value)``. Readers that keep going past a bad
line (``python -m scorelib grade``) use ``iter_lines`` and ``parse_line`` and turn the error
into a row of their own.
"""
from __future__ import annotations

import gzip
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any


class JSONLError(ValueError):
    """A JSONL file that cannot be read: ``path``, ``lineno`` (None: the whole file) and ``reason``."""

    def __init__(self, path, lineno: int | None, reason: str):
        self.path, self.lineno, self.reason = str(path), lineno, reason
        super().__init__(f"{path}:{lineno}: {reason}" if lineno is not None else f"{path}: {reason}")


def iter_lines(path: str | Path, errors: str = "strict") -> Iterator[tuple[int, str]]:
    """(line number from 1, text) of each non-blank line; a ``.gz`` file is decompressed. ``errors``: what a
    line that is not UTF-8 does ("strict": a JSONLError; "replace": U+FFFD for the bad bytes)."""
    path = Path(path)
    gz = path.suffix == ".gz"
    try:
        with (gzip.open(path, "rb") if gz else open(path, "rb")) as f:
            for lineno, raw in enumerate(f, 1):
                try:
                    text = raw.decode("utf-8", errors)
                except UnicodeDecodeError:
                    raise JSONLError(path, lineno, "line is not UTF-8 (is this a JSONL file?)") from None
                if text.strip():
                    yield lineno, text
    except (EOFError, gzip.BadGzipFile, OSError) as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise JSONLError(path, None, f"cannot be read as {'gzipped ' if gz else ''}JSONL ({e})") from None


def parse_line(text: str, path: str | Path, lineno: int, objects: bool = True) -> Any:
    """One line's JSON value (a dict when ``objects``), or a JSONLError naming ``path:lineno``."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise JSONLError(path, lineno, f"not valid JSON ({e.msg})") from None
    if objects and not isinstance(value, dict):
        raise JSONLError(path, lineno, f"expected a JSON object, got {type(value).__name__}")
    return value


def iter_jsonl(path: str | Path, objects: bool = True) -> Iterator[tuple[int, Any]]:
    """(line number, value) of each non-blank line. ``objects``: every value must be a JSON object."""
    for lineno, text in iter_lines(path):
        yield lineno, parse_line(text, path, lineno, objects)


def read_jsonl(path: str | Path, objects: bool = True) -> list:
    """Every line's value, in order (FileNotFoundError for a missing file, JSONLError for a bad line)."""
    return [value for _, value in iter_jsonl(path, objects)]


def dumps(rows: Iterable, ensure_ascii: bool = True) -> str:
    """Rows as JSONL text: one ``json.dumps`` a line, each ending in a newline."""
    return "".join(json.dumps(r, ensure_ascii=ensure_ascii) + "\n" for r in rows)


def write_jsonl(path: str | Path, rows: Iterable, ensure_ascii: bool = True) -> Path:
    """Write rows as JSONL atomically (a temporary beside ``path``, then renamed over it)."""
    from scorelib.results import atomic_write_text

    return atomic_write_text(path, dumps(rows, ensure_ascii))
