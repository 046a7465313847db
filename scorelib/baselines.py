"""Notebook 10's steps (paper section 4 and its baselines, section 8; Table 1, Figs. 3 and 4; claims C2-C4): every
seed collects the base model's two-turn traces, builds D_STaR, D⁺_STaR, D_SFT and D⁺_SFT, trains STaR, Pair-SFT
and the no-information control and evaluates each on the held-out problems; then the Table 1 analogue, the data
sets, the edit distances (Fig. 3), the distribution shift (Fig. 4) and the claims.

One function per step of the notebook, so that its cells read as the paper and the tests can call each step. The
data sets and the fine-tuning are in ``sft``; the metrics in ``metrics``; the shared table builders in ``tables``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd

from scorelib import claims as C
from scorelib import config, distributed, metrics, paper, sft, tables
from scorelib.from_base import BaseSetup, open_from_base
from scorelib.evaluate import evaluate_all, model_fingerprint
from scorelib.models import is_tiny, save_model
from scorelib.protocol import describe as describe_protocol
from scorelib.results import cached, resolve_model, write_json

NOTEBOOK = "10_sft_baselines"
BASE = "Base model"
PAPER_ROWS = {**paper.TABLE1, "Self-Refine": paper.TABLE2["Self-Refine"]}  # Table 1, and Self-Refine from Table 2
SPREAD_HEADERS = {"fix own (%)": "fix_own", "Δ sd over seeds": "delta_seed_sd",
                  "Acc@t1 sd over seeds": "acc_t1_seed_sd"}
PER_SEED_KEYS = ("acc_t1", "acc_t2", "delta", "delta_i2c", "delta_c2i", "fix_own")


@dataclass
class Setup(BaseSetup):
    """What every step of notebook 10 needs: ``BaseSetup`` (cfg: config.SFTConfig)."""

    @property
    def tiny(self) -> bool:
        return is_tiny(self.model_ref)

    @property
    def protocol(self) -> str:
        return describe_protocol(self.cfg.eval_split, self.cfg.seeds)

    @property
    def gen(self) -> dict:
        """The generation keywords of every rollout (``sft.generation``)."""
        return sft.generation(self.cfg)

    def train_problems(self, seed: int) -> list:
        """The ``n_problems`` training problems of one seed."""
        return self.task.train_problems(self.cfg.n_problems, seed=seed)

    def describe(self) -> str:
        tuning = f"LoRA r={self.cfg.lora_rank}" if self.cfg.lora_rank else "full fine-tuning"
        return (f"{self.base_described}; {self.task.describe}; {len(self.held_out)} held-out problems "
                f"({self.protocol}); {tuning}; run folder {self.run.dir}")


def setup(cfg: config.SFTConfig) -> Setup:
    """Find the base model (``model``, else notebook 00's run ``base_run``: a missing run fails here), open this
    run's folder and load the base model and the held-out problems."""
    return Setup(**open_from_base(NOTEBOOK, cfg, resolve_model(cfg)))


def evaluate(su: Setup, model, seed: int):
    """A model's greedy two-turn evaluation on the held-out problems (``evaluate.evaluate_two_turn``)."""
    return evaluate_all(model, su.tokenizer, su.task, su.held_out, [0.0], n_boot=su.cfg.n_boot, seed=seed,
                        progress=su.cfg.progress, **su.gen)[0.0]


def evaluate_base(su: Setup, base=None):
    """The greedy evaluation of a base model (default: the first seed's; bootstrap seeded by ``eval_seed``), kept in
    the run's cache/."""
    return evaluate_all(su.base if base is None else base, su.tokenizer, su.task, su.held_out, [0.0],
                        n_boot=su.cfg.n_boot, seed=su.cfg.eval_seed, progress=su.cfg.progress,
                        cache_dir=su.run.path("cache"), **su.gen)[0.0]


def evaluate_bases(su: Setup) -> list:
    """The base row's evaluations (``evaluate_base``): one a seed when each seed has its own base model, else the
    one shared base's; the first is the first seed's."""
    return [evaluate_base(su, base) for _, base in su.base_row(su.cfg.eval_seed)]


@dataclass
class SeedResult:
    """Everything one seed of notebook 10 produced."""

    seed: int
    traces: list  # the base model's two-turn samples on the training problems (round 1)
    datasets: dict  # name -> list[Pair] built from the base model's samples (round 1)
    star_rounds: dict  # STaR method -> per-round info (size, steps, data)
    evals: dict  # method -> TwoTurnEval on the held-out problems (greedy)
    train_edit: dict  # method -> edit-distance ratios of its own greedy traces on training problems
    seconds: dict


def train_and_evaluate(su: Setup, seed: int) -> SeedResult:
    """One seed: collect the base's traces, build the four data sets, train every method of ``sft.METHODS``,
    evaluate each greedily on the held-out problems; each model is saved under checkpoints/seed<N>/<method>/."""
    cfg, train, t0 = su.cfg, su.train_problems(seed), time.perf_counter()
    model_args = (su.tokenizer, su.task.protocol, train, su.task.reward, cfg)
    base = su.base_for(seed)
    traces = sft.collect_traces(base, su.tokenizer, train, su.task.protocol, su.task.reward, k=cfg.k,
                                temperature=cfg.temperature, seed=seed, progress=cfg.progress, **su.gen)
    data = sft.datasets(traces, seed)
    seconds, evals, train_edit, rounds = {"collect": time.perf_counter() - t0}, {}, {}, {}
    for name in sft.METHODS:
        t1 = time.perf_counter()
        model, star_rounds = sft.train_method(name, base, *model_args, traces, data, seed, cfg.progress)
        if star_rounds is not None:
            rounds[name] = star_rounds
        t2 = time.perf_counter()
        evals[name] = evaluate(su, model, seed)
        if cfg.n_edit_train:
            train_edit[name] = sft.own_edit_ratios(model, su.tokenizer, su.task.protocol,
                                                   train[:cfg.n_edit_train], su.task.reward, cfg)
        if distributed.is_main():  # one writer under a multi-process launcher
            path = su.run.path(f"checkpoints/seed{seed}") / sft.checkpoint_name(name)
            save_model(model, su.tokenizer, path, tiny=su.tiny)
        distributed.barrier()
        seconds[name] = dict(train=t2 - t1, evaluate=time.perf_counter() - t2)
        del model
    seconds["total"] = time.perf_counter() - t0
    return SeedResult(seed, traces, data, rounds, evals, train_edit, seconds)


def seed_metrics(r: SeedResult) -> dict:
    """What seeds/seed<N>/metrics.json holds: each method's metrics, the timings, the data-set sizes and each
    STaR round's size and steps."""
    star_rounds = {m: [dict(iteration=x["iteration"], size=x["size"], steps=x["steps"]) for x in rs]
                   for m, rs in r.star_rounds.items()}
    return dict(seed=r.seed, methods={m: e.summary for m, e in r.evals.items()}, seconds=r.seconds,
                data_sizes={k: len(v) for k, v in r.datasets.items()}, star_rounds=star_rounds)


def run_seed(su: Setup, seed: int) -> SeedResult:
    """``train_and_evaluate`` kept in the run's cache/ by its inputs (a rerun after a kill starts at the next
    unfinished seed); writes seeds/seed<N>/metrics.json."""
    key = [model_fingerprint(su.base_for(seed)), config.to_dict(su.cfg), seed]
    r = cached(su.run.path("cache"), f"seed{seed}", key, lambda: train_and_evaluate(su, seed))
    write_json(su.run.path(f"seeds/seed{seed}/metrics.json"), seed_metrics(r))
    return r


def headline(summary: dict) -> dict:
    """An evaluation's Acc@t1, Acc@t2, Δ, Δi→c, Δc→i and fix-own rate, rounded to 0.1."""
    return {k: round(summary[k], 1) for k in PER_SEED_KEYS}


def seed_line(r: SeedResult) -> str:
    """One seed's time and each method's Δ (rounded to 0.1)."""
    return f"seed {r.seed}: {r.seconds['total']:.0f} s; " + str({m: round(e.summary["delta"], 1)
                                                                 for m, e in r.evals.items()})


# ---------------------------------------------------------------------------------------
# Table 1 and the data sets
# ---------------------------------------------------------------------------------------

class Table1(NamedTuple):
    rows: dict  # method -> metrics pooled over seeds with 95% CIs (bootstrap seeded by eval_seed)
    note: str  # why Self-Refine was not run ('' when it was)


def self_refine_note(su: Setup) -> str:
    """Why Self-Refine is not run ('' where it is: a real model, ``self_refine`` on, a task with its prompts)."""
    from scorelib.prompts import SELF_REFINE

    if su.cfg.self_refine and not su.tiny and su.cfg.task in SELF_REFINE:
        return ""
    return "Self-Refine: not run (" + ("the tiny model cannot follow a critique request" if su.tiny else
                                       "self_refine is off or the task has no Self-Refine prompts") + ")"


def table1_rows(su: Setup, base_evals: list, results: dict[int, SeedResult]) -> Table1:
    """The Base row (pooled over its base models, ``evaluate_bases``), every method pooled over seeds
    (``metrics.summarize_seeds``) and, for a real model, Self-Refine (``evaluate.self_refine``); CIs from a bootstrap
    seeded by ``eval_seed``."""
    cfg = su.cfg
    rows = {BASE: metrics.summarize_seeds([e.c1 for e in base_evals], [e.c2 for e in base_evals], n_boot=cfg.n_boot,
                                          seed=cfg.eval_seed)}
    for m in sft.METHODS:
        evals = [results[s].evals[m] for s in cfg.seeds]
        rows[m] = metrics.summarize_seeds([e.c1 for e in evals], [e.c2 for e in evals], n_boot=cfg.n_boot,
                                          seed=cfg.eval_seed)
    note = self_refine_note(su)
    if not note:
        from scorelib.evaluate import self_refine
        from scorelib.prompts import SELF_REFINE

        rows["Self-Refine"] = self_refine(su.base, su.tokenizer, su.held_out, su.task.protocol,
                                          *SELF_REFINE[cfg.task], n_boot=cfg.n_boot, seed=cfg.eval_seed,
                                          progress=cfg.progress, reward_fn=su.task.reward,
                                          extract_fn=su.task.extract, **su.gen).summary
    return Table1(rows, note)


def spread_table(rows: dict) -> pd.DataFrame:
    """How often each method fixes its own wrong first attempts, and how Δ and Acc@t1 vary over seeds."""
    return tables.columns(rows, SPREAD_HEADERS)


def per_seed_table(results: dict[int, SeedResult]) -> pd.DataFrame:
    """One line per method and seed: its metrics on that seed, rounded to 0.01."""
    lines = [{"seed": s, "method": m, **{k: round(e.summary[k], 2) for k in PER_SEED_KEYS}}
             for s, r in results.items() for m, e in r.evals.items()]
    return pd.DataFrame(lines).set_index(["method", "seed"]).sort_index()


def data_sizes(results: dict[int, SeedResult]) -> pd.DataFrame:
    """``sft.data_table`` of each seed's round-1 data sets, one block per seed."""
    return pd.concat({f"seed {s}": sft.data_table(r.datasets) for s, r in results.items()}, names=["seed"])


def star_rounds_table(results: dict[int, SeedResult]) -> pd.DataFrame:
    """One line per STaR method, seed and round: traces sampled, data kept, optimizer steps."""
    lines = [dict(seed=s, method=m, iteration=x["iteration"], traces=x["traces"], size=x["size"], steps=x["steps"])
             for s, r in results.items() for m, rs in r.star_rounds.items() for x in rs]
    return pd.DataFrame(lines).set_index(["method", "seed", "iteration"])


def data_examples(su: Setup, first: SeedResult) -> str:
    """Markdown: the first ``n_examples`` traces of each round-1 data set of the first seed."""
    train = su.train_problems(su.cfg.seeds[0])
    blocks = [f"**{name}** · {train[p.problem].problem} (answer {train[p.problem].answer})\n\n"
              f"```\ny1: {p.y1}\ny2: {p.y2}\n```\n"
              for name, data in first.datasets.items() for p in data[: su.cfg.n_examples]]
    return "\n".join(blocks) or "no examples\n"


# ---------------------------------------------------------------------------------------
# Fig. 3 (edit distances), Fig. 4 (distribution shift), transcripts, the summary
# ---------------------------------------------------------------------------------------

def model_edit_ratios(base_eval, first: SeedResult) -> dict[str, np.ndarray]:
    """Fig. 3 (left): the edit-distance ratios of each model's own greedy held-out traces (first seed)."""
    return {"Base": base_eval.edit_ratio, **{m: first.evals[m].edit_ratio for m in sft.METHODS}}


def edit_panels(first: SeedResult) -> dict[str, dict[str, np.ndarray]]:
    """Fig. 3 (right): for STaR (D⁺_STaR, its last round's data) and Pair-SFT (D_SFT), the training data's edit
    ratios beside the trained model's own on training and on held-out problems (first seed)."""
    star_data = first.star_rounds[sft.STAR_DPLUS][-1]["data"]
    return {sft.STAR_DPLUS: {"training data (last round)": sft.edit_ratios(star_data),
                             "model, training problems": first.train_edit.get(sft.STAR_DPLUS, []),
                             "model, held-out problems": first.evals[sft.STAR_DPLUS].edit_ratio},
            sft.PAIR_D: {"training data (D_SFT)": sft.edit_ratios(first.datasets["D_SFT"]),
                         "model, training problems": first.train_edit.get(sft.PAIR_D, []),
                         "model, held-out problems": first.evals[sft.PAIR_D].edit_ratio}}


def claim_c3(base_eval, first: SeedResult, panels: dict) -> dict:
    """``claims.claim_c3`` on the base's, Pair-SFT's data's and the two models' edit ratios (first seed)."""
    return C.claim_c3(base_eval.edit_ratio, panels[sft.PAIR_D]["training data (D_SFT)"],
                        first.evals[sft.PAIR_D].edit_ratio, first.evals[sft.STAR_DPLUS].edit_ratio)


def shift_curve(su: Setup, first: SeedResult) -> pd.DataFrame:
    """Fig. 4 on the first seed: one epoch of Pair-SFT on its D_SFT, probed on up to ``fig4_problems`` of its
    base's wrong first attempts on training problems, as many on held-out problems (sampled once from the base
    at ``temperature``), and the model's own first attempts on the first ``fig4_problems`` held-out problems."""
    cfg, s0 = su.cfg, su.cfg.seeds[0]
    probe_test = su.held_out[: cfg.fig4_problems]
    held = sft.collect_traces(su.base_for(s0), su.tokenizer, probe_test, su.task.protocol, su.task.reward, k=1,
                              temperature=cfg.temperature, seed=s0, **su.gen)
    train = (su.train_problems(s0), sft.wrong_first_attempts(first.traces, cfg.fig4_problems, seed=s0))
    test = (probe_test, sft.wrong_first_attempts(held, cfg.fig4_problems, seed=s0))
    return sft.pair_sft_shift_curve(su.base_for(s0), su.tokenizer, su.task.protocol, su.task.reward, cfg,
                                    first.datasets["D_SFT"], train, test, seed=s0, progress=cfg.progress)


def transcripts(first: SeedResult, n: int = 1) -> str:
    """Markdown: n corrections (i→c) and n breaks (c→i) of each trained model (first seed)."""
    return "\n".join(f"### {m}\n\n" + first.evals[m].transcripts_markdown(("i2c", "c2i"), n) for m in sft.METHODS)


def claims(rows: dict, c3: dict, curve: pd.DataFrame) -> dict:
    """C2 on the Table 1 rows, C3 as measured for Fig. 3, C4 on the Fig. 4 curve."""
    return dict(C2=C.claim_c2(rows[BASE], rows), C3=c3, C4=C.claim_c4(curve))


def summary(su: Setup, rows: dict, verdicts: dict, curve: pd.DataFrame, results: dict[int, SeedResult]) -> dict:
    """metrics.json: the Table 1 rows, claims C2-C4, the Fig. 4 curve, each seed's timings and the protocol."""
    return dict(rows=rows, claims=verdicts, fig4=curve.reset_index().to_dict("list"),
                seconds={s: r.seconds for s, r in results.items()}, seeds=list(su.cfg.seeds),
                protocol=su.protocol)
