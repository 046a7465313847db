"""Pretraining the tiny base model so that it starts where the paper's base models start.

Claim C1 of the paper: a base model has a decent first attempt, and its intrinsic
self-correction is useless or harmful (Δ ≤ 0, Δc→i ≥ Δi→c). SCoRe also needs the
base to be able, now and then, to fix *its own* mistakes, so that RL has something
to amplify (Physics of LMs 2.2: small models learn to correct only from
correction data in pretraining; and our feasibility runs: traces built from
injected errors teach fixing injected errors, not one's own).

So pretraining has two phases:

1. clean single attempts (problem -> step-by-step solution);
2. sample the phase-1 model's own first attempts on training problems, and continue
   on two-attempt traces [x, y1, p, y2] whose y1 is one of those own attempts and
   whose y2 follows the corpus mix below (loss on y2 only), plus some clean singles.

The corpus mix is the lever a reading group can pull: it sets which second-attempt
behaviours the pretraining data shows, and how often.
"""
from __future__ import annotations

import random
import time
from dataclasses import dataclass

import numpy as np

from scorelib.grading import reward as grade_reward
from scorelib.prompts import Protocol
from scorelib.rollout import encode_glue, encode_turn1, glue_after, rollout
from scorelib.tasks.toy import Problem, alt_solution, corrupt_solution
from scorelib.training import Example, train_masked_lm


@dataclass(frozen=True)
class CorpusMix:
    """Which second attempts the phase-2 corpus shows, and how often."""

    single_frac: float = 0.1  # share of clean single attempts in phase 2 (keeps turn 1 from drifting)
    wrong_frac: float = 0.5  # share of traces whose y1 is wrong
    fix_rate: float = 0.6  # P(y2 is a correct solution | y1 wrong), else y2 copies y1
    break_rate: float = 0.4  # P(y2 is a wrong solution | y1 right), else y2 copies y1
    error_source: str = "own"  # "own": y1 is the model's own attempt; "injected": a corrupted reference
    turn2_mode: str = "edit"  # "edit": fix_rate / break_rate by y1's correctness; "rewrite": see rewrite_rate
    rewrite_rate: float = 0.7  # "rewrite": P(y2 re-solves the problem in the second style | any y1), else a copy


