"""Tests of scorelib.models: the tiny character-level tokenizer, the tiny Llama, save/load."""
from __future__ import annotations

import json
import string

import pytest
import torch

from scorelib import prompts
from scorelib.grading import FINAL_ANSWER_PREFIX, FINAL_ANSWER_SUFFIX
from scorelib.models import (
    BOS,
    EOT,
    PAD,
    PHRASE_TOKENS,
    RETRY,
    SPECIAL_TOKENS,
    UNK,
    build_tiny_model,
    build_tiny_tokenizer,
    load_model,
    load_tokenizer,
    n_params,
    pick_device,
    pick_dtype,
    save_model,
)
from scorelib.tasks import toy

PRINTABLE = "".join(c for c in string.printable if c not in "\r\x0b\x0c")
SMALL = dict(d_model=32, n_layers=1, n_heads=2, d_ffn=64)


@pytest.fixture(scope="module")
def tok():
    return build_tiny_tokenizer()


@pytest.fixture(scope="module")
def model(tok):
    return build_tiny_model(tok, **SMALL).eval()


def enc(tok, text: str) -> list[int]:
    return tok(text, add_special_tokens=False)["input_ids"]


def round_trip_texts() -> list[str]:
    ps = toy.generate(40, "train", seed=3)
    return [
        FINAL_ANSWER_PREFIX,
        FINAL_ANSWER_SUFFIX,
        toy.final_answer("42"),
        "Compute $(45+38)\\times 6$.\n" + toy.final_answer("498"),
        "line one\nline two\n\n  indented\ttab\n",
        "\n",
        "",
        "Compute Compute  Computer compute",
        "Final Answer: The final answer is $Final Answer: The final answer is $$$. I hope it is correct.",
        "a . b , c ! d ? e 's f n't g 'm h 've",  # no "clean up tokenization spaces" may touch these
        "{}[]()<>|\\^~`'\"@#%&*_=+-/:;?!",
        PRINTABLE,
        *[p.problem for p in ps],
        *[p.solution for p in ps],
        *[p.problem + "\n" + p.solution for p in ps[:5]],
    ]


# ------------------------------------------------------------------------------------------
# Tokenizer
# ------------------------------------------------------------------------------------------

def test_vocabulary_layout(tok):
    assert tok.convert_ids_to_tokens(list(range(5))) == list(SPECIAL_TOKENS)
    assert (tok.pad_token, tok.bos_token, tok.eos_token, tok.unk_token) == (PAD, BOS, EOT, UNK)
    assert (tok.pad_token_id, tok.bos_token_id, tok.eos_token_id) == (0, 1, 2)
    assert len(tok) == len(SPECIAL_TOKENS) + len(PRINTABLE) + len(PHRASE_TOKENS)
    assert tok.padding_side == "left"
    assert len(set(tok.get_vocab().values())) == len(tok)


@pytest.mark.parametrize("text", round_trip_texts())
def test_round_trip(tok, text):
    ids = enc(tok, text)
    assert tok.unk_token_id not in ids
    assert tok.decode(ids) == text
    assert tok.decode(ids, skip_special_tokens=True) == text
    assert enc(tok, tok.decode(ids)) == ids


def test_every_printable_character_is_one_token(tok):
    for c in PRINTABLE:
        ids = enc(tok, c)
        assert len(ids) == 1 and tok.decode(ids) == c, repr(c)
    assert enc(tok, "\n\n") == enc(tok, "\n") * 2


@pytest.mark.parametrize("phrase", PHRASE_TOKENS)
def test_phrases_are_single_tokens(tok, phrase):
    ids = enc(tok, phrase)
    assert len(ids) == 1
    assert tok.convert_ids_to_tokens(ids) == [phrase]
    assert tok.decode(ids) == phrase


def test_answer_sentence_phrases(tok):
    assert FINAL_ANSWER_PREFIX == "Final Answer: The final answer is $"
    assert len(enc(tok, "Final Answer: The final answer is $")) == 1
    ids = enc(tok, toy.final_answer("-17"))
    toks = tok.convert_ids_to_tokens(ids)
    assert toks == [FINAL_ANSWER_PREFIX, "-", "1", "7", FINAL_ANSWER_SUFFIX]
    # a solution ends with the suffix phrase token
    sol = toy.generate(1, "train", seed=0)[0].solution
    assert tok.convert_ids_to_tokens(enc(tok, sol))[-1] == FINAL_ANSWER_SUFFIX


def test_special_tokens(tok):
    assert enc(tok, RETRY) == [tok.convert_tokens_to_ids(RETRY)]
    assert tok.convert_tokens_to_ids(RETRY) == 4
    ids = enc(tok, "ab" + RETRY + "c" + EOT)
    assert tok.convert_ids_to_tokens(ids) == ["a", "b", RETRY, "c", EOT]
    assert tok.decode(ids, skip_special_tokens=True) == "abc"
    assert tok.decode(ids) == "ab" + RETRY + "c" + EOT
    assert RETRY in tok.all_special_tokens


