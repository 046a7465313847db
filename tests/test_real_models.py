"""The real-model path on CPU, offline: a tiny random Qwen2 with scorelib's byte-level ChatML
tokenizer saved to a local folder stands in for a hub model. Two-turn rollout with the paper's
MATH prompts, LoRA through peft (training step, adapter save/load, the reference = adapter
disabled), the micro-batched policy update, and the model/task parameters of the notebooks."""
from __future__ import annotations

import json

import pytest
import torch

from scorelib import config as C
from scorelib import grading, prompts
from scorelib import rollout as R
from scorelib.models import (CHATML_TEMPLATE, apply_lora, build_byte_tokenizer, build_random_model, is_peft,
                             load_model, n_trainable, reference_mode, save_model)
from scorelib.rl import rl_train
from scorelib.rl_settings import RLSettings
from scorelib.tasks import toy
from scorelib.training import Example, train_masked_lm
from scorelib.update import policy_update


@pytest.fixture(scope="module")
def qwen_dir(tmp_path_factory):
    model, tok = build_random_model("tiny-qwen2", seed=0)
    path = tmp_path_factory.mktemp("tiny_qwen2")
    save_model(model, tok, path)
    return path


@pytest.fixture(scope="module")
def problems():
    return toy.generate(6, "test", seed=0)


def logits(model, text_ids):
    with torch.no_grad():
        return model(input_ids=torch.tensor([text_ids])).logits


# ------------------------------------------------------------------ tokenizer and model


@pytest.mark.parametrize("text", ["Final Answer: The final answer is $\\frac{1}{2}$. I hope it is correct.",
                                  "déjà vu ∑ 中文 🙂", "  leading spaces\n\ttabs", ""])
def test_byte_tokenizer_round_trips_any_text(text):
    tok = build_byte_tokenizer()
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert len(ids) == len(text.encode("utf-8"))  # one token per byte, no merges
    assert tok.decode(ids) == text


def test_byte_tokenizer_pads_vocab_and_has_chatml():
    tok = build_byte_tokenizer(vocab_size=1000)
    assert len(tok) == 1000
    assert tok.decode([999]) == "<x999>"  # filler ids decode to text, never produced by encoding
    assert tok.chat_template == CHATML_TEMPLATE and tok.eos_token == "<|im_end|>"
    text = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    assert text == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    with pytest.raises(ValueError, match="vocab_size"):
        build_byte_tokenizer(vocab_size=10)


def test_unknown_shape_is_an_error():
    with pytest.raises(ValueError, match="unknown shape"):
        build_random_model("gpt-17")


def test_load_model_from_local_folder(qwen_dir):
    m, t = load_model(qwen_dir, device="cpu")
    assert type(m).__name__ == "Qwen2ForCausalLM" and not m.training
    assert next(m.parameters()).dtype == torch.float32  # auto on CPU
    assert t.chat_template == CHATML_TEMPLATE and t.padding_side == "left"
    m16, _ = load_model(qwen_dir, device="cpu", dtype="bfloat16")
    assert next(m16.parameters()).dtype == torch.bfloat16


def test_two_turn_math_rollout_on_local_qwen(qwen_dir, problems):
    m, t = load_model(qwen_dir, device="cpu")
    ro = R.rollout(m, t, [p.problem for p in problems], [p.answer for p in problems], prompts.MATH, grading.reward,
                   n_turns=2, k=2, temperature=1.0, max_new_tokens=5, batch_size=4, seed=0)
    assert ro.input_ids.shape[0] == 2 * len(problems) and ro.rewards.shape == (12, 2)
    for r in range(ro.input_ids.shape[0]):
        segs = ro.segments[r]
        x = t.decode(ro.input_ids[r][segs == 1])
        assert x.startswith("<|im_start|>user\nYou are a math expert") and x.endswith("<|im_start|>assistant\n")
        instr = t.decode(ro.input_ids[r][segs == 3])
        assert prompts.MATH_INSTRUCTION in instr
        assert 1 <= int((segs == 2).sum()) <= 5 and 1 <= int((segs == 4).sum()) <= 5


# ------------------------------------------------------------------ LoRA


