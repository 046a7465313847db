"""scorelib.base: notebook 00's and 01's steps, on hand-made problems, evaluations and corpora."""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from scorelib import base, paper, prompts
from scorelib.models import build_tiny_tokenizer
from scorelib.pretrain import CorpusMix, decode_example, single_example, trace_example
from scorelib.rollout import encode_turn1
from scorelib.tasks import toy

Problem = type(toy.generate(1, seed=0)[0])  # the shared problem record, wherever it is defined


def _p(uid, subject, level, problem="Compute $1+1$.", answer="2"):
    return Problem(problem, "s", answer, subject, level, uid)


PROBLEMS = [_p("a", "sub", 2, "Compute $30-1$.", "29"), _p("b", "add", 1), _p("c", "sub", 2, answer="9"),
            _p("d", "add", 3), _p("e", "add", 1, answer="5")]


def test_examples_table_keeps_the_first_of_each_skill_and_level_in_order():
    t = base.examples_table(PROBLEMS)
    assert list(t.index) == ["b", "d", "a"]  # add 1, add 3, sub 2: the first drawn of each
    assert list(t.columns) == ["subject", "level", "problem", "answer"]
    assert t.loc["a", "answer"] == "29" and t.index.name == "unique_id"


def test_problems_table_and_level_counts():
    assert list(base.problems_table(PROBLEMS[:3])["answer"]) == ["29", "2", "9"]
    counts = base.level_counts(PROBLEMS)["problems"]
    assert counts.to_dict() == {("add", 1): 2, ("add", 3): 1, ("sub", 2): 2}


def _summary(t1, t2, **extra):
    return dict(acc_t1=t1, acc_t2=t2, delta=t2 - t1, delta_i2c=0.0, delta_c2i=t1 - t2, **extra)


EVALS = {0.0: SimpleNamespace(summary=_summary(50.0, 40.0, fix_own=4.0, different_answer=30.0),
                              edit_ratio=np.array([0.0, 0.5])),
         1.0: SimpleNamespace(summary=_summary(30.0, 20.0, fix_own=8.04, different_answer=60.0),
                              edit_ratio=np.array([1.0]))}


def test_table2_rows_label_ours_by_temperature_then_the_papers():
    rows = base.table2_rows("toy", EVALS)
    assert list(rows) == ["Base model (toy, greedy)", "Base model (toy, T=1)", "Base model (paper, MATH)"]
    assert rows["Base model (paper, MATH)"] == paper.TABLE2["Base model"]
    assert list(base.table2_rows("humaneval", EVALS))[-1] == "Base model (paper, HumanEval)"


def test_fix_own_table_rounds_and_leaves_the_paper_blank():
    t = base.fix_own_table(base.table2_rows("toy", EVALS))
    assert t.loc["Base model (toy, T=1)", "fix own (%)"] == 8.0
    assert t.loc["Base model (toy, greedy)", "different answer in turn 2 (%)"] == 30.0
    assert t.loc["Base model (paper, MATH)"].isna().all()


def test_edit_ratios_label_each_temperature():
    r = base.edit_ratios(EVALS)
    assert list(r) == ["Base (greedy)", "Base (T=1)"] and r["Base (T=1)"].tolist() == [1.0]


def test_sequential_table_numbers_attempts_from_one():
    t = base.sequential_table(np.array([50.0, 46.666, 40.0]))
    assert list(t.index) == [1, 2, 3] and t["accuracy (%)"].tolist() == [50.0, 46.67, 40.0]


def test_eval_summary_reads_the_first_temperature_and_checks_c1():
    be = SimpleNamespace(cfg=SimpleNamespace(temperatures=(0.0, 1.0)), protocol="test split, reporting seed 0")
    s = base.eval_summary(be, EVALS, np.array([50.0, 40.0]))
    assert s["acc_t1"] == 50.0 and s["c1_holds"] is True  # Δ −10 ≤ 0 and Δc→i 10 ≥ Δi→c 0
    assert set(s["by_temperature"]) == {"0.0", "1.0"} and s["sequential"] == [50.0, 40.0]
    assert s["protocol"] == "test split, reporting seed 0"
    better = {0.0: SimpleNamespace(summary=dict(_summary(40.0, 50.0), delta_i2c=10.0, delta_c2i=0.0))}
    assert base.eval_summary(be, better, np.array([40.0]))["c1_holds"] is False


