"""Unit tests for scorelib.metrics (SCoRe §2 self-correction metrics and diagnostics)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from scorelib.metrics import (
    METRIC_KEYS,
    PAPER_COLUMNS,
    bootstrap_ci,
    different_answer_rate,
    edit_distance_ratio,
    format_table,
    metrics_by_group,
    sequential_accuracy,
    summarize,
    two_turn_metrics,
)

CI_KEYS = METRIC_KEYS + ("fix_own",)


# --------------------------------------------------------------------------- two_turn_metrics


def test_two_turn_metrics_hand_computed():
    """The brief's worked example: one fix, one break, zero net change."""
    m = two_turn_metrics([1, 1, 0, 0, 1], [1, 0, 1, 0, 1])
    assert m["acc_t1"] == pytest.approx(60.0)
    assert m["acc_t2"] == pytest.approx(60.0)
    assert m["delta"] == pytest.approx(0.0)
    assert m["delta_i2c"] == pytest.approx(20.0)
    assert m["delta_c2i"] == pytest.approx(20.0)
    assert m["fix_own"] == pytest.approx(50.0)
    assert m["n"] == 5 and isinstance(m["n"], int)
    assert set(m) == set(METRIC_KEYS) | {"fix_own", "n"}


def test_two_turn_metrics_second_case():
    """Four problems: i→c, i→c, i→i, c→c → acc 25 → 75, fix_own 2/3."""
    m = two_turn_metrics([False, False, False, True], [True, True, False, True])
    assert m["acc_t1"] == pytest.approx(25.0)
    assert m["acc_t2"] == pytest.approx(75.0)
    assert m["delta"] == pytest.approx(50.0)
    assert m["delta_i2c"] == pytest.approx(50.0)
    assert m["delta_c2i"] == pytest.approx(0.0)
    assert m["fix_own"] == pytest.approx(200.0 / 3.0)


def test_two_turn_metrics_accepts_arrays_and_bools():
    """Lists of ints, bool arrays and 0/1 float arrays give the same answer."""
    c1, c2 = [1, 1, 0, 0, 1], [1, 0, 1, 0, 1]
    ref = two_turn_metrics(c1, c2)
    for conv in (np.array, lambda x: np.array(x, dtype=bool), lambda x: np.array(x, dtype=float)):
        got = two_turn_metrics(conv(c1), conv(c2))
        for k in CI_KEYS:
            assert got[k] == pytest.approx(ref[k])


def test_fix_own_nan_when_attempt1_all_correct():
    """fix_own is undefined when no attempt 1 is wrong."""
    m = two_turn_metrics([1, 1, 1], [1, 0, 1])
    assert math.isnan(m["fix_own"])
    assert m["delta_c2i"] == pytest.approx(100.0 / 3.0)


