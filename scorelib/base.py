"""Notebooks 00 and 01's steps: the paper's input (a base model) and what that base does when asked to correct
itself.

Notebook 00 builds the base model the paper starts from: the toy world's problems, a tiny Llama built from a
config, its two pretraining phases (``scorelib.pretrain``) and a quick two-turn check. Notebook 01 evaluates the
base under the paper's two-turn protocol: Table 2's "Base model" row with 95% CIs, the edit-distance histogram
(Fig. 3), accuracy over sequential attempts (Fig. 7), Δi→c and Δc→i by level (Fig. 6) and claim C1.

One function per step of each notebook, so that its cells read as the paper and the tests can call each step.
The maths is in ``metrics`` (the §2 metrics and their CIs), the sampling in ``evaluate`` and ``rollout``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from scorelib import claims, config, metrics, paper, plots, tables
from scorelib.evaluate import TwoTurnEval, evaluate_all, evaluate_two_turn, model_fingerprint, sequential_attempts
from scorelib.from_base import BaseSetup, open_from_base
from scorelib.models import build_tiny_model, build_tiny_tokenizer, load_model, n_params, pick_device, save_model
from scorelib.pretrain import (CorpusMix, build_phase2_corpus, collect_own_attempts, corpus_table, decode_example,
                               mix_from_config, run_phase1, run_phase2)
from scorelib.protocol import describe as describe_protocol
from scorelib.results import BASE_NOTEBOOK, Run, cached, resolve_model, write_base_model
from scorelib.tasks import load_task

EVAL_NOTEBOOK = "01_base_model_self_correction"
EXAMPLE_COLUMNS = ["subject", "level", "problem", "answer"]
QUICK_CHECK_COLUMNS = ["acc_t1", "acc_t2", "delta", "delta_i2c", "delta_c2i", "fix_own", "different_answer"]
FIX_OWN_HEADERS = {"fix own (%)": "fix_own", "different answer in turn 2 (%)": "different_answer"}


# ------------------------------------------------------------------------------------------ the toy world


def problems_table(problems: list) -> pd.DataFrame:
    """Problems as a table indexed by ``unique_id``: subject, level, problem and its exact answer."""
    return pd.DataFrame([p.to_dict() for p in problems]).set_index("unique_id")[EXAMPLE_COLUMNS]


def examples_table(problems: list) -> pd.DataFrame:
    """The first problem of each skill and level (``problems_table``), by skill then level."""
    return problems_table(problems).groupby(["subject", "level"]).head(1).sort_values(["subject", "level"])


def level_counts(problems: list) -> pd.DataFrame:
    """How many problems of each skill and level a set holds (column ``problems``)."""
    df = pd.DataFrame([p.to_dict() for p in problems])
    return df.groupby(["subject", "level"]).size().rename("problems").to_frame()


# ------------------------------------------------------------------------------------------ notebook 00


@dataclass
class Pretrain:
    """What every step of notebook 00 needs: its config, run folder, task, device and problems."""

    cfg: object  # config.PretrainConfig
    run: Run
    task: object
    device: torch.device
    held_out: list  # the quick check's problems (eval_split)
    train: list  # training problems; [] when a given model is the base (nothing to pretrain)

    @property
    def pretrain(self) -> bool:
        """Whether this run pretrains the tiny model (no ``model`` given)."""
        return not self.cfg.model

    @property
    def problems(self) -> list:
        """The problems the notebook shows: the training problems, else the held-out ones."""
        return self.train or self.held_out

    @property
    def protocol(self) -> str:
        return describe_protocol(self.cfg.eval_split, (self.cfg.seed,))

    def describe(self) -> str:
        made = self.cfg.model or "tiny, pretrained here"
        return (f"run folder {self.run.dir} | task: {self.task.describe} | base model: {made}\n"
                f"held-out problems for the quick check: {len(self.held_out)}, {self.protocol}")


def setup_pretrain(cfg) -> Pretrain:
    """Open the run folder, seed torch, pick the device and draw the held-out and training problems."""
    task = load_task(cfg.task, cfg.data_path, cfg.train_path)
    run = Run.start(BASE_NOTEBOOK, cfg)
    torch.manual_seed(cfg.seed)
    device = pick_device(cfg.device)
    held_out = task.eval_problems(cfg.eval_split, cfg.n_test)
    train = task.train_problems(cfg.n_train, seed=cfg.seed, level_weights=cfg.level_weights) if not cfg.model else []
    return Pretrain(cfg, run, task, device, held_out, train)


def build_model(pt: Pretrain):
    """(model, tokenizer): the tiny Llama and its character tokenizer built from the config (random weights), or
    the given ``model`` with its own tokenizer."""
    cfg = pt.cfg
    if not pt.pretrain:
        return load_model(cfg.model, device=cfg.device, dtype=cfg.dtype)
    tokenizer = build_tiny_tokenizer()
    model = build_tiny_model(tokenizer, cfg.d_model, cfg.n_layers, cfg.n_heads, cfg.d_ffn, seed=cfg.seed)
    return model.to(pt.device), tokenizer


def model_card(model, tokenizer, text: str) -> pd.Series:
    """The model's class, size and shape, its tokenizer, and how many tokens ``text`` takes."""
    c = model.config
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return pd.Series({"class": type(model).__name__, "parameters": f"{n_params(model):,}",
                      "dtype": str(next(model.parameters()).dtype), "layers": c.num_hidden_layers,
                      "width (d_model)": c.hidden_size, "heads": c.num_attention_heads,
                      "feed-forward width": c.intermediate_size, "vocabulary": len(tokenizer),
                      "chat template": bool(getattr(tokenizer, "chat_template", None)),
                      "tokens in the text": len(ids)}, name=type(model).__name__)


