"""Evaluation under the paper's two-turn protocol (section 1-2 of the digest).

One call samples y1 and y2 for every held-out problem (greedy by default, as the
paper evaluates) and returns everything the tables and figures need: per-problem
correctness of each attempt, extracted answers, edit-distance ratios, and the
metrics with bootstrap CIs. Under a multi-process launcher (``scorelib.distributed``)
each process rolls out its share of the problems and every process gets all rows
back (``rollout.rollout_sharded``); in a single process nothing changes.

The notebooks evaluate through ``evaluate_all`` (two turns) and ``evaluate_attempts_all`` (n turns): one
evaluation per temperature, each kept in the run's cache by its inputs (``model_fingerprint``, the problems, the
task, the settings), and pool each method's evaluations over seeds with ``pooled`` and ``pooled_attempts``.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from scorelib import metrics as M
from scorelib.grading import extract_answer, reward
from scorelib.prompts import Protocol
from scorelib.results import cached
from scorelib.rollout import Rollouts, rollout_sharded


@dataclass
class TwoTurnEval:
    """Per-problem outcomes of a two-turn evaluation and its summary."""

    rollouts: Rollouts
    problems: list  # MATH-format records (problem, answer, level, ...)
    c1: np.ndarray  # (N,) attempt 1 correct
    c2: np.ndarray  # (N,) attempt 2 correct
    a1: list  # extracted answers
    a2: list
    edit_ratio: np.ndarray  # (N,) edit-distance ratio between y1 and y2
    summary: dict  # metrics (percent) with _lo/_hi CIs, fix_own, different-answer rate

    def frame(self) -> pd.DataFrame:
        """One row per problem: level, subject, both attempts' correctness and answers."""
        return pd.DataFrame(dict(level=[p.level for p in self.problems], subject=[p.subject for p in self.problems],
                                 c1=self.c1, c2=self.c2, a1=self.a1, a2=self.a2, gold=[p.answer for p in self.problems],
                                 edit_ratio=self.edit_ratio))

    def by_level(self) -> pd.DataFrame:
        return M.metrics_by_group(self.c1, self.c2, [p.level for p in self.problems])

    def transcripts(self, kind: str, n: int) -> list[dict]:
        """Up to n examples of one transition: 'i2c', 'c2i', 'c2c' or 'i2i'."""
        want = {"i2c": (False, True), "c2i": (True, False), "c2c": (True, True), "i2i": (False, False)}[kind]
        idx = [i for i in range(len(self.c1)) if (bool(self.c1[i]), bool(self.c2[i])) == want][:n]
        return [dict(problem=self.problems[i].problem, answer=self.problems[i].answer,
                     y1=self.rollouts.y1_text[i], y2=self.rollouts.y2_text[i]) for i in idx]


    def transcripts_markdown(self, kinds=("i2c", "c2i"), n: int = 3) -> str:
        """Up to n examples of each transition, as Markdown (for transcripts.md and display)."""
        blocks = [f"**{kind}** · {ex['problem']} (answer {ex['answer']})\n\n```\ny1: {ex['y1']}\ny2: {ex['y2']}\n```\n"
                  for kind in kinds for ex in self.transcripts(kind, n)]
        return "\n".join(blocks) or "no such transitions\n"


def evaluate_two_turn(model, tokenizer, problems: list, protocol: Protocol, temperature: float = 0.0,
                      max_new_tokens: int = 160, batch_size: int = 512, n_boot: int = 1000, seed: int = 0,
                      progress: bool = False, reward_fn=reward, extract_fn=extract_answer) -> TwoTurnEval:
    """Sample [x, y1, p, y2] once per problem and score both attempts.

    ``reward_fn``/``extract_fn`` default to MATH-style grading; a task passes its own
    (``scorelib.tasks.Task.reward`` and ``.extract``).
    """
    ro = rollout_sharded(model, tokenizer, [p.problem for p in problems], [p.answer for p in problems], protocol,
                         reward_fn, n_turns=2, k=1, temperature=temperature, max_new_tokens=max_new_tokens,
                         batch_size=batch_size, seed=seed, progress=progress)
    return scored(ro, problems, extract_fn, temperature, n_boot, seed)


