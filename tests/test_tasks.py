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
