"""scorelib.jsonl: reading (errors name the file and line) and atomic writing, on hand-made files."""
from __future__ import annotations

import gzip
import os

import pytest

from scorelib import jsonl, results
from scorelib.jsonl import JSONLError, iter_jsonl, read_jsonl, write_jsonl


def test_read_skips_blank_lines_and_numbers_the_rest(tmp_path):
    p = tmp_path / "a.jsonl"
    p.write_text('{"a": 1}\n\n  \n{"b": [1, 2]}\n{"c": "\u0394"}')  # no newline at the end
    assert list(iter_jsonl(p)) == [(1, {"a": 1}), (4, {"b": [1, 2]}), (5, {"c": "\u0394"})]
    assert read_jsonl(p) == [{"a": 1}, {"b": [1, 2]}, {"c": "\u0394"}]


def test_gzip_is_read_transparently(tmp_path):
    p = tmp_path / "a.jsonl.gz"
    with gzip.open(p, "wt", encoding="utf-8") as f:
        f.write('{"x": 1}\n{"x": 2}\n')
    assert read_jsonl(p) == [{"x": 1}, {"x": 2}]
    bad = tmp_path / "bad.jsonl.gz"
    bad.write_bytes(b"not gzip at all")
    with pytest.raises(JSONLError, match=r"bad\.jsonl\.gz: cannot be read as gzipped JSONL"):
        read_jsonl(bad)


@pytest.mark.parametrize("text,pattern", [
    ('{"a": 1}\n{"a": \n', r"m\.jsonl:2: not valid JSON \(Expecting value\)"),
    ('{"a": 1}\n\n[1, 2]\n', r"m\.jsonl:3: expected a JSON object, got list"),
    ('"s"\n', r"m\.jsonl:1: expected a JSON object, got str"),
])
def test_malformed_line_names_file_and_line(tmp_path, text, pattern):
    p = tmp_path / "m.jsonl"
    p.write_text(text)
    with pytest.raises(JSONLError, match=pattern) as e:
        read_jsonl(p)
    assert isinstance(e.value, ValueError) and e.value.path == str(p)


def test_objects_false_accepts_any_value(tmp_path):
    p = tmp_path / "v.jsonl"
    p.write_text('[1, 2]\n"s"\n3\nnull\n')
    assert read_jsonl(p, objects=False) == [[1, 2], "s", 3, None]


def test_not_utf8(tmp_path):
    p = tmp_path / "latin1.jsonl"
    p.write_bytes(b'{"a": 1}\n{"a": "\xe9"}\n')
    with pytest.raises(JSONLError, match=r"latin1\.jsonl:2: line is not UTF-8"):
        read_jsonl(p)
    assert [t for _, t in jsonl.iter_lines(p, errors="replace")][1] == '{"a": "\ufffd"}\n'


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_jsonl(tmp_path / "nope.jsonl")


def test_parse_line_reason_for_tolerant_readers():
    with pytest.raises(JSONLError) as e:
        jsonl.parse_line("not json", "f.jsonl", 7)
    assert (e.value.lineno, e.value.reason) == (7, "not valid JSON (Expecting value)")
    assert str(e.value) == "f.jsonl:7: not valid JSON (Expecting value)"


def test_write_round_trips_and_matches_json_dumps(tmp_path):
    rows = [{"a": 1, "b": [0.5, None]}, {"t": "\u0394"}]
    p = write_jsonl(tmp_path / "sub" / "w.jsonl", rows)  # the folder is made
    assert p.read_text(encoding="utf-8") == '{"a": 1, "b": [0.5, null]}\n{"t": "\\u0394"}\n'
    assert read_jsonl(p) == rows
    write_jsonl(p, rows[1:], ensure_ascii=False)
    assert p.read_text(encoding="utf-8") == '{"t": "\u0394"}\n'
    assert jsonl.dumps([]) == ""


def test_write_is_atomic(tmp_path, monkeypatch):
    """A write killed before its rename leaves the old file whole, and no temporary beside it."""
    p = write_jsonl(tmp_path / "w.jsonl", [{"old": 1}])

    def killed(src, dst):
        assert read_jsonl(src) == [{"new": 2}]  # the new rows are complete in the temporary
        raise KeyboardInterrupt

    monkeypatch.setattr(results.os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        write_jsonl(p, [{"new": 2}])
    assert read_jsonl(p) == [{"old": 1}]
    assert os.listdir(tmp_path) == ["w.jsonl"]


def test_run_history_writes_jsonl_with_nan_as_null(tmp_path):
    run = results.Run("nb", tmp_path, 0.0)
    path = run.history([{"step": 0, "loss": float("nan")}, {"step": 1, "loss": 0.25}], "h.jsonl")
    assert path.read_text() == '{"step": 0, "loss": null}\n{"step": 1, "loss": 0.25}\n'
