"""scorelib.scaling (the majority vote, budget accounting, the tables, claim C8) and scorelib.inference_scaling
(notebook 50's steps) on hand-made cases."""
import json

import numpy as np
import pandas as pd
import pytest
import torch

from scorelib import claims
from scorelib import config as C
from scorelib import inference_scaling as I
from scorelib import scaling as S
from scorelib.results import MissingInput
from scorelib.tasks import load_task


# --------------------------------------------------------------------------- the vote

def test_equivalent_forms_vote_together_and_unparseable_answers_get_no_label():
    # "5.0", "10/2" and "\frac{10}{2}" are 5 to the grader; "$5$" normalises to "5" (no call to is_equiv)
    answers = ["5", None, "5.0", "7", "10/2", "", "  ", "\\frac{10}{2}", "$5$", "7.0"]
    assert S.vote_labels(answers) == [0, None, 0, 1, 0, None, None, 0, 0, 1]


def test_labels_of_a_prefix_are_the_prefix_of_the_labels():
    answers = ["3", "4", None, "3.0", "8/2", "9", "4"]
    full = S.vote_labels(answers)
    for n in range(len(answers) + 1):
        assert S.vote_labels(answers[:n]) == full[:n]


def test_the_equivalence_decides_groups():
    calls = []

    def same_length(a, b):  # a stand-in equivalence: answers of equal length are "equivalent"
        calls.append((a, b))
        return len(a) == len(b)

    assert S.vote_labels(["12", "34", "5", "67"], same_length) == [0, 0, 1, 0]
    assert calls[0] == ("34", "12")  # the new answer against the group's first answer


def test_majority_vote_ties_go_to_the_answer_seen_first():
    assert S.majority_vote([0, 1, 1, 0]) == 0  # 2 votes each: group 0 appeared first (sample 0)
    assert S.majority_vote([1, 0, 0, 1]) == 0  # 2 votes each: group 1 appeared first, at sample 0
    assert S.majority_vote([0, 1, 2]) == 0  # three singletons: the first sample
    assert S.majority_vote([0, 1, 1]) == 1  # a strict majority wins whatever came first


def test_unparseable_answers_do_not_vote():
    # one "3", two "4"s, and three unparseable samples that would outvote both if they counted as an answer
    labels = S.vote_labels(["3", None, None, None, "4", "4"])
    assert S.majority_vote(labels) == 4
    assert S.majority_vote([None, 1, 0, 1]) == 1  # None never wins; a prefix's labels need not start at 0


def test_no_parseable_answer_is_wrong():
    assert S.majority_vote([None, None]) is None
    assert S.majority_vote([]) is None
    got = S.voted_correct([[None, ""]], np.array([[True, True]]), [1, 2])  # graded "right" by mistake: still wrong
    assert got.tolist() == [[False], [False]]


def test_the_vote_is_graded_as_its_first_sample_was():
    answers = [["2", "3", "2.0", "3"],  # tie 2-2: "2" came first; its first sample (0) is graded right
               ["9", "4", "4", None]]  # "4" wins 2-1; its first sample is sample 1, graded wrong
    correct = np.array([[True, False, True, False], [True, False, True, False]])
    got = S.voted_correct(answers, correct, [1, 2, 4])
    assert got.tolist() == [[True, True], [True, True], [True, False]]
    # size 2 of problem 1: "9" and "4" tie, "9" came first and is right; size 4: "4" has two votes


def test_voted_correct_checks_its_inputs():
    with pytest.raises(ValueError, match="shape"):
        S.voted_correct([["1", "2"]], np.array([[True]]), [1])
    with pytest.raises(ValueError, match="vote sizes"):
        S.voted_correct([["1", "2"]], np.array([[True, False]]), [3])