def test_pretrain_metrics_adds_the_phases_seconds():
    pt = SimpleNamespace(held_out=[1, 2, 3], protocol="p")
    model = SimpleNamespace(parameters=lambda: [torch.zeros(3), torch.zeros(2, 2)])  # 7 parameters
    check = SimpleNamespace(summary=dict(acc_t1=1.0))
    corpus = base.Corpus(n_own=4, own_acc=25.0, seconds=2.0)
    m = base.pretrain_metrics(pt, model, check, corpus, [{"seconds": 1.0}, {"seconds": 3.0}], [])
    assert m == dict(acc_t1=1.0, own_attempt_acc=25.0, n_params=7, n_test=3, protocol="p", sample_own_seconds=2.0,
                     pretrain_seconds=5.0, phase1_seconds=3.0, phase2_seconds=0.0)


def test_quick_check_table_has_the_columns_rounded():
    s = dict(_summary(50.04, 40.0), fix_own=4.0, different_answer=3.0, n=64, temperature=0.0)
    t = base.quick_check_table(s)
    assert list(t.columns) == base.QUICK_CHECK_COLUMNS and t.loc["this run (greedy)", "acc_t1"] == 50.0


def test_beside_paper_base_puts_the_paper_row_under_ours():
    t = base.beside_paper_base(_summary(50.0, 40.0), "toy")
    assert list(t.index) == ["Base model (toy, 1 seed(s))", "Base model (paper, MATH)"]
    assert t.loc["Base model (paper, MATH)", "Δ(t1,t2)"] == "-11.2"


def test_describe_phase():
    line = base.describe_phase("phase 1", 30, [{"seconds": 1.4, "loss": 2.0}])
    assert line == "phase 1: 30 steps, 1 s, final loss 2.000"
    assert base.describe_phase("phase 2", 0, []) == "phase 2: 0 steps, 0 s, final loss nan"


@pytest.fixture(scope="module")
def tok():
    return build_tiny_tokenizer()


def test_decode_example_splits_context_and_target(tok):
    ex = single_example(tok, prompts.TOY, "Compute $1+1$.", "1+1=2")
    parts = decode_example(tok, ex)
    assert parts["target"].startswith("1+1=2") and "Compute $1+1$." in parts["context"]
    assert "1+1=2" not in parts["context"]


def test_corpus_first_trace_skips_single_attempts(tok):
    single = single_example(tok, prompts.TOY, "Compute $1+1$.", "so 2.")
    y1 = tok("so 3.", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    trace = trace_example(tok, prompts.TOY, "Compute $1+2$.", y1, "so 3 again.")
    corpus = base.Corpus([single, trace], {"single": 1, "stand_in": 0}, CorpusMix())
    found = corpus.first_trace(tok, prompts.TOY.instruction)
    assert "Compute $1+2$." in found["context"] and "so 3." in found["context"]
    assert found["target"].startswith("so 3 again.")
    assert base.Corpus([single]).first_trace(tok, prompts.TOY.instruction) is None
    assert len(encode_turn1(tok, prompts.TOY, "Compute $1+2$.")) < len(trace.ids)


def test_an_empty_corpus_describes_itself_and_has_an_empty_table():
    c = base.Corpus()
    assert c.table().empty and "nothing to pretrain" in c.describe() and math.isnan(c.own_acc)


def test_old_runs_of_00_and_01_read_under_todays_names():
    from scorelib.config import saved_config

    assert saved_config({"batch_size": 64, "seed": 1}, "00_toy_world_and_base_model") == {"train_batch_size": 64,
                                                                                           "seed": 1}
    assert saved_config({"batch_size": 512}, "01_base_model_self_correction") == {"gen_batch_size": 512}
    assert saved_config({"gen_batch_size": 8, "batch_size": 512}, "01_base_model_self_correction") == {
        "gen_batch_size": 8}
