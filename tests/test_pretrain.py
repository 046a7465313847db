"""The toy world, the phase-2 corpus builder, and determinism of pretraining + evaluation."""
import random

import numpy as np
import pytest

from scorelib import config, prompts
from scorelib.evaluate import evaluate_two_turn
from scorelib.grading import extract_answer, is_equiv, reward
from scorelib.models import build_tiny_model, build_tiny_tokenizer
from scorelib.pretrain import CorpusMix, OwnAttempt, build_phase2_corpus, pretrain, single_example, trace_example
from scorelib.tasks import toy


# ---------------------------------------------------------------- toy world
def test_scratchpads_hand_computed():
    assert toy.add_steps(457, 386) == (["7+6+0=13", "5+8+1=14", "4+3+1=8"], 843)
    assert toy.sub_steps(457, 386) == (["7-6-0=1", "15-8-0=7", "4-3-1=0"], 71)
    assert toy.mul_steps(457, 6) == (["7*6+0=42", "5*6+4=34", "4*6+3=27"], 2742)
    steps, ans = toy.solve("combo", (45, 38, 6))
    assert steps == ["5+8+0=13", "4+3+1=8", "so 83.", "3*6+0=18", "8*6+1=49"] and ans == 498


def test_fault_is_carried_through():
    # a slip of +1 in the units column of 457+386: 14 instead of 13, carried into the next column
    assert toy.add_steps(457, 386, fault=(0, 1)) == (["7+6+0=14", "5+8+1=14", "4+3+1=8"], 844)


@pytest.mark.parametrize("skill", toy.SKILLS)
def test_generated_answers_are_right(skill):
    for p in toy.generate(200, "train", seed=3, skills=(skill,)):
        assert str(eval(p.problem[9:-2].replace("\\times", "*"))) == p.answer  # noqa: S307 (our own text)
        assert reward(p.solution, p.answer) == 1.0
        assert toy.parse_statement(p.problem)[0] == skill


def test_split_is_disjoint_and_seeded():
    train = toy.generate(3000, "train", seed=0)
    test = toy.generate(500, "test", seed=0)
    assert not {p.problem for p in train} & {p.problem for p in test}
    assert [p.problem for p in toy.generate(50, "test", seed=0)] == [p.problem for p in test[:50]]
    assert {p.level for p in train} == set(toy.LEVELS)


def test_corrupted_solution_is_wrong_and_well_formed():
    rng = random.Random(0)
    for p in toy.generate(100, "train", seed=1):
        sol, ans = toy.corrupt_solution(p, rng)
        assert extract_answer(sol) == ans and not is_equiv(ans, p.answer)


def test_bad_generator_arguments():
    with pytest.raises(ValueError, match="valid skills"):
        toy.generate(5, skills=("div",))
    with pytest.raises(ValueError, match="split"):
        toy.generate(5, split="validation")
    with pytest.raises(ValueError, match="not a toy-world statement"):
        toy.parse_statement("What is 2+2?")


# ---------------------------------------------------------------- phase-2 corpus
@pytest.fixture(scope="module")
def tok():
    return build_tiny_tokenizer()


def _attempt(tok, p, text, correct):
    return OwnAttempt(p, tok(text, add_special_tokens=False)["input_ids"] + [tok.eos_token_id], text, correct)


def test_example_masks(tok):
    p = toy.generate(1, seed=0)[0]
    ex = single_example(tok, prompts.TOY, p.problem, p.solution)
    n_y = len(tok(p.solution, add_special_tokens=False)["input_ids"]) + 1
    assert ex.mask == [0] * (len(ex.ids) - n_y) + [1] * n_y  # loss on the solution and <eot> only
    tr = trace_example(tok, prompts.TOY, p.problem, [5, 6, tok.eos_token_id], "12")
    # [<bos> x \n] [y1 <eot>] [<|retry|> \n] [y2 <eot>]: only y2 and its <eot> are targets
    assert tok.decode(tr.ids) == f"<bos>{p.problem}\n\x01\x02<eot><|retry|>\n12<eot>".replace("\x01\x02", tok.decode([5, 6]))
    assert sum(tr.mask) == 3 and tr.mask[-3:] == [1, 1, 1]


