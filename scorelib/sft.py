"""Supervised fine-tuning baselines on the model's own correction traces (paper sections 3.1 and 8).

The paper's first argument: SFT on self-generated correction traces does not teach
self-correction. Two ways of building the data, both from the current model's own samples
(temperature 1.0, k two-turn samples per training problem):

* **STaR** (multi-turn, Zelikman et al. 2022 as adapted by the paper): D_STaR keeps the traces
  (x, y1, y2) of a single sequence of attempts whose y2 fixes a wrong y1; D⁺_STaR also keeps the
  correct→correct traces. Three iterations of collect + fine-tune.
* **Pair-SFT** (Welleck et al. 2023 style): D_SFT pairs each wrong first attempt with a random
  correct response for the same problem, drawn from all first- and second-turn responses the
  model produced; D⁺_SFT adds correct→correct pairs (a correct first attempt with a random correct
  response). One epoch.
* **No-information retry** (a control of this suite, not in the paper): the Pair-SFT data, but
  the second attempt is trained as an independent re-solve [x, y⁺] that sees no first attempt, so
  a reader can tell learning to correct from learning to re-sample.

Choices where the paper is silent (listed as departures in notebook 10):
* the loss is on y2 only (``train_turn1=False``): y1 is the model's own sample and is context;
  training on it would be first-turn fine-tuning, a different baseline;
* each STaR iteration fine-tunes the *base* model afresh on the traces the current model
  produced (as in STaR), rather than continuing from the previous iteration's weights;
* a problem with no correct response gets no Pair-SFT pair; duplicates are kept (each wrong
  attempt is one pair).
"""
from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

from scorelib.prompts import Protocol
from scorelib.rollout import encode_glue, encode_turn1, glue_after, rollout_sharded
from scorelib.training import Example


@dataclass(frozen=True)
class Trace:
    """One sampled two-turn trace of one problem: attempt ids, decoded texts and correctness."""

    problem: int  # index into the problem list
    y1_ids: tuple
    y2_ids: tuple
    y1: str
    y2: str
    c1: bool
    c2: bool


@dataclass(frozen=True)
class Pair:
    """A training trace: problem, the first attempt shown as context, the target second attempt."""

    problem: int
    y1_ids: tuple
    y2_ids: tuple
    y1: str
    y2: str
    kind: str  # 'i2c' (fix) or 'c2c' (keep)


def collect_traces(model, tokenizer, problems: list, protocol: Protocol, reward_fn, k: int = 4,
                   temperature: float = 1.0, max_new_tokens: int = 160, batch_size: int = 512, seed: int = 0,
                   progress: bool = False) -> list[Trace]:
    """k two-turn samples [x, y1, p, y2] per problem from the current model."""
    ro = rollout_sharded(model, tokenizer, [p.problem for p in problems], [p.answer for p in problems], protocol,
                         reward_fn, n_turns=2, k=k, temperature=temperature, max_new_tokens=max_new_tokens,
                         batch_size=batch_size, seed=seed, progress=progress)
    c = ro.correct
    return [Trace(int(ro.problem_index[r]), tuple(ro.attempt_ids[0][r]), tuple(ro.attempt_ids[1][r]),
                  ro.texts[0][r], ro.texts[1][r], bool(c[r, 0]), bool(c[r, 1])) for r in range(len(ro.problem_index))]


def d_star(traces: list[Trace], plus: bool = False) -> list[Pair]:
    """D_STaR: the traces whose y2 fixes a wrong y1; with plus (D⁺_STaR) also correct→correct ones."""
    out = []
    for t in traces:
        if not t.c1 and t.c2:
            out.append(Pair(t.problem, t.y1_ids, t.y2_ids, t.y1, t.y2, "i2c"))
        elif plus and t.c1 and t.c2:
            out.append(Pair(t.problem, t.y1_ids, t.y2_ids, t.y1, t.y2, "c2c"))
    return out


def correct_pool(traces: list[Trace]) -> dict[int, list[tuple[tuple, str]]]:
    """Per problem, every correct response (first and second turn) the model produced, as (ids, text)."""
    pool: dict[int, list[tuple[tuple, str]]] = {}
    for t in traces:
        if t.c1:
            pool.setdefault(t.problem, []).append((t.y1_ids, t.y1))
        if t.c2:
            pool.setdefault(t.problem, []).append((t.y2_ids, t.y2))
    return pool


