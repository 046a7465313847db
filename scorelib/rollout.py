"""Two-turn (or k-turn) rollouts with per-turn token masks (paper section 1 and 5).

y1 ~ pi(.|x), then y2 ~ pi(.|x, y1, p), batched, with k samples per problem:
greedy (temperature 0) for evaluation, temperature sampling for training. Each
row of the result is one full sequence [x, y1, p, y2] as token ids, with a
``segments`` tensor that labels every token (prompt, attempt t, instruction after
attempt t) so SFT and RL can put their loss on exactly the tokens they train.

Works for the tiny model and for any Hugging Face causal LM: prompts go through
the tokenizer's chat template when it has one (the tiny tokenizer has one too),
else through plain text. The instruction "glue" between attempts is taken from
the template itself: render [user x, assistant PLACEHOLDER, user p] and keep what
follows the placeholder, so the ids match what the template would give.
"""
from __future__ import annotations

import inspect
import time
from dataclasses import dataclass, field, replace
from typing import Callable, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from scorelib.prompts import Protocol

PAD_SEG, PROMPT_SEG = 0, 1
_PLACEHOLDER = "@@SCORELIB_ATTEMPT@@"


def attempt_seg(t: int) -> int:
    """Segment id of attempt t (1-based): 2, 4, 6, ..."""
    return 2 * t


def instruction_seg(t: int) -> int:
    """Segment id of the instruction that follows attempt t: 3, 5, ..."""
    return 2 * t + 1


def stop_token_ids(model, tokenizer) -> list[int]:
    """Token ids that end an attempt: the tokenizer's eos first, then the model's other generation eos ids
    (sorted). The first is the one written when an attempt has to be closed (e.g. SFT traces)."""
    ids = set()
    gen_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if gen_eos is not None:
        ids.update(gen_eos if isinstance(gen_eos, (list, tuple)) else [gen_eos])
    eos = tokenizer.eos_token_id
    rest = sorted(i for i in ids if i is not None and i != eos)
    return ([eos] if eos is not None else []) + rest


