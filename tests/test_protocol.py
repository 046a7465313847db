"""scorelib.protocol: which split and seeds a run used, in one sentence, and what kind of run that makes it."""
import pytest

from scorelib import protocol as P


def test_the_seed_sets_are_disjoint():
    assert P.REPORTING_SEEDS == (0, 1, 2) and P.TUNING_SEEDS == (100, 101, 102)
    assert not set(P.REPORTING_SEEDS) & set(P.TUNING_SEEDS)


@pytest.mark.parametrize("split,seeds,text,kind", [
    ("val", (100, 101, 102), "validation split, tuning seeds 100-102", "tuning"),
    ("val", [102, 100, 101], "validation split, tuning seeds 100-102", "tuning"),
    ("val", (100,), "validation split, tuning seed 100", "tuning"),
    ("val", (100, 102), "validation split, tuning seeds 100, 102", "tuning"),
    ("test", (0, 1, 2), "test split, reporting seeds 0-2", "reporting"),
    ("test", (0,), "test split, reporting seed 0", "reporting"),
    ("test", (1, 2), "test split, reporting seeds 1-2", "reporting"),
    ("test", (5,), "test split, seeds [5] (neither the tuning nor the reporting set)", "other"),
    ("val", (0, 100), "validation split, seeds [0, 100] (neither the tuning nor the reporting set)", "other"),
    ("val", (0, 1, 2), "validation split, reporting seeds 0-2 (neither a tuning nor a reporting run: reporting runs "
                       "use the test split)", "other"),
    ("test", (100, 101, 102), "test split, tuning seeds 100-102 (neither a tuning nor a reporting run: tuning runs "
                              "use the validation split)", "other"),
])
def test_describe_and_kind(split, seeds, text, kind):
    assert P.describe(split, seeds) == text
    assert P.kind(split, seeds) == kind


@pytest.mark.parametrize("split,seeds,match", [
    ("train", (0,), "split must be one of"),
    ("validation", (100,), "split must be one of"),
    ("test", (), "non-empty"),
    ("test", (0.5,), "integers"),
    ("test", (True,), "integers"),
])
def test_bad_arguments(split, seeds, match):
    with pytest.raises(ValueError, match=match):
        P.describe(split, seeds)
    with pytest.raises(ValueError, match=match):
        P.kind(split, seeds)
