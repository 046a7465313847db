"""Exact tests of the k-turn rollout engine (scorelib.rollout) with tiny untrained models.

Segments: 0 pad, 1 prompt x, 2 attempt 1, 3 instruction after attempt 1, 4 attempt 2, 5, 6, ...
Every row is [x, y1, p, y2, ...] right-padded, each piece contiguous and in that order; the
instruction piece is ``encode_glue`` without its leading eos when the previous attempt already
ended with that eos (the chat template's end-of-turn token is then not written twice).

Most tests use a tiny Llama whose weights are re-drawn with a larger spread (so greedy decoding
writes varied text instead of one repeated character) and whose eos embedding is scaled up (so
some attempts end with eos and some run to max_new_tokens): both branches of the glue rule and of
trimming are exercised deterministically. A last group uses a tiny random Qwen2 with a hand-made
word-level ChatML tokenizer and the paper's MATH prompts, saved and loaded with load_model.
"""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from scorelib import grading, prompts
from scorelib import rollout as R
from scorelib.models import build_tiny_model, build_tiny_tokenizer
from scorelib.tasks import toy

MAX_NEW = 24
N_PROBLEMS = 12


# ------------------------------------------------------------------------------------------
# Fixtures
# ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tok():
    return build_tiny_tokenizer()


def _varied_model(tok, seed: int = 0, std: float = 0.3, eos_scale: float = 2.0):
    """A tiny Llama with re-drawn weights: varied greedy text, and eos on some rows only."""
    model = build_tiny_model(tok, d_model=32, n_layers=1, n_heads=2, d_ffn=64, seed=seed)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0.0, std, generator=gen)
        model.model.embed_tokens.weight[tok.eos_token_id] *= eos_scale  # tied: raises |eos logit|
    return model.eval()


@pytest.fixture(scope="module")
def model(tok):
    return _varied_model(tok)


@pytest.fixture(scope="module")
def plain_model(tok):
    """The untrained tiny model exactly as build_tiny_model makes it."""
    return build_tiny_model(tok, d_model=32, n_layers=1, n_heads=2, d_ffn=64).eval()


@pytest.fixture(scope="module")
def problems():
    ps = toy.generate(N_PROBLEMS, "test", seed=0)
    assert len({len(p.problem) for p in ps}) > 3, "want problems of different lengths"
    return ps


def _run(model, tok, problems, **kw):
    kw.setdefault("max_new_tokens", MAX_NEW)
    return R.rollout(model, tok, [p.problem for p in problems], [p.answer for p in problems], prompts.TOY,
                     grading.reward, **kw)


@pytest.fixture(scope="module")
def greedy(model, tok, problems):
    return _run(model, tok, problems, n_turns=2, batch_size=8)


# ------------------------------------------------------------------------------------------
# Helpers
# ------------------------------------------------------------------------------------------

def runs(segs_row: torch.Tensor) -> list[tuple[int, int, int]]:
    """(segment id, start, end) of each maximal run of equal segment ids in one row."""
    s = segs_row.tolist()
    out, start = [], 0
    for j in range(1, len(s) + 1):
        if j == len(s) or s[j] != s[start]:
            out.append((s[start], start, j))
            start = j
    return out


def expected_instruction(glue: list[int], prev: list[int], eos: int) -> list[int]:
    return glue[1:] if prev and prev[-1] == eos and glue and glue[0] == eos else glue