def last_tokens(tokenizer, text: str, n: int = 6) -> list[str]:
    """The last n tokens of ``text`` (the tiny tokenizer's answer phrases are single tokens)."""
    return tokenizer.convert_ids_to_tokens(tokenizer(text, add_special_tokens=False)["input_ids"])[-n:]


def phase1(pt: Pretrain, model, tokenizer) -> list[dict]:
    """Phase 1 (``pretrain.run_phase1``), resumable from the run's checkpoints/phase1; [] when nothing is
    pretrained or phase1_steps is 0."""
    if not pt.pretrain or not pt.cfg.phase1_steps:
        return []
    return run_phase1(model, tokenizer, pt.task.protocol, pt.train, pt.cfg, pt.run.path("checkpoints/phase1"))


def describe_phase(name: str, steps: int, history: list[dict]) -> str:
    """'<name>: <steps> steps, <seconds> s, final loss <loss>' (nan without a history)."""
    seconds, loss = (history[-1]["seconds"], history[-1]["loss"]) if history else (0, float("nan"))
    return f"{name}: {steps} steps, {seconds:.0f} s, final loss {loss:.3f}"


@dataclass
class Corpus:
    """The phase-2 corpus, built from the phase-1 model's own first attempts."""

    examples: list = field(default_factory=list)  # training.Example
    counts: dict = field(default_factory=dict)  # kind of trace -> examples (pretrain.build_phase2_corpus)
    mix: CorpusMix | None = None
    n_own: int = 0  # own attempts sampled
    own_acc: float = float("nan")  # their accuracy (%)
    seconds: float = 0.0  # sampling the own attempts and building the corpus

    def describe(self) -> str:
        if self.mix is None:
            return "no phase-2 corpus (nothing to pretrain)"
        return (f"{self.n_own} own attempts, {self.own_acc:.1f}% correct; {self.mix}\n"
                f"traces whose y1 is a stand-in (no own attempt of that kind): {self.counts['stand_in']}")

    def table(self) -> pd.DataFrame:
        """Examples of each kind and their share (``pretrain.corpus_table``); empty without a corpus."""
        return corpus_table(self.counts) if self.counts else pd.DataFrame()

    def first_trace(self, tokenizer, instruction: str) -> dict | None:
        """The first two-attempt trace (one whose context holds the instruction), decoded by
        ``pretrain.decode_example``; None when there is none."""
        for ex in self.examples:
            parts = decode_example(tokenizer, ex)
            if instruction in parts["context"]:
                return parts
        return None