def test_vote_rules_follow_the_grader():
    from scorelib import grading

    assert S.vote_rule("toy") == S.vote_rule("math") == (grading.normalize_answer, grading.is_equiv)
    form, same = S.vote_rule("humaneval")  # programs: only identical ones vote together (no normalising away spaces)
    code = ["return a + b\n", "return a+b\n", "return a + b\n", "   "]
    assert S.vote_labels(code, same, form) == [0, 1, 0, None]
    assert S.vote_labels(["1/2", "0.5"], *reversed(S.vote_rule("math"))) == [0, 0]
    assert S.vote_labels(["1/2", "0.5"], same, form) == [0, 1]
    with pytest.raises(ValueError, match="no vote rule"):
        S.vote_rule("chess")


# --------------------------------------------------------------------------- budget accounting

def _samples(y1, extra, y2, gold="2"):
    """BudgetSamples for one problem, graded against gold by string equality."""
    grade = lambda xs: np.array([[x == gold for x in xs]])  # noqa: E731
    return S.BudgetSamples([y1], [y2], [extra], grade(y1), grade(y2), grade(extra), 0.0)


def test_parallel_order_interleaves_chain_and_extra_first_attempts():
    s = _samples(["a", "b", "c"], ["x", "y", "z"], ["p", "q", "r"])
    answers, correct = s.parallel()
    assert answers == [["a", "x", "b", "y", "c", "z"]] and correct.shape == (1, 6)


def test_each_budget_spends_its_attempts_on_nested_prefixes():
    # parallel order "1", "3", "2", "2": at budget 2 the tie of "1" and "3" goes to "1" (wrong); at 4, "2" wins (right)
    # sequential: at budget 2 one pair, whose correction is unparseable (wrong); at 4 two pairs, "2" wins (right)
    s = _samples(y1=["1", "2"], extra=["3", "2"], y2=[None, "2"])
    v = S.budget_votes(s, [2, 4])
    assert v["parallel"].tolist() == [[False], [True]]
    assert v["sequential"].tolist() == [[False], [True]]
    assert v["single"].tolist() == [0.5]  # 2 of the 4 first attempts are right
    with pytest.raises(ValueError, match="needs 3 chains"):
        S.budget_votes(s, [2, 6])
    with pytest.raises(ValueError, match="even"):
        S.budget_votes(s, [3])


def test_sequential_votes_over_corrections_only():
    # every first attempt is right, every correction wrong: parallel is right at each budget, sequential never
    s = _samples(y1=["2", "2"], extra=["2", "2"], y2=["5", "5"])
    v = S.budget_votes(s, [2, 4])
    assert v["parallel"].all() and not v["sequential"].any()


def test_budget_cost_counts_every_generated_attempt_once():
    t = S.budget_cost(8)
    assert t.loc["parallel"].tolist() == [8, 0, 8, 8]  # first attempts, corrections, attempts, answers voted
    assert t.loc["sequential"].tolist() == [4, 4, 8, 4]  # 4 pairs: the same 8 attempts, 4 votes
    assert t.loc["both, as sampled"].tolist()[:3] == [8, 4, 12]  # the chains' 4 first attempts serve both
    assert t.loc["both, as sampled", "voted"] is pd.NA
    assert S.budget_cost(2).loc["sequential"].tolist() == [1, 1, 2, 1]
    with pytest.raises(ValueError, match="even"):
        S.budget_cost(5)


class _FakeRollouts:
    def __init__(self, n, n_turns, k):
        self.texts = [[f"t{t}-r{r}" for r in range(n * k)] for t in range(n_turns)]
        self.correct = np.zeros((n * k, n_turns), dtype=bool)
        self.correct[::2] = True


