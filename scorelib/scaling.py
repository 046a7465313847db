"""Inference-compute scaling (paper §3.5, Fig. 1 right; claim C8) and sequential attempts (Fig. 7).

At a budget of B generated attempts per problem, sampled at temperature T (paper: 0.7):

- **parallel**: B independent first attempts, majority vote over their extracted answers;
- **sequential**: B/2 first attempts, each followed by one self-correction round (the two-turn protocol), majority
  vote over the B/2 corrected answers. Every generated attempt counts one, so both spend B attempts.

Samples are drawn once, at the largest budget, and each smaller budget votes over a prefix of them (nested
subsets). The B/2 first attempts of the sequential chains are also the first half of parallel's B samples; the other
half are B/2 more first attempts (``sample_budget``): at equal budget the two methods share their first B/2
attempts and differ only in how they spend the rest (fresh samples or corrections), which makes their difference
less noisy than two independent sets would (common random numbers).

The vote (``vote_labels``, ``majority_vote``) groups answers the way the task's grader compares them: extracted with
``task.extract`` and merged with ``grading.is_equiv`` (``vote_rule``) (normalised strings, exact fractions, then mathematical
equivalence), so that "1/2", "0.5" and "\\frac{1}{2}" vote together. Unparseable answers do not vote; a problem with
no parseable answer is wrong. Ties go to the tied answer that appeared first in sample order. The winning answer is
graded as the task's grader graded its first sample.

Fig. 7 (``attempt_outcomes``): greedy sequential attempts [x, y1, p, y2, p, y3, ...] (``evaluate.sequential_rollouts``,
the function notebook 01 uses), with each attempt's accuracy and the share of problems whose extracted answer changed
from the attempt before.

Departures: the paper votes on MATH only; on the code task (HumanEval), whose grader runs tests and has no notion of
equivalent programs, identical extracted programs vote together (``vote_rule``). Parallel and sequential share their
first B/2 attempts (above); the paper's vote and tie rules are not specified.

Notebook 50's steps (its upstream runs, the models it samples, the files it writes) are in
``scorelib.inference_scaling``; this module holds the method and its tables.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from scorelib import grading
from scorelib import metrics as M

EXTRA_SEED_OFFSET = 1_000_003  # the extra first attempts sample from seed + this (another random stream)
FIG7_MODELS = ("Base", "Pair-SFT", "SCoRe")  # the paper's Fig. 7 series, in its order


# --------------------------------------------------------------------------- the majority vote

def _same(a: str, b: str) -> bool:
    return a == b


def _identity(a: str) -> str:
    return a


def vote_rule(task_name: str) -> tuple[Callable[[str], str], Callable[[str, str], bool]]:
    """(form, equivalent) for ``vote_labels``: how the task's grader compares answers. Toy and MATH: the grader's
    normalised form and ``grading.is_equiv``. Code: the grader runs tests and has no notion of equivalent programs,
    so only identical extracted programs vote together (a departure: the paper votes on MATH only)."""
    if task_name in ("toy", "math"):
        return grading.normalize_answer, grading.is_equiv
    if task_name == "humaneval":
        return _identity, _same
    raise ValueError(f"no vote rule for task {task_name!r}; valid: toy, math, humaneval")


def _parsed(answer) -> bool:
    return isinstance(answer, str) and bool(answer.strip())


def vote_labels(answers: Sequence[str | None], equivalent: Callable[[str, str], bool] = grading.is_equiv,
                form: Callable[[str], str] = grading.normalize_answer) -> list[int | None]:
    """One label per sample: the index of its answer group, groups numbered in order of first appearance; None for
    an unparseable answer (None or blank). A sample joins the first earlier group whose first answer it is
    equivalent to; answers with the same ``form`` (a canonical string that ``equivalent`` agrees with) join without
    a call to ``equivalent``.

    A sample's label depends only on the samples before it, so the labels of a prefix are the prefix of the labels:
    the votes of every smaller budget come from one labelling.

        vote_labels(["5", None, "5.0", "7", "10/2"]) -> [0, None, 0, 1, 0]
    """
    reps: list[str] = []  # the first answer of each group
    by_form: dict[str, int] = {}  # normalised answer -> group
    labels: list[int | None] = []
    for a in answers:
        if not _parsed(a):
            labels.append(None)
            continue
        key = form(a)
        label = by_form.get(key)
        if label is None:
            label = next((g for g, r in enumerate(reps) if equivalent(a, r)), None)
            if label is None:
                label = len(reps)
                reps.append(a)
            by_form[key] = label
        labels.append(label)
    return labels


def majority_vote(labels: Sequence[int | None]) -> int | None:
    """The index of the sample that stands for the winning answer (the first sample of the largest group), or None
    when no sample parsed. Ties: the tied group that appeared first in sample order wins.

        majority_vote([0, 1, 1, 0]) -> 0     (2 votes each: group 0 appeared first)
        majority_vote([None, 1, 0, 1]) -> 1  (labels need not start at 0 in a prefix of a longer list)
        majority_vote([None, None]) -> None
    """
    counts: dict[int, int] = {}
    first: dict[int, int] = {}
    for i, g in enumerate(labels):
        if g is None:
            continue
        counts[g] = counts.get(g, 0) + 1
        first.setdefault(g, i)
    if not counts:
        return None
    top = max(counts.values())
    return min(first[g] for g, c in counts.items() if c == top)


def voted_correct(answers: Sequence[Sequence[str | None]], correct: np.ndarray, sizes: Sequence[int],
                  rule: tuple = (grading.normalize_answer, grading.is_equiv)) -> np.ndarray:
    """(len(sizes), N) booleans: whether the majority vote over the first ``size`` samples of each problem is right.
    answers[i][j] and correct[i, j] are sample j of problem i; the winning answer is graded as its first sample was
    (``correct`` holds the task grader's verdicts); no parseable sample: wrong. ``rule``: (form, equivalent),
    ``vote_rule``."""
    correct = np.asarray(correct, dtype=bool)
    if correct.shape != (len(answers), max((len(a) for a in answers), default=0)):
        raise ValueError(f"correct has shape {correct.shape}, answers {len(answers)} x "
                         f"{max((len(a) for a in answers), default=0)}")
    if any(not 1 <= n <= correct.shape[1] for n in sizes):
        raise ValueError(f"vote sizes must be in [1, {correct.shape[1]}], got {list(sizes)}")
    out = np.zeros((len(sizes), len(answers)), dtype=bool)
    for i, row in enumerate(answers):
        labels = vote_labels(row, rule[1], rule[0])
        for b, n in enumerate(sizes):
            w = majority_vote(labels[:n])
            out[b, i] = w is not None and bool(correct[i, w])
    return out


# --------------------------------------------------------------------------- sampling at the largest budget

def check_budgets(budgets: Sequence[int]) -> tuple[int, ...]:
    """Budgets are even numbers >= 2 in increasing order (sequential spends B/2 pairs of attempts)."""
    b = tuple(budgets)
    if not b or any(isinstance(x, bool) or not isinstance(x, (int, np.integer)) or x < 2 or x % 2 for x in b) \
            or list(b) != sorted(set(b)):
        raise ValueError(f"budgets must be increasing even integers >= 2, got {list(b)}")
    return b


def budget_cost(budget: int) -> pd.DataFrame:
    """What one budget B costs per problem: first attempts, corrections, attempts in all and answers voted over, for
    parallel (B first attempts, B votes), sequential (B/2 first attempts and their B/2 corrections, B/2 votes) and as
    ``sample_budget`` draws both at once (the chains' B/2 first attempts serve both methods: 1.5 B attempts).

        budget_cost(8) -> parallel 8, 0, 8, 8; sequential 4, 4, 8, 4; both, as sampled 8, 4, 12, <NA>
    """
    b = check_budgets([budget])[0]
    rows = {"parallel": (b, 0, b), "sequential": (b // 2, b // 2, b // 2), "both, as sampled": (b, b // 2, None)}
    table = pd.DataFrame({name: dict(first_attempts=first, corrections=fixes, attempts=first + fixes, voted=voted)
                          for name, (first, fixes, voted) in rows.items()}).T
    return table.astype("Int64").rename_axis(f"budget {b}")


@dataclass
class BudgetSamples:
    """Every attempt sampled for one model at the largest budget 2K: K chains [y1, y2] and K more first attempts."""

    y1_answers: list  # [N][K] extracted answers of the chains' first attempts
    y2_answers: list  # [N][K] their corrections (second attempts)
    extra_answers: list  # [N][K] the other first attempts
    y1_correct: np.ndarray  # (N, K) graded by the task's grader
    y2_correct: np.ndarray  # (N, K)
    extra_correct: np.ndarray  # (N, K)
    seconds: float  # sampling and grading time

    @property
    def k(self) -> int:
        return self.y1_correct.shape[1]

    def parallel(self) -> tuple[list, np.ndarray]:
        """The 2K first attempts in parallel's sample order: y1 of chain 0, extra 0, y1 of chain 1, extra 1, ...;
        its first B are the B/2 chains' first attempts and B/2 extra ones (nested over budgets)."""
        answers = [[a for pair in zip(r1, r2) for a in pair] for r1, r2 in zip(self.y1_answers, self.extra_answers)]
        correct = np.stack([self.y1_correct, self.extra_correct], axis=2).reshape(len(answers), -1)
        return answers, correct


def _by_problem(values: Sequence, n: int, k: int) -> list[list]:
    """Rollout rows (problem-major, k per problem) as [N][k]."""
    return [list(values[i * k:(i + 1) * k]) for i in range(n)]


def sample_budget(model, tokenizer, task, problems: list, max_budget: int, temperature: float = 0.7,
                  max_new_tokens: int = 160, batch_size: int = 512, seed: int = 0, progress: bool = False,
                  cache_dir: str | Path | None = None) -> BudgetSamples:
    """K = max_budget / 2 two-turn chains [x, y1, p, y2] and K more single first attempts per problem, at the
    temperature, all problems and samples batched in two rollouts (the extra attempts from seed +
    EXTRA_SEED_OFFSET). With ``cache_dir`` the result is kept by its inputs (the model's weights, the problems, the
    task, the settings, the seed; ``results.cached``)."""
    import time

    from scorelib.results import cached
    from scorelib.rollout import rollout_sharded
    from scorelib.evaluate import model_fingerprint

    k = check_budgets([max_budget])[0] // 2
    xs, ys = [p.problem for p in problems], [p.answer for p in problems]

    def compute() -> BudgetSamples:
        t0 = time.perf_counter()
        kw = dict(temperature=temperature, max_new_tokens=max_new_tokens, batch_size=batch_size, progress=progress)
        chains = rollout_sharded(model, tokenizer, xs, ys, task.protocol, task.reward, n_turns=2, k=k, seed=seed, **kw)
        extra = rollout_sharded(model, tokenizer, xs, ys, task.protocol, task.reward, n_turns=1, k=k,
                                seed=seed + EXTRA_SEED_OFFSET, **kw)
        n = len(problems)
        answers = [_by_problem([task.extract(t) for t in texts], n, k)
                   for texts in (chains.texts[0], chains.texts[1], extra.texts[0])]
        return BudgetSamples(*answers, chains.correct[:, 0].reshape(n, k), chains.correct[:, 1].reshape(n, k),
                             extra.correct[:, 0].reshape(n, k), time.perf_counter() - t0)

    if cache_dir is None:
        return compute()
    parts = [model_fingerprint(model), task.name, repr(task.protocol),
             hashlib.blake2b(repr([(p.problem, p.answer) for p in problems]).encode()).hexdigest(), k,
             float(temperature), max_new_tokens, batch_size, seed]
    return cached(Path(cache_dir) / "scaling", "budget", parts, compute)


def budget_votes(samples: BudgetSamples, budgets: Sequence[int],
                 rule: tuple = (grading.normalize_answer, grading.is_equiv)) -> dict:
    """Per budget B, whether each problem's vote is right: parallel over its first B samples, sequential over the
    corrections of the first B/2 chains (``rule``: ``vote_rule``). Returns dict(parallel=(len(budgets), N), sequential=(len(budgets), N),
    single=(N,) the share of a problem's 2K first attempts that are right: one sample's accuracy)."""
    budgets = check_budgets(budgets)
    if budgets[-1] > 2 * samples.k:
        raise ValueError(f"budget {budgets[-1]} needs {budgets[-1] // 2} chains; {samples.k} were sampled")
    answers, correct = samples.parallel()
    return dict(parallel=voted_correct(answers, correct, budgets, rule),
                sequential=voted_correct(samples.y2_answers, samples.y2_correct, [b // 2 for b in budgets], rule),
                single=correct.mean(axis=1))


# --------------------------------------------------------------------------- tables (claim C8: scorelib.claims)

def scaling_table(votes: Sequence[dict], budgets: Sequence[int], n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """One row per budget for one model, pooled over its seeds (``votes``: one ``budget_votes`` per seed, on the
    same problems): parallel and sequential accuracy (%), their difference sequential − parallel, each with a 95%
    CI from a bootstrap over problems that keeps each problem's seeds together (``metrics.summarize_seeds``, with
    parallel as the first attempt and sequential as the second), the difference's standard error over problems, and
    one sample's accuracy (the budget-1 reference)."""
    rows = []
    for b_idx, b in enumerate(check_budgets(budgets)):
        par = [v["parallel"][b_idx] for v in votes]
        seq = [v["sequential"][b_idx] for v in votes]
        s = M.summarize_seeds(par, seq, n_boot=n_boot, seed=seed)
        per_problem = np.mean([q.astype(float) - p.astype(float) for p, q in zip(par, seq)], axis=0)  # (N,)
        rows.append(dict(budget=b, parallel=s["acc_t1"], parallel_lo=s["acc_t1_lo"], parallel_hi=s["acc_t1_hi"],
                         sequential=s["acc_t2"], sequential_lo=s["acc_t2_lo"], sequential_hi=s["acc_t2_hi"],
                         diff=s["delta"], diff_lo=s["delta_lo"], diff_hi=s["delta_hi"],
                         diff_se=100.0 * float(per_problem.std(ddof=1) / np.sqrt(len(per_problem)))
                         if len(per_problem) > 1 else float("nan"),
                         single=100.0 * float(np.mean([v["single"] for v in votes])), n=s["n"], seeds=len(votes)))
    return pd.DataFrame(rows).set_index("budget")


def fig1_table(tables: dict[str, pd.DataFrame], paper_curve: dict | None = None) -> pd.DataFrame:
    """Fig. 1 (right) as a table: per budget, each model's parallel and sequential accuracy with its 95% CI
    ("64.1 [61.0, 67.2]"), and the paper's approximate curve where it has that budget."""
    def cell(v, lo, hi) -> str:
        return f"{v:.1f} [{lo:.1f}, {hi:.1f}]"

    out = {}
    for name, t in tables.items():
        for method in ("parallel", "sequential"):
            out[f"{name} {method}"] = {b: cell(r[method], r[f"{method}_lo"], r[f"{method}_hi"]) for b, r in t.iterrows()}
        out[f"{name} sequential − parallel"] = {b: cell(r["diff"], r["diff_lo"], r["diff_hi"]) for b, r in t.iterrows()}
    df = pd.DataFrame(out)
    if paper_curve:
        for method in ("parallel", "sequential"):
            by_budget = dict(zip(paper_curve["budgets"], paper_curve[method]))
            df[f"paper {method} (SCoRe, MATH500, approx.)"] = [by_budget.get(b, "") for b in df.index]
    df.index.name = "budget"
    return df


def gains_table(tables: dict[str, pd.DataFrame], paper_gains: dict | None = None) -> pd.DataFrame:
    """Per model, at the largest budget: one sample's accuracy, the gains of parallel and of sequential over it, and
    the standard error of sequential − parallel; the paper's gains at budget 32 (``paper.SCALING_GAINS_AT_32``) as
    the last row."""
    out = {}
    for name, t in tables.items():
        top, r = t.index.max(), t.loc[t.index.max()]
        out[name] = {"one sample": r["single"], f"parallel gain at {top}": r["parallel"] - r["single"],
                     f"sequential gain at {top}": r["sequential"] - r["single"],
                     "SE of sequential − parallel": r["diff_se"]}
    gains = pd.DataFrame(out).T.rename_axis("model")
    if paper_gains:
        gains.loc["SCoRe (paper, MATH500, budget 32)"] = [float("nan"), paper_gains["parallel"],
                                                          paper_gains["sequential"], float("nan")]
    return gains


def rows(tables: dict[str, pd.DataFrame]) -> dict[str, list[dict]]:
    """Model -> its scaling table as a list of rows (one per budget): how metrics.json stores the curves and what
    ``claims.claim_c8`` reads."""
    return {name: t.reset_index().to_dict("records") for name, t in tables.items()}


# --------------------------------------------------------------------------- Fig. 7: sequential attempts

@dataclass
class AttemptOutcomes:
    """n greedy sequential attempts per problem: correctness and extracted answers."""

    correct: np.ndarray  # (N, n_attempts)
    answers: list  # [attempt][N]
    seconds: float


def attempt_outcomes(model, tokenizer, task, problems: list, n_attempts: int, max_new_tokens: int = 160,
                     batch_size: int = 512, seed: int = 0, progress: bool = False,
                     cache_dir: str | Path | None = None) -> AttemptOutcomes:
    """Greedy attempts [x, y1, p, y2, p, y3, ...], each seeing the ones before (``evaluate.sequential_rollouts``,
    as notebook 01 draws the base's Fig. 7 series), kept by their inputs under ``cache_dir`` when given."""
    import time

    from scorelib.evaluate import sequential_rollouts
    from scorelib.results import cached
    from scorelib.evaluate import model_fingerprint

    def compute() -> AttemptOutcomes:
        t0 = time.perf_counter()
        ro = sequential_rollouts(model, tokenizer, problems, task.protocol, n_attempts, temperature=0.0,
                                 max_new_tokens=max_new_tokens, batch_size=batch_size, seed=seed, progress=progress,
                                 reward_fn=task.reward)
        return AttemptOutcomes(ro.correct.copy(), [[task.extract(t) for t in texts] for texts in ro.texts],
                               time.perf_counter() - t0)

    if cache_dir is None:
        return compute()
    parts = [model_fingerprint(model), task.name, repr(task.protocol),
             hashlib.blake2b(repr([(p.problem, p.answer) for p in problems]).encode()).hexdigest(), n_attempts,
             max_new_tokens, batch_size, seed]
    return cached(Path(cache_dir) / "sequential", "attempts", parts, compute)


def attempts_table(outcomes: Sequence[AttemptOutcomes], n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """One row per attempt for one model, pooled over its seeds: accuracy (%) with a 95% CI, its difference from
    attempt 1 with a 95% CI (bootstrap over problems, seeds together: ``metrics.summarize_seeds`` of attempt 1
    against attempt t), and the share of problems whose extracted answer differs from the attempt before
    (``metrics.different_answer_rate``, averaged over seeds; empty at attempt 1)."""
    n_attempts = outcomes[0].correct.shape[1]
    rows = []
    for t in range(n_attempts):
        s = M.summarize_seeds([o.correct[:, 0] for o in outcomes], [o.correct[:, t] for o in outcomes],
                              n_boot=n_boot, seed=seed)
        changed = (float(np.mean([M.different_answer_rate(o.answers[t - 1], o.answers[t]) for o in outcomes]))
                   if t else float("nan"))
        rows.append(dict(attempt=t + 1, accuracy=s["acc_t2"], accuracy_lo=s["acc_t2_lo"], accuracy_hi=s["acc_t2_hi"],
                         vs_attempt1=s["delta"], vs_attempt1_lo=s["delta_lo"], vs_attempt1_hi=s["delta_hi"],
                         changed=changed, n=s["n"], seeds=len(outcomes)))
    return pd.DataFrame(rows).set_index("attempt")


def fig7_table(tables: dict[str, pd.DataFrame], column: str = "accuracy", missing: dict[str, str] | None = None
               ) -> pd.DataFrame:
    """Fig. 7 as a table: one row per model, one column per attempt; ``column`` 'accuracy' ("64.1 [61.0, 67.2]",
    95% CI) or 'changed' (% of problems whose answer changed from the attempt before). ``missing``: model -> why,
    shown as a row marked missing. Rows in the paper's order (FIG7_MODELS), others after."""
    rows = {}
    for name, t in tables.items():
        if column == "accuracy":
            rows[name] = {f"attempt {a}": f"{r['accuracy']:.1f} [{r['accuracy_lo']:.1f}, {r['accuracy_hi']:.1f}]"
                          for a, r in t.iterrows()}
        else:
            rows[name] = {f"attempt {a}": "" if np.isnan(r[column]) else f"{r[column]:.1f}" for a, r in t.iterrows()}
    columns = list(next(iter(rows.values())).keys()) if rows else []
    for name, why in (missing or {}).items():
        rows[name] = {c: "missing" for c in columns} | ({"note": why} if why else {})
    order = sorted(rows, key=lambda name: FIG7_MODELS.index(name) if name in FIG7_MODELS else len(FIG7_MODELS))
    df = pd.DataFrame.from_dict({name: rows[name] for name in order}, orient="index")
    df.index.name = "model"
    return df.fillna("")