def single_example(tokenizer, protocol: Protocol, problem: str, solution: str) -> Example:
    """[x, y]: loss on the solution and its end token."""
    x = encode_turn1(tokenizer, protocol, problem)
    y = tokenizer(solution, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    return Example(x + y, [0] * len(x) + [1] * len(y))


def trace_example(tokenizer, protocol: Protocol, problem: str, y1_ids: list[int], y2: str) -> Example:
    """[x, y1, p, y2]: loss on y2 and its end token only (y1 may be wrong: never a target)."""
    x = encode_turn1(tokenizer, protocol, problem)
    glue = glue_after(y1_ids, encode_glue(tokenizer, protocol))
    y2_ids = tokenizer(y2, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    ids = x + list(y1_ids) + glue + y2_ids
    return Example(ids, [0] * (len(ids) - len(y2_ids)) + [1] * len(y2_ids))


def decode_example(tokenizer, ex: Example) -> dict:
    """An example as text: 'context' (the tokens shown, no loss) and 'target' (the tokens learned: the loss)."""
    context = [i for i, m in zip(ex.ids, ex.mask) if not m]
    target = [i for i, m in zip(ex.ids, ex.mask) if m]
    return dict(context=tokenizer.decode(context), target=tokenizer.decode(target))


@dataclass
class OwnAttempt:
    """One first attempt the phase-1 model wrote."""

    problem: Problem
    ids: list[int]
    text: str
    correct: bool


def sample_own_attempts(model, tokenizer, protocol: Protocol, problems: list[Problem], k: int,
                        temperature: float, max_new_tokens: int, batch_size: int, seed: int) -> list[OwnAttempt]:
    """First attempts of the current model on training problems (k each)."""
    ro = rollout(model, tokenizer, [p.problem for p in problems], [p.answer for p in problems], protocol,
                 grade_reward, n_turns=1, k=k, temperature=temperature, max_new_tokens=max_new_tokens,
                 batch_size=batch_size, seed=seed, progress=True)
    return [OwnAttempt(problems[i], ids, text, bool(r > 0))
            for i, ids, text, r in zip(ro.problem_index, ro.attempt_ids[0], ro.texts[0], ro.rewards[:, 0])]


KINDS = {"edit": ("single", "wrong_fix", "wrong_copy", "right_copy", "right_break", "stand_in"),
         "rewrite": ("single", "wrong_rewrite", "wrong_copy", "right_rewrite", "right_copy", "stand_in")}


def _first_attempt(rng: random.Random, mix: CorpusMix, y1_wrong: bool, pool: list[OwnAttempt],
                   singles: list[Problem], encode) -> tuple[Problem, list[int], str, bool]:
    """(problem, y1's ids, y1's text, whether y1 is a stand-in): an own attempt from ``pool``, or with
    error_source 'injected' (or no own attempt of that kind, e.g. a barely trained model) a reference solution,
    with one slip when y1 must be wrong."""
    if mix.error_source == "own" and pool:
        a = rng.choice(pool)
        return a.problem, a.ids, a.text, False
    p = rng.choice(singles)
    text = corrupt_solution(p, rng)[0] if y1_wrong else p.solution
    return p, encode(text), text, mix.error_source == "own"


def _second_attempt(rng: random.Random, mix: CorpusMix, p: Problem, y1_wrong: bool, y1_text: str
                    ) -> tuple[str, str]:
    """(y2, the trace's kind): 'rewrite' re-solves in the second style or copies, the same choice whatever y1's
    correctness (the corpus reveals none); 'edit' fixes a wrong y1 or breaks a right one, else copies."""
    if mix.turn2_mode == "rewrite":
        rewrite = rng.random() < mix.rewrite_rate
        kind = ("wrong_" if y1_wrong else "right_") + ("rewrite" if rewrite else "copy")
        return (alt_solution(p)[0] if rewrite else y1_text), kind
    if y1_wrong:
        fix = rng.random() < mix.fix_rate
        return (p.solution if fix else y1_text), ("wrong_fix" if fix else "wrong_copy")
    brk = rng.random() < mix.break_rate
    return (corrupt_solution(p, rng)[0] if brk else y1_text), ("right_break" if brk else "right_copy")


def build_phase2_corpus(tokenizer, protocol: Protocol, attempts: list[OwnAttempt], singles: list[Problem],
                        n_examples: int, mix: CorpusMix, seed: int) -> tuple[list[Example], dict]:
    """The phase-2 corpus and a count of each kind of trace in it (``KINDS``; 'stand_in' counts the traces whose
    y1 is not an own attempt although error_source is 'own')."""
    rng = random.Random(seed)
    if mix.error_source not in ("own", "injected"):
        raise ValueError(f"error_source must be 'own' or 'injected', got {mix.error_source!r}")
    if mix.turn2_mode not in KINDS:
        raise ValueError(f"turn2_mode must be 'edit' or 'rewrite', got {mix.turn2_mode!r}")
    if not singles:
        raise ValueError("no training problems for the phase-2 corpus")
    pools = {True: [a for a in attempts if not a.correct], False: [a for a in attempts if a.correct]}
    counts = dict.fromkeys(KINDS[mix.turn2_mode], 0)
    eos = tokenizer.eos_token_id
    encode = lambda text: tokenizer(text, add_special_tokens=False)["input_ids"] + [eos]  # noqa: E731
    out: list[Example] = []
    for _ in range(n_examples):
        if rng.random() < mix.single_frac:
            p = rng.choice(singles)
            out.append(single_example(tokenizer, protocol, p.problem, p.solution))
            counts["single"] += 1
            continue
        y1_wrong = rng.random() < mix.wrong_frac
        p, y1_ids, y1_text, stand_in = _first_attempt(rng, mix, y1_wrong, pools[y1_wrong], singles, encode)
        y2, kind = _second_attempt(rng, mix, p, y1_wrong, y1_text)
        counts["stand_in"] += stand_in
        counts[kind] += 1
        out.append(trace_example(tokenizer, protocol, p.problem, y1_ids, y2))
    return out, counts


def corpus_table(counts: dict) -> "pd.DataFrame":
    """Examples of each kind in the phase-2 corpus and their share; stand-ins (y1 not the model's own) counted apart."""
    import pandas as pd

    kinds = {k: v for k, v in counts.items() if k != "stand_in"}
    total = max(1, sum(kinds.values()))
    df = pd.DataFrame({"examples": kinds, "share (%)": {k: round(100 * v / total, 1) for k, v in kinds.items()}})
    df.index.name = "kind"
    return df


def mix_from_config(cfg) -> CorpusMix:
    """The corpus mix named by a PretrainConfig's fields."""
    return CorpusMix(cfg.single_frac, cfg.wrong_frac, cfg.fix_rate, cfg.break_rate, cfg.error_source,
                     getattr(cfg, "turn2_mode", "edit"), getattr(cfg, "rewrite_rate", 0.7))


def resolve_example(tokenizer, protocol: Protocol, problem: Problem) -> Example:
    """[x, (), p, y']: an empty first attempt, the instruction, then the problem re-solved in the second style (loss
    on y' and its end token). It teaches the second style as a skill of its own, in the place it is used (after the
    instruction), without showing a first attempt or saying anything about one."""
    x = encode_turn1(tokenizer, protocol, problem.problem)
    glue = encode_glue(tokenizer, protocol)
    y = tokenizer(alt_solution(problem)[0], add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    ids = x + glue_after(x, glue) + y
    return Example(ids, [0] * (len(ids) - len(y)) + [1] * len(y))


def run_phase1(model, tokenizer, protocol: Protocol, train: list[Problem], cfg, checkpoint_dir=None) -> list[dict]:
    """Phase 1: clean single attempts (loss on the solution); a share ``alt_single_frac`` of the problems are
    instead re-solves in the second style after the instruction (``resolve_example``). With ``checkpoint_dir`` a
    killed run resumes there (``train_masked_lm``)."""
    rng = random.Random(cfg.seed)
    alt = getattr(cfg, "alt_single_frac", 0.0)
    singles = [resolve_example(tokenizer, protocol, p) if alt and rng.random() < alt else
               single_example(tokenizer, protocol, p.problem, p.solution) for p in train]
    return train_masked_lm(model, singles, cfg.phase1_steps, cfg.train_batch_size, cfg.lr, tokenizer.pad_token_id,
                           seed=cfg.seed, progress=cfg.progress, desc="phase 1", checkpoint_dir=checkpoint_dir)


def collect_own_attempts(model, tokenizer, protocol: Protocol, train: list[Problem], cfg) -> list[OwnAttempt]:
    """The phase-1 model's own first attempts: own_k samples at T=1 and one greedy, per problem."""
    rng = np.random.default_rng(cfg.seed)
    pool = [train[i] for i in rng.choice(len(train), size=min(cfg.n_own_problems, len(train)), replace=False)]
    own = sample_own_attempts(model, tokenizer, protocol, pool, cfg.own_k, 1.0, cfg.max_new_tokens, 512, cfg.seed)
    return own + sample_own_attempts(model, tokenizer, protocol, pool, 1, 0.0, cfg.max_new_tokens, 512, cfg.seed)


def run_phase2(model, tokenizer, corpus: list[Example], cfg, checkpoint_dir=None) -> list[dict]:
    """Phase 2: the two-attempt corpus, at half the phase-1 learning rate (``checkpoint_dir``: as in phase 1)."""
    h = train_masked_lm(model, corpus, cfg.phase2_steps, cfg.train_batch_size, cfg.lr * 0.5, tokenizer.pad_token_id,
                        seed=cfg.seed + 1, progress=cfg.progress, desc="phase 2", checkpoint_dir=checkpoint_dir)
    return [dict(r, step=r["step"] + cfg.phase1_steps) for r in h]


def pretrain(model, tokenizer, protocol: Protocol, train: list[Problem], cfg) -> dict:
    """Both phases in place on `model` (what notebook 00 does step by step)."""
    t0 = time.perf_counter()
    h1 = run_phase1(model, tokenizer, protocol, train, cfg) if cfg.phase1_steps else []
    t1 = time.perf_counter()
    own = collect_own_attempts(model, tokenizer, protocol, train, cfg)
    t2 = time.perf_counter()
    corpus, counts = build_phase2_corpus(tokenizer, protocol, own, train, cfg.n_phase2, mix_from_config(cfg), cfg.seed)
    h2 = run_phase2(model, tokenizer, corpus, cfg) if cfg.phase2_steps else []
    t3 = time.perf_counter()
    return dict(history=[dict(h, phase=1) for h in h1] + [dict(h, phase=2) for h in h2], counts=counts,
                own_acc=float(np.mean([a.correct for a in own])), n_own=len(own),
                seconds=dict(phase1=t1 - t0, sample_own=t2 - t1, phase2=t3 - t2, total=t3 - t0))