def test_sample_budget_generates_exactly_the_largest_budget(monkeypatch, tmp_path):
    """At budget 8: 4 two-turn chains and 4 more first attempts per problem, all problems in one rollout each,
    the extra attempts from another seed: each method spends 8 attempts, 12 are generated (the chains' first
    attempts serve both); a second call with the same inputs comes from the cache."""
    import scorelib.rollout

    calls = []

    def spy(model, tok, xs, ys, protocol, reward, n_turns, k, seed, temperature, max_new_tokens, batch_size, progress):
        calls.append(dict(n=len(xs), n_turns=n_turns, k=k, seed=seed, temperature=temperature))
        return _FakeRollouts(len(xs), n_turns, k)

    monkeypatch.setattr(scorelib.rollout, "rollout_sharded", spy)
    task = load_task("toy")
    problems = task.test_problems(3)
    model = torch.nn.Linear(2, 2)
    s = S.sample_budget(model, None, task, problems, 8, temperature=0.7, seed=5, cache_dir=tmp_path)
    assert [(c["n"], c["n_turns"], c["k"]) for c in calls] == [(3, 2, 4), (3, 1, 4)]
    assert calls[0]["n_turns"] * calls[0]["k"] == 8  # sequential: 4 pairs = the budget
    assert calls[0]["k"] + calls[1]["k"] == 8  # parallel: the chains' 4 first attempts + 4 more = the budget
    assert sum(c["n_turns"] * c["k"] for c in calls) == 12  # generated: the 4 shared first attempts once
    assert sum(c["n_turns"] * c["k"] for c in calls) == S.budget_cost(8).loc["both, as sampled", "attempts"]
    assert calls[0]["seed"] == 5 and calls[1]["seed"] == 5 + S.EXTRA_SEED_OFFSET
    assert {c["temperature"] for c in calls} == {0.7}
    assert s.y1_correct.shape == s.y2_correct.shape == s.extra_correct.shape == (3, 4)
    assert len(s.y2_answers) == 3 and len(s.y2_answers[0]) == 4
    assert s.y1_correct[0].tolist() == [True, False, True, False]
    S.sample_budget(model, None, task, problems, 8, temperature=0.7, seed=5, cache_dir=tmp_path)
    assert len(calls) == 2  # cached
    S.sample_budget(model, None, task, problems, 8, temperature=0.7, seed=6, cache_dir=tmp_path)
    assert len(calls) == 4  # another seed is another sample


# --------------------------------------------------------------------------- tables and C8

def test_scaling_table_pools_seeds_and_gives_the_difference():
    v = dict(parallel=np.array([[1, 1, 0, 0], [1, 1, 1, 0]], dtype=bool),
             sequential=np.array([[1, 1, 1, 0], [1, 1, 1, 1]], dtype=bool), single=np.array([0.5, 0.5, 0.0, 0.0]))
    t = S.scaling_table([v], [2, 4], n_boot=200)
    assert t.loc[2, "parallel"] == 50 and t.loc[2, "sequential"] == 75 and t.loc[2, "diff"] == 25
    assert t.loc[2, "diff_se"] == pytest.approx(25.0)  # per-problem differences 0, 0, 1, 0: sd 0.5 / sqrt(4)
    assert t.loc[4, "diff"] == 25 and t.loc[4, "single"] == 25
    assert t.loc[2, "parallel_lo"] <= 50 <= t.loc[2, "parallel_hi"]
    two = S.scaling_table([v, {**v, "sequential": v["parallel"]}], [2, 4], n_boot=200)
    assert two.loc[2, "diff"] == 12.5 and two.loc[2, "seeds"] == 2 and two.loc[2, "n"] == 4


def _rows(diff, lo, hi, budget=32, par=60.0):
    return dict(budget=budget, parallel=par, sequential=par + diff, diff=diff, diff_lo=lo, diff_hi=hi, n=512,
                seeds=3, single=55.0)


def test_claim_c8_needs_the_largest_budgets_difference_above_zero_with_its_ci():
    base = [_rows(-1.0, -3.0, 1.0)]
    assert claims.claim_c8({"SCoRe": [_rows(3.0, 1.0, 5.0)], "Base": base})["holds"] is True
    assert claims.claim_c8({"SCoRe": [_rows(3.0, -0.5, 6.5)], "Base": base})["holds"] is False  # CI reaches 0
    assert claims.claim_c8({"SCoRe": [_rows(-2.0, -4.0, -0.1)]})["holds"] is False
    # the largest budget decides, whatever the smaller ones show
    c8 = claims.claim_c8({"SCoRe": [_rows(5.0, 2.0, 8.0, budget=16), _rows(1.0, -1.0, 3.0, budget=32)]})
    assert c8["holds"] is False and c8["budget"] == 32 and c8["diff"] == 1.0
    assert "Base" in claims.claim_c8({"SCoRe": [_rows(3.0, 1.0, 5.0)], "Base": base})["evidence"]
    missing = claims.claim_c8({"Base": base})
    assert missing["holds"] is False and "not tested" in missing["evidence"]