def scored(ro: Rollouts, problems: list, extract_fn, temperature: float, n_boot: int, seed: int) -> TwoTurnEval:
    """A two-turn evaluation from rollouts whose first two turns are y1 and y2."""
    c1, c2 = ro.correct[:, 0], ro.correct[:, 1]
    a1 = [extract_fn(t) for t in ro.y1_text]
    a2 = [extract_fn(t) for t in ro.y2_text]
    summary = M.summarize(c1, c2, n_boot=n_boot, seed=seed)
    summary["different_answer"] = M.different_answer_rate(a1, a2)
    summary["temperature"] = temperature
    edit = np.array([M.edit_distance_ratio(y1, y2) for y1, y2 in zip(ro.y1_text, ro.y2_text)])
    return TwoTurnEval(ro, list(problems), c1, c2, a1, a2, edit, summary)


def sequential_rollouts(model, tokenizer, problems: list, protocol: Protocol, n_attempts: int,
                        temperature: float = 0.0, max_new_tokens: int = 160, batch_size: int = 512,
                        seed: int = 0, progress: bool = False, reward_fn=reward) -> Rollouts:
    """n sequential attempts [x, y1, p, y2, p, y3, ...] per problem, each seeing the ones before (Fig. 7)."""
    return rollout_sharded(model, tokenizer, [p.problem for p in problems], [p.answer for p in problems], protocol,
                           reward_fn, n_turns=n_attempts, k=1, temperature=temperature, max_new_tokens=max_new_tokens,
                           batch_size=batch_size, seed=seed, progress=progress)


def sequential_attempts(model, tokenizer, problems: list, protocol: Protocol, n_attempts: int,
                        temperature: float = 0.0, max_new_tokens: int = 160, batch_size: int = 512,
                        seed: int = 0, progress: bool = False, reward_fn=reward) -> np.ndarray:
    """Accuracy (percent) of each of n sequential attempts [x, y1, p, y2, p, y3, ...] (Fig. 7)."""
    ro = sequential_rollouts(model, tokenizer, problems, protocol, n_attempts, temperature=temperature,
                             max_new_tokens=max_new_tokens, batch_size=batch_size, seed=seed, progress=progress,
                             reward_fn=reward_fn)
    return M.sequential_accuracy(ro.correct)


@dataclass
class AttemptsEval:
    """Per-problem outcomes of n sequential attempts (the three-turn extension) and their summary."""

    problems: list
    correct: np.ndarray  # (N, T) attempt t correct
    answers: list  # [attempt][N] extracted answers
    texts: list  # [attempt][N] the attempts' text
    summary: dict  # metrics.summarize_attempts (percent, 95% CIs) and the different-answer rates

    def transcripts_markdown(self, pattern: tuple, n: int = 2) -> str:
        """Up to n problems whose attempts' correctness is ``pattern`` (e.g. (False, True, True)), as Markdown."""
        idx = [i for i in range(len(self.problems)) if tuple(bool(x) for x in self.correct[i]) == tuple(pattern)][:n]
        label = "".join("c" if x else "i" for x in pattern)
        blocks = [f"**{label}** · {self.problems[i].problem} (answer {self.problems[i].answer})\n\n```\n"
                  + "\n".join(f"y{t + 1}: {self.texts[t][i]}" for t in range(len(self.texts))) + "\n```\n"
                  for i in idx]
        return "\n".join(blocks)