def test_lora_wraps_only_adapters_and_rejects_bad_targets(qwen_dir):
    m, _ = load_model(qwen_dir, device="cpu")
    total = sum(p.numel() for p in m.parameters())
    lm = apply_lora(m, rank=4, alpha=8, target_modules=("q_proj", "v_proj"))
    assert is_peft(lm)
    trainable = [n for n, p in lm.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    # rank 4 on q (32 -> 32) and v (32 -> 16, 2 KV heads of 8) in 2 layers: 4 * ((32+32) + (32+16)) * 2
    assert n_trainable(lm) == 4 * (64 + 48) * 2
    assert n_trainable(lm) < total / 10
    m2, _ = load_model(qwen_dir, device="cpu")
    with pytest.raises(ValueError, match="not in the model"):
        apply_lora(m2, target_modules=("nonexistent_proj",))
    with pytest.raises(ValueError, match="rank"):
        apply_lora(m2, rank=0)
    with pytest.raises(ValueError, match="peft model"):
        reference_mode(m2)


def test_lora_training_step_save_and_load(qwen_dir, problems, tmp_path):
    base, tok = load_model(qwen_dir, device="cpu")
    ids = R.encode_turn1(tok, prompts.MATH, problems[0].problem)[:40]
    before = logits(base, ids)
    lm = apply_lora(base, rank=4, alpha=8)
    assert torch.allclose(logits(lm, ids), before)  # LoRA's B starts at zero: same function
    frozen = {n: p.detach().clone() for n, p in lm.named_parameters() if not p.requires_grad}
    seq = ids + tok(problems[0].solution, add_special_tokens=False)["input_ids"][:20]
    ex = Example(ids=seq, mask=[0] * len(ids) + [1] * (len(seq) - len(ids)))
    train_masked_lm(lm, [ex], steps=3, batch_size=1, lr=1e-2, pad_id=tok.pad_token_id, warmup=1, progress=False)
    after = logits(lm, ids)
    assert not torch.allclose(after, before)  # the adapter learned something
    for n, p in lm.named_parameters():
        if n in frozen:
            assert torch.equal(p, frozen[n]), n  # base weights untouched
    with reference_mode(lm):
        assert torch.allclose(logits(lm, ids), before, atol=1e-6)  # adapter disabled = the base policy
    out = save_model(lm, tok, tmp_path / "adapter")
    assert (out / "adapter_config.json").exists() and not (out / "model.safetensors").exists()
    cfg = json.loads((out / "adapter_config.json").read_text())
    assert cfg["base_model_name_or_path"] == str(qwen_dir)
    loaded, tok2 = load_model(out, device="cpu")
    assert is_peft(loaded)
    assert torch.allclose(logits(loaded, ids), after, atol=1e-5)
    assert tok2.chat_template == tok.chat_template
    assert n_trainable(loaded) == 0  # loaded for evaluation
    trainable, _ = load_model(out, device="cpu", trainable=True)
    assert n_trainable(trainable) == n_trainable(lm)


# ------------------------------------------------------------------ policy update


def _rollout_batch(model, tok, problems, k=2):
    ro = R.rollout(model, tok, [p.problem for p in problems], [p.answer for p in problems], prompts.MATH,
                   grading.reward, n_turns=2, k=k, temperature=1.0, max_new_tokens=6, seed=1)
    n = ro.input_ids.shape[0]
    adv = [torch.linspace(-1, 1, n), torch.linspace(1, -1, n)]
    masks = [ro.attempt_mask(1).float(), ro.attempt_mask(2).float()]
    return ro, adv, masks


def test_micro_batched_update_equals_full_batch(qwen_dir, problems):
    results = []
    for mb in (None, 1, 3):
        policy, tok = load_model(qwen_dir, device="cpu")
        ref, _ = load_model(qwen_dir, device="cpu")
        with torch.no_grad():  # make the policy differ from the reference so the KL term is non-zero
            for p in policy.parameters():
                p.add_(0.01 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
        ro, adv, masks = _rollout_batch(ref, tok, problems[:3])
        opt = torch.optim.SGD(policy.parameters(), lr=0.5)
        out = policy_update(policy, ref, opt, ro.input_ids, ro.attention_mask, masks, adv, [0.1, 0.01],
                            micro_batch=mb, max_grad_norm=1e9)
        results.append((out, [p.detach().clone() for p in policy.parameters()]))
    (full, w_full), *others = results
    assert full["kl_t1"] > 0 and full["kl_t2"] > 0
    for out, w in others:
        assert out["loss"] == pytest.approx(full["loss"], rel=1e-4, abs=1e-6)
        assert out["kl_t1"] == pytest.approx(full["kl_t1"], rel=1e-4)
        for a, b in zip(w, w_full):
            assert torch.allclose(a, b, atol=1e-5)


def test_rl_train_with_lora_reference_changes_only_the_adapter(qwen_dir, problems):
    base, tok = load_model(qwen_dir, device="cpu")
    lm = apply_lora(base, rank=4, alpha=8)
    lora_before = {n: p.detach().clone() for n, p in lm.named_parameters() if p.requires_grad}
    rewards = iter([1.0, 0.0, 0.0, 1.0] * 100)  # varied rewards so the RLOO advantages are non-zero
    s = RLSettings(objective="multi_turn", steps=2, problems_per_step=2, k=2, lr=1e-2, max_new_tokens=4)
    log = rl_train(lm, None, tok, prompts.MATH, problems, s, progress=False,
                   reward_fn=lambda response, gold: next(rewards))
    assert len(log) == 2 and {"kl_t1", "kl_t2", "sample_s", "train_s"} <= set(log[0])
    assert log[0]["kl_t1"] == pytest.approx(0.0, abs=1e-6)  # first step: policy == reference (adapter B = 0)
    changed = [n for n, p in lm.named_parameters() if p.requires_grad and not torch.equal(p, lora_before[n])]
    assert changed


# ------------------------------------------------------------------ notebook parameters


def test_model_parameter_checks(tmp_path, qwen_dir):
    C.make_config(C.EvalConfig, {"model": str(qwen_dir)})
    C.make_config(C.EvalConfig, {"model": "Qwen/Qwen2.5-1.5B-Instruct"})  # a hub id: not checked offline
    with pytest.raises(C.ConfigError, match="not a folder"):
        C.make_config(C.EvalConfig, {"model": str(tmp_path / "nope")})
    (tmp_path / "empty").mkdir()
    with pytest.raises(C.ConfigError, match="no config.json"):
        C.make_config(C.EvalConfig, {"model": str(tmp_path / "empty")})
    with pytest.raises(C.ConfigError, match="neither"):
        C.make_config(C.EvalConfig, {"model": "not a model id!"})
    with pytest.raises(C.ConfigError, match="dtype"):
        C.make_config(C.EvalConfig, {"dtype": "float8"})


def test_task_parameter_checks(tmp_path):
    with pytest.raises(C.ConfigError, match="task must be one of"):
        C.make_config(C.EvalConfig, {"task": "gsm8k"})
    with pytest.raises(C.ConfigError, match="toy world only"):
        C.make_config(C.PretrainConfig, {"task": "math"})  # the tiny model cannot be pretrained on MATH
    with pytest.raises(C.ConfigError, match="data_path"):
        C.make_config(C.EvalConfig, {"task": "math", "data_path": str(tmp_path / "missing.jsonl")})