def test_fig1_table_puts_the_papers_curve_beside_ours():
    v = dict(parallel=np.array([[1, 0]], dtype=bool), sequential=np.array([[1, 1]], dtype=bool),
             single=np.array([1.0, 0.0]))
    t = S.fig1_table({"SCoRe": S.scaling_table([v], [32], n_boot=50)},
                     dict(budgets=(2, 32), parallel=(60, 68), sequential=(60, 71)))
    assert t.loc[32, "SCoRe parallel"].startswith("50.0 [") and t.loc[32, "SCoRe sequential"].startswith("100.0")
    assert t.loc[32, "paper parallel (SCoRe, MATH500, approx.)"] == 68


def test_gains_table_at_the_largest_budget_with_the_papers_row():
    v = dict(parallel=np.array([[1, 0, 0, 0], [1, 1, 0, 0]], dtype=bool),
             sequential=np.array([[1, 1, 0, 0], [1, 1, 1, 0]], dtype=bool), single=np.array([1.0, 0.0, 0.0, 0.0]))
    t = S.scaling_table([v], [2, 4], n_boot=50)  # at 4: parallel 50, sequential 75, one sample 25
    g = S.gains_table({"SCoRe": t}, {"parallel": 7.4, "sequential": 10.5})
    assert list(g.columns) == ["one sample", "parallel gain at 4", "sequential gain at 4",
                               "SE of sequential − parallel"]
    assert g.loc["SCoRe"].tolist() == [25.0, 25.0, 50.0, 25.0]  # differences 0, 0, 1, 0: sd 0.5 / sqrt(4)
    paper_row = g.loc["SCoRe (paper, MATH500, budget 32)"]
    assert paper_row.iloc[1:3].tolist() == [7.4, 10.5] and paper_row.iloc[[0, 3]].isna().all()
    assert list(S.gains_table({"SCoRe": t}).index) == ["SCoRe"]


def test_rows_are_what_claim_c8_reads():
    v = dict(parallel=np.array([[1, 0, 0, 0]], dtype=bool), sequential=np.array([[1, 1, 0, 0]], dtype=bool),
             single=np.array([1.0, 0.0, 0.0, 0.0]))
    rows = S.rows({"SCoRe": S.scaling_table([v], [2], n_boot=50)})
    assert [r["budget"] for r in rows["SCoRe"]] == [2] and rows["SCoRe"][0]["diff"] == 25.0
    assert claims.claim_c8(rows)["diff"] == 25.0


def test_attempts_table():
    correct = np.array([[1, 0, 1], [0, 1, 1], [1, 1, 1], [0, 0, 0]], dtype=bool)
    answers = [["1", "2", "3", None], ["5", "2", "3", None], ["1", "2", "3", "7"]]
    t = S.attempts_table([S.AttemptOutcomes(correct, answers, 0.0)], n_boot=100)
    assert t["accuracy"].tolist() == [50.0, 50.0, 75.0]
    assert t["vs_attempt1"].tolist() == [0.0, 0.0, 25.0]
    assert np.isnan(t.loc[1, "changed"]) and t.loc[2, "changed"] == 25.0 and t.loc[3, "changed"] == 50.0


# --------------------------------------------------------------------------- upstream runs

def _cfg(tmp_path, **kw):
    return C.make_config(C.ScalingConfig, {"results_dir": str(tmp_path), "seeds": [0, 1], **kw})


def _run(d, seeds, model_path, **config):
    d.mkdir(parents=True)
    (d / "config.json").write_text(json.dumps(dict(task="toy", model="", base_run="default", eval_split="test",
                                                   **config)))
    for s in seeds:
        (d / model_path.format(s=s)).mkdir(parents=True)
        (d / model_path.format(s=s) / "config.json").write_text("{}")


