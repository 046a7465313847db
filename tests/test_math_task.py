"""Tests for scorelib.tasks.math: loading MATH data and the PRM800K train/test split."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from scorelib.grading import is_equiv
from scorelib.tasks.math import default_math500_path, load_math, load_math_splits, prm800k_split
from scorelib.tasks.problem import Problem

MATH500_PATH = Path(__file__).resolve().parents[1].parent / "shared/data/math500.jsonl"

RECORDS = [
    # A PRM800K-style record: every field present, int level.
    {
        "problem": "What is $1+1$?",
        "solution": "$1+1=\\boxed{2}$.",
        "answer": "2",
        "subject": "Prealgebra",
        "level": 1,
        "unique_id": "test/prealgebra/1.json",
    },
    # Hendrycks-style level string.
    {
        "problem": "Simplify $\\frac{2}{4}$.",
        "solution": "It is $\\boxed{\\frac{1}{2}}$.",
        "answer": "\\frac{1}{2}",
        "subject": "Algebra",
        "level": "Level 3",
        "unique_id": "train/algebra/7.json",
    },
    # No answer field: taken from the last \boxed{} of the solution; unknown level "Level ?".
    {
        "problem": "Find $x$ if $2x = 6$.",
        "solution": "First $\\boxed{2}$ is wrong; dividing gives $x = \\boxed{3}$.",
        "subject": "Algebra",
        "level": "Level ?",
        "unique_id": "train/algebra/8.json",
    },
    # No unique_id: made from the file name and index.
    {
        "problem": "Compute $\\sqrt{16}$.",
        "solution": "$\\boxed{4}$",
        "answer": "4",
        "subject": "Prealgebra",
        "level": "2",
    },
]


def write_jsonl(path: Path, records: list, blank_lines: bool = False) -> Path:
    lines = [json.dumps(r) for r in records]
    sep = "\n\n" if blank_lines else "\n"
    path.write_text(sep.join(lines) + "\n", encoding="utf-8")
    return path


def check_records(problems: list[Problem], file_name: str) -> None:
    assert [p.problem for p in problems] == [r["problem"] for r in RECORDS]
    assert all(isinstance(p, Problem) for p in problems)
    assert [p.answer for p in problems] == ["2", "\\frac{1}{2}", "3", "4"]  # third from the last \boxed
    assert [p.level for p in problems] == [1, 3, 0, 2]  # "Level 3" -> 3, "Level ?" -> 0, "2" -> 2
    assert all(isinstance(p.level, int) for p in problems)
    assert [p.subject for p in problems] == ["Prealgebra", "Algebra", "Algebra", "Prealgebra"]
    assert [p.unique_id for p in problems[:3]] == [
        "test/prealgebra/1.json",
        "train/algebra/7.json",
        "train/algebra/8.json",
    ]
    assert problems[3].unique_id == f"{file_name}/3"


# ------------------------------------------------------------------------------------------
# Loading
# ------------------------------------------------------------------------------------------


def test_load_jsonl(tmp_path):
    path = write_jsonl(tmp_path / "math.jsonl", RECORDS, blank_lines=True)  # blank lines are skipped
    check_records(load_math(path), "math.jsonl")


def test_load_jsonl_accepts_str_path(tmp_path):
    path = write_jsonl(tmp_path / "math.jsonl", RECORDS)
    assert len(load_math(str(path))) == 4


def test_load_parquet(tmp_path):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    path = tmp_path / "math.parquet"
    # A parquet column has one type, so levels are all strings here ("1", "Level 3", "Level ?", "2");
    # the missing answer and unique_id become None in their columns.
    records = [{**r, "level": str(r["level"])} for r in RECORDS]
    pd.DataFrame(records).to_parquet(path)
    check_records(load_math(path), "math.parquet")


def test_load_parquet_numeric_columns(tmp_path):
    """A parquet file whose answer column is numeric and level column int64 still loads as strings/ints."""
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    path = tmp_path / "numeric.parquet"
    pd.DataFrame({"problem": ["a?", "b?"], "answer": [5, 7], "level": [1, 5], "subject": ["X", "Y"]}).to_parquet(path)
    problems = load_math(path)
    assert [p.answer for p in problems] == ["5", "7"]
    assert [p.level for p in problems] == [1, 5]
    assert [p.unique_id for p in problems] == ["numeric.parquet/0", "numeric.parquet/1"]


def test_load_json_list(tmp_path):
    path = tmp_path / "math.json"
    path.write_text(json.dumps(RECORDS), encoding="utf-8")
    check_records(load_math(path), "math.json")


def test_load_hendrycks_directory(tmp_path):
    """The original MATH layout: <split>/<subject>/<n>.json with `type` and a "Level n" string."""
    root = tmp_path / "MATH"
    for split, subject, n, answer in [("test", "algebra", 10, "5"), ("test", "algebra", 9, "4"), ("train", "geometry", 1, "\\pi")]:
        folder = root / split / subject
        folder.mkdir(parents=True, exist_ok=True)
        record = {"problem": f"P{n}", "level": "Level 4", "type": subject.title(), "solution": f"$\\boxed{{{answer}}}$"}
        (folder / f"{n}.json").write_text(json.dumps(record), encoding="utf-8")
    problems = load_math(root)
    assert [p.unique_id for p in problems] == ["test/algebra/9.json", "test/algebra/10.json", "train/geometry/1.json"]
    assert [p.answer for p in problems] == ["4", "5", "\\pi"]
    assert {p.level for p in problems} == {4}
    assert problems[0].subject == "Algebra"
    # Pointing at the split folder keeps the split in the id, as in PRM800K's unique_id.
    assert [p.unique_id for p in load_math(root / "test")] == ["test/algebra/9.json", "test/algebra/10.json"]


# ------------------------------------------------------------------------------------------
# Loading errors
# ------------------------------------------------------------------------------------------


def test_missing_file(tmp_path):
    missing = tmp_path / "nope.jsonl"
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        load_math(missing)


def test_bad_json_line_names_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(RECORDS[0]) + "\n" + '{"problem": "x", "answer": \n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad\.jsonl:2: not valid JSON"):
        load_math(path)


def test_non_utf8_line_names_file_and_line(tmp_path):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(json.dumps(RECORDS[0]).encode() + b"\n" + b'{"problem": "caf\xe9"}\n')
    with pytest.raises(ValueError, match=r"latin1\.jsonl:2: .*not UTF-8"):
        load_math(path)


def test_non_object_line(tmp_path):
    path = write_jsonl(tmp_path / "list.jsonl", [RECORDS[0], [1, 2]])
    with pytest.raises(ValueError, match=r"list\.jsonl:2: expected a JSON object"):
        load_math(path)


@pytest.mark.parametrize("content", ["", "\n\n  \n"])
def test_empty_file(tmp_path, content):
    path = tmp_path / "empty.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match="empty.jsonl: no MATH records"):
        load_math(path)


def test_empty_directory(tmp_path):
    with pytest.raises(ValueError, match="no MATH records"):
        load_math(tmp_path)


def test_missing_problem(tmp_path):
    record = {k: v for k, v in RECORDS[0].items() if k != "problem"}
    path = write_jsonl(tmp_path / "noproblem.jsonl", [RECORDS[1], record])
    with pytest.raises(ValueError, match=r"noproblem\.jsonl:2: record has no 'problem'"):
        load_math(path)


def test_missing_answer_and_no_boxed(tmp_path):
    record = {"problem": "What is 2+2?", "solution": "It is four.", "subject": "Prealgebra", "level": 1}
    path = write_jsonl(tmp_path / "noanswer.jsonl", [RECORDS[0], RECORDS[1], record])
    with pytest.raises(ValueError, match=r"noanswer\.jsonl:3: record has no 'answer'"):
        load_math(path)


def test_missing_answer_in_parquet_names_the_row(tmp_path):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    path = tmp_path / "noanswer.parquet"
    pd.DataFrame([RECORDS[0], {"problem": "Q", "solution": "no box", "level": 1}]).to_parquet(path)
    with pytest.raises(ValueError, match=r"noanswer\.parquet, row 1: record has no 'answer'"):
        load_math(path)


def test_parquet_without_problem_column(tmp_path):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    path = tmp_path / "cols.parquet"
    pd.DataFrame({"question": ["Q"], "answer": ["1"]}).to_parquet(path)
    with pytest.raises(ValueError, match="no 'problem' column"):
        load_math(path)


def test_duplicate_unique_id(tmp_path):
    path = write_jsonl(tmp_path / "dup.jsonl", [RECORDS[0], RECORDS[0]])
    with pytest.raises(ValueError, match=r"dup\.jsonl:2: duplicate unique_id 'test/prealgebra/1.json'.*dup\.jsonl:1"):
        load_math(path)


# ------------------------------------------------------------------------------------------
# The PRM800K split
# ------------------------------------------------------------------------------------------


def make(uid: str, text: str) -> Problem:
    return Problem(problem=text, solution="", answer="1", subject="Algebra", level=1, unique_id=uid)


SPLIT_SET = [
    make("train/algebra/1.json", "Train problem A."),  # MATH train: train
    make("test/algebra/5.json", "Test problem outside MATH500."),  # MATH test, not MATH500: train (PRM800K)
    make("test/precalculus/807.json", "Convert (0,3) to polar."),  # MATH500: test
    make("test/algebra/99.json", "Solve  x+1=2."),  # MATH500: test
    make("train/algebra/42.json", "Solve x+1=2.\n"),  # same text as a MATH500 problem (whitespace differs): dropped
    make("train/geometry/3.json", "Train problem B."),  # train
]
SPLIT_TEST_IDS = {"test/precalculus/807.json", "test/algebra/99.json"}


def test_prm800k_split():
    train, test = prm800k_split(SPLIT_SET, SPLIT_TEST_IDS)
    # Test: exactly the MATH500 ids, in input order.
    assert [p.unique_id for p in test] == ["test/precalculus/807.json", "test/algebra/99.json"]
    # Train: MATH train plus the MATH test problems outside MATH500; the duplicate of a test
    # problem under another id is in neither split (it would leak the test problem).
    assert [p.unique_id for p in train] == ["train/algebra/1.json", "test/algebra/5.json", "train/geometry/3.json"]


def test_prm800k_split_accepts_any_iterables():
    train, test = prm800k_split(iter(SPLIT_SET), [p.unique_id for p in SPLIT_SET[:1]])
    assert [p.unique_id for p in test] == ["train/algebra/1.json"]
    assert len(train) == len(SPLIT_SET) - 1


def test_load_math_splits_removes_test_problems_from_train(tmp_path):
    """Passing the full MATH set as train and MATH500 as test: no test problem leaks into train."""
    full = tmp_path / "full.jsonl"
    write_jsonl(full, [p.to_dict() for p in SPLIT_SET])
    # The test file's records differ in whitespace and one has no id in common with the train file.
    test_records = [
        make("test/precalculus/807.json", "Convert  (0,3)  to polar.").to_dict(),
        make("test/algebra/99.json", "Solve x+1=2.").to_dict(),
        make("test/geometry/77.json", "Train problem B.").to_dict(),  # same text as a train problem
    ]
    test_path = write_jsonl(tmp_path / "math500.jsonl", test_records)
    train, test = load_math_splits(full, test_path)
    assert [p.unique_id for p in test] == [r["unique_id"] for r in test_records]
    assert [p.unique_id for p in train] == ["train/algebra/1.json", "test/algebra/5.json"]
    test_texts = {" ".join(p.problem.split()) for p in test}
    assert not test_texts & {" ".join(p.problem.split()) for p in train}
    assert not {p.unique_id for p in test} & {p.unique_id for p in train}


def test_load_math_splits_errors(tmp_path):
    path = write_jsonl(tmp_path / "a.jsonl", RECORDS)
    with pytest.raises(FileNotFoundError, match="missing_test.jsonl"):
        load_math_splits(path, tmp_path / "missing_test.jsonl")
    with pytest.raises(ValueError, match="no training problems left"):
        load_math_splits(path, path)


# ------------------------------------------------------------------------------------------
# The real MATH500 file (test data only; never needed at run time)
# ------------------------------------------------------------------------------------------


def test_default_math500_path():
    expected = MATH500_PATH if MATH500_PATH.is_file() else None
    assert default_math500_path() == expected


def test_load_real_math500():
    if not MATH500_PATH.is_file():
        pytest.skip(f"MATH500 split not found at {MATH500_PATH} (only needed for this test)")
    problems = load_math(MATH500_PATH)
    assert len(problems) == 500
    assert len({p.unique_id for p in problems}) == 500
    assert all(p.unique_id.startswith("test/") and p.unique_id.endswith(".json") for p in problems)
    subjects = Counter(p.subject for p in problems)
    assert set(subjects) == {
        "Algebra",
        "Counting & Probability",
        "Geometry",
        "Intermediate Algebra",
        "Number Theory",
        "Prealgebra",
        "Precalculus",
    }
    assert {p.level for p in problems} == {1, 2, 3, 4, 5}
    assert problems[0].unique_id == "test/precalculus/807.json"
    assert all(p.problem and p.solution and p.answer for p in problems)
    # The split against itself as test leaves every problem in test.
    train, test = prm800k_split(problems, {p.unique_id for p in problems})
    assert (len(train), len(test)) == (0, 500)


def test_real_math500_answers_match_their_solutions(tmp_path):
    """The loader's answers (from `answer`) grade equal to what the solutions box."""
    if not MATH500_PATH.is_file():
        pytest.skip(f"MATH500 split not found at {MATH500_PATH} (only needed for this test)")
    problems = load_math(MATH500_PATH)
    rows = [json.loads(line) for line in MATH500_PATH.read_text(encoding="utf-8").splitlines() if line.strip()]
    stripped = [{k: v for k, v in row.items() if k != "answer"} for row in rows]
    # Without the answer field the loader falls back on the solution's last \boxed{}.
    from_solutions = load_math(write_jsonl(tmp_path / "no_answers.jsonl", stripped))
    misses = [
        p.unique_id for p, q in zip(problems, from_solutions, strict=True) if not is_equiv(q.answer, p.answer)
    ]
    assert not misses, misses