def test_unknown_characters_map_to_unk(tok):
    ids = enc(tok, "é")
    assert ids == [tok.unk_token_id]


def test_chat_template_one_user_turn(tok):
    problem = "Compute $12+34$."
    for gen in (False, True):
        text = tok.apply_chat_template([{"role": "user", "content": problem}], tokenize=False,
                                       add_generation_prompt=gen)
        assert text == f"<bos>{problem}\n"
    ids = tok.apply_chat_template([{"role": "user", "content": problem}], tokenize=True)
    ids = ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids
    assert ids == [tok.bos_token_id] + enc(tok, problem) + enc(tok, "\n")


def test_chat_template_two_turns(tok):
    msgs = [{"role": "user", "content": "Compute $1+1$."}, {"role": "assistant", "content": toy.final_answer("2")},
            {"role": "user", "content": prompts.TOY.instruction}, {"role": "assistant", "content": "y2"}]
    text = tok.apply_chat_template(msgs, tokenize=False)
    assert text == "<bos>Compute $1+1$.\n" + toy.final_answer("2") + "<eot><|retry|>\ny2<eot>"


# ------------------------------------------------------------------------------------------
# Model
# ------------------------------------------------------------------------------------------

def test_tiny_model_config(tok, model):
    c = model.config
    assert c.vocab_size == len(tok)
    assert (c.hidden_size, c.num_hidden_layers, c.num_attention_heads, c.intermediate_size) == (32, 1, 2, 64)
    assert (c.bos_token_id, c.eos_token_id, c.pad_token_id) == (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id)
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()  # tied
    assert n_params(model) == sum(p.numel() for p in model.parameters())


def test_tiny_model_is_seeded(tok):
    a, b = build_tiny_model(tok, **SMALL, seed=1), build_tiny_model(tok, **SMALL, seed=1)
    c = build_tiny_model(tok, **SMALL, seed=2)
    for (na, pa), (_, pb), (_, pc) in zip(a.named_parameters(), b.named_parameters(), c.named_parameters()):
        assert torch.equal(pa, pb), na
    assert any(not torch.equal(pa, pc) for pa, pc in zip(a.parameters(), c.parameters()))


def test_pick_device_and_dtype():
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device("auto").type in ("cpu", "cuda")
    assert pick_dtype("auto", torch.device("cpu")) == torch.float32
    assert pick_dtype("auto", torch.device("cuda")) == torch.bfloat16
    assert pick_dtype("bf16", torch.device("cpu")) == torch.bfloat16
    with pytest.raises(ValueError, match="valid"):
        pick_dtype("float8", torch.device("cpu"))


def _logits(model, tok, texts):
    ids = [[tok.bos_token_id] + enc(tok, t) for t in texts]
    width = max(map(len, ids))
    x = torch.full((len(ids), width), tok.pad_token_id)
    att = torch.zeros((len(ids), width), dtype=torch.long)
    for i, s in enumerate(ids):
        x[i, width - len(s):] = torch.tensor(s)
        att[i, width - len(s):] = 1
    with torch.no_grad():
        return model(input_ids=x, attention_mask=att).logits, att


@pytest.mark.parametrize("tiny", [True, False])
def test_save_load_round_trip(tmp_path, tok, model, tiny):
    path = save_model(model, tok, tmp_path / "m", tiny=tiny)
    assert (path / "scorelib_tiny.json").exists() == tiny
    if tiny:
        assert json.loads((path / "scorelib_tiny.json").read_text())["tokenizer"] == "PreTrainedTokenizerFast"
    m2, t2 = load_model(path, device="cpu")
    assert not m2.training
    assert next(m2.parameters()).dtype == torch.float32
    # identical tokenization, special tokens and template
    assert len(t2) == len(tok)
    assert t2.get_vocab() == tok.get_vocab()
    for text in round_trip_texts():
        assert enc(t2, text) == enc(tok, text)
        assert t2.decode(enc(t2, text)) == text
    assert (t2.pad_token_id, t2.bos_token_id, t2.eos_token_id, t2.unk_token_id) == (0, 1, 2, 3)
    assert enc(t2, RETRY) == [4]
    assert t2.chat_template == tok.chat_template
    assert t2.padding_side == "left"
    # identical logits (left-padded batch, so the attention mask path is covered too)
    texts = [p.problem for p in toy.generate(5, "test", seed=0)]
    a, att = _logits(model, tok, texts)
    b, _ = _logits(m2, t2, texts)
    assert torch.equal(a[att.bool()], b[att.bool()])
    assert load_tokenizer(path).get_vocab() == tok.get_vocab()


def test_load_model_dtype(tmp_path, tok, model):
    path = save_model(model, tok, tmp_path / "m", tiny=True)
    m2, _ = load_model(path, device="cpu", dtype="bfloat16")
    assert next(m2.parameters()).dtype == torch.bfloat16
