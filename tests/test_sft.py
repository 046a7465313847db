"""SFT baselines (scorelib.sft): the data-set builders on a hand-made list of traces, the token
masks of the training examples, pooling over seeds, the claim checks, and Self-Refine's
per-turn instructions in the rollout engine."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from scorelib import metrics as M
from scorelib import claims, prompts, sft
from scorelib.config import SFTConfig
from scorelib import rollout as R
from scorelib.models import build_random_model, build_tiny_tokenizer
from scorelib.tasks import toy
from scorelib.training import collate


def T(problem, c1, c2, tag):
    """A trace whose attempt texts name the trace (e.g. 'a1'/'a2') and whose ids are distinct."""
    return sft.Trace(problem, (ord(tag[0]), 1), (ord(tag[0]), 2), f"{tag}1", f"{tag}2", c1, c2)


# problem 0: one fix (a) and one wrong->wrong (b); problem 1: right->right (c) and right->wrong (d);
# problem 2: wrong->wrong only (e): the model never solved it.
TRACES = [T(0, False, True, "a"), T(0, False, False, "b"), T(1, True, True, "c"), T(1, True, False, "d"),
          T(2, False, False, "e")]


def test_d_star_keeps_only_fixes_and_plus_adds_correct_to_correct():
    assert [(p.y1, p.y2, p.kind) for p in sft.d_star(TRACES)] == [("a1", "a2", "i2c")]  # b, e never fixed; c, d right first
    plus = sft.d_star(TRACES, plus=True)
    assert [(p.y1, p.y2, p.kind) for p in plus] == [("a1", "a2", "i2c"), ("c1", "c2", "c2c")]  # d broke a right answer


def test_correct_pool_collects_both_turns():
    pool = sft.correct_pool(TRACES)
    assert sorted(t for _, t in pool[0]) == ["a2"]  # a's second attempt; b never right
    assert sorted(t for _, t in pool[1]) == ["c1", "c2", "d1"]  # first and second turns
    assert 2 not in pool  # e: no correct response at all


def test_d_pair_sft_pairs_wrong_first_attempts_with_correct_responses():
    data = sft.d_pair_sft(TRACES, seed=0)
    # a and b (problem 0) are wrong first attempts: each paired with problem 0's only correct response;
    # e (problem 2) has no correct response: left out; c and d have right first attempts: not in D_SFT.
    assert [(p.problem, p.y1, p.y2, p.kind) for p in data] == [(0, "a1", "a2", "i2c"), (0, "b1", "a2", "i2c")]
    assert data[1].y2_ids == TRACES[0].y2_ids  # the pair carries the correct response's ids
    plus = sft.d_pair_sft(TRACES, plus=True, seed=0)
    kept = [(p.y1, p.kind) for p in plus]
    assert kept == [("a1", "i2c"), ("b1", "i2c"), ("c1", "c2c"), ("d1", "c2c")]
    assert all(p.y2 in {"c1", "c2", "d1"} for p in plus if p.problem == 1)  # a random correct response of problem 1


def test_d_pair_sft_draw_is_random_but_seeded():
    traces = [T(0, False, False, "w")] * 50 + [T(0, True, True, "x"), T(0, True, True, "y")]
    draws = [p.y2 for p in sft.d_pair_sft(traces, seed=1)]
    assert set(draws) == {"x1", "x2", "y1", "y2"}  # all four correct responses are drawn
    assert draws == [p.y2 for p in sft.d_pair_sft(traces, seed=1)]


def test_data_table_counts():
    t = sft.data_table({"D_STaR": sft.d_star(TRACES), "D+_SFT": sft.d_pair_sft(TRACES, plus=True)})
    assert t.loc["D_STaR"].to_dict() == dict(traces=1, fixes=1, keeps=0, problems=1)
    assert t.loc["D+_SFT"].to_dict() == dict(traces=4, fixes=2, keeps=2, problems=2)


# ------------------------------------------------------------------ training examples and masks


@pytest.fixture(scope="module")
def tiny():
    return build_tiny_tokenizer(), toy.generate(3, "train", seed=0)


def _enc(tok, text):
    return tuple(tok(text, add_special_tokens=False)["input_ids"])


def test_pair_examples_mask_only_the_second_attempt(tiny):
    tok, problems = tiny
    eos = tok.eos_token_id
    y1, y2 = _enc(tok, "1+1=3"), _enc(tok, "1+1=2") + (eos,)  # y1 ran out without eos; y2 ended with it
    pair = sft.Pair(0, y1, y2, "1+1=3", "1+1=2", "i2c")
    (ex,) = sft.pair_examples(tok, prompts.TOY, problems, [pair], [eos])
    x = R.encode_turn1(tok, prompts.TOY, problems[0].problem)
    glue = R.encode_glue(tok, prompts.TOY)
    assert ex.ids == list(x) + list(y1) + [eos] + glue[1:] + list(y2)  # the same layout as a rollout's rows
    trained = [i for i, m in zip(ex.ids, ex.mask) if m]
    assert trained == list(y2)  # y2 and its eos; not x, y1 or the instruction
    _, _, labels = collate([ex], tok.pad_token_id, "cpu")
    assert (labels[0] != -100).sum().item() == len(y2)
    (ex1,) = sft.pair_examples(tok, prompts.TOY, problems, [pair], [eos], train_turn1=True)
    assert [i for i, m in zip(ex1.ids, ex1.mask) if m] == list(y1) + [eos] + list(y2)
    (nx,) = sft.pair_examples(tok, prompts.TOY, problems, [pair], [eos], no_info=True)
    assert nx.ids == list(x) + list(y2) and nx.mask == [0] * len(x) + [1] * len(y2)  # no first attempt at all


def test_epoch_steps():
    assert sft.epoch_steps(100, 16) == 7
    assert sft.epoch_steps(100, 16, 0.5) == 4
    assert sft.epoch_steps(1, 16) == 1


def test_fine_tune_without_data_is_the_base(tiny):
    from scorelib.models import build_tiny_model

    tok, problems = tiny
    base = build_tiny_model(tok, 16, 1, 2, 32)
    model, history, steps = sft.fine_tune(base, tok, prompts.TOY, problems, [], SFTConfig(), 1.0)
    assert steps == 0 and history == [] and model is not base
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), base.parameters()))


def test_checkpoint_names():
    assert sft.checkpoint_name("STaR D+_STaR") == "STaR_Dplus_STaR"
    assert sft.checkpoint_name(sft.NO_INFO) == "No-info_retry_D_SFT_data"


# ------------------------------------------------------------------ pooling over seeds


def test_summarize_seeds_pools_and_clusters():
    # 2 seeds x 4 problems. Pooled: c1 = 4/8, c2 = 3/8; i->c: seed0 p3, seed1 p2 = 2/8; c->i: seed0 p0, seed1 p0, p1 = 3/8.
    c1 = [np.array([1, 1, 0, 0]), np.array([1, 1, 1, 0])]
    c2 = [np.array([0, 1, 0, 1]), np.array([0, 0, 1, 0])]
    c1[1][2], c2[1][2] = 0, 1  # seed 1, problem 2: wrong -> right
    out = M.summarize_seeds(c1, c2, n_boot=200, seed=0)
    assert out["acc_t1"] == pytest.approx(100 * 4 / 8)
    assert out["acc_t2"] == pytest.approx(100 * 3 / 8)
    assert out["delta_i2c"] == pytest.approx(100 * 2 / 8) and out["delta_c2i"] == pytest.approx(100 * 3 / 8)
    assert out["delta"] == pytest.approx(out["delta_i2c"] - out["delta_c2i"])
    assert out["seeds"] == 2 and out["n"] == 4  # problems (each counted once per seed in the estimates)
    assert out["delta_lo"] <= out["delta"] <= out["delta_hi"]
    per_seed = [M.two_turn_metrics(a, b)["delta"] for a, b in zip(c1, c2)]
    assert out["delta_seed_sd"] == pytest.approx(np.std(per_seed, ddof=1))
    with pytest.raises(ValueError):
        M.summarize_seeds([np.array([1, 0])], [np.array([1, 0, 1])])


def test_cluster_bootstrap_is_wider_than_pretending_seeds_are_new_problems():
    rng = np.random.default_rng(0)
    c1 = rng.random(300) < 0.5
    c2 = rng.random(300) < 0.5
    same = M.summarize_seeds([c1] * 3, [c2] * 3, n_boot=2000, seed=0)  # three identical seeds
    naive = M.summarize(np.tile(c1, 3), np.tile(c2, 3), n_boot=2000, seed=0)
    assert same["delta_hi"] - same["delta_lo"] > 1.5 * (naive["delta_hi"] - naive["delta_lo"])
    assert same["delta_seed_sd"] == 0


# ------------------------------------------------------------------ claims


def row(delta, i2c, c2i, width=1.0):
    return dict(delta=delta, delta_i2c=i2c, delta_c2i=c2i, delta_lo=delta - width, delta_hi=delta + width,
                delta_c2i_lo=c2i - width, delta_c2i_hi=c2i + width)


def test_claim_c2():
    base = row(-3, 2, 5)
    holds = {sft.STAR_D: row(-6, 4, 10), sft.STAR_DPLUS: row(0.2, 1, 0.8), sft.PAIR_DPLUS: row(0, 0, 0)}
    assert claims.claim_c2(base, holds)["holds"]
    assert not claims.claim_c2(base, {**holds, sft.STAR_D: row(-3, 2, 5.5)})["holds"]  # Δc→i not clearly above base
    assert not claims.claim_c2(base, {**holds, sft.PAIR_DPLUS: row(3, 4, 1)})["holds"]  # D+ still changes answers


def test_claim_c3():
    base = [0.0] * 6 + [0.6] * 4  # 60% near zero
    data = [0.5] * 10  # large edits in the data
    assert claims.claim_c3(base, data, [0.0] * 10, base)["holds"]
    assert not claims.claim_c3(base, data, base, base)["holds"]  # Pair-SFT kept the base's shape: no collapse
    assert claims.near_zero_share([0.01, 0.2]) == 50.0


def test_claim_c4():
    up_down = pd.DataFrame({"fixed y1, training problems": [10, 20], "fixed y1, held-out problems": [10, 15],
                            "own y1, held-out problems": [10, 8]}, index=[0.0, 1.0])
    c = claims.claim_c4(up_down)
    assert c["holds"] and c["gap"] and c["change"]["own y1, held-out problems"] == -2
    rises_less = up_down.assign(**{"own y1, held-out problems": [10, 12]})
    c = claims.claim_c4(rises_less)
    assert not c["holds"] and c["gap"]


# ------------------------------------------------------------------ Self-Refine turns


def test_rollout_with_per_turn_instructions():
    model, tok = build_random_model("tiny-qwen2")
    ro = R.rollout(model, tok, ["What is 1+1?"], ["2"], prompts.MATH, lambda y, a: 0.0, n_turns=3, max_new_tokens=3,
                   instructions=list(prompts.SELF_REFINE["math"]))
    segs, ids = ro.segments[0], ro.input_ids[0]
    assert prompts.SELF_REFINE_CRITIQUE in tok.decode(ids[segs == 3])
    assert "Using your review" in tok.decode(ids[segs == 5])
    assert prompts.MATH_INSTRUCTION not in tok.decode(ids)
    with pytest.raises(ValueError, match="instructions"):
        R.rollout(model, tok, ["q"], ["2"], prompts.MATH, lambda y, a: 0.0, n_turns=2, instructions=["a", "b"])


def test_self_refine_scores_the_rewrite():
    from scorelib.evaluate import self_refine

    model, tok = build_random_model("tiny-qwen2")
    ps = toy.generate(3, "test", seed=0)
    rewards = {}

    def reward(y, a):  # a random model's texts differ per turn: score by call order
        rewards.setdefault(len(rewards), y)
        return 1.0 if len(rewards) % 3 == 0 else 0.0

    ev = self_refine(model, tok, ps, prompts.MATH, *prompts.SELF_REFINE["math"], max_new_tokens=3, n_boot=10,
                     reward_fn=reward)
    assert ev.rollouts.rewards.shape == (3, 2) and len(ev.rollouts.y2_text) == 3
    assert ev.summary["n"] == 3


def test_pair_examples_match_the_rollout_layout_on_a_chat_model():
    """A chat model whose generation eos ids include a lower id than the tokenizer's eos (Qwen2.5-Instruct:
    <|endoftext|> 151643 < <|im_end|> 151645): SFT sequences must read like the rollout's."""
    model, tok = build_random_model("tiny-qwen2")
    im_end, endoftext = tok.convert_tokens_to_ids(["<|im_end|>", "<|endoftext|>"])
    assert endoftext < im_end
    model.generation_config.eos_token_id = [im_end, endoftext]
    stop = R.stop_token_ids(model, tok)
    assert stop[0] == im_end == tok.eos_token_id
    problems = toy.generate(2, "test", seed=0)
    y1 = _enc(tok, "I think it is 3.")
    y2 = _enc(tok, "It is 2.") + (im_end,)
    for y1_ids in (y1 + (im_end,), y1):  # ended by the model, or ran out of tokens
        pair = sft.Pair(0, y1_ids, y2, "", "", "i2c")
        (ex,) = sft.pair_examples(tok, prompts.MATH, problems, [pair], stop)
        ro = R.rollout(model, tok, [problems[0].problem], [problems[0].answer], prompts.MATH, lambda y, a: 0.0,
                       n_turns=2, max_new_tokens=1, given_y1=[list(y1_ids)])
        segs, ids = ro.segments[0], ro.input_ids[0]
        prefix = ids[(segs >= 1) & (segs <= 3)].tolist()
        assert ex.ids[: len(prefix)] == prefix  # x, y1 and the instruction: the same tokens as at test time
        n_x = int((segs == 1).sum())
        assert ex.ids[n_x + len(y1)] == im_end  # y1 closed by <|im_end|>, never by <|endoftext|>
        assert endoftext not in ex.ids
        assert ex.ids[len(prefix):] == list(y2)


def test_generation_ignores_the_models_repetition_penalty():
    model, tok = build_random_model("tiny-qwen2", seed=3)
    ps = toy.generate(3, "test", seed=0)
    args = ([p.problem for p in ps], [p.answer for p in ps], prompts.MATH, lambda y, a: 0.0)
    plain = R.rollout(model, tok, *args, n_turns=1, max_new_tokens=12).attempt_ids
    model.generation_config.repetition_penalty = 5.0
    model.generation_config.top_k = 3
    assert R.rollout(model, tok, *args, n_turns=1, max_new_tokens=12).attempt_ids == plain