def check_layout(ro: R.Rollouts, tok, problems, protocol=prompts.TOY, max_new=MAX_NEW):
    """Every structural invariant of a Rollouts object, row by row."""
    n_turns = ro.n_turns
    n = len(ro.problem_index)
    eos = tok.eos_token_id
    glue = R.encode_glue(tok, protocol)
    want_segs = [R.PROMPT_SEG]
    for t in range(1, n_turns + 1):
        want_segs.append(R.attempt_seg(t))
        if t < n_turns:
            want_segs.append(R.instruction_seg(t))
    assert ro.input_ids.shape == ro.segments.shape == ro.attention_mask.shape
    assert ro.input_ids.shape[0] == n and ro.input_ids.dtype == torch.long
    assert ro.rewards.shape == (n, n_turns)
    assert len(ro.texts) == len(ro.attempt_ids) == n_turns
    assert all(len(turn) == n for turn in ro.texts + ro.attempt_ids)
    assert torch.equal(ro.attention_mask, (ro.segments != R.PAD_SEG).long())
    for r in range(n):
        segs, ids = ro.segments[r], ro.input_ids[r]
        rr = runs(segs)
        body = [x for x in rr if x[0] != R.PAD_SEG]
        # contiguous, in order, each present once; padding only at the end (right padding)
        assert [x[0] for x in body] == want_segs, (r, rr)
        assert body[0][1] == 0
        pads = [x for x in rr if x[0] == R.PAD_SEG]
        assert pads in ([], [rr[-1]]), rr
        if pads:
            assert (ids[pads[0][1]:] == tok.pad_token_id).all()
        # the prompt is exactly encode_turn1 of the row's problem
        x = R.encode_turn1(tok, protocol, problems[ro.problem_index[r]].problem)
        assert ids[segs == R.PROMPT_SEG].tolist() == x
        for t in range(1, n_turns + 1):
            att = ro.attempt_ids[t - 1][r]
            assert ids[ro.attempt_mask(t)[r]].tolist() == att
            assert ids[ro.mask(R.attempt_seg(t))[r]].tolist() == att
            # trimmed: stops at the first stop token, or ran to max_new_tokens without one
            stops = [j for j, v in enumerate(att) if v == eos]
            if stops:
                assert stops == [len(att) - 1], (t, r, att)
            else:
                assert len(att) == max_new, (t, r, att)
            assert ro.texts[t - 1][r] == tok.decode(att, skip_special_tokens=True)
            if t < n_turns:
                got = ids[segs == R.instruction_seg(t)].tolist()
                assert got == expected_instruction(glue, att, eos), (t, r, got, att)
        width = sum(len(p) for p in [ids[segs == s] for s in want_segs])
        assert int(ro.attention_mask[r].sum()) == width
    # at least one row is as wide as the tensor (no needless padding column)
    assert int(ro.attention_mask.sum(1).max()) == ro.input_ids.shape[1]


# ------------------------------------------------------------------------------------------
# Encoding pieces
# ------------------------------------------------------------------------------------------

def test_segment_ids():
    assert (R.PAD_SEG, R.PROMPT_SEG) == (0, 1)
    assert [R.attempt_seg(t) for t in (1, 2, 3)] == [2, 4, 6]
    assert [R.instruction_seg(t) for t in (1, 2)] == [3, 5]


def test_encode_turn1_and_glue_are_the_chat_template(tok):
    x = R.encode_turn1(tok, prompts.TOY, "Compute $12+34$.")
    assert tok.convert_ids_to_tokens(x) == ["<bos>", "Compute ", "$", "1", "2", "+", "3", "4", "$", ".", "\n"]
    glue = R.encode_glue(tok, prompts.TOY)
    assert tok.convert_ids_to_tokens(glue) == ["<eot>", "<|retry|>", "\n"]
    assert glue[0] == tok.eos_token_id


def test_stop_token_ids(tok, model):
    assert R.stop_token_ids(model, tok) == [tok.eos_token_id]


def test_prefix_matches_template_rendering(tok, model, problems):
    """[x, y1, p] as the engine writes it equals the chat template's rendering of the same turns."""
    sols = [p.solution for p in problems[:4]]
    y1 = [tok(s, add_special_tokens=False)["input_ids"] + [tok.eos_token_id] for s in sols]
    ro = _run(model, tok, problems[:4], given_y1=y1, max_new_tokens=4)
    for r, p in enumerate(problems[:4]):
        msgs = [{"role": "user", "content": p.problem}, {"role": "assistant", "content": sols[r]},
                {"role": "user", "content": prompts.TOY.instruction}]
        text = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        want = tok(text, add_special_tokens=False)["input_ids"]
        keep = (ro.segments[r] >= 1) & (ro.segments[r] <= 3)
        assert ro.input_ids[r][keep].tolist() == want