def test_score_models_of_each_seed_or_a_clear_error(tmp_path):
    d = tmp_path / "30_score_stage2" / "default"
    _run(d, [0], "models/seed{s}/round2_stage2", rounds=2)
    with pytest.raises(MissingInput, match=r"(?s)no SCoRe model for seeds \[1\].*python -m scorelib run 30_score_stage2"):
        I.score_models(_cfg(tmp_path), d)
    (d / "models/seed1/round2_stage2").mkdir(parents=True)
    (d / "models/seed1/round2_stage2/config.json").write_text("{}")
    paths, notes = I.score_models(_cfg(tmp_path), d)
    assert paths == {s: d / f"models/seed{s}/round2_stage2" for s in (0, 1)} and notes == []
    assert "split" in I.score_models(_cfg(tmp_path, eval_split="val"), d)[1][0]
    with pytest.raises(C.ConfigError, match="base_run"):
        I.score_models(_cfg(tmp_path, base_run="other"), d)


def test_pair_sft_models_are_marked_missing_not_raised(tmp_path):
    d = tmp_path / "10_sft_baselines" / "default"
    paths, note = I.pair_sft_models(_cfg(tmp_path), d)
    assert paths == {} and "python -m scorelib run 10_sft_baselines" in note
    _run(d, [0], "checkpoints/seed{s}/Pair-SFT_D_SFT")
    paths, note = I.pair_sft_models(_cfg(tmp_path), d)
    assert paths == {} and "seeds [1]" in note
    paths, note = I.pair_sft_models(_cfg(tmp_path, seeds=[0]), d)
    assert paths == {0: d / "checkpoints/seed0/Pair-SFT_D_SFT"} and note == ""
    (d / "checkpoints/seed1/Pair-SFT_D_SFT").mkdir(parents=True)  # a LoRA run saves an adapter
    (d / "checkpoints/seed1/Pair-SFT_D_SFT/adapter_config.json").write_text("{}")
    assert set(I.pair_sft_models(_cfg(tmp_path), d)[0]) == {0, 1}


def test_pair_sft_folder_name_is_notebook_10s():
    from scorelib import sft

    assert sft.checkpoint_name(sft.PAIR_D) == I.PAIR_SFT_CHECKPOINT


@pytest.mark.parametrize("bad,match", [(dict(budgets=[2, 3]), "even"), (dict(budgets=[4, 2]), "increasing"),
                                       (dict(budgets=[]), "budgets"),
                                       (dict(n_seq_problems=600), "n_seq_problems"),
                                       (dict(sample_temperature=0), "sample_temperature")])
def test_config_refuses_bad_parameters(bad, match):
    with pytest.raises(C.ConfigError, match=match):
        C.make_config(C.ScalingConfig, bad)


def test_fig7_table_marks_a_missing_model():
    correct = np.array([[1, 0], [1, 1]], dtype=bool)
    t = S.attempts_table([S.AttemptOutcomes(correct, [["1", "2"], ["3", "2"]], 0.0)], n_boot=50)
    acc = S.fig7_table({"SCoRe": t, "Base": t}, missing={"Pair-SFT": "no notebook-10 run"})
    assert list(acc.index) == ["Base", "Pair-SFT", "SCoRe"] and acc.loc["Base", "attempt 1"].startswith("100.0 [")
    assert acc.loc["Pair-SFT", "attempt 2"] == "missing" and acc.loc["Pair-SFT", "note"] == "no notebook-10 run"
    changed = S.fig7_table({"Base": t}, "changed")
    assert changed.loc["Base", "attempt 1"] == "" and changed.loc["Base", "attempt 2"] == "50.0"


# --------------------------------------------------------------------------- notebook 50's steps

class _Run:
    def __init__(self, tmp_path):
        self.dir, self.tables = tmp_path, {}

    def path(self, name):
        return self.dir / name

    def table(self, name, df):
        self.tables[name] = df
        return df