def test_corpus_routes_each_trace_kind(tok):
    probs = toy.generate(4, seed=0)
    wrong = [_attempt(tok, probs[0], "1+1+0=3 " + toy.final_answer("999"), False)]
    right = [_attempt(tok, probs[1], probs[1].solution, True)]
    # fix_rate 1, break_rate 0: every wrong y1 is followed by the reference solution, every right y1 by a copy
    corpus, counts = build_phase2_corpus(tok, prompts.TOY, wrong + right, probs, 200,
                                         CorpusMix(single_frac=0.0, wrong_frac=0.5, fix_rate=1.0, break_rate=0.0), 0)
    assert counts["wrong_fix"] + counts["right_copy"] == 200 and counts["wrong_copy"] == counts["right_break"] == 0
    for ex in corpus:
        text = tok.decode(ex.ids)
        y2 = tok.decode([i for i, m in zip(ex.ids, ex.mask) if m], skip_special_tokens=True)
        if probs[0].problem in text:
            assert y2 == probs[0].solution and "999" in text  # the own wrong attempt stays, as context only
        else:
            assert y2 == probs[1].solution
    # fix_rate 0, break_rate 1: wrong y1 copied, right y1 broken
    corpus, counts = build_phase2_corpus(tok, prompts.TOY, wrong + right, probs, 100,
                                         CorpusMix(single_frac=0.0, wrong_frac=0.5, fix_rate=0.0, break_rate=1.0), 0)
    assert counts["wrong_copy"] + counts["right_break"] == 100
    for ex in corpus:
        y2 = tok.decode([i for i, m in zip(ex.ids, ex.mask) if m], skip_special_tokens=True)
        gold = probs[0].answer if probs[0].problem in tok.decode(ex.ids) else probs[1].answer
        assert reward(y2, gold) == 0.0


def test_corpus_without_own_attempts_uses_stand_ins(tok):
    probs = toy.generate(5, seed=0)
    corpus, counts = build_phase2_corpus(tok, prompts.TOY, [], probs, 50, CorpusMix(single_frac=0.2), 0)
    assert len(corpus) == 50 and counts["stand_in"] == 50 - counts["single"]


# ---------------------------------------------------------------- determinism
def _tiny_run(seed):
    cfg = config.make_config(config.PretrainConfig, dict(
        seed=seed, n_train=300, d_model=32, n_layers=1, n_heads=2, d_ffn=64, phase1_steps=8, phase2_steps=4,
        train_batch_size=16, n_own_problems=16, own_k=1, n_phase2=64, max_new_tokens=24, progress=False))
    tok = build_tiny_tokenizer()
    model = build_tiny_model(tok, cfg.d_model, cfg.n_layers, cfg.n_heads, cfg.d_ffn, seed=cfg.seed)
    info = pretrain(model, tok, prompts.TOY, toy.generate(cfg.n_train, "train", seed=seed), cfg)
    ev = evaluate_two_turn(model, tok, toy.generate(32, "test", seed=0), prompts.TOY, temperature=1.0,
                           max_new_tokens=24, seed=seed, n_boot=50)
    return [h["loss"] for h in info["history"]], ev.summary, ev.rollouts.input_ids


def test_same_seed_same_metrics():
    a, b, c = _tiny_run(0), _tiny_run(0), _tiny_run(1)
    assert a[0] == b[0] and a[1] == b[1] and np.array_equal(a[2].numpy(), b[2].numpy())
    assert a[0] != c[0]


def test_level_weights_are_checked_once_for_config_and_generator():
    with pytest.raises(ValueError, match="level_weights"):
        toy.generate(5, level_weights=(1, 1))
    with pytest.raises(config.ConfigError, match="level_weights"):
        config.make_config(config.PretrainConfig, {"level_weights": [0, 0, 0, 0, 0]})
    assert {p.level for p in toy.generate(50, level_weights=(0, 0, 1, 0, 0))} == {3}
