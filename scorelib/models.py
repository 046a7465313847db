"""Models and tokenizers: the tiny embedded model, and any Hugging Face causal LM.

The tiny model is a transformers ``LlamaForCausalLM`` built from a config with
random weights; its tokenizer is character-level, built offline with the
``tokenizers`` library and wrapped as a transformers fast tokenizer. Both save and
load with ``save_pretrained``/``from_pretrained`` like any hub model, so every
later step treats the tiny model and a real one the same way.

Departures: the paper's models are Gemini 1.0 Pro / 1.5 Flash; the tiny model has
about a million parameters. The paper's two fixed phrases of the answer format are
single tokens of the tiny tokenizer (they decode to the exact text), and the
self-correction instruction is one special token ``<|retry|>`` (see prompts.py).
"""
from __future__ import annotations

import json
import string
from pathlib import Path

import torch
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models as tk_models, pre_tokenizers
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from scorelib.grading import FINAL_ANSWER_PREFIX, FINAL_ANSWER_SUFFIX

PAD, BOS, EOT, UNK, RETRY = "<pad>", "<bos>", "<eot>", "<unk>", "<|retry|>"
SPECIAL_TOKENS = (PAD, BOS, EOT, UNK, RETRY)
# Multi-character phrases the tiny model writes in one token each (they decode to the exact text).
PHRASE_TOKENS = (FINAL_ANSWER_PREFIX, FINAL_ANSWER_SUFFIX, "Compute ")
# A user turn is its text and a newline; an assistant turn ends with <eot>. The toy
# protocol's second user turn is the single token <|retry|> (prompts.TOY).
TINY_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}"
    "{% if m['role'] == 'assistant' %}{{ m['content'] }}{{ eos_token }}"
    "{% else %}{{ m['content'] }}{{ '\n' }}{% endif %}{% endfor %}"
)


def build_tiny_tokenizer() -> PreTrainedTokenizerFast:
    """Character-level tokenizer over printable ASCII, plus special and phrase tokens."""
    chars = [c for c in string.printable if c not in "\r\x0b\x0c"]
    vocab = {t: i for i, t in enumerate(list(SPECIAL_TOKENS) + chars)}
    tok = Tokenizer(tk_models.WordLevel(vocab, unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")  # one token per character
    tok.decoder = decoders.Fuse()  # join characters without spaces
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in SPECIAL_TOKENS])
    tok.add_tokens([AddedToken(p, normalized=False) for p in PHRASE_TOKENS])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, eos_token=EOT, pad_token=PAD,
                                   unk_token=UNK, extra_special_tokens=[RETRY])
    fast.chat_template = TINY_CHAT_TEMPLATE
    fast.padding_side = "left"  # generation pads on the left
    return fast


def build_tiny_model(tokenizer, d_model: int = 128, n_layers: int = 4, n_heads: int = 4,
                     d_ffn: int = 512, max_len: int = 1024, seed: int = 0) -> LlamaForCausalLM:
    """A randomly initialised Llama of a few hundred thousand to a few million parameters."""
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=d_model, intermediate_size=d_ffn,
        num_hidden_layers=n_layers, num_attention_heads=n_heads, num_key_value_heads=n_heads,
        max_position_embeddings=max_len, tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(config)


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def pick_device(device: str = "auto") -> torch.device:
    """'auto' is cuda when available, else cpu."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def pick_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """'auto' is bf16 on a GPU and fp32 on a CPU (bf16 is slower than fp32 on a CPU)."""
    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    try:
        return {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
                "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}[dtype]
    except KeyError:
        raise ValueError(f"unknown dtype {dtype!r}; valid: auto, float32, bfloat16, float16") from None


def load_tokenizer(path: str | Path):
    """Load a tokenizer; a tiny-model folder loads as the fast tokenizer it was saved as."""
    from transformers import AutoTokenizer

    p = Path(path)
    tok_class = ""
    if (p / "tokenizer_config.json").exists():
        tok_class = json.loads((p / "tokenizer_config.json").read_text()).get("tokenizer_class", "")
    # A hand-built tokenizer (saved as TokenizersBackend/PreTrainedTokenizerFast) must load as itself:
    # AutoTokenizer would rebuild it from the model's config class (e.g. a byte-level Qwen2Tokenizer).
    if (p / "scorelib_tiny.json").exists() or tok_class in ("TokenizersBackend", "PreTrainedTokenizerFast"):
        tok = PreTrainedTokenizerFast.from_pretrained(p)
    else:
        tok = AutoTokenizer.from_pretrained(path)
    if tok.pad_token is None:  # many causal LMs ship without a pad token
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    return tok


def load_model(path: str | Path, device: str = "auto", dtype: str = "auto"):
    """Load (model, tokenizer) from a hub id or a local folder, in eval mode on the chosen device."""
    dev = pick_device(device)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=pick_dtype(dtype, dev)).to(dev)
    model.eval()
    return model, load_tokenizer(path)


def save_model(model, tokenizer, path: str | Path, tiny: bool = False) -> Path:
    """save_pretrained both; a marker file says the tokenizer is the tiny hand-built one."""
    p = Path(path)
    p.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(p)
    tokenizer.save_pretrained(p)
    if tiny:
        (p / "scorelib_tiny.json").write_text('{"tokenizer": "PreTrainedTokenizerFast"}\n')
    return p
