"""The tuning protocol: choose on validation problems with tuning seeds, report from test problems with
reporting seeds.

Every choice (toy-world design, hyperparameters, sweeps, checkpoint selection) is made on the validation split
(``Task.val_problems``) with ``TUNING_SEEDS``; the numbers reported come from one run on the test split
(``Task.test_problems``) with ``REPORTING_SEEDS`` (the default profile). A run says which it was:

    describe("val", (100, 101, 102))  -> 'validation split, tuning seeds 100-102'
    describe("test", (0, 1, 2))       -> 'test split, reporting seeds 0-2'
    describe("test", (5,))            -> 'test split, seeds [5] (neither the tuning nor the reporting set)'
"""
from __future__ import annotations

REPORTING_SEEDS = (0, 1, 2)
TUNING_SEEDS = (100, 101, 102)
SPLIT_NAMES = {"val": "validation split", "test": "test split"}


def _check(split: str, seeds) -> tuple[int, ...]:
    if split not in SPLIT_NAMES:
        raise ValueError(f"split must be one of {tuple(SPLIT_NAMES)}, got {split!r}")
    seeds = tuple(seeds)
    if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise ValueError(f"seeds must be a non-empty sequence of integers, got {seeds!r}")
    return seeds


def _seed_set(seeds: tuple[int, ...]) -> str:
    """'tuning', 'reporting' or '' (neither): the named set that holds every seed."""
    if set(seeds) <= set(TUNING_SEEDS):
        return "tuning"
    if set(seeds) <= set(REPORTING_SEEDS):
        return "reporting"
    return ""


def _format(seeds: tuple[int, ...]) -> str:
    """'seed 100', 'seeds 100-102' (a run of consecutive seeds) or 'seeds 0, 2'."""
    s = sorted(set(seeds))
    if len(s) == 1:
        return f"seed {s[0]}"
    if s == list(range(s[0], s[-1] + 1)):
        return f"seeds {s[0]}-{s[-1]}"
    return "seeds " + ", ".join(map(str, s))


def kind(split: str, seeds) -> str:
    """'tuning' (validation split, tuning seeds only), 'reporting' (test split, reporting seeds only) or 'other'."""
    seeds = _check(split, seeds)
    named = _seed_set(seeds)
    if split == "val" and named == "tuning":
        return "tuning"
    if split == "test" and named == "reporting":
        return "reporting"
    return "other"


def describe(split: str, seeds) -> str:
    """One sentence naming the split and the seeds of a run, and saying when it is neither a tuning nor a
    reporting run."""
    seeds = _check(split, seeds)
    named = _seed_set(seeds)
    where = SPLIT_NAMES[split]
    if not named:
        return f"{where}, seeds {list(seeds)} (neither the tuning nor the reporting set)"
    text = f"{where}, {named} {_format(seeds)}"
    if kind(split, seeds) == "other":
        want = "tuning runs use the validation split" if named == "tuning" else "reporting runs use the test split"
        text += f" (neither a tuning nor a reporting run: {want})"
    return text
