"""The task registry (scorelib.tasks.load_task): toy, MATH and the code task (HumanEval evaluated,
MBPP trained), each with its protocol, reward and problems."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from scorelib import prompts
from scorelib.rollout import score
from scorelib.tasks import TASK_NAMES, load_task, toy

ROOT = Path(__file__).resolve().parents[1]
MATH500 = ROOT.parent / "shared" / "data" / "math500.jsonl"


def test_toy_task_matches_the_generator():
    task = load_task("toy")
    assert task.protocol is prompts.TOY
    assert task.test_problems(50) == toy.generate(50, "test", seed=0)
    assert task.train_problems(20, seed=3, level_weights=(1, 1, 1, 1, 1)) == toy.generate(20, "train", seed=3)
    p = task.test_problems(1)[0]
    assert task.reward(p.solution, p.answer) == 1.0 and task.reward("no answer", p.answer) == 0.0


def test_unknown_task_and_missing_paths():
    assert TASK_NAMES == ("toy", "math", "humaneval")
    with pytest.raises(ValueError, match="unknown task"):
        load_task("gsm8k")
    with pytest.raises(FileNotFoundError, match="data_path"):
        load_task("math", data_path="/no/such/file.jsonl")


@pytest.mark.skipif(not MATH500.exists(), reason=f"MATH500 not found at {MATH500}")
def test_math_task_reads_math500_and_needs_train_path_for_training(tmp_path):
    task = load_task("math", data_path=str(MATH500))
    test = task.test_problems(5)
    assert len(test) == 5 and task.protocol is prompts.MATH
    assert len(task.test_problems()) == 500
    assert task.reward(f"Final Answer: The final answer is ${test[0].answer}$. I hope it is correct.", test[0].answer) == 1.0
    with pytest.raises(ValueError, match="train_path"):
        task.train_problems(10)
    # a training file that contains a MATH500 problem: it is dropped (PRM800K split)
    rows = [json.loads(line) for line in MATH500.read_text().splitlines()[:3]]
    extra = dict(problem="What is $1+1$?", solution="$\\boxed{2}$", answer="2", subject="Prealgebra", level=1,
                 unique_id="train/prealgebra/1.json")
    train_file = tmp_path / "train.jsonl"
    train_file.write_text("".join(json.dumps(r) + "\n" for r in rows + [extra]))
    task = load_task("math", data_path=str(MATH500), train_path=str(train_file))
    assert [p.unique_id for p in task.train_problems(None)] == ["train/prealgebra/1.json"]


MBPP_ROWS = [  # task ids 2-4 are the canonical shots; 601+ is the train split
    dict(task_id=2, text="Return the shared elements.", code="def similar_elements(a, b):\n    return tuple(set(a) & set(b))",
         test_list=["assert set(similar_elements((3, 4), (4, 5))) == {4}"], test_setup_code="", challenge_test_list=[]),
    dict(task_id=3, text="Is n not prime?", code="def is_not_prime(n):\n    return any(n % i == 0 for i in range(2, n))",
         test_list=["assert is_not_prime(4)"], test_setup_code="", challenge_test_list=[]),
    dict(task_id=4, text="Largest n numbers.", code="def heap_largest(xs, n):\n    return sorted(xs)[-n:][::-1]",
         test_list=["assert heap_largest([1, 3, 2], 2) == [3, 2]"], test_setup_code="", challenge_test_list=[]),
    dict(task_id=601, text="Add two numbers.", code="def add(a, b):\n    return a + b",
         test_list=["assert add(1, 2) == 3", "assert add(-1, 1) == 0"], test_setup_code="", challenge_test_list=[]),
    dict(task_id=602, text="Double a number.", code="def double(x):\n    return 2 * x",
         test_list=["assert double(4) == 8"], test_setup_code="", challenge_test_list=[]),
]


def test_code_task_evaluates_humaneval_and_trains_on_mbpp(tmp_path):
    mbpp_file = tmp_path / "mbpp.jsonl"
    mbpp_file.write_text("".join(json.dumps(r) + "\n" for r in MBPP_ROWS))
    task = load_task("humaneval", train_path=str(mbpp_file))
    assert task.protocol is prompts.CODE and task.protocol.instruction == prompts.CODE_INSTRUCTION
    test = task.test_problems(3)
    assert [p.answer for p in test] == ["HumanEval/0", "HumanEval/1", "HumanEval/2"]
    assert test[0].problem.startswith("Complete the following Python function")
    assert len(task.test_problems()) == 164
    train = task.train_problems(None, seed=0)
    assert sorted(p.answer for p in train) == ["mbpp/601", "mbpp/602"]
    add = next(p for p in train if p.answer == "mbpp/601")
    assert add.problem.startswith("You are an expert Python programmer, and here is your task: Return the shared")
    assert add.problem.endswith("Add two numbers. Your code should pass these tests:\n\nassert add(1, 2) == 3\n"
                                "assert add(-1, 1) == 0\n[BEGIN]\n")
    # one batched call grades HumanEval and MBPP responses, each with its own tests
    responses = [test[0].solution, "```python\ndef add(a, b):\n    return a - b\n```", add.solution + "\n[DONE]",
                 "def double(x):\n    return x + x"]
    rewards = score(task.reward, responses, ["HumanEval/0", "mbpp/601", "mbpp/601", "mbpp/602"])
    assert rewards.tolist() == [1.0, 0.0, 1.0, 1.0]
    assert task.extract("text\n```python\nx = 1\n```\nmore") == "x = 1\n"
    with pytest.raises(KeyError, match="unknown task ids"):
        task.reward("x", "HumanEval/999")


def test_code_task_needs_mbpp_for_training():
    task = load_task("humaneval")
    with pytest.raises(ValueError, match="mbpp"):
        task.train_problems(5)


# ---------------------------------------------------------------- train / val / test splits
TOY_TEST_SHA256 = "5ad1e61f180a8856257503e10e0c43c38127bb05191e0b7ff3b0f357ecc4daa0"  # before the val split existed


def _sha(problems) -> str:
    import hashlib

    text = "\n".join(p.problem + "|" + p.answer + "|" + p.unique_id + "|" + p.solution for p in problems)
    return hashlib.sha256(text.encode()).hexdigest()


def test_toy_test_split_is_unchanged_by_the_validation_split():
    assert _sha(toy.generate(2048, "test", seed=0)) == TOY_TEST_SHA256
    assert _sha(load_task("toy").eval_problems("test")) == TOY_TEST_SHA256


def _statements():
    """Every 1- and 2-digit sum and every 1-digit product, plus a seeded sample of larger problems of each skill."""
    import random

    texts = [toy.statement("add", (a, b)) for a in range(1, 100) for b in range(1, 100)]
    texts += [toy.statement("mul", (a, d)) for a in range(1, 10) for d in range(2, 10)]
    rng = random.Random(0)
    texts += [toy.statement(s, toy.draw_operands(rng, s, lv))
              for _ in range(400) for s in toy.SKILLS for lv in toy.LEVELS]
    return texts


def test_toy_split_of_partitions_by_hash_bucket():
    texts = _statements()
    splits = [toy.split_of(t) for t in texts]
    assert set(splits) == set(toy.SPLITS)
    for t, s in zip(texts, splits):
        assert toy.is_test_problem(t) == (s == "test")
    share = {s: splits.count(s) / len(splits) for s in toy.SPLITS}
    assert abs(share["test"] - 0.2) < 0.02 and abs(share["val"] - 0.1) < 0.02 and abs(share["train"] - 0.7) < 0.02


def test_toy_generated_splits_never_overlap():
    drawn = {s: toy.generate(3000, s, seed=0) for s in toy.SPLITS}
    for s, ps in drawn.items():
        assert all(toy.split_of(p.problem) == s for p in ps), s
        assert {p.level for p in ps} == set(toy.LEVELS) and {p.subject for p in ps} == set(toy.SKILLS)
    texts = {s: {p.problem for p in ps} for s, ps in drawn.items()}
    assert not texts["train"] & texts["val"] and not texts["train"] & texts["test"] and not texts["val"] & texts["test"]
    # the small level-1 pools too: every one-digit sum lands in exactly one split
    ones = {s: {p.problem for p in toy.generate(500, s, seed=1, skills=("add",), levels=(1,))} for s in toy.SPLITS}
    assert sum(len(x) for x in ones.values()) == len(set().union(*ones.values())) <= 81
    with pytest.raises(ValueError, match="split"):
        toy.generate(5, "validation")


def test_toy_task_val_and_eval_problems():
    task = load_task("toy")
    assert task.val_problems(50) == toy.generate(50, "val", seed=0)
    assert len(task.val_problems()) == 2048 and task.eval_problems("val", 7) == task.val_problems(7)
    assert task.eval_problems("test", 7) == task.test_problems(7)
    val, test = task.eval_problems("val"), task.eval_problems("test")
    assert not {p.problem for p in val} & {p.problem for p in test}
    held_out = {p.problem for p in val} | {p.problem for p in test}
    assert not {p.problem for p in task.train_problems(5000, seed=0)} & held_out
    for bad in ("train", "validation", ""):
        with pytest.raises(ValueError, match="evaluation split must be one of"):
            task.eval_problems(bad)


def _math_rows(prefix: str, n: int) -> list[dict]:
    return [dict(problem=f"{prefix} problem {i}: what is ${i}+1$?", solution=f"$\\boxed{{{i + 1}}}$", answer=str(i + 1),
                 subject="Prealgebra", level=1 + i % 5, unique_id=f"{prefix}/prealgebra/{i}.json") for i in range(n)]


def _write_jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_math_validation_slice_is_carved_from_the_training_file(tmp_path):
    from scorelib.tasks import MATH_VAL_SIZE, math_val_split

    test_rows = _math_rows("test", 5)
    train_rows = _math_rows("train", 60) + test_rows[:2]  # two MATH500 problems inside the training file: dropped
    data = _write_jsonl(tmp_path / "test.jsonl", test_rows)
    task = load_task("math", data_path=data, train_path=_write_jsonl(tmp_path / "train.jsonl", train_rows))
    val = task.val_problems()
    train = task.train_problems(None, seed=0)
    assert len(val) == 12 and len(train) == 48  # a fifth of the 60 training problems (at most MATH_VAL_SIZE)
    ids = lambda ps: {p.unique_id for p in ps}  # noqa: E731
    assert not ids(val) & ids(train) and not (ids(val) | ids(train)) & ids(task.test_problems())
    assert ids(val) | ids(train) == {r["unique_id"] for r in _math_rows("train", 60)}
    assert ids(task.train_problems(None, seed=7)) == ids(train)  # the slice does not depend on the training seed
    assert task.eval_problems("val", 3) == val[:3] and task.eval_problems("test") == task.test_problems()
    # the slice is fixed: the same file gives the same validation problems in a new task
    again = load_task("math", data_path=data, train_path=str(tmp_path / "train.jsonl"))
    assert again.val_problems() == val
    big = list(range(20_000))
    v, t = math_val_split(big)
    assert len(v) == MATH_VAL_SIZE == 500 and sorted(v + t) == big


def test_math_validation_needs_train_path(tmp_path):
    data = _write_jsonl(tmp_path / "test.jsonl", _math_rows("test", 5))
    with pytest.raises(ValueError, match="validation needs train_path"):
        load_task("math", data_path=data).val_problems(5)
    with pytest.raises(ValueError, match="validation needs train_path"):
        load_task("math", data_path=data).eval_problems("val")
    tiny = load_task("math", data_path=data, train_path=_write_jsonl(tmp_path / "one.jsonl", _math_rows("train", 1)))
    assert len(tiny.train_problems(None)) == 1  # too few to carve anything: all of it trains
    with pytest.raises(ValueError, match="too few training problems"):
        tiny.val_problems()


MBPP_VAL_ROWS = [
    dict(task_id=511, text="Triple a number.", code="def triple(x):\n    return 3 * x",
         test_list=["assert triple(2) == 6"], test_setup_code="", challenge_test_list=[]),
    dict(task_id=600, text="Negate a number.", code="def neg(x):\n    return -x",
         test_list=["assert neg(2) == -2"], test_setup_code="", challenge_test_list=[]),
]


def test_code_task_validates_on_mbpp_validation_split(tmp_path):
    mbpp_file = _write_jsonl(tmp_path / "mbpp.jsonl", MBPP_ROWS + MBPP_VAL_ROWS)
    task = load_task("humaneval", train_path=mbpp_file)
    val = task.val_problems()
    assert [p.answer for p in val] == ["mbpp/511", "mbpp/600"] and task.eval_problems("val", 1) == val[:1]
    assert sorted(p.answer for p in task.train_problems(None, seed=0)) == ["mbpp/601", "mbpp/602"]
    assert val[0].problem.startswith("You are an expert Python programmer, and here is your task: Return the shared")
    assert val[0].problem.endswith("Triple a number. Your code should pass these tests:\n\n"
                                   "assert triple(2) == 6\n[BEGIN]\n")
    assert task.eval_problems("test", 2)[0].answer == "HumanEval/0"
    assert score(task.reward, ["def triple(x):\n    return x * 3", "def neg(x):\n    return x"],
                 ["mbpp/511", "mbpp/600"]).tolist() == [1.0, 0.0]
    with pytest.raises(ValueError, match="validation needs train_path"):
        load_task("humaneval").val_problems(5)
