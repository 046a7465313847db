"""Tasks: the embedded toy world, MATH (PRM800K split) and HumanEval (trained on MBPP).

A ``Task`` bundles what every notebook needs to run on it: the prompt protocol, the binary
reward r̂(y, y*), how to read the "answer" out of a response (for the different-answer rate),
and its held-out and training problems as MATH-format ``Problem`` records. For the code tasks
a record's ``problem`` is the prompt, ``answer`` the task id (the reward looks the tests up by
it) and ``solution`` the reference program.

    task = load_task("math", data_path="MATH500.jsonl", train_path="MATH_train.jsonl")
    test = task.test_problems(500)
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from scorelib import grading, prompts
from scorelib.tasks.toy import Problem

TASK_NAMES = ("toy", "math", "humaneval")


@dataclass
class Task:
    """A task as the notebooks use it."""

    name: str
    protocol: prompts.Protocol
    reward: Callable[[str, str], float]  # (response, answer) -> 1.0 / 0.0; may have a batched .many
    extract: Callable[[str], str | None]  # the part of a response compared across turns
    _test: Callable[[int | None], list] = field(repr=False)
    _train: Callable[..., list] = field(repr=False)
    describe: str = ""

    def test_problems(self, n: int | None = None) -> list[Problem]:
        """The first n held-out problems (all of them when n is None or larger than the set)."""
        return list(self._test(n))

    def train_problems(self, n: int | None = None, seed: int = 0, **kw) -> list[Problem]:
        """n training problems drawn with the seed (all of a fixed set when n is None); kw go to the
        toy generator (e.g. level_weights)."""
        return list(self._train(n, seed, **kw))


def _first(ps: list, n: int | None) -> list:
    return ps if n is None else ps[:n]


def _shuffled(ps: list, n: int | None, seed: int) -> list:
    ps = list(ps)
    random.Random(seed).shuffle(ps)
    return _first(ps, n)


class CodeReward:
    """r̂ for code: 1.0 iff the program built from the response passes the task's tests in the sandbox."""

    def __init__(self, problems: dict, check_many: Callable, timeout_s: float = 10.0, workers: int = 2):
        self.problems, self.check_many, self.timeout_s, self.workers = problems, check_many, timeout_s, workers

    def __call__(self, response: str, task_id: str) -> float:
        return self.many([response], [task_id])[0]

    def many(self, responses: list[str], task_ids: list[str]) -> list[float]:
        unknown = sorted(set(task_ids) - set(self.problems))
        if unknown:
            raise KeyError(f"unknown task ids {unknown[:5]}")
        results = self.check_many([self.problems[t] for t in task_ids], responses, workers=self.workers,
                                  timeout_s=self.timeout_s)
        return [1.0 if r.passed else 0.0 for r in results]


def _no_train(name: str, what: str):
    def fail(*_, **__):
        raise ValueError(f"task {name!r} needs training data: set train_path to {what}")
    return fail


def _toy_task(**_) -> Task:
    from scorelib.tasks import toy

    def test(n):  # the toy world's fixed held-out set (its "MATH500"): uniform over levels, seed 0
        return toy.generate(2048 if n is None else n, "test", seed=0)

    def train(n, seed, **kw):
        return toy.generate(30_000 if n is None else n, "train", seed=seed, **kw)

    return Task("toy", prompts.TOY, grading.reward, grading.extract_answer, test, train,
                describe="toy world: column arithmetic, levels 1-5")


def _math_task(data_path: str = "", train_path: str = "", **_) -> Task:
    from scorelib.tasks import math as math_task

    test_path = data_path or math_task.default_math500_path()
    if not test_path:
        raise ValueError("task 'math' needs data_path: a MATH500 JSONL/parquet file "
                         "(problem, solution, answer, subject, level)")

    def test(n):
        return _first(math_task.load_math(test_path), n)

    def train(n, seed):
        return _shuffled(math_task.load_math_splits(train_path, test_path)[0], n, seed)

    return Task("math", prompts.MATH, grading.reward, grading.extract_answer, test,
                train if train_path else _no_train("math", "the MATH training problems (e.g. all 12,500 "
                                                          "minus MATH500, the PRM800K split)"),
                describe=f"MATH: evaluate on {Path(test_path).name}" + (f", train on {Path(train_path).name}"
                                                                       if train_path else ""))


def _code_problem(task_id: str, prompt: str, solution: str, subject: str) -> Problem:
    return Problem(problem=prompt, solution=solution, answer=task_id, subject=subject, level=0, unique_id=task_id)


def _humaneval_task(data_path: str = "", train_path: str = "", timeout_s: float = 10.0, **_) -> Task:
    from scorelib.tasks import humaneval, mbpp

    he = humaneval.load_humaneval(data_path or None)
    by_id = {p["task_id"]: p for p in he}
    test = [_code_problem(p["task_id"], p["prompt"], p["prompt"] + p["canonical_solution"], "humaneval") for p in he]
    reward = CodeReward(by_id, humaneval.check_many, timeout_s=timeout_s)

    def train():
        rows = mbpp.load_mbpp(train_path, split="train")
        shots = mbpp.load_mbpp(train_path, split="prompt")
        return [_code_problem(f"mbpp/{r['task_id']}", mbpp.mbpp_prompt(r, shots), r["code"], "mbpp") for r in rows]

    # Note: MBPP training problems are graded by their own tests (see scorelib.tasks.mbpp); the
    # training notebooks use mbpp_reward for them.
    return Task("humaneval", prompts.HUMANEVAL, reward, humaneval.extract_code, lambda: test,
                train if train_path else _no_train("humaneval", "an MBPP JSONL file (mbpp.jsonl)"),
                describe=f"HumanEval ({len(test)} problems)" + (", train on MBPP" if train_path else ""))


_BUILDERS = {"toy": _toy_task, "math": _math_task, "humaneval": _humaneval_task}


def load_task(name: str, data_path: str = "", train_path: str = "", **kw) -> Task:
    """The task by name ('toy', 'math', 'humaneval'); paths are read lazily except HumanEval's."""
    if name not in _BUILDERS:
        raise ValueError(f"unknown task {name!r}; valid: {list(TASK_NAMES)}")
    for label, path in (("data_path", data_path), ("train_path", train_path)):
        if path and not Path(path).expanduser().exists():
            raise FileNotFoundError(f"{label} {path} does not exist")
    return _BUILDERS[name](data_path=str(Path(data_path).expanduser()) if data_path else "",
                           train_path=str(Path(train_path).expanduser()) if train_path else "", **kw)