def test_fix_own_formula_matches_definition():
    """fix_own = Δi→c / (100 − Acc@t1) × 100."""
    rng = np.random.default_rng(3)
    c1 = rng.random(500) < 0.4
    c2 = rng.random(500) < 0.6
    m = two_turn_metrics(c1, c2)
    assert m["fix_own"] == pytest.approx(m["delta_i2c"] / (100.0 - m["acc_t1"]) * 100.0)


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4, 5, 6, 7])
def test_delta_identity_random(seed):
    """Δ = Acc@t2 − Acc@t1 = Δi→c − Δc→i on random data."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 3000))
    c1 = rng.random(n) < rng.random()
    c2 = rng.random(n) < rng.random()
    m = two_turn_metrics(c1, c2)
    assert m["delta"] == pytest.approx(m["acc_t2"] - m["acc_t1"], abs=1e-9)
    assert m["delta"] == pytest.approx(m["delta_i2c"] - m["delta_c2i"], abs=1e-9)
    assert m["acc_t1"] == pytest.approx(100.0 * c1.mean())
    assert m["acc_t2"] == pytest.approx(100.0 * c2.mean())
    assert m["delta_i2c"] == pytest.approx(100.0 * np.mean(~c1 & c2))
    assert m["delta_c2i"] == pytest.approx(100.0 * np.mean(c1 & ~c2))


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "fn",
    [
        lambda a, b: two_turn_metrics(a, b),
        lambda a, b: bootstrap_ci(a, b, n_boot=10),
        lambda a, b: summarize(a, b, n_boot=10),
    ],
)
def test_validation_errors(fn):
    """Unequal lengths, empty input and non-0/1 values are rejected with ValueError."""
    with pytest.raises(ValueError, match="equal length"):
        fn([1, 0, 1], [1, 0])
    with pytest.raises(ValueError, match="empty"):
        fn([], [])
    with pytest.raises(ValueError, match="0/1"):
        fn([1, 2, 0], [1, 0, 0])
    with pytest.raises(ValueError, match="1-D"):
        fn([[1, 0]], [[1, 0]])


def test_bootstrap_argument_validation():
    """n_boot must be positive and level in (0, 1)."""
    with pytest.raises(ValueError, match="n_boot"):
        bootstrap_ci([1, 0], [1, 1], n_boot=0)
    with pytest.raises(ValueError, match="level"):
        bootstrap_ci([1, 0], [1, 1], level=1.0)
    with pytest.raises(ValueError, match="level"):
        bootstrap_ci([1, 0], [1, 1], level=0.0)


# --------------------------------------------------------------------------- bootstrap


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_ci_contains_point_estimate(seed):
    """Each percentile CI brackets its point estimate on realistic data."""
    rng = np.random.default_rng(100 + seed)
    c1 = rng.random(400) < 0.5
    c2 = np.where(rng.random(400) < 0.8, c1, ~c1)
    m = two_turn_metrics(c1, c2)
    ci = bootstrap_ci(c1, c2, n_boot=1000, seed=seed)
    assert set(ci) == set(CI_KEYS)
    for k in CI_KEYS:
        lo, hi = ci[k]
        assert lo <= m[k] <= hi, (k, lo, m[k], hi)
        assert lo < hi


def test_ci_degenerate_when_all_outcomes_identical():
    """All problems with the same (t1, t2) outcome → every resample equal → lo == hi == point."""
    for c1, c2 in [([1] * 50, [1] * 50), ([0] * 50, [1] * 50), ([0] * 50, [0] * 50), ([1] * 7, [0] * 7)]:
        m = two_turn_metrics(c1, c2)
        ci = bootstrap_ci(c1, c2, n_boot=200, seed=5)
        for k in METRIC_KEYS:
            lo, hi = ci[k]
            assert lo == hi == pytest.approx(m[k])
    # fix_own: defined (100) when every attempt 1 is wrong and fixed, undefined when none is wrong.
    assert bootstrap_ci([0] * 10, [1] * 10, n_boot=50)["fix_own"] == (100.0, 100.0)
    lo, hi = bootstrap_ci([1] * 10, [1] * 10, n_boot=50)["fix_own"]
    assert math.isnan(lo) and math.isnan(hi)


def test_bootstrap_is_paired():
    """Resampling indices jointly: with c2 == c1 every resample has Δ = 0, though Acc@t1 varies."""
    rng = np.random.default_rng(9)
    c = rng.random(300) < 0.5
    ci = bootstrap_ci(c, c.copy(), n_boot=500, seed=1)
    assert ci["delta"] == (0.0, 0.0)
    assert ci["delta_i2c"] == (0.0, 0.0)
    assert ci["delta_c2i"] == (0.0, 0.0)
    assert ci["acc_t1"] == ci["acc_t2"]
    assert ci["acc_t1"][0] < ci["acc_t1"][1]


def test_bootstrap_deterministic_for_seed():
    """Same seed → identical CIs; a different seed → (almost surely) different CIs."""
    rng = np.random.default_rng(11)
    c1 = rng.random(1000) < 0.45
    c2 = rng.random(1000) < 0.55
    a = bootstrap_ci(c1, c2, seed=42)
    b = bootstrap_ci(c1, c2, seed=42)
    c = bootstrap_ci(c1, c2, seed=43)
    assert a == b
    assert a != c


def test_bootstrap_width_matches_binomial_theory():
    """The 95% CI half-width of Acc@t1 is close to 1.96·sqrt(p(1−p)/n)."""
    rng = np.random.default_rng(12)
    n = 2000
    c1 = rng.random(n) < 0.5
    c2 = rng.random(n) < 0.5
    lo, hi = bootstrap_ci(c1, c2, n_boot=2000, seed=0)["acc_t1"]
    p = c1.mean()
    expected = 100 * 1.96 * math.sqrt(p * (1 - p) / n)
    assert (hi - lo) / 2 == pytest.approx(expected, rel=0.15)


def test_bootstrap_level_narrows_interval():
    """A lower confidence level gives a narrower (nested) interval."""
    rng = np.random.default_rng(13)
    c1 = rng.random(500) < 0.5
    c2 = rng.random(500) < 0.6
    wide = bootstrap_ci(c1, c2, seed=0, level=0.95)["acc_t2"]
    narrow = bootstrap_ci(c1, c2, seed=0, level=0.5)["acc_t2"]
    assert wide[0] <= narrow[0] <= narrow[1] <= wide[1]


def test_summarize_keys_and_values():
    """summarize = two_turn_metrics + _lo/_hi for the five keys and fix_own."""
    c1, c2 = [1, 1, 0, 0, 1, 0, 1, 0], [1, 0, 1, 0, 1, 1, 1, 0]
    s = summarize(c1, c2, n_boot=300, seed=2)
    m = two_turn_metrics(c1, c2)
    ci = bootstrap_ci(c1, c2, n_boot=300, seed=2)
    expected_keys = set(m) | {f"{k}_{e}" for k in CI_KEYS for e in ("lo", "hi")}
    assert set(s) == expected_keys
    for k in m:
        assert s[k] == m[k]
    for k in CI_KEYS:
        assert (s[f"{k}_lo"], s[f"{k}_hi"]) == ci[k]


# --------------------------------------------------------------------------- edit distance


def test_edit_distance_hand_computed():
    """abc vs abd: 2 matches over 6 chars → ratio 4/6 → distance 1/3."""
    assert edit_distance_ratio("abc", "abd") == pytest.approx(1.0 / 3.0)
    assert edit_distance_ratio("abc", "abc") == 0.0
    assert edit_distance_ratio("abc", "xyz") == pytest.approx(1.0)
    assert edit_distance_ratio("", "") == 0.0
    assert edit_distance_ratio("", "abc") == pytest.approx(1.0)
    # "abcd" vs "ab": 2 matches, total 6 → 1 − 4/6.
    assert edit_distance_ratio("abcd", "ab") == pytest.approx(1.0 / 3.0)


def _lcs_len(s: str, t: str) -> int:
    """Exact longest-common-subsequence length by dynamic programming."""
    prev = [0] * (len(t) + 1)
    for ch in s:
        cur = [0]
        for j, dh in enumerate(t):
            cur.append(prev[j] + 1 if ch == dh else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def test_edit_distance_bounded_and_upper_bounds_exact_indel():
    """In [0, 1], equal to the difflib formula, and never below the exact LCS-based indel ratio."""
    import difflib

    rng = np.random.default_rng(4)
    alphabet = list("abcde ")
    for _ in range(100):
        s = "".join(rng.choice(alphabet, size=int(rng.integers(0, 30))))
        t = "".join(rng.choice(alphabet, size=int(rng.integers(0, 30))))
        d = edit_distance_ratio(s, t)
        assert 0.0 <= d <= 1.0
        if s or t:
            assert d == pytest.approx(1.0 - difflib.SequenceMatcher(None, s, t, autojunk=False).ratio())
            exact = (len(s) + len(t) - 2 * _lcs_len(s, t)) / (len(s) + len(t))
            assert d >= exact - 1e-12


def test_edit_distance_no_autojunk_on_long_text():
    """autojunk=False: frequent characters in long (>200 char) responses are not discarded as junk."""
    y = "x" * 500 + "The answer is 42."
    assert edit_distance_ratio(y, y) == 0.0
    assert edit_distance_ratio(y, y + "!") == pytest.approx(1.0 - 2 * len(y) / (2 * len(y) + 1))
    # With autojunk=True difflib would treat "x" as junk here and report ~0.99; the true value is 6/606.
    assert edit_distance_ratio("x" * 300 + "abc", "abc" + "x" * 300) == pytest.approx(6.0 / 606.0)


def test_edit_distance_rejects_non_str():
    """Non-string inputs are a caller bug."""
    with pytest.raises(TypeError):
        edit_distance_ratio(None, "a")


# --------------------------------------------------------------------------- different answer rate


def test_different_answer_rate_none_handling():
    """None==None is the same answer; None vs a string is different."""
    a1 = ["1", "2", None, None, "5"]
    a2 = ["1", "3", None, "4", None]
    assert different_answer_rate(a1, a2) == pytest.approx(60.0)
    assert different_answer_rate(["x"], ["x"]) == 0.0
    assert different_answer_rate([None, None], [None, None]) == 0.0
    assert different_answer_rate(["a", "b"], ["b", "a"]) == pytest.approx(100.0)


def test_different_answer_rate_validation():
    """Length mismatch, empty input and non-string answers raise ValueError."""
    with pytest.raises(ValueError, match="equal length"):
        different_answer_rate(["1"], ["1", "2"])
    with pytest.raises(ValueError, match="empty"):
        different_answer_rate([], [])
    with pytest.raises(ValueError, match="str or None"):
        different_answer_rate([1], ["1"])


# --------------------------------------------------------------------------- sequential accuracy


def test_sequential_accuracy():
    """Per-column accuracy in percent (Fig. 7)."""
    correct = np.array(
        [
            [0, 1, 1],
            [0, 0, 1],
            [1, 1, 1],
            [0, 0, 0],
        ]
    )
    acc = sequential_accuracy(correct)
    np.testing.assert_allclose(acc, [25.0, 50.0, 75.0])
    np.testing.assert_allclose(sequential_accuracy(correct.astype(bool).tolist()), [25.0, 50.0, 75.0])
    assert isinstance(acc, np.ndarray) and acc.shape == (3,)


def test_sequential_accuracy_matches_two_turn():
    """The first two columns agree with Acc@t1 / Acc@t2."""
    rng = np.random.default_rng(6)
    mat = rng.random((200, 5)) < 0.5
    acc = sequential_accuracy(mat)
    m = two_turn_metrics(mat[:, 0], mat[:, 1])
    assert acc[0] == pytest.approx(m["acc_t1"])
    assert acc[1] == pytest.approx(m["acc_t2"])


def test_sequential_accuracy_validation():
    """Needs a non-empty 2-D 0/1 matrix."""
    with pytest.raises(ValueError, match="2-D"):
        sequential_accuracy([1, 0, 1])
    with pytest.raises(ValueError, match="empty"):
        sequential_accuracy(np.zeros((0, 3)))
    with pytest.raises(ValueError, match="0/1"):
        sequential_accuracy([[0, 3]])


# --------------------------------------------------------------------------- by group


def test_metrics_by_group():
    """Per-level rows equal two_turn_metrics on that level's subset, index sorted."""
    c1 = [1, 1, 0, 0, 1, 0, 1, 0]
    c2 = [1, 0, 1, 0, 1, 1, 1, 0]
    groups = [3, 1, 1, 3, 2, 2, 1, 3]
    df = metrics_by_group(c1, c2, groups)
    assert isinstance(df, pd.DataFrame)
    assert list(df.index) == [1, 2, 3]
    assert list(df.columns) == list(METRIC_KEYS) + ["fix_own", "n"]
    assert df["n"].tolist() == [3, 2, 3]
    # Level 1: problems 1, 2, 6 → (1,0), (0,1), (1,1).
    row = df.loc[1]
    assert row["acc_t1"] == pytest.approx(200.0 / 3.0)
    assert row["acc_t2"] == pytest.approx(200.0 / 3.0)
    assert row["delta_i2c"] == pytest.approx(100.0 / 3.0)
    assert row["delta_c2i"] == pytest.approx(100.0 / 3.0)
    assert row["fix_own"] == pytest.approx(100.0)
    # Level 2: problems 4, 5 → (1,1), (0,1).
    assert df.loc[2, "acc_t1"] == pytest.approx(50.0)
    assert df.loc[2, "acc_t2"] == pytest.approx(100.0)
    assert df.loc[2, "delta"] == pytest.approx(50.0)
    # Level 3: problems 0, 3, 7 → (1,1), (0,0), (0,0).
    assert df.loc[3, "fix_own"] == pytest.approx(0.0)
    a1, a2, g = np.array(c1), np.array(c2), np.array(groups)
    for lvl in (1, 2, 3):
        m = two_turn_metrics(a1[g == lvl], a2[g == lvl])
        for k in METRIC_KEYS:
            assert df.loc[lvl, k] == pytest.approx(m[k])


