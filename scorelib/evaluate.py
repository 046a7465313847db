"""Evaluation under the paper's two-turn protocol (section 1-2 of the digest).

One call samples y1 and y2 for every held-out problem (greedy by default, as the
paper evaluates) and returns everything the tables and figures need: per-problem
correctness of each attempt, extracted answers, edit-distance ratios, and the
metrics with bootstrap CIs. Under a multi-process launcher (``scorelib.distributed``)
each process rolls out its share of the problems and every process gets all rows
back (``rollout.rollout_sharded``); in a single process nothing changes.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from scorelib import metrics as M
from scorelib.grading import extract_answer, reward
from scorelib.prompts import Protocol
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