def evaluate_attempts(model, tokenizer, problems: list, protocol: Protocol, n_turns: int, temperature: float = 0.0,
                      max_new_tokens: int = 160, batch_size: int = 512, n_boot: int = 1000, seed: int = 0,
                      progress: bool = False, reward_fn=reward, extract_fn=extract_answer) -> AttemptsEval:
    """n_turns sequential attempts [x, y1, p, y2, p, y3, ...] per problem (``sequential_rollouts``; greedy by
    default) scored: Acc@t of each attempt, Δ between consecutive attempts with CIs (``metrics.summarize_attempts``)
    and the rate of a different answer from the attempt before (``different_t1_t2``, ...)."""
    ro = sequential_rollouts(model, tokenizer, problems, protocol, n_turns, temperature=temperature,
                             max_new_tokens=max_new_tokens, batch_size=batch_size, seed=seed, progress=progress,
                             reward_fn=reward_fn)
    answers = [[extract_fn(t) for t in texts] for texts in ro.texts]
    summary = M.summarize_attempts([ro.correct], n_boot=n_boot, seed=seed)
    for t in range(1, n_turns):
        summary[f"different_t{t}_t{t + 1}"] = M.different_answer_rate(answers[t - 1], answers[t])
    summary["temperature"] = temperature
    return AttemptsEval(list(problems), ro.correct.copy(), answers, [list(x) for x in ro.texts], summary)


def self_refine(model, tokenizer, problems: list, protocol: Protocol, critique: str, rewrite: str,
                max_new_tokens: int = 160, batch_size: int = 512, n_boot: int = 1000, seed: int = 0,
                progress: bool = False, reward_fn=reward, extract_fn=extract_answer) -> TwoTurnEval:
    """Self-Refine as a prompting-only baseline: [x, y1, critique-request, c, rewrite-request, y2],
    greedy; y2 (the rewrite) is scored as the second attempt. The returned evaluation's transcripts
    show y1 and the rewrite; the critiques are in ``rollouts.meta["critiques"]`` (the token ids and
    segments are those of the whole three-turn sequence)."""
    ro = rollout_sharded(model, tokenizer, [p.problem for p in problems], [p.answer for p in problems], protocol,
                         reward_fn, n_turns=3, k=1, temperature=0.0, max_new_tokens=max_new_tokens,
                         batch_size=batch_size, seed=seed, progress=progress, instructions=[critique, rewrite])
    y1, y2 = ro.texts[0], ro.texts[2]
    two = Rollouts(ro.problem_index, [y1, y2], [ro.attempt_ids[0], ro.attempt_ids[2]], ro.rewards[:, [0, 2]],
                   ro.input_ids, ro.attention_mask, ro.segments,
                   meta=dict(ro.meta, self_refine=True, critiques=ro.texts[1]))
    return scored(two, problems, extract_fn, 0.0, n_boot, seed)


