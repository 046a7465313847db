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


def load_model(path: str | Path, device: str = "auto", dtype: str = "auto", trainable: bool = False):
    """Load (model, tokenizer) from a hub id or a local folder, in eval mode on the chosen device.

    A folder holding a peft adapter (``adapter_config.json``) loads its base model (the
    adapter config names it) with the adapter on top; ``trainable`` keeps the adapter trainable.
    """
    dev = pick_device(device)
    torch_dtype = pick_dtype(dtype, dev)
    p = Path(path)
    if (p / "adapter_config.json").exists():
        from peft import PeftModel

        base_id = json.loads((p / "adapter_config.json").read_text()).get("base_model_name_or_path")
        if not base_id:
            raise ValueError(f"{p}/adapter_config.json does not name its base model (base_model_name_or_path)")
        base = AutoModelForCausalLM.from_pretrained(base_id, dtype=torch_dtype)
        model = PeftModel.from_pretrained(base, p, is_trainable=trainable).to(dev)
        tok_source = p if (p / "tokenizer_config.json").exists() else base_id
    else:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype).to(dev)
        tok_source = path
    model.eval()
    return model, load_tokenizer(tok_source)


def save_model(model, tokenizer, path: str | Path, tiny: bool = False) -> Path:
    """save_pretrained both; a marker file says the tokenizer is the tiny hand-built one."""
    from scorelib.results import atomic_path

    p = Path(path)
    with atomic_path(p) as tmp:  # written beside, then renamed: a kill leaves the old folder or the new one
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if tiny:
            (tmp / "scorelib_tiny.json").write_text('{"tokenizer": "PreTrainedTokenizerFast"}\n')
    return p


# ---------------------------------------------------------------------------------------
# Real-model path: a byte-level ChatML tokenizer and random models of real shapes (offline
# stand-ins for hub models in tests and GPU checks), and LoRA adapters through peft.
# ---------------------------------------------------------------------------------------

CHATML_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
CHATML_SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")

# Shapes of real models, for random stand-ins built from a config (no weights are fetched).
SHAPES = {
    "tiny-qwen2": dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                       num_key_value_heads=2, vocab_size=None, tie_word_embeddings=True),
    "qwen2.5-0.5b": dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                         num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True),
    "qwen2.5-1.5b": dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
                         num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True),
}


def build_byte_tokenizer(vocab_size: int | None = None) -> PreTrainedTokenizerFast:
    """A byte-level ChatML tokenizer (Qwen-style specials, no merges): encodes any text, offline.

    With ``vocab_size`` the vocabulary is padded with never-produced filler tokens to that size,
    so a model of a real shape (e.g. Qwen2.5's 151,936 rows) can decode anything it samples.
    """
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {t: i for i, t in enumerate(list(CHATML_SPECIALS) + alphabet)}
    if vocab_size is not None:
        if vocab_size < len(vocab):
            raise ValueError(f"vocab_size must be >= {len(vocab)}, got {vocab_size}")
        vocab.update({f"<x{i}>": i for i in range(len(vocab), vocab_size)})
    tok = Tokenizer(tk_models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in CHATML_SPECIALS])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    fast.chat_template = CHATML_TEMPLATE
    fast.padding_side = "left"
    return fast


def build_random_model(shape: str = "tiny-qwen2", tokenizer=None, seed: int = 0, dtype=torch.float32):
    """(model, tokenizer): a randomly initialised Qwen2 of a named shape (see SHAPES) and a byte tokenizer."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    if shape not in SHAPES:
        raise ValueError(f"unknown shape {shape!r}; valid: {sorted(SHAPES)}")
    dims = dict(SHAPES[shape])
    tokenizer = tokenizer or build_byte_tokenizer(dims["vocab_size"])
    dims["vocab_size"] = dims["vocab_size"] or len(tokenizer)
    cfg = Qwen2Config(**dims, max_position_embeddings=4096, eos_token_id=tokenizer.eos_token_id,
                      pad_token_id=tokenizer.pad_token_id, bos_token_id=None)
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(cfg).to(dtype)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model.eval(), tokenizer


DEFAULT_LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def apply_lora(model, rank: int = 16, alpha: float = 32.0, target_modules=DEFAULT_LORA_TARGETS,
               dropout: float = 0.0):
    """Wrap a causal LM in a trainable peft LoRA adapter (the base weights are frozen).

    With an adapter the frozen reference policy needs no second copy: ``reference_mode(model)``
    runs the same model with the adapter disabled.
    """
    from peft import LoraConfig, get_peft_model

    if rank < 1:
        raise ValueError(f"LoRA rank must be >= 1, got {rank}")
    targets = list(target_modules) if not isinstance(target_modules, str) else target_modules
    names = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
    if not isinstance(targets, str):
        missing = sorted(set(targets) - names)
        if missing:
            raise ValueError(f"LoRA target modules {missing} are not in the model; it has e.g. "
                             f"{sorted(n for n in names if n.endswith('proj'))[:12]}")
    cfg = LoraConfig(r=rank, lora_alpha=alpha, target_modules=targets, lora_dropout=dropout, task_type="CAUSAL_LM")
    return get_peft_model(model, cfg)


def is_peft(model) -> bool:
    return hasattr(model, "peft_config") and hasattr(model, "disable_adapter")


def reference_mode(model):
    """Context manager: the model with its LoRA adapter disabled (the base policy); an error without one."""
    if not is_peft(model):
        raise ValueError("reference_mode needs a peft model; with full fine-tuning keep a frozen copy instead")
    return model.disable_adapter()


def n_trainable(model) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def trainable_copy(model, lora_rank: int = 0, lora_alpha: float = 16.0, lora_targets=DEFAULT_LORA_TARGETS):
    """A fresh trainable copy of a base model: full fine-tuning (lora_rank 0) or a new LoRA adapter."""
    import copy

    m = copy.deepcopy(model)
    if lora_rank > 0:
        m = apply_lora(m, rank=lora_rank, alpha=lora_alpha, target_modules=lora_targets)
    return m


def is_tiny(model_ref: str | Path) -> bool:
    """Whether a model folder holds scorelib's tiny model (its tokenizer must be saved as such)."""
    return (Path(model_ref) / "scorelib_tiny.json").exists()