# ------------------------------------------------------------------------------------------
# Layout of a greedy two-turn rollout
# ------------------------------------------------------------------------------------------

def test_two_turn_layout(greedy, tok, problems):
    check_layout(greedy, tok, problems)
    ends = [bool(a) and a[-1] == tok.eos_token_id for a in greedy.attempt_ids[0]]
    # the fixture model is built so that both branches of the glue rule occur
    assert any(ends) and not all(ends), ends
    ends2 = [a[-1] == tok.eos_token_id for a in greedy.attempt_ids[1]]
    assert any(ends2) and not all(ends2), ends2


def test_two_turn_layout_plain_untrained_model(plain_model, tok, problems):
    ro = _run(plain_model, tok, problems, n_turns=2, batch_size=5, max_new_tokens=6)
    check_layout(ro, tok, problems, max_new=6)


def test_texts_rewards_and_accessors(greedy, tok, problems):
    assert greedy.texts[0] == tok.batch_decode(greedy.attempt_ids[0], skip_special_tokens=True)
    assert greedy.y1_text is greedy.texts[0] and greedy.y2_text is greedy.texts[1]
    assert all("<eot>" not in t and "<pad>" not in t for turn in greedy.texts for t in turn)
    assert greedy.rewards.shape == (N_PROBLEMS, 2) and greedy.rewards.dtype == np.float64
    want = [[grading.reward(greedy.texts[t][r], problems[r].answer) for t in range(2)] for r in range(N_PROBLEMS)]
    assert greedy.rewards.tolist() == want
    assert np.array_equal(greedy.correct, greedy.rewards > 0)
    assert greedy.n_turns == 2
    seconds = greedy.meta["seconds"]
    assert {k: v for k, v in greedy.meta.items() if k != "seconds"} == dict(temperature=0.0, k=1, n_turns=2, max_new_tokens=MAX_NEW, engine="compact")
    assert set(seconds) == {"decode_t1", "decode_t2", "score"} and all(v >= 0 for v in seconds.values())
    assert np.array_equal(greedy.problem_index, np.arange(N_PROBLEMS))


def test_k_samples_repeat_problem_index(model, tok, problems):
    ro = _run(model, tok, problems[:5], k=3, temperature=1.0, seed=0, batch_size=4)
    assert ro.problem_index.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4]
    assert ro.rewards.shape == (15, 2)
    check_layout(ro, tok, problems[:5])
    assert ro.meta["k"] == 3