def d_pair_sft(traces: list[Trace], plus: bool = False, seed: int = 0) -> list[Pair]:
    """D_SFT: each wrong y1 paired with a random correct response for its problem (from all turns);
    with plus (D⁺_SFT) each correct y1 is also paired with a random correct response."""
    rng = random.Random(seed)
    pool = correct_pool(traces)
    out = []
    for t in traces:
        candidates = pool.get(t.problem)
        if not candidates or (t.c1 and not plus):
            continue
        ids, text = candidates[rng.randrange(len(candidates))]
        out.append(Pair(t.problem, t.y1_ids, ids, t.y1, text, "c2c" if t.c1 else "i2c"))
    return out


def _closed(ids: tuple, stop_ids: set[int], eos: int) -> list[int]:
    """An attempt's ids ending with a stop token (the sampled one, else eos)."""
    return list(ids) if ids and ids[-1] in stop_ids else list(ids) + [eos]


def pair_examples(tokenizer, protocol: Protocol, problems: list, pairs: list[Pair], stop_ids: list[int],
                  no_info: bool = False, train_turn1: bool = False) -> list[Example]:
    """Token-level training examples laid out exactly as the rollout engine lays out [x, y1, p, y2], with
    the loss on y2 (and its stop token); ``no_info`` gives [x, y2] instead (y2 as an independent
    re-solve); ``train_turn1`` also trains y1.

    Attempts keep the ids they were sampled with; one that ran out without a stop token is closed
    with the tokenizer's eos (``stop_ids[0]``), and the instruction glue drops its leading token
    when the attempt already ends with it, as in ``rollout``.
    """
    stop = set(stop_ids)
    eos = stop_ids[0]
    glue = encode_glue(tokenizer, protocol)
    out = []
    for p in pairs:
        x = encode_turn1(tokenizer, protocol, problems[p.problem].problem)
        y1 = _closed(p.y1_ids, stop, eos)
        y2 = _closed(p.y2_ids, stop, eos)
        if no_info:
            out.append(Example(ids=x + y2, mask=[0] * len(x) + [1] * len(y2)))
            continue
        g = glue_after(y1, glue)
        ids = x + y1 + g + y2
        mask = [0] * len(x) + [int(train_turn1)] * len(y1) + [0] * len(g) + [1] * len(y2)
        out.append(Example(ids=ids, mask=mask))
    return out


def data_table(datasets: dict[str, list[Pair]]) -> "pd.DataFrame":
    """Sizes of each data set, split by kind, and the number of distinct problems."""
    import pandas as pd

    rows = {name: dict(traces=len(ps), fixes=sum(p.kind == "i2c" for p in ps), keeps=sum(p.kind == "c2c" for p in ps),
                       problems=len({p.problem for p in ps})) for name, ps in datasets.items()}
    return pd.DataFrame(rows).T.rename_axis("data set")


def pair_frame(pairs: list[Pair]) -> "pd.DataFrame":
    """The pairs as a table (problem, y1, y2, kind): what a data set holds, for display."""
    import pandas as pd

    return pd.DataFrame([dict(problem=p.problem, y1=p.y1, y2=p.y2, kind=p.kind) for p in pairs],
                        columns=["problem", "y1", "y2", "kind"])


def epoch_steps(n_examples: int, batch_size: int, epochs: float = 1.0) -> int:
    """Optimizer steps for a number of epochs over n examples (at least 1)."""
    return max(1, int(np.ceil(epochs * n_examples / batch_size)))


# ---------------------------------------------------------------------------------------
# Fine-tuning: one copy of the base per data set; STaR's rounds
# ---------------------------------------------------------------------------------------
# ``cfg`` below is notebook 10's config (``config.SFTConfig``) or anything with its field names: k,
# temperature, lr, sft_batch_size, pair_epochs, star_epochs, star_iterations, train_turn1, lora_rank,
# lora_alpha, lora_targets, max_new_tokens, gen_batch_size.

STAR_D, STAR_DPLUS, PAIR_D, PAIR_DPLUS = "STaR D_STaR", "STaR D+_STaR", "Pair-SFT D_SFT", "Pair-SFT D+_SFT"
NO_INFO = "No-info retry (D_SFT data)"
METHODS = (STAR_D, STAR_DPLUS, PAIR_D, PAIR_DPLUS, NO_INFO)


def datasets(traces: list[Trace], seed: int = 0) -> dict[str, list[Pair]]:
    """The four data sets built from one collection: D_STaR, D⁺_STaR, D_SFT and D⁺_SFT."""
    return {"D_STaR": d_star(traces), "D+_STaR": d_star(traces, plus=True),
            "D_SFT": d_pair_sft(traces, seed=seed), "D+_SFT": d_pair_sft(traces, plus=True, seed=seed)}