def phase2_corpus(pt: Pretrain, model, tokenizer) -> Corpus:
    """Sample the phase-1 model's own first attempts (kept under the run's cache/ by the weights and the config)
    and build the phase-2 corpus from them with the config's corpus mix; writes tables/corpus_mix."""
    t0 = time.perf_counter()
    if not pt.pretrain:
        return Corpus(seconds=time.perf_counter() - t0)
    cfg, protocol = pt.cfg, pt.task.protocol
    own = cached(pt.run.path("cache"), "own_attempts", [model_fingerprint(model), config.to_dict(cfg)],
                 lambda: collect_own_attempts(model, tokenizer, protocol, pt.train, cfg))
    mix = mix_from_config(cfg)
    examples, counts = build_phase2_corpus(tokenizer, protocol, own, pt.train, cfg.n_phase2, mix, cfg.seed)
    corpus = Corpus(examples, counts, mix, len(own), 100 * np.mean([a.correct for a in own]))
    pt.run.table("corpus_mix", corpus.table())
    corpus.seconds = time.perf_counter() - t0
    return corpus


def phase2(pt: Pretrain, model, tokenizer, corpus: Corpus) -> list[dict]:
    """Phase 2 (``pretrain.run_phase2``) on the corpus, resumable from checkpoints/phase2; [] when nothing is
    pretrained or phase2_steps is 0."""
    if not pt.pretrain or not pt.cfg.phase2_steps:
        return []
    return run_phase2(model, tokenizer, corpus.examples, pt.cfg, pt.run.path("checkpoints/phase2"))


def write_history(pt: Pretrain, history1: list[dict], history2: list[dict]):
    """Both phases' logs, each row marked with its phase, as history.jsonl and figures/training_curve; returns
    the figure (None without a history)."""
    history = [dict(h, phase=1) for h in history1] + [dict(h, phase=2) for h in history2]
    if not history:
        return None
    pt.run.history(history)
    fig = plots.training_curve(history)
    pt.run.figure("training_curve", fig)
    return fig


def save_base(pt: Pretrain, model, tokenizer) -> str:
    """Save the pretrained model under the run's model/ (or record the given one) in base_model.json, which
    later notebooks read through their ``base_run``; says what it did."""
    if not pt.pretrain:
        return f"base model recorded: {write_base_model(pt.run, pt.cfg.model, pt.cfg.task)}"
    model_dir = save_model(model, tokenizer, pt.run.path("model"), tiny=True)
    write_base_model(pt.run, "model", pt.cfg.task)
    return f"saved to {model_dir}"


def quick_check(pt: Pretrain, model, tokenizer) -> TwoTurnEval:
    """Greedy two-turn evaluation of the base on the held-out problems (notebook 01 evaluates in full)."""
    cfg, task = pt.cfg, pt.task
    return evaluate_two_turn(model, tokenizer, pt.held_out, task.protocol, temperature=0.0,
                             max_new_tokens=cfg.max_new_tokens, seed=cfg.seed, progress=cfg.progress,
                             reward_fn=task.reward, extract_fn=task.extract)


def pretrain_metrics(pt: Pretrain, model, check: TwoTurnEval, corpus: Corpus, history1: list[dict],
                     history2: list[dict]) -> dict:
    """metrics.json of notebook 00: the quick check's metrics, the own attempts' accuracy, the model's size, the
    protocol and the seconds of each part of pretraining."""
    seconds = {f"phase{i}_seconds": h[-1]["seconds"] if h else 0.0 for i, h in ((1, history1), (2, history2))}
    return dict(check.summary, own_attempt_acc=corpus.own_acc, n_params=n_params(model), n_test=len(pt.held_out),
                protocol=pt.protocol, sample_own_seconds=corpus.seconds,
                pretrain_seconds=sum(seconds.values()) + corpus.seconds, **seconds)


def quick_check_table(summary: dict) -> pd.DataFrame:
    """The quick check's line (tables/base_quick_check): ``QUICK_CHECK_COLUMNS``, one decimal."""
    return pd.DataFrame({"this run (greedy)": summary}).T[QUICK_CHECK_COLUMNS].round(1)


def beside_paper_base(summary: dict, task: str) -> pd.DataFrame:
    """This base's greedy row beside the paper's base row (Table 2; HumanEval's for the code task), with CIs."""
    paper_name, paper_rows = paper.table_for(task)
    rows = tables.beside_paper({"Base model": summary}, paper_rows, task, paper_name)
    return metrics.format_table(rows)