def test_rewards_use_each_rows_own_answer(model, tok, problems):
    """A correct y1 (the reference solution) scores 1 on every row, with k > 1 too."""
    ps = problems[:4]
    k = 2
    y1 = [tok(ps[i].solution, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
          for i in np.repeat(np.arange(len(ps)), k)]
    ro = _run(model, tok, ps, k=k, given_y1=y1, max_new_tokens=4)
    assert ro.rewards[:, 0].tolist() == [1.0] * (len(ps) * k)
    assert ro.texts[0] == [ps[i].solution for i in ro.problem_index]
    # a solution with a wrong answer scores 0
    wrong = [tok(toy.final_answer(str(int(ps[i].answer) + 1)), add_special_tokens=False)["input_ids"]
             for i in np.repeat(np.arange(len(ps)), k)]
    ro = _run(model, tok, ps, k=k, given_y1=wrong, max_new_tokens=4)
    assert ro.rewards[:, 0].tolist() == [0.0] * (len(ps) * k)


# ------------------------------------------------------------------------------------------
# Determinism and batching
# ------------------------------------------------------------------------------------------

def test_greedy_is_deterministic(greedy, model, tok, problems):
    again = _run(model, tok, problems, n_turns=2, batch_size=8)
    assert torch.equal(again.input_ids, greedy.input_ids)
    assert torch.equal(again.segments, greedy.segments)
    assert again.texts == greedy.texts


def test_greedy_k_copies_are_identical(model, tok, problems):
    ro = _run(model, tok, problems[:4], k=3, batch_size=16)
    for r in range(0, 12, 3):
        assert torch.equal(ro.input_ids[r], ro.input_ids[r + 1]) and torch.equal(ro.input_ids[r], ro.input_ids[r + 2])


def test_seeded_sampling_is_deterministic(model, tok, problems):
    a = _run(model, tok, problems, temperature=1.0, seed=7, batch_size=8)
    torch.manual_seed(12345)  # the global RNG state in between must not matter
    _ = torch.rand(100)
    b = _run(model, tok, problems, temperature=1.0, seed=7, batch_size=8)
    assert torch.equal(a.input_ids, b.input_ids) and a.texts == b.texts
    c = _run(model, tok, problems, temperature=1.0, seed=8, batch_size=8)
    assert a.attempt_ids != c.attempt_ids
    check_layout(a, tok, problems)
    assert a.meta["temperature"] == 1.0


@pytest.mark.parametrize("batch_size", [1, 5, 64])
def test_left_padded_batches_equal_one_at_a_time(greedy, model, tok, problems, batch_size):
    """Greedy ids do not depend on how rows are batched (left padding must be invisible)."""
    other = _run(model, tok, problems, n_turns=2, batch_size=batch_size)
    assert other.attempt_ids == greedy.attempt_ids
    assert torch.equal(other.input_ids, greedy.input_ids)


def test_generate_batch_equals_unbatched_generate(model, tok, problems):
    """generate_batch on left-padded contexts equals plain model.generate on each context alone."""
    ctxs = [R.encode_turn1(tok, prompts.TOY, p.problem) for p in problems[:6]]
    stop = R.stop_token_ids(model, tok)
    batched = R.generate_batch(model, tok, ctxs, 0.0, MAX_NEW, stop)
    for ctx, got in zip(ctxs, batched):
        out = model.generate(input_ids=torch.tensor([ctx]), attention_mask=torch.ones(1, len(ctx), dtype=torch.long),
                             max_new_tokens=MAX_NEW, do_sample=False, eos_token_id=stop,
                             pad_token_id=tok.pad_token_id)
        assert got == out[0, len(ctx):].tolist()


def test_compact_engine_equals_generate_greedy(greedy, model, tok, problems):
    """The compacting decoder (finished rows leave the batch) gives model.generate's greedy ids, both turns."""
    other = _run(model, tok, problems, n_turns=2, engine="generate")
    assert other.attempt_ids == greedy.attempt_ids and greedy.meta["engine"] == "compact"
    assert torch.equal(other.input_ids, greedy.input_ids)


def test_decode_budget_groups_do_not_change_greedy_ids(greedy, model, tok, problems):
    """Rows decoded in small length-sorted groups come back in row order with the same ids."""
    other = _run(model, tok, problems, n_turns=2, decode_budget=40)
    assert other.attempt_ids == greedy.attempt_ids


def test_compact_sampling_follows_the_softmax(model, tok, problems):
    """At T=1.5 the first sampled token's frequencies over 4,000 rows match softmax(logits / 1.5)."""
    ctx = R.encode_turn1(tok, prompts.TOY, problems[0].problem)
    with torch.no_grad():
        probs = torch.softmax(model(input_ids=torch.tensor([ctx])).logits[0, -1] / 1.5, -1)
    torch.manual_seed(0)
    n = 4000
    out = R.sample_compact(model, [ctx] * n, 1.5, 1, R.stop_token_ids(model, tok), tok.pad_token_id)
    assert all(len(y) == 1 for y in out)
    freq = torch.bincount(torch.tensor([y[0] for y in out]), minlength=probs.numel()).float() / n
    se = (probs * (1 - probs) / n).sqrt()
    assert float(((freq - probs).abs() - 4 * se).max()) < 1e-3


def test_length_chunks_by_hand():
    # sorted longest first (ties in row order): 1(9) 3(9) 0(5) 4(3) 2(2)
    assert R.length_chunks([5, 9, 2, 9, 3], None, None) == [[1, 3, 0, 4, 2]]
    assert R.length_chunks([5, 9, 2, 9, 3], 2, None) == [[1, 3], [0, 4], [2]]
    # budget 18 padded tokens: [1, 3] = 2 x 9; [0, 4, 2] = 3 x 5 = 15; a row longer than the budget is alone
    assert R.length_chunks([5, 9, 2, 9, 3], None, 18) == [[1, 3], [0, 4, 2]]
    assert R.length_chunks([30, 2], None, 18) == [[0], [1]]


def test_bad_engine(model, tok, problems):
    with pytest.raises(ValueError, match="engine"):
        _run(model, tok, problems[:1], engine="vllm")


# ------------------------------------------------------------------------------------------
# given_y1, more turns, arguments
# ------------------------------------------------------------------------------------------

def test_given_y1_fixes_first_attempt(greedy, model, tok, problems):
    # Feeding greedy's own first attempts back gives exactly the same rollout.
    same = _run(model, tok, problems, given_y1=greedy.attempt_ids[0], batch_size=8)
    assert torch.equal(same.input_ids, greedy.input_ids)
    assert same.attempt_ids == greedy.attempt_ids
    # Arbitrary first attempts are kept verbatim; the second attempt is generated after them.
    y1 = [tok(f"guess {i}", add_special_tokens=False)["input_ids"] + ([tok.eos_token_id] if i % 2 else [])
          for i in range(N_PROBLEMS)]
    ro = _run(model, tok, problems, given_y1=y1, batch_size=8)
    assert ro.attempt_ids[0] == y1
    assert ro.texts[0] == [f"guess {i}" for i in range(N_PROBLEMS)]
    assert ro.rewards[:, 0].tolist() == [0.0] * N_PROBLEMS
    glue = R.encode_glue(tok, prompts.TOY)
    for r in range(N_PROBLEMS):
        assert [s for s, _, _ in runs(ro.segments[r]) if s] == [1, 2, 3, 4]
        assert ro.input_ids[r][ro.segments[r] == 3].tolist() == expected_instruction(glue, y1[r], tok.eos_token_id)
        assert ro.input_ids[r][ro.segments[r] == 4].tolist() == ro.attempt_ids[1][r]


def test_given_y1_row_count_is_checked(model, tok, problems):
    with pytest.raises(ValueError, match="given_y1"):
        _run(model, tok, problems[:3], k=2, given_y1=[[5]] * 3)


def test_three_turns(greedy, model, tok, problems):
    ro = _run(model, tok, problems, n_turns=3, batch_size=8)
    check_layout(ro, tok, problems)
    for r in range(N_PROBLEMS):
        assert [s for s, _, _ in runs(ro.segments[r]) if s] == [1, 2, 3, 4, 5, 6]
    assert ro.rewards.shape == (N_PROBLEMS, 3) and len(ro.texts) == 3 and ro.n_turns == 3
    # greedy: the first two turns are those of the two-turn rollout
    assert ro.attempt_ids[:2] == greedy.attempt_ids
    for r in range(N_PROBLEMS):
        two = greedy.input_ids[r][greedy.segments[r] > 0]
        assert torch.equal(ro.input_ids[r][(ro.segments[r] > 0) & (ro.segments[r] <= 4)], two)


def test_one_turn(model, tok, problems):
    ro = _run(model, tok, problems, n_turns=1, batch_size=8)
    check_layout(ro, tok, problems)
    assert ro.rewards.shape == (N_PROBLEMS, 1)
    assert set(ro.segments.unique().tolist()) <= {0, 1, 2}


def test_model_mode_is_restored(tok, problems):
    m = _varied_model(tok)
    m.train()
    _run(m, tok, problems[:2], max_new_tokens=3)
    assert m.training
    m.eval()
    _run(m, tok, problems[:2], max_new_tokens=3)
    assert not m.training


@pytest.mark.parametrize("kw", [
    dict(answers=["1"]),  # mismatched lengths
    dict(k=0),
    dict(k=-1),
    dict(n_turns=0),
    dict(temperature=-0.5),
    dict(temperature=-1e-9),
])
def test_bad_arguments_raise(model, tok, problems, kw):
    args = dict(problems=[p.problem for p in problems[:3]], answers=[p.answer for p in problems[:3]])
    args.update({k: v for k, v in kw.items() if k in args})
    opts = {k: v for k, v in kw.items() if k not in args}
    with pytest.raises(ValueError):
        R.rollout(model, tok, args["problems"], args["answers"], prompts.TOY, grading.reward, max_new_tokens=2, **opts)


# ------------------------------------------------------------------------------------------
# A tiny Qwen2 with a word-level ChatML tokenizer and the paper's MATH prompts
# ------------------------------------------------------------------------------------------

CHATML_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
QWEN_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<unk>"]
PAPER_PHRASE = "There might be an error in the solution above"


def _words(text: str) -> list[str]:
    return re.findall(r"\w+|[^\w\s]", text)


def _qwen_tokenizer(extra_texts: list[str]):
    from tokenizers import AddedToken, Tokenizer, models as tk_models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    texts = [prompts.MATH.turn1("x"), prompts.MATH.instruction, "user assistant system", *extra_texts]
    words = sorted({w for t in texts for w in _words(t)})
    vocab = {t: i for i, t in enumerate(QWEN_SPECIALS + words)}
    tk = Tokenizer(tk_models.WordLevel(vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    tk.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in QWEN_SPECIALS])
    fast = PreTrainedTokenizerFast(tokenizer_object=tk, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   unk_token="<unk>")
    fast.chat_template = CHATML_TEMPLATE
    return fast


@pytest.fixture(scope="module")
def qwen_dir(tmp_path_factory, problems):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tk = _qwen_tokenizer([p.problem for p in problems] + [p.solution for p in problems])
    cfg = Qwen2Config(vocab_size=len(tk), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=2048,
                      tie_word_embeddings=True, eos_token_id=tk.eos_token_id, pad_token_id=tk.pad_token_id,
                      bos_token_id=None)
    torch.manual_seed(0)
    m = Qwen2ForCausalLM(cfg).eval()
    path = tmp_path_factory.mktemp("qwen2_tiny")
    m.save_pretrained(path)
    tk.save_pretrained(path)
    return path, tk


def _qwen_texts(problems):
    return ([prompts.MATH.turn1(p.problem) for p in problems[:3]] + [prompts.MATH.instruction]
            + [p.solution for p in problems[:3]])


def test_qwen_load_model_returns_a_cpu_eval_model(qwen_dir):
    from scorelib.models import load_model
    from transformers import Qwen2ForCausalLM

    path, _ = qwen_dir
    m, t = load_model(path, device="cpu")
    assert isinstance(m, Qwen2ForCausalLM)
    assert not m.training and next(m.parameters()).device.type == "cpu"
    assert next(m.parameters()).dtype == torch.float32
    assert t.padding_side == "left" and t.pad_token is not None
    assert t.eos_token == "<|im_end|>"


def test_qwen_load_model_tokenizer_round_trips(qwen_dir, problems):
    from scorelib.models import load_model

    path, orig = qwen_dir
    _, t = load_model(path, device="cpu")
    for text in _qwen_texts(problems):
        want = orig(text, add_special_tokens=False)["input_ids"]
        got = t(text, add_special_tokens=False)["input_ids"]
        assert got == want, (type(t).__name__, text[:40])
    unknown = "zzz qqq"  # out-of-vocabulary words become <unk>, as with the saved tokenizer
    assert t(unknown, add_special_tokens=False)["input_ids"] == orig(unknown, add_special_tokens=False)["input_ids"]
    assert orig.unk_token_id in t(unknown, add_special_tokens=False)["input_ids"]


def _qwen_model_and_tokenizer(path):
    """load_model's model with the saved tokenizer loaded as what it was saved as."""
    from scorelib.models import load_model
    from transformers import PreTrainedTokenizerFast

    m, _ = load_model(path, device="cpu")
    t = PreTrainedTokenizerFast.from_pretrained(path)
    t.padding_side = "left"
    return m, t


def test_qwen_saved_tokenizer_round_trips(qwen_dir, problems):
    path, orig = qwen_dir
    _, t = _qwen_model_and_tokenizer(path)
    assert t.chat_template == CHATML_TEMPLATE
    for text in _qwen_texts(problems):
        ids = t(text, add_special_tokens=False)["input_ids"]
        assert ids == orig(text, add_special_tokens=False)["input_ids"]
        assert t.unk_token_id not in ids
        # word-level: decoding joins words with single spaces; re-encoding gives the same ids
        dec = t.decode(ids)
        assert dec.split() == " ".join(_words(text)).split()
        assert t(dec, add_special_tokens=False)["input_ids"] == ids
    assert PAPER_PHRASE in t.decode(t(prompts.MATH.instruction, add_special_tokens=False)["input_ids"])


def test_qwen_math_rollout(qwen_dir, problems):
    path, _ = qwen_dir
    m, t = _qwen_model_and_tokenizer(path)
    ps = problems[:4]
    eos = t.eos_token_id
    glue = R.encode_glue(t, prompts.MATH)
    assert t.convert_ids_to_tokens(glue[:2]) == ["<|im_end|>", "<|im_start|>"]
    assert t.convert_ids_to_tokens(glue[-2:]) == ["<|im_start|>", "assistant"]
    assert R.stop_token_ids(m, t) == [eos]
    # First attempts: two given solutions (one ending with eos, one not), then generated ones.
    sol = [t(p.solution, add_special_tokens=False)["input_ids"] for p in ps]
    y1 = [sol[0] + [eos], sol[1], sol[2] + [eos], sol[3]]
    for given in (y1, None):
        ro = R.rollout(m, t, [p.problem for p in ps], [p.answer for p in ps], prompts.MATH, grading.reward,
                       n_turns=2, max_new_tokens=6, batch_size=3, given_y1=given)
        for r in range(len(ps)):
            segs, ids = ro.segments[r], ro.input_ids[r]
            assert [s for s, _, _ in runs(segs) if s] == [1, 2, 3, 4]
            x_text = t.decode(ids[segs == 1])
            assert "You are a math expert" in x_text and "Problem :" in x_text
            assert x_text.startswith("<|im_start|> user") and x_text.rstrip().endswith("<|im_start|> assistant")
            att1 = ro.attempt_ids[0][r]
            instr_ids = ids[segs == 3].tolist()
            assert instr_ids == expected_instruction(glue, att1, eos)
            instr = t.decode(instr_ids)
            assert PAPER_PHRASE in instr
            assert instr.startswith("<|im_start|> user" if att1[-1] == eos else "<|im_end|>")
            assert ids[segs == 4].tolist() == ro.attempt_ids[1][r]
            if given is not None:
                assert att1 == given[r]
                # the prefix [x, y1, p] equals the ChatML rendering of the same turns
                msgs = [{"role": "user", "content": prompts.MATH.turn1(ps[r].problem)},
                        {"role": "assistant", "content": t.decode(sol[r])},
                        {"role": "user", "content": prompts.MATH.instruction}]
                want = t(t.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True),
                         add_special_tokens=False)["input_ids"]
                if att1[-1] == eos:
                    assert ids[(segs >= 1) & (segs <= 3)].tolist() == want
        if given is not None:
            assert ro.rewards[:, 0].tolist() == [1.0] * len(ps)  # the reference solutions are correct


def test_glue_kept_when_attempt_ends_with_another_stop_token(tok, problems):
    m = _varied_model(tok)
    other = tok.convert_tokens_to_ids("#")
    m.generation_config.eos_token_id = [tok.eos_token_id, other]
    assert R.stop_token_ids(m, tok) == [tok.eos_token_id, other]  # the tokenizer's eos first
    y1 = [tok("12", add_special_tokens=False)["input_ids"] + [other] for _ in problems[:2]]
    ro = _run(m, tok, problems[:2], given_y1=y1, max_new_tokens=3)
    glue = R.encode_glue(tok, prompts.TOY)
    for r in range(2):
        assert ro.input_ids[r][ro.segments[r] == 3].tolist() == glue  # [<eot>, <|retry|>, \n]