def test_metrics_by_group_string_labels_and_validation():
    """String labels sort lexicographically; length mismatch raises."""
    df = metrics_by_group([1, 0, 1], [1, 1, 0], ["Level 2", "Level 1", "Level 2"])
    assert list(df.index) == ["Level 1", "Level 2"]
    with pytest.raises(ValueError, match="same length"):
        metrics_by_group([1, 0, 1], [1, 1, 0], [1, 2])


# --------------------------------------------------------------------------- format_table


def test_format_table_with_and_without_ci():
    """Paper column names, one decimal, CI in brackets only when requested and present."""
    rows = {
        "SCoRe": {
            "acc_t1": 60.04, "acc_t1_lo": 57.96, "acc_t1_hi": 62.01,
            "acc_t2": 64.4, "acc_t2_lo": 62.35, "acc_t2_hi": 66.45,
            "delta": 4.36, "delta_lo": 2.9, "delta_hi": 5.8,
            "delta_i2c": 5.84, "delta_i2c_lo": 4.8, "delta_i2c_hi": 6.9,
            "delta_c2i": 1.44, "delta_c2i_lo": 0.9, "delta_c2i_hi": 2.0,
        },
        "Base": {"acc_t1": 52.6, "acc_t2": 41.4, "delta": -11.2, "delta_i2c": 4.6, "delta_c2i": 15.8},
    }
    df = format_table(rows)
    assert list(df.columns) == [PAPER_COLUMNS[k] for k in METRIC_KEYS]
    assert list(df.columns) == ["Accuracy@t1", "Accuracy@t2", "Δ(t1,t2)", "Δ^{i→c}(t1,t2)", "Δ^{c→i}(t1,t2)"]
    assert list(df.index) == ["SCoRe", "Base"]
    assert df.loc["SCoRe", "Accuracy@t1"] == "60.0 [58.0, 62.0]"
    assert df.loc["SCoRe", "Δ(t1,t2)"] == "4.4 [2.9, 5.8]"
    assert df.loc["Base", "Accuracy@t1"] == "52.6"
    assert df.loc["Base", "Δ(t1,t2)"] == "-11.2"
    plain = format_table(rows, ci=False)
    assert plain.loc["SCoRe", "Accuracy@t1"] == "60.0"
    sub = format_table(rows, keys=("acc_t1", "delta"))
    assert list(sub.columns) == ["Accuracy@t1", "Δ(t1,t2)"]


def test_format_table_from_summarize():
    """End to end: summarize output renders with brackets."""
    s = summarize([1, 1, 0, 0, 1], [1, 0, 1, 0, 1], n_boot=200, seed=0)
    df = format_table({"toy": s}, keys=METRIC_KEYS + ("fix_own",))
    cell = df.loc["toy", "Accuracy@t1"]
    assert cell.startswith("60.0 [") and cell.endswith("]")
    assert df.loc["toy", PAPER_COLUMNS["fix_own"]].startswith("50.0 [")


def test_format_table_missing_key_raises():
    """A row lacking a requested metric is an error, not a silent blank."""
    with pytest.raises(KeyError):
        format_table({"m": {"acc_t1": 1.0}})


def test_c1_holds_hand_cases():
    from scorelib.claims import c1_holds

    assert c1_holds(two_turn_metrics([1, 1, 0, 0], [1, 0, 0, 0]))  # Δ -25, c→i 25 ≥ i→c 0
    assert c1_holds(two_turn_metrics([1, 0], [1, 0]))  # no change at all: Δ 0, 0 ≥ 0
    assert not c1_holds(two_turn_metrics([0, 0], [1, 0]))  # a net fix: Δ +50