def _setup(tmp_path, sft_paths, sft_note="", seeds=(3, 4)):
    cfg = C.make_config(C.ScalingConfig, {"results_dir": str(tmp_path), "seeds": list(seeds), "budgets": [2, 4],
                                          "eval_seed": 7, "n_test": 4, "n_seq_problems": 2, "n_boot": 20})
    task = load_task("toy")
    return I.Setup(cfg, _Run(tmp_path), task, "base", None, "base-ref", task.test_problems(4), tmp_path,
                   {s: f"score{s}" for s in seeds}, sft_paths, sft_note, ["a note"])


def test_each_model_is_sampled_with_its_own_seed(monkeypatch, tmp_path):
    calls = []

    def fake(model, tok, task, problems, top, seed, **kw):
        calls.append((model, top, seed, len(problems), kw["temperature"], kw["batch_size"]))
        v = np.array([[True, False]] * len(problems))
        return S.BudgetSamples([["1", "2"]] * len(problems), [["1", "1"]] * len(problems),
                               [["2", "1"]] * len(problems), v, v, v, float(seed))

    monkeypatch.setattr(S, "sample_budget", fake)
    monkeypatch.setattr(I.Setup, "load", lambda self, path: f"model from {path}")
    su = _setup(tmp_path, {})
    samples = I.sample_all(su)
    assert calls == [("base", 4, 7, 4, 0.7, 512), ("model from score3", 4, 3, 4, 0.7, 512),
                     ("model from score4", 4, 4, 4, 0.7, 512)]  # the base with eval_seed, SCoRe with its seeds
    seconds = I.sampling_seconds(samples, su.cfg.seeds)
    assert seconds == {"Base": 7.0, "SCoRe, seed 3": 3.0, "SCoRe, seed 4": 4.0}
    assert I.seconds_table(seconds)["seconds"].tolist() == [7.0, 3.0, 4.0]
    curves = I.budget_tables(su, samples)
    assert set(su.run.tables) == {"scaling_base", "scaling_score"} and curves["SCoRe"].loc[4, "seeds"] == 2


def test_fig7_marks_pair_sft_missing_and_the_summary_says_why(monkeypatch, tmp_path):
    calls = []

    def fake(model, tok, task, problems, n_attempts, seed, **kw):
        calls.append((model, seed, len(problems)))
        return S.AttemptOutcomes(np.array([[True, False, True]] * len(problems)),
                                 [["1"] * len(problems), ["2"] * len(problems), ["2"] * len(problems)], 0.0)

    monkeypatch.setattr(S, "attempt_outcomes", fake)
    monkeypatch.setattr(I.Setup, "load", lambda self, path: f"model from {path}")
    su = _setup(tmp_path, {}, sft_note="no notebook-10 run 'x'")
    att = I.sequential_attempts(su)
    assert calls == [("base", 7, 2), ("model from score3", 3, 2), ("model from score4", 4, 2)]
    assert list(att.outcomes) == ["Base", "SCoRe"] and att.missing == {"Pair-SFT": "no notebook-10 run 'x'"}
    per_attempt = I.attempt_tables(su, att)
    assert set(su.run.tables) == {"fig7_base", "fig7_score"} and per_attempt["Base"]["accuracy"].tolist() == [
        100.0, 0.0, 100.0]
    m = I.summary(su, {}, {"claim": "C8"}, att, per_attempt, {})
    assert m["missing"] == ["Pair-SFT"] and m["notes"] == ["a note", "no notebook-10 run 'x'"]
    assert m["base_seed"] == 7 and m["n"] == 4 and m["n_seq"] == 2 and m["budgets"] == [2, 4]
    calls.clear()
    att = I.sequential_attempts(_setup(tmp_path, {3: "sft3", 4: "sft4"}))
    assert [c[0] for c in calls][1:3] == ["model from sft3", "model from sft4"] and att.missing == {}
    assert list(att.outcomes) == ["Base", "Pair-SFT", "SCoRe"]