def model_fingerprint(model) -> str:
    """A digest of a model's weights (every tensor of its state dict, names, shapes and dtypes): two models with
    the same fingerprint compute the same function. Tensors up to 4M elements are hashed byte for byte; larger
    ones (real models) by their float64 sum, sum of squares and a strided sample of 65,536 elements, which any
    training step changes."""
    h = hashlib.blake2b(digest_size=16)
    for name, t in model.state_dict().items():
        t = t.detach()
        h.update(f"{name}{tuple(t.shape)}{t.dtype}".encode())
        if t.numel() <= 1 << 22:
            h.update(t.cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
        else:
            flat = t.reshape(-1)
            stats = torch.stack([flat.double().sum(), flat.double().square().sum()]).cpu().numpy()
            sample = flat[:: max(1, flat.numel() // 65536)].float().cpu().contiguous().numpy()
            h.update(stats.tobytes() + sample.tobytes())
    return h.hexdigest()


def evaluate_all(model, tokenizer, task, test: list, temperatures, max_new_tokens: int, batch_size: int,
                 n_boot: int, seed: int, progress: bool = False, cache_dir: str | Path | None = None,
                 read_from=()) -> dict:
    """temperature -> TwoTurnEval on the held-out problems.

    With ``cache_dir``, each evaluation is kept in cache_dir/eval/<key>.pkl, the key a digest of everything it
    depends on (the model's weights, the problems and answers, the task and its prompts, the temperature and the
    other settings, the seed, and scorelib's source code), so a rerun after a kill reuses it and a changed input is
    never served a stale result. ``read_from``: other runs' cache folders, looked in (read only) for the same key
    first (e.g. notebook 30's evaluation of the SCoRe models that notebook 40 compares with)."""
    def evaluate(t):
        return evaluate_two_turn(model, tokenizer, test, task.protocol, temperature=t, max_new_tokens=max_new_tokens,
                                 batch_size=batch_size, n_boot=n_boot, seed=seed, progress=progress,
                                 reward_fn=task.reward, extract_fn=task.extract)

    return _by_temperature(evaluate, model, task, test, temperatures, cache_dir, "eval", [],
                           [max_new_tokens, batch_size, n_boot, seed], read_from)


def _by_temperature(evaluate, model, task, test: list, temperatures, cache_dir, name: str, lead: list, tail: list,
                    read_from=()) -> dict:
    """temperature -> evaluate(temperature), each kept under cache_dir/eval/NAME-<key> (``results.cached``) with
    the key [weights, task, prompts, problems, *lead, temperature, *tail]; no cache_dir: computed every time."""
    out, parts = {}, None
    for t in temperatures:
        if cache_dir is None:
            out[t] = evaluate(t)
            continue
        parts = parts or [model_fingerprint(model), task.name, repr(task.protocol),
                          hashlib.blake2b(repr([(p.problem, p.answer) for p in test]).encode()).hexdigest()]
        out[t] = cached(Path(cache_dir) / "eval", name, [*parts, *lead, float(t), *tail], lambda t=t: evaluate(t),
                        read_from=[Path(d) / "eval" for d in read_from])
    return out


def evaluate_attempts_all(model, tokenizer, task, test: list, n_turns: int, temperatures, max_new_tokens: int,
                          batch_size: int, n_boot: int, seed: int, progress: bool = False,
                          cache_dir: str | Path | None = None) -> dict:
    """temperature -> AttemptsEval: n_turns sequential attempts per held-out problem, each seeing the ones before
    (``evaluate_attempts``; the three-turn extension's Acc@t1/t2/t3), kept under cache_dir/eval/ by their
    inputs as ``evaluate_all`` keeps its evaluations."""
    def evaluate(t):
        return evaluate_attempts(model, tokenizer, test, task.protocol, n_turns, temperature=t,
                                 max_new_tokens=max_new_tokens, batch_size=batch_size, n_boot=n_boot, seed=seed,
                                 progress=progress, reward_fn=task.reward, extract_fn=task.extract)

    return _by_temperature(evaluate, model, task, test, temperatures, cache_dir, f"attempts{n_turns}", [n_turns],
                           [max_new_tokens, batch_size, n_boot, seed])


def pooled_attempts(evals_by_seed: list, temperature: float, n_boot: int, seed: int = 0) -> dict:
    """One model's n-attempt metrics at one temperature, pooled over seeds (``metrics.summarize_attempts``: a
    cluster bootstrap over problems), with the different-answer rates between consecutive attempts averaged over
    seeds."""
    es = [e[temperature] for e in evals_by_seed]
    out = M.summarize_attempts([e.correct for e in es], n_boot=n_boot, seed=seed)
    for key in (k for k in es[0].summary if k.startswith("different_")):
        out[key] = float(np.mean([e.summary[key] for e in es]))
    return out


def pooled(evals_by_seed: list, temperature: float, n_boot: int, seed: int = 0) -> dict:
    """One method's metrics at one temperature, pooled over seeds (cluster bootstrap over problems)."""
    out = M.summarize_seeds([e[temperature].c1 for e in evals_by_seed], [e[temperature].c2 for e in evals_by_seed],
                            n_boot=n_boot, seed=seed)
    out["different_answer"] = float(np.mean([e[temperature].summary["different_answer"] for e in evals_by_seed]))
    return out
