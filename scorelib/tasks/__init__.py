"""Tasks: the embedded toy world, MATH (PRM800K split) and HumanEval (trained on MBPP).

A ``Task`` bundles what every notebook needs to run on it: the prompt protocol, the binary
reward r̂(y, y*), how to read the "answer" out of a response (for the different-answer rate),
and its test, validation and training problems as MATH-format ``Problem`` records. For the
code tasks a record's ``problem`` is the prompt, ``answer`` the task id (the reward looks the
tests up by it) and ``solution`` the reference program. The three splits never overlap:
settings are chosen on validation problems and numbers reported on test problems
(``scorelib.protocol``).

    task = load_task("math", data_path="MATH500.jsonl", train_path="MATH_train.jsonl")
    test = task.test_problems(500)
    val = task.eval_problems("val", 500)   # the validation split, for choosing settings
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from scorelib import grading, prompts
from scorelib.tasks.problem import Problem

TASK_NAMES = ("toy", "math", "humaneval")
EVAL_SPLITS = ("val", "test")
MATH_VAL_SIZE = 500  # MATH: validation problems carved from the training file (at most a fifth of it)
MATH_VAL_SEED = "math-val"  # the fixed shuffle that picks them


@dataclass
class Task:
    """A task as the notebooks use it."""

    name: str
    protocol: prompts.Protocol
    reward: Callable[[str, str], float]  # (response, answer) -> 1.0 / 0.0; may have a batched .many
    extract: Callable[[str], str | None]  # the part of a response compared across turns
    _test: Callable[[int | None], list] = field(repr=False)
    _train: Callable[..., list] = field(repr=False)
    _val: Callable[[int | None], list] = field(repr=False)
    describe: str = ""

    def test_problems(self, n: int | None = None) -> list[Problem]:
        """The first n test problems (all of them when n is None or larger than the set): report numbers on
        these, choose nothing on them."""
        return list(self._test(n))

    def val_problems(self, n: int | None = None) -> list[Problem]:
        """The first n validation problems (all of them when n is None or larger than the set): held out from
        training and from the test split; every choice (sweeps, tuning) is made on these."""
        return list(self._val(n))

    def eval_problems(self, split: str, n: int | None = None) -> list[Problem]:
        """The first n held-out problems of a split: 'val' (validation) or 'test'."""
        if split == "val":
            return self.val_problems(n)
        if split == "test":
            return self.test_problems(n)
        raise ValueError(f"evaluation split must be one of {EVAL_SPLITS}, got {split!r}")

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
    """r̂ for code: 1.0 iff the program built from the response passes the task's tests in the sandbox.

    ``problems`` maps a task id to (problem record, its module's ``check_many``): HumanEval and
    MBPP problems build and test their programs differently, and a code task holds both."""

    def __init__(self, problems: dict, timeout_s: float = 10.0, workers: int = 2):
        self.problems, self.timeout_s, self.workers = problems, timeout_s, workers

    def __call__(self, response: str, task_id: str) -> float:
        return self.many([response], [task_id])[0]

    def add(self, problems: dict) -> None:
        self.problems.update(problems)

    def many(self, responses: list[str], task_ids: list[str]) -> list[float]:
        unknown = sorted(set(task_ids) - set(self.problems))
        if unknown:
            raise KeyError(f"unknown task ids {unknown[:5]}")
        out = [0.0] * len(responses)
        groups: dict = {}
        for i, t in enumerate(task_ids):
            groups.setdefault(self.problems[t][1], []).append(i)
        for check_many, idx in groups.items():
            results = check_many([self.problems[task_ids[i]][0] for i in idx], [responses[i] for i in idx],
                                 workers=self.workers, timeout_s=self.timeout_s)
            for i, r in zip(idx, results):
                out[i] = 1.0 if r.passed else 0.0
        return out


def _no_train(name: str, what: str):
    def fail(*_, **__):
        raise ValueError(f"task {name!r} needs training data: set train_path to {what}")
    return fail


def _no_val(name: str, what: str):
    def fail(*_, **__):
        raise ValueError(f"task {name!r}: the validation split is carved from the training data, so validation "
                         f"needs train_path ({what})")
    return fail


def _toy_task(**_) -> Task:
    from scorelib.tasks import toy

    def test(n):  # the toy world's fixed held-out set (its "MATH500"): uniform over levels, seed 0
        return toy.generate(2048 if n is None else n, "test", seed=0)

    def val(n):  # the validation set, drawn like the test set from its own hash buckets
        return toy.generate(2048 if n is None else n, "val", seed=0)

    def train(n, seed, **kw):
        return toy.generate(30_000 if n is None else n, "train", seed=seed, **kw)

    return Task("toy", prompts.TOY, grading.reward, grading.extract_answer, test, train, val,
                describe="toy world: column arithmetic, levels 1-5")


def math_val_split(train: list) -> tuple[list, list]:
    """(validation, train) of MATH's training problems: shuffled with a fixed seed, the first MATH_VAL_SIZE (at
    most a fifth of them) are validation, the rest train."""
    ps = list(train)
    random.Random(MATH_VAL_SEED).shuffle(ps)
    n_val = min(MATH_VAL_SIZE, len(ps) // 5)
    return ps[:n_val], ps[n_val:]


def _math_task(data_path: str = "", train_path: str = "", **_) -> Task:
    from scorelib.tasks import math as math_task

    test_path = data_path or math_task.default_math500_path()
    if not test_path:
        raise ValueError("task 'math' needs data_path: a MATH500 JSONL/parquet file "
                         "(problem, solution, answer, subject, level)")

    cache: dict = {}

    def splits():  # (validation, train): MATH500 removed from the training file, then the validation slice
        if "splits" not in cache:
            cache["splits"] = math_val_split(math_task.load_math_splits(train_path, test_path)[0])
        return cache["splits"]

    def test(n):
        return _first(math_task.load_math(test_path), n)

    def val(n):
        ps = splits()[0]
        if not ps:
            raise ValueError(f"{train_path} has too few training problems to carve a validation split "
                             f"(a fifth of them, at most {MATH_VAL_SIZE})")
        return _first(ps, n)

    def train(n, seed):
        return _shuffled(splits()[1], n, seed)

    what = "the MATH training problems (e.g. all 12,500 minus MATH500, the PRM800K split)"
    return Task("math", prompts.MATH, grading.reward, grading.extract_answer, test,
                train if train_path else _no_train("math", what), val if train_path else _no_val("math", what),
                describe=f"MATH: evaluate on {Path(test_path).name}" + (f", train on {Path(train_path).name}"
                                                                       if train_path else ""))


def _code_problem(task_id: str, prompt: str, solution: str, subject: str) -> Problem:
    return Problem(problem=prompt, solution=solution, answer=task_id, subject=subject, level=0, unique_id=task_id)


def _humaneval_task(data_path: str = "", train_path: str = "", timeout_s: float = 10.0, **_) -> Task:
    from scorelib.tasks import humaneval, mbpp

    he = humaneval.load_humaneval(data_path or None)
    # The code task's protocol passes the problem text through; HumanEval's zero-shot request and
    # MBPP's 3-shot prompt are built into each problem's text, so one task can hold both.
    test = [_code_problem(p["task_id"], prompts.HUMANEVAL_TURN1.format(problem=p["prompt"]),
                          p["prompt"] + p["canonical_solution"], "humaneval") for p in he]
    reward = CodeReward({p["task_id"]: (p, humaneval.check_many) for p in he}, timeout_s=timeout_s)
    cache: dict = {}

    def mbpp_split(split):
        # An MBPP split ('train': task ids 601-974, 'validation': 511-600), each prompt the canonical 3-shot prompt;
        # graded by its own tests.
        if split not in cache:
            rows = mbpp.load_mbpp(train_path, split=split)
            shots = [r for r in mbpp.load_mbpp(train_path, split="prompt") if r["task_id"] in mbpp.SHOT_TASK_IDS]
            reward.add({f"mbpp/{r['task_id']}": (r, mbpp.check_many) for r in rows})
            cache[split] = [_code_problem(f"mbpp/{r['task_id']}", mbpp.mbpp_prompt(r, shots), r["code"], "mbpp")
                            for r in rows]
        return cache[split]

    def train(n, seed):
        return _shuffled(mbpp_split("train"), n, seed)

    def val(n):
        ps = mbpp_split("validation")
        if not ps:
            raise ValueError(f"{train_path} has no MBPP validation problems (task ids 511-600)")
        return _first(ps, n)

    what = "an MBPP JSONL file (mbpp.jsonl)"
    return Task("humaneval", prompts.CODE, reward, humaneval.extract_code, lambda n: _first(test, n),
                train if train_path else _no_train("humaneval", what),
                val if train_path else _no_val("humaneval", what),
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