def _encode(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def encode_turn1(tokenizer, protocol: Protocol, problem: str) -> list[int]:
    """Token ids of x: the first user turn and the assistant header."""
    user = protocol.turn1(problem)
    if getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template([{"role": "user", "content": user}], tokenize=False,
                                             add_generation_prompt=True)
        return _encode(tokenizer, text)
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    return bos + _encode(tokenizer, user + "\n")


def glue_after(attempt: Sequence[int], glue: list[int]) -> list[int]:
    """The instruction ids to append after an attempt: without the glue's first token (the end of the
    assistant turn) when the attempt already ended with it."""
    return glue[1:] if attempt and glue and attempt[-1] == glue[0] else glue


def encode_glue(tokenizer, protocol: Protocol) -> list[int]:
    """Token ids between the end of an attempt and the next attempt (the instruction p)."""
    if getattr(tokenizer, "chat_template", None):
        msgs = [{"role": "user", "content": protocol.turn1("1+1")},
                {"role": "assistant", "content": _PLACEHOLDER},
                {"role": "user", "content": protocol.instruction}]
        text = tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        return _encode(tokenizer, text.split(_PLACEHOLDER, 1)[1])
    return _encode(tokenizer, "\n\n" + protocol.instruction + "\n\n")


@dataclass
class Rollouts:
    """Full sequences of k-turn rollouts, one row per sample."""

    problem_index: np.ndarray  # (N,) index into the problem list
    texts: list[list[str]]  # [turn][row] decoded attempt text (special tokens dropped)
    attempt_ids: list[list[list[int]]]  # [turn][row] generated ids, stop token included
    rewards: np.ndarray  # (N, T) reward of each attempt
    input_ids: torch.Tensor  # (N, L) right-padded [x, y1, p, y2, ...]
    attention_mask: torch.Tensor  # (N, L)
    segments: torch.Tensor  # (N, L) 0 pad, 1 prompt, 2t attempt t, 2t+1 instruction after t
    meta: dict = field(default_factory=dict)

    @property
    def n_turns(self) -> int:
        return self.rewards.shape[1]

    def mask(self, seg: int) -> torch.Tensor:
        """Boolean (N, L) mask of one segment id."""
        return self.segments == seg

    def attempt_mask(self, t: int) -> torch.Tensor:
        return self.mask(attempt_seg(t))

    @property
    def y1_text(self) -> list[str]:
        return self.texts[0]

    @property
    def y2_text(self) -> list[str]:
        return self.texts[1]

    @property
    def correct(self) -> np.ndarray:
        """(N, T) booleans: reward of each attempt is positive."""
        return self.rewards > 0


# Padded tokens per forward pass on a CPU, for decoding and for the RL update's forward + backward (the better of
# 2k-16k on 2 cores, benchmarks/rl_step_cost.py and runbook.md; noisy machine, so round numbers).
CPU_TOKEN_BUDGET = {"decode": 8192, "update": 4096}


def cpu_token_budget(model, kind: str = "decode") -> int | None:
    """Padded tokens per batched forward pass: CPU_TOKEN_BUDGET[kind] on a CPU, where large padded batches cost
    memory traffic without adding parallelism; no limit on an accelerator (its batch sizes are set by the caller)."""
    return CPU_TOKEN_BUDGET[kind] if next(model.parameters()).device.type == "cpu" else None


def length_chunks(lengths: Sequence[int], max_rows: int | None, token_budget: int | None) -> list[list[int]]:
    """Row indices grouped for batched compute: sorted by length (longest first, ties in row order), then cut so
    that a group has at most ``max_rows`` rows and at most ``token_budget`` padded tokens (rows x its longest
    row; a single longer row is a group of its own). None: no limit. Rows of similar length travel together,
    so little compute goes to padding."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    groups: list[list[int]] = []
    for i in order:
        cur = groups[-1] if groups else None
        if cur is None or (max_rows and len(cur) >= max_rows) or (
                token_budget and (len(cur) + 1) * lengths[cur[0]] > token_budget):
            groups.append([i])
        else:
            cur.append(i)
    return groups


def pad_left(seqs: list[list[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    att = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, width - len(s):] = torch.tensor(s, dtype=torch.long)
        att[i, width - len(s):] = 1
    return ids.to(device), att.to(device)


def flatten(pieces: list[tuple[int, list[int]]]) -> tuple[list[int], list[int]]:
    """A row given as (segment id, token ids) pieces, as (token ids, one segment id per token)."""
    return [t for _, p in pieces for t in p], [seg for seg, p in pieces for _ in p]


def pad_right(rows: list[tuple[list[int], list[int]]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(token ids, segment ids) rows as right-padded tensors; padding is pad_id with segment PAD_SEG."""
    width = max(len(ids) for ids, _ in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    segs = torch.full((len(rows), width), PAD_SEG, dtype=torch.long)
    for r, (row_ids, row_segs) in enumerate(rows):
        ids[r, :len(row_ids)] = torch.tensor(row_ids, dtype=torch.long)
        segs[r, :len(row_segs)] = torch.tensor(row_segs, dtype=torch.long)
    return ids, segs


def trim_at_stop(row: list[int], stop_ids: set[int]) -> list[int]:
    """Generated ids up to and including the first stop token."""
    for j, t in enumerate(row):
        if t in stop_ids:
            return row[: j + 1]
    return row  # no stop token: the attempt ran to max_new_tokens (generate pads only finished rows)


ENGINES = ("compact", "generate")


def _next_tokens(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Argmax at temperature 0, else one sample from softmax(logits / temperature): no top-k, top-p or penalty."""
    if temperature == 0:
        return logits.argmax(-1)
    return torch.multinomial(torch.softmax(logits.float() / temperature, dim=-1), 1).squeeze(-1)


def _forward_names(model) -> tuple[str, dict]:
    """(name of the KV-cache argument and output, extra prefill kwargs) for this transformers version:
    newer ones call the cache ``cache`` (``past_key_values`` is deprecated), and ``logits_to_keep=1``
    spares the prefill a vocabulary-sized projection of every prompt position."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    params = inspect.signature(base.forward).parameters
    extra = dict(logits_to_keep=1) if "logits_to_keep" in params else {}
    return ("cache" if "cache" in params else "past_key_values"), extra


@torch.no_grad()
def sample_compact(model, contexts: list[list[int]], temperature: float, max_new_tokens: int,
                   stop_ids: list[int], pad_id: int) -> list[list[int]]:
    """Batched decoding with a KV cache that drops rows from the batch as they write their stop token.

    ``model.generate`` keeps every row in the batch until the longest one ends, so one long attempt
    makes a large batch pay for all its rows at every step; here the batch shrinks as rows finish
    (``DynamicCache.batch_select_indices``, each time a quarter of the batch has finished). The distribution
    is the same as ``generate_batch``'s: plain softmax at the temperature (argmax at 0). Returns each row's
    ids up to and including its stop token (max_new_tokens ids when it never stops)."""
    device = next(model.parameters()).device
    ids, att = pad_left(contexts, pad_id, device)
    pos = (att.cumsum(-1) - 1).clamp(min=0)  # positions as generate computes them for left padding
    cache_kw, extra = _forward_names(model)
    out = model(input_ids=ids, attention_mask=att, position_ids=pos, use_cache=True, **extra)
    cache, logits = getattr(out, cache_kw), out.logits[:, -1]
    next_pos = pos[:, -1] + 1
    active = torch.arange(len(contexts), device=device)  # the original row of each row in the batch
    live = torch.ones(len(contexts), dtype=torch.bool, device=device)  # rows of the batch still writing
    stop = torch.tensor(sorted(set(stop_ids)), device=device)
    gen: list[list[int]] = [[] for _ in contexts]
    for step in range(max_new_tokens):
        tok = _next_tokens(logits, temperature)
        for row, t, on in zip(active.tolist(), tok.tolist(), live.tolist()):
            if on:
                gen[row].append(t)
        live = live & ~torch.isin(tok, stop)
        n_live = int(live.sum())
        if step + 1 == max_new_tokens or n_live == 0:
            break
        # Drop finished rows once a quarter of the batch has finished: each drop copies the cache, so dropping
        # every row the moment it ends would cost more than it saves on small batches. Until then a finished
        # row's next tokens are computed and ignored.
        if n_live <= 0.75 * len(live):
            idx = live.nonzero().squeeze(1)
            cache.batch_select_indices(idx)
            active, att, next_pos, tok, live = active[idx], att[idx], next_pos[idx], tok[idx], live[idx]
        att = torch.cat([att, att.new_ones((att.shape[0], 1))], dim=1)
        out = model(input_ids=tok[:, None], attention_mask=att, position_ids=next_pos[:, None],
                    use_cache=True, **{cache_kw: cache})
        logits = out.logits[:, -1]
        next_pos = next_pos + 1
    return gen


@torch.no_grad()
def generate_batch(model, tokenizer, contexts: list[list[int]], temperature: float,
                   max_new_tokens: int, stop_ids: list[int], engine: str = "generate") -> list[list[int]]:
    """One batched call over variable-length contexts; returns trimmed continuations.

    ``engine``: "generate" (transformers' ``model.generate``) or "compact" (``sample_compact``:
    finished rows leave the batch). Both sample from the model's own softmax at the temperature."""
    if engine == "compact":
        return sample_compact(model, contexts, temperature, max_new_tokens, stop_ids, tokenizer.pad_token_id)
    if engine != "generate":
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    device = next(model.parameters()).device
    pad_id = tokenizer.pad_token_id
    ids, att = pad_left(contexts, pad_id, device)
    # Sample from the policy itself: no top-k/top-p and no repetition penalty, whatever the model's own
    # generation_config says (Qwen2.5-Instruct ships repetition_penalty 1.1), so that the RL log-probs are
    # those of the distribution sampled from and "greedy" is plain argmax.
    kwargs = dict(do_sample=False) if temperature == 0 else dict(do_sample=True, temperature=temperature,
                                                                 top_k=0, top_p=1.0)
    kwargs.update(repetition_penalty=1.0, no_repeat_ngram_size=0)
    out = model.generate(input_ids=ids, attention_mask=att, max_new_tokens=max_new_tokens,
                         eos_token_id=stop_ids, pad_token_id=pad_id, **kwargs)
    gen = out[:, ids.shape[1]:].tolist()
    stop = set(stop_ids)
    return [trim_at_stop(row, stop) for row in gen]


def score(reward_fn: Callable[[str, str], float], responses: Sequence[str], answers: Sequence[str]) -> np.ndarray:
    """Rewards of many responses; a reward function with a ``many`` method scores them in one call
    (the code tasks run their sandboxed programs in parallel that way)."""
    many = getattr(reward_fn, "many", None)
    if many is not None:
        out = many(list(responses), list(answers))
    else:
        out = [reward_fn(y, a) for y, a in zip(responses, answers)]
    return np.asarray(out, dtype=np.float64)


def rollout(model, tokenizer, problems: Sequence[str], answers: Sequence[str], protocol: Protocol,
            reward_fn: Callable[[str, str], float], n_turns: int = 2, k: int = 1,
            temperature: float = 0.0, max_new_tokens: int = 160, batch_size: int = 256,
            seed: int | None = None, progress: bool = False, given_y1: Sequence[list[int]] | None = None,
            instructions: Sequence[str] | None = None, engine: str = "compact",
            decode_budget: int | None | str = "auto") -> Rollouts:
    """Sample n_turns attempts for each of k copies of each problem.

    ``given_y1`` (token ids, one per row) fixes the first attempt instead of sampling it,
    for the paper's "fixed first attempts" analyses. ``instructions`` (one per turn after the
    first) replaces the protocol's single instruction turn by turn (e.g. Self-Refine's critique,
    then rewrite). ``engine`` is the decoder (``generate_batch``): "compact" drops finished rows
    from the batch (the same greedy outputs; about 2x faster sampling on the tiny model at 64-256 rows,
    runbook.md), "generate" is transformers' ``model.generate``. Each turn decodes its rows in groups of at
    most ``batch_size`` rows and ``decode_budget`` padded context tokens, rows of similar context length
    together (``length_chunks``; None: groups of batch_size rows by length; "auto": ``cpu_token_budget``).
    ``meta["seconds"]`` times each turn's decoding and the scoring.
    """
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    decode_budget = cpu_token_budget(model) if decode_budget == "auto" else decode_budget
    if len(problems) != len(answers):
        raise ValueError(f"{len(problems)} problems but {len(answers)} answers")
    if not problems:
        raise ValueError("no problems to roll out")
    if n_turns < 1 or k < 1:
        raise ValueError(f"n_turns and k must be >= 1, got {n_turns}, {k}")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if seed is not None:
        torch.manual_seed(seed)
    was_training = model.training
    model.eval()
    stop = stop_token_ids(model, tokenizer)
    if instructions is not None and len(instructions) != n_turns - 1:
        raise ValueError(f"instructions must have n_turns - 1 = {n_turns - 1} entries, got {len(instructions)}")
    glues = [encode_glue(tokenizer, protocol if instructions is None else replace(protocol, instruction=text))
             for text in (instructions or [protocol.instruction])]
    index = np.repeat(np.arange(len(problems)), k)
    if given_y1 is not None and len(given_y1) != len(index):
        raise ValueError(f"given_y1 has {len(given_y1)} rows, expected {len(index)}")
    x_cache = {i: encode_turn1(tokenizer, protocol, problems[i]) for i in range(len(problems))}
    # Each row's sequence as a list of (segment id, token ids) pieces.
    pieces = [[(PROMPT_SEG, x_cache[i])] for i in index]
    attempts: list[list[list[int]]] = []
    seconds: dict = {}
    bar = tqdm(total=n_turns, desc="rollout", disable=not progress, leave=False)
    for t in range(1, n_turns + 1):
        if t > 1:  # the instruction after the previous attempt
            glue = glues[t - 2] if instructions is not None else glues[0]
            for row, prev in zip(pieces, attempts[-1]):
                row.append((instruction_seg(t - 1), glue_after(prev, glue)))
        if t == 1 and given_y1 is not None:
            turn = [list(y) for y in given_y1]
        else:
            t0 = time.perf_counter()
            ctx = [sum((p for _, p in row), []) for row in pieces]
            turn = [[] for _ in ctx]
            # Rows of similar context length decode together (less left padding); results go back in row order.
            for group in length_chunks([len(c) for c in ctx], batch_size, decode_budget):
                for i, y in zip(group, generate_batch(model, tokenizer, [ctx[i] for i in group], temperature,
                                                      max_new_tokens, stop, engine=engine)):
                    turn[i] = y
            bar.update(1)
            seconds[f"decode_t{t}"] = time.perf_counter() - t0
        for row, y in zip(pieces, turn):
            row.append((attempt_seg(t), y))
        attempts.append(turn)
    bar.close()
    t0 = time.perf_counter()
    texts = [tokenizer.batch_decode(turn, skip_special_tokens=True) for turn in attempts]
    rewards = score(reward_fn, [texts[t][r] for r in range(len(index)) for t in range(n_turns)],
                    [answers[index[r]] for r in range(len(index)) for _ in range(n_turns)]).reshape(len(index), n_turns)
    seconds["score"] = time.perf_counter() - t0
    ids, segs = pad_right([flatten(row) for row in pieces], tokenizer.pad_token_id)
    if was_training:
        model.train()
    return Rollouts(index, texts, attempts, rewards, ids, (segs != PAD_SEG).long(), segs,
                    meta=dict(temperature=temperature, k=k, n_turns=n_turns, max_new_tokens=max_new_tokens,
                              engine=engine, seconds=seconds))


def rollout_sharded(model, tokenizer, problems: Sequence[str], answers: Sequence[str], protocol: Protocol,
                    reward_fn: Callable[[str, str], float], k: int = 1, seed: int | None = None,
                    given_y1: Sequence[list[int]] | None = None, **kw) -> Rollouts:
    """``rollout`` over all problems, split across processes when a launcher started several (``distributed``):
    each process rolls out its share of the problems (all k samples of each), with its own sampling seed, and the
    rows are gathered back in problem order on every process, padded as one ``rollout`` call would pad them. In a
    single process this is ``rollout`` itself. Greedy rows do not depend on the split; sampled rows are draws of the
    same distribution from other random streams. ``meta`` is the main process's (its ``seconds`` time its share)."""
    from scorelib import distributed

    if not distributed.active():
        return rollout(model, tokenizer, problems, answers, protocol, reward_fn, k=k, seed=seed, given_y1=given_y1,
                       **kw)
    if len(problems) != len(answers):
        raise ValueError(f"{len(problems)} problems but {len(answers)} answers")
    part = distributed.share(len(problems))
    rows, meta = [], {}
    kw["progress"] = kw.get("progress", False) and distributed.is_main()
    with distributed.full_params(model):  # a no-op but under FSDP, where every process must enter it
        ro = rollout(model, tokenizer, [problems[i] for i in part], [answers[i] for i in part], protocol, reward_fn,
                     k=k, seed=distributed.rank_seed(seed),
                     given_y1=None if given_y1 is None else given_y1[part.start * k:part.stop * k],
                     **kw) if len(part) else None
    if ro is not None:
        meta = ro.meta
        n = ro.attention_mask.sum(1).tolist()
        rows = [dict(index=int(ro.problem_index[r]) + part.start, texts=[t[r] for t in ro.texts],
                     ids=[list(a[r]) for a in ro.attempt_ids], rewards=[float(x) for x in ro.rewards[r]],
                     seq=ro.input_ids[r, :n[r]].tolist(), seg=ro.segments[r, :n[r]].tolist())
                for r in range(len(ro.problem_index))]
    every = distributed.gather_rows(rows)
    meta = next((m for m in distributed.gather_rows([meta]) if m), {})  # the first process with rows
    if not every:
        raise ValueError("no problems to roll out")
    n_turns = len(every[0]["texts"])
    ids, segs = pad_right([(r["seq"], r["seg"]) for r in every], tokenizer.pad_token_id)
    return Rollouts(np.array([r["index"] for r in every]), [[r["texts"][t] for r in every] for t in range(n_turns)],
                    [[r["ids"][t] for r in every] for t in range(n_turns)],
                    np.array([r["rewards"] for r in every], dtype=np.float64).reshape(len(every), n_turns), ids,
                    (segs != PAD_SEG).long(), segs, meta=dict(meta, processes=distributed.world()))
