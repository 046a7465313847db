"""The toy world's second way of writing a solution, and the phase-2 corpus whose second attempts copy or
re-solve whatever the first attempt's correctness."""
import difflib

import pytest

from scorelib import prompts
from scorelib.grading import reward
from scorelib.models import build_tiny_tokenizer
from scorelib.pretrain import CorpusMix, OwnAttempt, build_phase2_corpus
from scorelib.tasks import toy


def test_alt_steps_by_hand():
    assert toy.alt_step("7+6+0=13") == "7+6+0 is 13,"
    assert toy.alt_step("4*6+2=26") == "4*6+2 is 26,"
    assert toy.alt_step("15-8-0=7") == "15-8-0 is 7,"
    assert toy.alt_step("4-3-1=0") == "4-3-1 is 0,"
    assert toy.alt_step("so 83.") == "that is 83,"
    with pytest.raises(ValueError, match="not a scratchpad step"):
        toy.alt_step("Final Answer")


def test_alt_solution_by_hand_and_graded_right():
    p = toy.Problem("Compute $457+386$.", "", "843", "add", 3, "x")
    sol, ans = toy.alt_solution(p)
    assert sol == "Again: 457+386 gives 7+6+0 is 13, 5+8+1 is 14, 4+3+1 is 8, " + toy.final_answer("843")
    assert ans == "843"
    combo = toy.Problem("Compute $(45+38)\\times 6$.", "", "498", "combo", 3, "y")
    assert toy.alt_solution(combo)[0].startswith("Again: (45+38)\\times 6 gives 5+8+0 is 13, 4+3+1 is 8, that is 83, ")
    wrong, ans = toy.alt_solution(p, fault=(0, 1))  # the slip is carried through as in the first style
    assert ans == "844" and reward(wrong, "843") == 0.0


@pytest.mark.parametrize("skill", toy.SKILLS)
def test_alt_solutions_are_right_and_far_from_the_first_style(skill):
    for p in toy.generate(100, "train", seed=4, skills=(skill,)):
        sol, ans = toy.alt_solution(p)
        assert ans == p.answer and reward(sol, p.answer) == 1.0 and sol.startswith(toy.ALT_PREFIX)
        assert 1 - difflib.SequenceMatcher(None, p.solution, sol).ratio() > 0.08  # a rewrite, not a copy


@pytest.fixture(scope="module")
def tok():
    return build_tiny_tokenizer()


def _attempt(tok, p, text, correct):
    return OwnAttempt(p, tok(text, add_special_tokens=False)["input_ids"] + [tok.eos_token_id], text, correct)


@pytest.mark.parametrize("rate", [0.0, 0.5, 1.0])
def test_rewrite_corpus_reveals_nothing_about_the_first_attempt(tok, rate):
    probs = toy.generate(4, seed=0)
    wrong = [_attempt(tok, probs[0], "1+1+0=3 " + toy.final_answer("999"), False)]
    right = [_attempt(tok, probs[1], probs[1].solution, True)]
    mix = CorpusMix(single_frac=0.0, wrong_frac=0.5, turn2_mode="rewrite", rewrite_rate=rate)
    corpus, counts = build_phase2_corpus(tok, prompts.TOY, wrong + right, probs, 400, mix, 0)
    assert set(counts) == {"single", "wrong_rewrite", "wrong_copy", "right_rewrite", "right_copy", "stand_in"}
    assert sum(counts.values()) == 400
    n_wrong = counts["wrong_rewrite"] + counts["wrong_copy"]
    n_right = counts["right_rewrite"] + counts["right_copy"]
    if rate in (0.0, 1.0):  # the same choice after a wrong and after a right first attempt
        assert counts["wrong_rewrite"] == rate * n_wrong and counts["right_rewrite"] == rate * n_right
    else:
        assert 0.4 < counts["wrong_rewrite"] / n_wrong < 0.6 and 0.4 < counts["right_rewrite"] / n_right < 0.6
    for ex in corpus:
        text = tok.decode(ex.ids)
        y2 = tok.decode([i for i, m in zip(ex.ids, ex.mask) if m], skip_special_tokens=True)
        p = probs[0] if probs[0].problem in text else probs[1]
        y1 = wrong[0].text if p is probs[0] else right[0].text
        assert y2 in (y1, toy.alt_solution(p)[0])  # a copy of y1, or the re-solve (always right)


def test_bad_turn2_mode(tok):
    with pytest.raises(ValueError, match="turn2_mode"):
        build_phase2_corpus(tok, prompts.TOY, [], toy.generate(3, seed=0), 5, CorpusMix(turn2_mode="both"), 0)


def test_resolve_example_is_the_instruction_then_the_second_style(tok):
    from scorelib.pretrain import resolve_example

    p = toy.generate(1, seed=2)[0]
    ex = resolve_example(tok, prompts.TOY, p)
    target = tok.decode([i for i, m in zip(ex.ids, ex.mask) if m], skip_special_tokens=True)
    assert target == toy.alt_solution(p)[0]
    # [<bos> x \n] [<eot>] [<|retry|> \n] [y' <eot>]: an empty first attempt, loss on y' and its end token only
    assert tok.decode(ex.ids) == f"<bos>{p.problem}\n<eot><|retry|>\n{toy.alt_solution(p)[0]}<eot>"
    assert ex.mask[-1] == 1 and sum(ex.mask) == len(tok(target, add_special_tokens=False)["input_ids"]) + 1