# ------------------------------------------------------------------------------------------ notebook 01


@dataclass
class BaseEval(BaseSetup):
    """What every step of notebook 01 needs: ``from_base.BaseSetup`` (cfg: config.EvalConfig)."""

    @property
    def protocol(self) -> str:
        return describe_protocol(self.cfg.eval_split, (self.cfg.seed,))

    def describe(self) -> str:
        return (f"{self.base_described}; {self.task.describe}; {len(self.held_out)} held-out problems "
                f"({self.protocol}); run folder {self.run.dir}")


def setup_eval(cfg) -> BaseEval:
    """Find the base model (``model``, else notebook 00's run ``base_run``: checked before any compute), open
    the run folder, load the model and the held-out problems."""
    return BaseEval(**open_from_base(EVAL_NOTEBOOK, cfg, resolve_model(cfg)))


def evaluate(be: BaseEval) -> dict:
    """temperature -> TwoTurnEval of the base on the held-out problems (``evaluate.evaluate_all``), kept under the
    run's cache/ by their inputs (a rerun after a kill does not evaluate again)."""
    cfg = be.cfg
    return evaluate_all(be.base, be.tokenizer, be.task, be.held_out, cfg.temperatures, cfg.max_new_tokens,
                        cfg.gen_batch_size, cfg.n_boot, cfg.seed, progress=cfg.progress,
                        cache_dir=be.run.path("cache"))


def table2_rows(task: str, evals: dict) -> dict:
    """Table 2's "Base model" rows: ours at each temperature ('Base model (<task>, greedy)', ...), then the
    paper's ('Base model (paper, MATH)'; HumanEval's for the code task)."""
    rows = {f"Base model ({task}, {tables.temperature_label(t)})": e.summary for t, e in evals.items()}
    paper_name, paper_rows = paper.table_for(task)
    rows[f"Base model (paper, {paper_name})"] = paper_rows["Base model"]
    return rows


def fix_own_table(rows: dict) -> pd.DataFrame:
    """Fix own and the different-answer rate of each row (NaN for the paper's, which has neither)."""
    return tables.columns(rows, FIX_OWN_HEADERS, digits=1)


def edit_ratios(evals: dict) -> dict:
    """'Base (<temperature>)' -> the edit-distance ratio between y1 and y2 of every problem (Fig. 3)."""
    return {f"Base ({tables.temperature_label(t)})": e.edit_ratio for t, e in evals.items()}


def sequential(be: BaseEval) -> np.ndarray:
    """Greedy accuracy (%) of each of ``n_seq_attempts`` sequential attempts on the first ``n_seq_problems``
    held-out problems (Fig. 7), kept under the run's cache/ by the weights and the config."""
    cfg = be.cfg
    return cached(be.run.path("cache"), "sequential", [model_fingerprint(be.base), config.to_dict(cfg)],
                  lambda: sequential_attempts(be.base, be.tokenizer, be.held_out[: cfg.n_seq_problems],
                                              be.task.protocol, cfg.n_seq_attempts, max_new_tokens=cfg.max_new_tokens,
                                              batch_size=cfg.gen_batch_size, seed=cfg.seed, progress=cfg.progress,
                                              reward_fn=be.task.reward))


def sequential_table(accuracy: np.ndarray) -> pd.DataFrame:
    """One line per attempt (1, 2, ...): its accuracy (%), two decimals."""
    return pd.DataFrame({"attempt": np.arange(1, len(accuracy) + 1),
                         "accuracy (%)": np.asarray(accuracy).round(2)}).set_index("attempt")


def eval_summary(be: BaseEval, evals: dict, seq: np.ndarray) -> dict:
    """metrics.json of notebook 01: the first temperature's metrics, every temperature's, the sequential curve,
    claim C1 (``claims.c1_holds``) and the protocol."""
    first = evals[be.cfg.temperatures[0]].summary
    return {**first, "by_temperature": {str(t): e.summary for t, e in evals.items()}, "sequential": list(seq),
            "c1_holds": claims.c1_holds(first), "protocol": be.protocol}