def generation(cfg) -> dict:
    """The generation keywords every rollout of notebook 10 takes."""
    return dict(max_new_tokens=cfg.max_new_tokens, batch_size=cfg.gen_batch_size)


def fine_tune(base, tokenizer, protocol: Protocol, problems: list, pairs: list[Pair], cfg, epochs: float,
              seed: int = 0, no_info: bool = False, progress: bool = False, callback=None):
    """A fresh copy of `base` fine-tuned on the pairs for a number of epochs; (model, history, steps).

    ``callback(model, step, steps)`` runs after each optimizer step (for probes during training)."""
    from scorelib.models import trainable_copy
    from scorelib.rollout import stop_token_ids
    from scorelib.training import train_masked_lm

    model = trainable_copy(base, cfg.lora_rank, cfg.lora_alpha, cfg.lora_targets)
    if not pairs:  # nothing to learn from: the model stays the base (reported as 0 steps)
        return model, [], 0
    examples = pair_examples(tokenizer, protocol, problems, pairs, stop_token_ids(base, tokenizer), no_info=no_info,
                             train_turn1=cfg.train_turn1)
    steps = epoch_steps(len(examples), cfg.sft_batch_size, epochs)
    after_step = None if callback is None else (lambda step: callback(model, step, steps))
    history = train_masked_lm(model, examples, steps, cfg.sft_batch_size, cfg.lr, tokenizer.pad_token_id,
                              warmup=max(1, steps // 10), seed=seed, log_every=max(1, steps // 10),
                              progress=progress, desc="sft", callback=after_step)
    return model, history, steps


def star(base, tokenizer, protocol: Protocol, problems: list, reward_fn, cfg, plus: bool,
         first_traces: list[Trace], seed: int = 0, progress: bool = False):
    """STaR: ``star_iterations`` rounds; round 1 uses ``first_traces`` (the base's samples), each later
    round samples from the previous round's model; every round fine-tunes the base afresh.
    Returns (final model, per-round info: data set size, steps, the round's data)."""
    traces, model, rounds = first_traces, base, []
    for it in range(cfg.star_iterations):
        if it > 0:
            traces = collect_traces(model, tokenizer, problems, protocol, reward_fn, k=cfg.k,
                                    temperature=cfg.temperature, seed=seed * 1000 + it, progress=progress,
                                    **generation(cfg))
        data = d_star(traces, plus=plus)
        model, history, steps = fine_tune(base, tokenizer, protocol, problems, data, cfg, cfg.star_epochs,
                                          seed=seed * 1000 + it, progress=progress)
        rounds.append(dict(iteration=it + 1, traces=len(traces), size=len(data), steps=steps, data=data,
                           history=history))
    return model, rounds


def train_method(method: str, base, tokenizer, protocol: Protocol, problems: list, reward_fn, cfg,
                 traces: list[Trace], data: dict[str, list[Pair]], seed: int = 0, progress: bool = False):
    """One method of ``METHODS`` trained from the base on one seed's collection (``traces``, its
    ``datasets``); (model, STaR's per-round info or None)."""
    if method in (STAR_D, STAR_DPLUS):
        return star(base, tokenizer, protocol, problems, reward_fn, cfg, plus=method == STAR_DPLUS,
                    first_traces=traces, seed=seed, progress=progress)
    pairs = data["D+_SFT" if method == PAIR_DPLUS else "D_SFT"]
    model, _, _ = fine_tune(base, tokenizer, protocol, problems, pairs, cfg, cfg.pair_epochs, seed=seed,
                            no_info=method == NO_INFO, progress=progress)
    return model, None


def checkpoint_name(method: str) -> str:
    """A folder name for a method: 'STaR D+_STaR' -> 'STaR_Dplus_STaR'."""
    import re

    return re.sub(r"[^A-Za-z0-9_-]+", "_", method.replace("+", "plus")).strip("_")


# ---------------------------------------------------------------------------------------
# Edit distances (Fig. 3) and the distribution shift (Fig. 4)
# ---------------------------------------------------------------------------------------

def edit_ratios(pairs: list[Pair]) -> np.ndarray:
    """Edit-distance ratio between y1 and y2 of each training pair."""
    from scorelib.metrics import edit_distance_ratio

    return np.array([edit_distance_ratio(p.y1, p.y2) for p in pairs])


def own_edit_ratios(model, tokenizer, protocol: Protocol, problems: list, reward_fn, cfg) -> np.ndarray:
    """Edit-distance ratio between y1 and y2 of the model's own greedy two-turn traces on the problems."""
    from scorelib.metrics import edit_distance_ratio

    ro = rollout_sharded(model, tokenizer, [p.problem for p in problems], [p.answer for p in problems], protocol,
                         reward_fn, n_turns=2, temperature=0.0, **generation(cfg))
    return np.array([edit_distance_ratio(a, b) for a, b in zip(ro.y1_text, ro.y2_text)])


def correction_rate_given(model, tokenizer, protocol: Protocol, problems: list, rows: list[tuple[int, tuple]],
                          reward_fn, max_new_tokens: int = 160, batch_size: int = 512) -> float:
    """Percent of fixed (wrong) first attempts that the model corrects in a greedy second attempt.
    ``rows`` are (problem index, y1 ids)."""
    if not rows:
        return float("nan")
    ps = [problems[i] for i, _ in rows]
    ro = rollout_sharded(model, tokenizer, [p.problem for p in ps], [p.answer for p in ps], protocol, reward_fn,
                         n_turns=2, k=1, temperature=0.0, max_new_tokens=max_new_tokens, batch_size=batch_size,
                         given_y1=[list(y) for _, y in rows])
    return 100.0 * float(ro.correct[:, 1].mean())


def self_correction_rate(model, tokenizer, protocol: Protocol, problems: list, reward_fn, max_new_tokens: int = 160,
                         batch_size: int = 512) -> float:
    """Percent of the model's own (greedy) wrong first attempts that its second attempt fixes."""
    ro = rollout_sharded(model, tokenizer, [p.problem for p in problems], [p.answer for p in problems], protocol,
                         reward_fn, n_turns=2, k=1, temperature=0.0, max_new_tokens=max_new_tokens,
                         batch_size=batch_size)
    wrong = ~ro.correct[:, 0]
    return 100.0 * float(ro.correct[wrong, 1].mean()) if wrong.any() else float("nan")


def wrong_first_attempts(traces: list[Trace], n: int, seed: int = 0) -> list[tuple[int, tuple]]:
    """Up to n (problem, y1 ids) of wrong first attempts, drawn without replacement."""
    rows = [(t.problem, t.y1_ids) for t in traces if not t.c1]
    random.Random(seed).shuffle(rows)
    return rows[:n]


def probe_points(n_steps: int, n_points: int) -> set[int]:
    """The optimizer steps after which Fig. 4 probes: n_points evenly spread over n_steps (at least step 1).

    >>> sorted(probe_points(10, 4))
    [2, 5, 8, 10]
    """
    return {max(1, round(n_steps * (i + 1) / n_points)) for i in range(n_points)}


def correction_rates(model, tokenizer, protocol: Protocol, reward_fn, cfg, train: tuple, test: tuple) -> dict:
    """Fig. 4's three series at one point: the correction rate on fixed first attempts of training
    problems and of held-out problems, and on the model's own first attempts on held-out problems.
    ``train`` and ``test`` are (problems, fixed (problem index, y1 ids) rows)."""
    return {"fixed y1, training problems": correction_rate_given(model, tokenizer, protocol, *train, reward_fn,
                                                                 **generation(cfg)),
            "fixed y1, held-out problems": correction_rate_given(model, tokenizer, protocol, *test, reward_fn,
                                                                 **generation(cfg)),
            "own y1, held-out problems": self_correction_rate(model, tokenizer, protocol, test[0], reward_fn,
                                                              **generation(cfg))}


def pair_sft_shift_curve(base, tokenizer, protocol: Protocol, reward_fn, cfg, pairs: list[Pair], train: tuple,
                         test: tuple, seed: int = 0, progress: bool = False) -> "pd.DataFrame":
    """Fig. 4: ``correction_rates`` before and at ``fig4_points`` points of one epoch (``pair_epochs``)
    of Pair-SFT on ``pairs``; ``train`` and ``test`` are (problems, fixed first-attempt rows)."""
    import pandas as pd

    rows = []

    def probe(model, step, steps):
        rates = correction_rates(model, tokenizer, protocol, reward_fn, cfg, train, test)
        rows.append({"epoch fraction": step / max(1, steps), **rates})

    n_steps = epoch_steps(len(pairs), cfg.sft_batch_size, cfg.pair_epochs) if pairs else 0
    at = probe_points(n_steps, cfg.fig4_points)
    probe(base, 0, n_steps)
    fine_tune(base, tokenizer, protocol, train[0], pairs, cfg, cfg.pair_epochs, seed=seed, progress=progress,
              callback=lambda model, step, steps: probe(model, step, steps) if step in at else None)
    return pd.DataFrame(rows).set_index("epoch fraction")
