"""Notebook configs: one frozen dataclass per notebook, field names = parameter names.

The notebook's tagged ``parameters`` cell holds the same names as literals; the
runner checks any override against the dataclass before any compute (unknown name,
wrong type, out-of-range value), and the notebook builds its config from its
parameters with ``from_params``. Profiles (``notebooks/params/<profile>.yaml``) are
flat maps of parameter name to value shared by all notebooks: each notebook takes
the names it has.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
import os
import re
import typing
from dataclasses import dataclass, fields
from pathlib import Path

import yaml

from scorelib.tasks.toy import check_level_weights

TASKS = ("toy", "math", "humaneval")
EVAL_SPLITS = ("test", "val")  # test: the reported numbers; val: every choice (scorelib/protocol.py)
DTYPES = ("auto", "float32", "bfloat16", "float16")


class ConfigError(ValueError):
    """A bad parameter: raised before any compute, naming the valid choices."""


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ConfigError(msg)


def _check_name(field: str, value: str) -> None:
    """Run names become folder names: letters, digits, '-', '_' and '.', not starting with '.'."""
    _check(re.fullmatch(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*", value) is not None,
           f"{field} must be letters, digits, '-', '_' or '.' (not starting with '.'), got {value!r}")


# What each RL notebook's sweep may vary: the settings its swept objective reads (notebook 20 sweeps Stage I, which
# has no bonus and no turn-1 reward; notebook 30 sweeps one round of Stage II, which has no beta2).
RL_OPTION_KEYS = ("lr_warmup", "lr_schedule", "drop_flat_groups", "turn_budget", "select")
STAGE1_SWEEP_KEYS = ("lr", "beta1", "beta2", "temperature", "steps", "k", "problems_per_step") + RL_OPTION_KEYS
STAGE2_SWEEP_KEYS = ("lr", "alpha", "beta1", "beta_turn1", "gamma", "temperature", "steps", "k", "problems_per_step",
                     "turn2_baseline") + RL_OPTION_KEYS


def _check_sweep(cfg, keys: tuple) -> None:
    """Each sweep variant is a non-empty mapping of `keys` to values that changes the config and makes a valid
    config itself; no two variants share a label."""
    for v in cfg.sweep:
        _check(isinstance(v, dict) and len(v) >= 1,
               f"each sweep variant must be a mapping such as {{'lr': 0.0002}}, got {v!r}")
        bad = sorted((str(k) for k in v if k not in keys), key=str)
        _check(not bad, f"sweep variant {v!r}: cannot vary {bad} in this notebook; valid: {list(keys)}")
        _check(all(isinstance(x, str) if isinstance(getattr(cfg, k), str) else
                   isinstance(x, bool) if isinstance(getattr(cfg, k), bool) else
                   isinstance(x, (int, float)) and not isinstance(x, bool) and abs(x) < 1e9 and math.isfinite(x)
                   for k, x in v.items()),
               f"sweep variant {v!r}: values must be numbers below 1e9 (names for turn2_baseline, lr_schedule, "
               "turn_budget and select; true/false for drop_flat_groups)")
        _check(all(float(x).is_integer() for k, x in v.items() if isinstance(getattr(cfg, k), int)),
               f"sweep variant {v!r}: steps, k and problems_per_step must be whole numbers")
        variant = sweep_config(cfg, v)
        _check(any(getattr(variant, k) != getattr(cfg, k) for k in v),
               f"sweep variant {v!r} changes nothing: this run already has those values")
        try:
            variant.validate()
        except ConfigError as e:
            raise ConfigError(f"sweep variant {v!r}: {e}") from None
    labels = [sweep_label(v) for v in cfg.sweep]
    _check(len(set(labels)) == len(labels), f"sweep variants repeat: {labels}")


def sweep_config(cfg, variant: dict):
    """The config of one sweep variant: cfg with the variant's overrides (and no sweep of its own)."""
    return dataclasses.replace(cfg, sweep=(), **{k: type(getattr(cfg, k))(x) for k, x in variant.items()})


def _number(x) -> str:
    return x if isinstance(x, str) else str(int(x)) if float(x).is_integer() else repr(float(x))


def sweep_label(variant: dict) -> str:
    """A variant's name, also its folder: {'lr': 3e-05, 'alpha': 3} -> 'alpha-3_lr-3e-05' (distinct values give
    distinct names; 3 and 3.0 the same)."""
    return "_".join(f"{k}-{_number(x)}" for k, x in sorted(variant.items()))


# Parameters renamed since the reporting run (commit 14439f3) wrote its config.json files: notebook -> {old: new}.
# Code that reads another notebook's saved config.json goes through saved_config, so old runs still read.
RENAMED = {nb: {"seed": "eval_seed", "batch_size": "gen_batch_size"}
           for nb in ("20_stage1_vs_multiturn_rl", "30_score_stage2", "40_ablations", "45_three_turn")}
RENAMED["00_toy_world_and_base_model"] = {"batch_size": "train_batch_size"}  # pretraining's batch
RENAMED["01_base_model_self_correction"] = {"batch_size": "gen_batch_size"}


def saved_config(saved: dict, notebook: str) -> dict:
    """A run's saved config.json (a dict) under today's parameter names (RENAMED); a new name already there wins."""
    renames = RENAMED.get(notebook, {})
    return {renames.get(k, k): v for k, v in saved.items() if k not in renames or renames[k] not in saved}


def _check_training(cfg) -> None:
    """What every training notebook needs: its training file on a real task (before any compute), and seeds."""
    _check(cfg.task == "toy" or bool(cfg.train_path),
           f"task {cfg.task!r} trains on a file: set train_path (math: the MATH training problems; humaneval: "
           "mbpp.jsonl)")
    _check(len(cfg.seeds) >= 1 and all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in cfg.seeds)
           and len(set(cfg.seeds)) == len(cfg.seeds),
           f"seeds must be a non-empty list of distinct integers >= 0, got {cfg.seeds!r}")


def _check_eval_split(cfg) -> None:
    """eval_split is 'test' or 'val'; validation problems of a real task come from its training file."""
    _check(cfg.eval_split in EVAL_SPLITS, f"eval_split must be one of {EVAL_SPLITS}, got {cfg.eval_split!r}")
    _check(cfg.eval_split != "val" or cfg.task == "toy" or bool(cfg.train_path),
           f"eval_split 'val' on task {cfg.task!r} needs train_path: the validation split is carved from the "
           "training data (math: the MATH training problems; humaneval: mbpp.jsonl, task ids 511-600)")


def _check_model(model: str) -> None:
    """A local model folder must exist and hold a config; anything else is taken as a hub id."""
    if not model:
        return
    path = os.path.expanduser(model)
    looks_local = model.startswith(("/", "./", "../", "~")) or os.path.exists(path)
    if looks_local:
        _check(os.path.isdir(path), f"model {model} is not a folder (give a hub id or a local model folder)")
        _check(any(os.path.exists(os.path.join(path, f)) for f in ("config.json", "adapter_config.json")),
               f"model folder {model} has no config.json or adapter_config.json")
    else:
        _check(re.fullmatch(r"[\w.-]+(/[\w.-]+)?", model) is not None,
               f"model {model!r} is neither an existing folder nor a hub id like 'Qwen/Qwen2.5-1.5B-Instruct'")


@dataclass(frozen=True)
class Seed:
    """The one seed of a notebook where it drives everything. Notebooks whose training ``seeds`` drive have an
    ``eval_seed`` instead, saying what it seeds."""

    seed: int = 0  # one seed drives data, initialisation and sampling


@dataclass(frozen=True)
class RunParams:
    """Parameters every notebook has, but for its seed (``Common`` adds ``seed``)."""

    run_name: str = "default"  # this run's folder: <results_dir>/<notebook>/<run_name>/
    results_dir: str = "results"  # relative paths are taken from the project root
    device: str = "auto"  # auto: cuda if available, else cpu
    dtype: str = "auto"  # auto: bfloat16 on a GPU, float32 on a CPU
    progress: bool = True  # tqdm progress bars for long loops
    task: str = "toy"  # toy, math or humaneval
    data_path: str = ""  # held-out set: math needs a MATH500-format file (empty: the shared copy where present)
    train_path: str = ""  # training set: MATH minus MATH500 (math) or mbpp.jsonl (humaneval); toy: generated
    model: str = ""  # a hub id or local folder; empty: the tiny model pretrained by notebook 00

    def inputs(self) -> list[tuple[str, str, str]]:
        """(notebook, run_name, path) of the earlier outputs this notebook reads."""
        return []

    def validate(self) -> None:
        _check_name("run_name", self.run_name)
        _check(self.device in ("auto", "cpu", "cuda", "mps") or re.fullmatch(r"cuda:\d+", self.device) is not None,
               f"device must be auto, cpu, cuda, cuda:N or mps, got {self.device!r}")
        _check(self.dtype in DTYPES, f"dtype must be one of {DTYPES}, got {self.dtype!r}")
        _check(self.task in TASKS, f"task must be one of {TASKS}, got {self.task!r}")
        for name in ("data_path", "train_path"):
            path = getattr(self, name)
            _check(not path or os.path.exists(os.path.expanduser(path)), f"{name} {path} does not exist")
        _check_model(self.model)


@dataclass(frozen=True)
class Common(RunParams, Seed):
    """Parameters every notebook has, with one ``seed`` (first among the fields: Seed is the last base)."""


@dataclass(frozen=True)
class PretrainConfig(Common):
    """Notebook 00: the toy world and the tiny base model."""

    n_train: int = 30000  # training problems (the val and test splits are disjoint by construction)
    n_test: int = 512  # held-out problems for the quick check (notebook 01 evaluates in full)
    eval_split: str = "test"  # test (reported numbers) or val (tuning; scorelib/protocol.py)
    # Level 3 gets the most weight: a tiny model learns to read a third digit only from enough
    # 3-digit examples (uniform weights: 35% greedy accuracy, ~0% at levels 3-5; see runbook.md).
    level_weights: tuple = (2.0, 2.0, 3.0, 1.0, 1.0)  # how often levels 1-5 appear in training problems
    d_model: int = 96  # width of the tiny Llama
    n_layers: int = 4  # transformer blocks
    n_heads: int = 4  # attention heads (d_model / n_heads must be even)
    d_ffn: int = 384  # feed-forward width
    phase1_steps: int = 1100  # clean single attempts (and re-solves, alt_single_frac)
    alt_single_frac: float = 0.5  # share of phase-1 examples re-solved in the second style
    phase2_steps: int = 400  # two-attempt traces built from the model's own attempts
    train_batch_size: int = 64  # sequences per optimizer step in both pretraining phases
    lr: float = 3e-3  # AdamW peak learning rate of phase 1 (phase 2: half)
    n_own_problems: int = 3000  # training problems the phase-1 model attempts
    own_k: int = 1  # samples per problem at temperature 1 (plus one greedy) for the phase-2 corpus
    n_phase2: int = 40000  # phase-2 examples
    single_frac: float = 0.5  # corpus mix: share of clean single attempts in phase 2
    wrong_frac: float = 0.5  # corpus mix: share of traces whose y1 is wrong
    fix_rate: float = 0.6  # corpus mix (edit): P(y2 correct | y1 wrong), else copy
    break_rate: float = 0.4  # corpus mix (edit): P(y2 wrong | y1 right), else copy
    error_source: str = "own"  # corpus mix: 'own' attempts or 'injected' errors as y1
    turn2_mode: str = "rewrite"  # corpus mix: edit (fix_rate, break_rate) or rewrite (rewrite_rate)
    rewrite_rate: float = 0.6  # corpus mix (rewrite): P(y2 re-solves | any y1), else a copy
    max_new_tokens: int = 160  # longest attempt

    def validate(self) -> None:
        super().validate()
        _check(self.task == "toy" or bool(self.model),
               f"the tiny model is pretrained on the toy world only: with task={self.task!r} give a model "
               "(a hub id or a local folder), e.g. -p model Qwen/Qwen2.5-1.5B-Instruct")
        for name in ("n_train", "n_test", "d_model", "n_layers", "n_heads", "d_ffn", "train_batch_size",
                     "n_own_problems", "own_k", "n_phase2", "max_new_tokens"):
            _check(getattr(self, name) >= 1, f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("phase1_steps", "phase2_steps"):
            _check(getattr(self, name) >= 0, f"{name} must be >= 0, got {getattr(self, name)}")
        _check(self.d_model % self.n_heads == 0 and (self.d_model // self.n_heads) % 2 == 0,
               f"d_model / n_heads must be an even integer (rotary embeddings), got {self.d_model} / {self.n_heads}")
        _check(0 < self.lr < 1, f"lr must be in (0, 1), got {self.lr}")
        try:
            check_level_weights(self.level_weights)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        _check(self.turn2_mode in ("edit", "rewrite"), f"turn2_mode must be 'edit' or 'rewrite', got {self.turn2_mode!r}")
        for name in ("single_frac", "wrong_frac", "fix_rate", "break_rate", "rewrite_rate", "alt_single_frac"):
            _check(0 <= getattr(self, name) <= 1, f"{name} must be in [0, 1], got {getattr(self, name)}")
        _check(self.error_source in ("own", "injected"),
               f"error_source must be 'own' or 'injected', got {self.error_source!r}")
        _check_eval_split(self)


@dataclass(frozen=True)
class FromBaseParams(RunParams):
    """Parameters of a notebook that starts from notebook 00's base model (or from `model`), but for its seed."""

    base_run: str = "default"  # the notebook-00 run whose base model to start from (when model is empty)

    def inputs(self) -> list[tuple[str, str, str]]:
        """(notebook, run_name, path) of the earlier outputs this notebook reads."""
        return [] if self.model else [("00_toy_world_and_base_model", self.base_run, "")]

    def validate(self) -> None:
        super().validate()
        _check_name("base_run", self.base_run)


@dataclass(frozen=True)
class FromBase(FromBaseParams, Seed):
    """FromBaseParams with one ``seed`` (first among the fields, as in ``Common``)."""


@dataclass(frozen=True)
class EvalConfig(FromBase):
    """Notebook 01: the base model under the two-turn protocol."""

    n_test: int = 2048  # held-out problems (with 512, |Δ| under ~2 points is noise)
    eval_split: str = "test"  # test (reported numbers) or val (tuning; scorelib/protocol.py)
    temperatures: tuple = (0.0, 1.0)  # evaluation temperatures (0 is greedy, as in the paper)
    n_seq_attempts: int = 10  # Fig. 7: accuracy over this many sequential attempts
    n_seq_problems: int = 512  # problems for the sequential-attempt curve
    n_boot: int = 1000  # bootstrap resamples for 95% CIs
    n_transcripts: int = 3  # examples shown of each transition
    max_new_tokens: int = 160  # longest attempt
    gen_batch_size: int = 512  # rows per generation batch

    def validate(self) -> None:
        super().validate()
        for name in ("n_test", "n_seq_attempts", "n_seq_problems", "n_boot", "max_new_tokens", "gen_batch_size"):
            _check(getattr(self, name) >= 1, f"{name} must be >= 1, got {getattr(self, name)}")
        _check(self.n_transcripts >= 0, f"n_transcripts must be >= 0, got {self.n_transcripts}")
        _check_eval_split(self)
        _check(len(self.temperatures) >= 1 and all(isinstance(t, (int, float)) and not isinstance(t, bool) and 0 <= t <= 5
                                                  for t in self.temperatures),
               f"temperatures must be a non-empty list of numbers in [0, 5], got {self.temperatures!r}")


@dataclass(frozen=True)
class SFTConfig(FromBaseParams):
    """Notebook 10: STaR and Pair-SFT on the model's own correction traces (Table 1, Figs. 3 and 4).
    ``scorelib.sft`` and ``scorelib.baselines`` read these fields by these names."""

    eval_seed: int = 0  # seeds the bootstrap of Table 1's CIs only (data and training: seeds)
    seeds: tuple = (0, 1, 2)  # one pipeline run per seed (data sampling, fine-tuning); one shared base
    n_problems: int = 1000  # training problems the model attempts per data collection
    k: int = 2  # two-turn samples per training problem (at temperature)
    temperature: float = 1.0  # sampling temperature of the data collection (paper: 1.0)
    lr: float = 0.0001  # fine-tuning learning rate: keeps Acc@t1 near the base's (departure 4)
    sft_batch_size: int = 16  # fine-tuning batch: sequences per optimizer step
    pair_epochs: float = 1.0  # Pair-SFT epochs (paper: 1)
    star_epochs: float = 1.0  # STaR epochs per iteration
    star_iterations: int = 3  # STaR collect + fine-tune rounds (paper: 3)
    train_turn1: bool = False  # also put the loss on the first attempt y1 (default: y2 only)
    lora_rank: int = 0  # 0: full fine-tuning; else a peft LoRA adapter of this rank
    lora_alpha: float = 16.0  # LoRA scale: the adapter's update is multiplied by lora_alpha / lora_rank
    lora_targets: tuple = ("q_proj", "k_proj", "v_proj", "o_proj")  # module names the adapter wraps
    self_refine: bool = True  # real models: evaluate Self-Refine (never the tiny model; departure 7)
    n_test: int = 1024  # held-out problems, greedy, for every method and seed
    eval_split: str = "test"  # test (reported numbers) or val (tuning; scorelib/protocol.py)
    n_edit_train: int = 256  # training problems for Fig. 3's train-vs-held-out edit distances
    fig4_points: int = 5  # Fig. 4: probes over one epoch of Pair-SFT (plus one before training)
    fig4_problems: int = 1024  # Fig. 4: first attempts per series (256 left 3-point gaps in noise)
    n_boot: int = 1000  # bootstrap resamples for 95% CIs
    n_examples: int = 2  # example traces shown from each data set
    max_new_tokens: int = 160  # longest attempt, in tokens
    gen_batch_size: int = 512  # rows per generation batch

    def validate(self) -> None:
        super().validate()
        _check_training(self)
        for name in ("n_problems", "k", "sft_batch_size", "star_iterations", "n_test", "fig4_points", "fig4_problems",
                     "n_boot", "max_new_tokens", "gen_batch_size"):
            _check(getattr(self, name) >= 1, f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("n_edit_train", "n_examples", "lora_rank"):
            _check(getattr(self, name) >= 0, f"{name} must be >= 0, got {getattr(self, name)}")
        _check(0 < self.lr < 1, f"lr must be in (0, 1), got {self.lr}")
        _check(0 < self.temperature <= 5, f"temperature must be in (0, 5], got {self.temperature}")
        for name in ("pair_epochs", "star_epochs", "lora_alpha"):
            _check(getattr(self, name) > 0, f"{name} must be > 0, got {getattr(self, name)}")
        _check(len(self.lora_targets) >= 1 and all(isinstance(t, str) and t for t in self.lora_targets),
               f"lora_targets must be a non-empty list of module names, got {self.lora_targets!r}")
        _check_eval_split(self)


@dataclass(frozen=True)
class RLCommon(FromBaseParams):
    """What the RL notebooks (20, 30, 40, 45) share: the objective's constants, the budget and the evaluation.
    ``stages.settings`` copies the fields that ``rl_settings.RLSettings`` has by name."""

    eval_seed: int = 0  # seeds the bootstrap of the pooled 95% CIs only (training, evaluation: seeds)
    seeds: tuple = (0, 1, 2)  # one RL run per seed; all start from the same base model
    n_train: int = 20000  # training problems the RL steps draw from
    problems_per_step: int = 64  # with k 4, 256 samples a step (paper: 512); 16 (64 a step) left the base where it was (runbook.md)
    k: int = 4  # samples per problem (the RLOO group)
    lr: float = 0.0001  # Adam; 3e-4 cost Stage I and multi-turn RL 6-10 points of greedy Acc@t1 (runbook.md)
    temperature: float = 1.0  # training samples (paper: 1.0)
    alpha: float = 10.0  # Stage II reward-shaping bonus (paper: 10)
    beta1: float = 0.01  # KL weight (paper: 0.01)
    beta2: float = 0.1  # Stage I's KL weight on turn-1 tokens (paper: 0.1)
    gamma: float = 0.0  # discount of the turn-2 reward into turn 1 (paper: 0; 0.8 in Fig. 8)
    turn2_baseline: str = 'group'  # group: RLOO on shaped turn-2 rewards (paper); first_attempt: also subtracts the bonus' y1 term; difference: RLOO of (1+alpha)(r2-r1)
    lora_rank: int = 0  # 0: full fine-tuning; else a peft LoRA adapter (the reference is the adapter disabled)
    lora_alpha: float = 16.0  # LoRA scale: the update is multiplied by lora_alpha / lora_rank
    lora_targets: tuple = ("q_proj", "k_proj", "v_proj", "o_proj")  # module names the adapter wraps
    micro_batch: int = 0  # rows per forward/backward in the update (0: the whole batch)
    checkpoint_every: int = 25  # steps between checkpoints (candidates for selection; resumption)
    select: str = 'val_greedy'  # val_greedy (greedy reward on validation, the start a candidate; departure) or train_reward (paper: best training reward)
    select_window: int = 10  # training steps averaged when selecting a checkpoint by reward
    n_select: int = 512  # validation problems behind select val_greedy
    lr_warmup: int = 0  # steps of linear learning-rate warm-up (departure; paper: not specified)
    lr_schedule: str = 'constant'  # constant or cosine (to lr/10 at the last step; departure)
    drop_flat_groups: bool = False  # leave RLOO groups without signal (all advantages 0) out of the update (departure)
    turn_budget: str = 'joint'  # joint: one loss, clip and Adam; per_turn: each turn its own clip and Adam (departure)
    n_test: int = 2048  # held-out problems (|Δ| of a point or two needs this many); sweeps use as many val problems
    eval_split: str = "test"  # held-out split: test (reported numbers) or val (tuning; see scorelib/protocol.py)
    temperatures: tuple = (0.0, 1.0)  # evaluation temperatures (0 is greedy, as in the paper)
    n_boot: int = 1000  # bootstrap resamples for 95% CIs
    n_transcripts: int = 2  # examples shown of each transition
    max_new_tokens: int = 160  # longest attempt, in tokens
    gen_batch_size: int = 512  # rows per generation batch (evaluation)
    sweep: tuple = ()  # variants run on the first seed beside the main run, each a mapping of overrides (see *_SWEEP_KEYS)

    def validate(self) -> None:
        super().validate()
        _check_training(self)
        for name in ("n_train", "problems_per_step", "n_test", "n_boot", "max_new_tokens", "gen_batch_size",
                     "select_window"):
            _check(getattr(self, name) >= 1, f"{name} must be >= 1, got {getattr(self, name)}")
        _check(self.k >= 2, f"k must be >= 2 (RLOO leaves one out), got {self.k}")
        _check(self.problems_per_step <= self.n_train, "problems_per_step must be <= n_train")
        for name in ("lora_rank", "micro_batch", "checkpoint_every", "n_transcripts", "alpha", "beta1", "beta2"):
            _check(getattr(self, name) >= 0, f"{name} must be >= 0, got {getattr(self, name)}")
        _check(0 < self.lr < 1, f"lr must be in (0, 1), got {self.lr}")
        _check(0 < self.temperature <= 5, f"temperature must be in (0, 5], got {self.temperature}")
        _check(0 <= self.gamma <= 1, f"gamma must be in [0, 1], got {self.gamma}")
        _check(self.turn2_baseline in ("group", "first_attempt", "difference"),
               f"turn2_baseline must be 'group', 'first_attempt' or 'difference', got {self.turn2_baseline!r}")
        _check(self.select in ("train_reward", "val_greedy"),
               f"select must be 'train_reward' or 'val_greedy', got {self.select!r}")
        _check(self.lr_schedule in ("constant", "cosine"), f"lr_schedule must be 'constant' or 'cosine', got {self.lr_schedule!r}")
        _check(self.turn_budget in ("joint", "per_turn"), f"turn_budget must be 'joint' or 'per_turn', got {self.turn_budget!r}")
        _check(self.n_select >= 1, f"n_select must be >= 1, got {self.n_select}")
        _check(self.lr_warmup >= 0, f"lr_warmup must be >= 0, got {self.lr_warmup}")
        _check(self.lora_alpha > 0, f"lora_alpha must be > 0, got {self.lora_alpha}")
        _check(len(self.lora_targets) >= 1, "lora_targets must name at least one module")
        _check_eval_split(self)
        _check(len(self.temperatures) >= 1 and all(isinstance(t, (int, float)) and not isinstance(t, bool) and 0 <= t <= 5
                                                  for t in self.temperatures),
               f"temperatures must be a non-empty list of numbers in [0, 5], got {self.temperatures!r}")


@dataclass(frozen=True)
class Stage1Config(RLCommon):
    """Notebook 20: Stage I beside standard multi-turn RL (Fig. 5)."""

    eval_seed: int = 0  # seeds the base model's evaluation and the CIs' bootstrap (training: seeds)
    steps: int = 100  # RL steps of each method

    def validate(self) -> None:
        super().validate()
        _check(self.steps >= 1, f"steps must be >= 1, got {self.steps}")
        _check(self.lr_warmup < self.steps, f"lr_warmup must be < steps, got {self.lr_warmup} for {self.steps} steps")
        _check_sweep(self, STAGE1_SWEEP_KEYS)


@dataclass(frozen=True)
class Stage2Config(RLCommon):
    """Notebook 30: Stage II from the Stage I checkpoint; the main table (Table 2, Fig. 1)."""

    stage1_run: str = "default"  # the notebook-20 run whose Stage I checkpoints to start from
    sft_run: str = "default"  # the notebook-10 run whose STaR and Pair-SFT rows to show (missing: marked so)
    steps: int = 100  # Stage II steps (per round)
    turn_budget: str = 'per_turn'  # per_turn: each turn its own clip and Adam (departure, chosen on validation); joint: one loss, clip and Adam (paper)
    beta_turn1: float = 0.01  # Stage II's KL weight on turn-1 tokens (paper: beta1, 0.01, as on turn 2)
    rounds: int = 1  # rounds of Stage II (rounds > 1 interleave Stage I, as in the paper's v1)
    stage1_steps: int = 50  # Stage I steps in each extra round (rounds > 1)

    def inputs(self) -> list[tuple[str, str, str]]:
        return super().inputs() + [("20_stage1_vs_multiturn_rl", self.stage1_run, "")]

    def validate(self) -> None:
        super().validate()
        _check_name("stage1_run", self.stage1_run)
        _check_name("sft_run", self.sft_run)
        for name in ("steps", "rounds"):
            _check(getattr(self, name) >= 1, f"{name} must be >= 1, got {getattr(self, name)}")
        _check(self.beta_turn1 >= 0, f"beta_turn1 must be >= 0, got {self.beta_turn1}")
        _check(self.lr_warmup < self.steps, f"lr_warmup must be < steps, got {self.lr_warmup} for {self.steps} steps")
        _check(self.stage1_steps >= 0, f"stage1_steps must be >= 0, got {self.stage1_steps}")
        _check(not (self.sweep and self.rounds > 1), "a sweep runs one round of Stage II: set rounds 1 (or sweep [])")
        _check_sweep(self, STAGE2_SWEEP_KEYS)


# Notebook 40's rows (scorelib/ablations.py says what each changes from SCoRe's recipe).
ABLATION_ROWS = ("single_turn", "no_stage1", "no_shaping", "star", "gamma", "offline_y1")


@dataclass(frozen=True)
class AblationConfig(RLCommon):
    """Notebook 40: ablations of SCoRe (Table 4, Fig. 8; claim C7), each trained with notebook 30's recipe but for
    the one thing the row changes; the SCoRe row is read from notebook 30's run."""

    stage1_run: str = "default"  # the notebook-20 run whose Stage I models the rows from Stage I start from
    score_run: str = "default"  # the notebook-30 run: the SCoRe row, and the recipe every row must share
    steps: int = 100  # Stage II steps (as notebook 30)
    turn_budget: str = 'per_turn'  # as notebook 30: per_turn (each turn its own clip and Adam) or joint
    beta_turn1: float = 0.01  # Stage II's KL weight on turn-1 tokens (as notebook 30)
    ablation_rows: tuple = ABLATION_ROWS  # rows to train (single_turn, no_stage1, no_shaping, star, gamma, offline_y1)
    matched_budget: bool = True  # rows from the base train Stage I's + Stage II's steps (false: Stage II's)
    star_rounds: int = 3  # STaR row: sample + fine-tune rounds over Stage II's budget (STaR's 3 iterations)
    star_epochs: float = 1.0  # STaR row: epochs over each round's kept samples
    star_lr: float = 0.0001  # STaR row: fine-tuning learning rate (notebook 10's)
    star_batch_size: int = 16  # STaR row: fine-tuning batch (notebook 10's sft_batch_size)

    def inputs(self) -> list[tuple[str, str, str]]:
        return super().inputs() + [("20_stage1_vs_multiturn_rl", self.stage1_run, ""),
                                   ("30_score_stage2", self.score_run, "")]

    def validate(self) -> None:
        super().validate()
        _check_name("stage1_run", self.stage1_run)
        _check_name("score_run", self.score_run)
        _check(self.steps >= 1, f"steps must be >= 1, got {self.steps}")
        _check(self.lr_warmup < self.steps, f"lr_warmup must be < steps, got {self.lr_warmup} for {self.steps} steps")
        _check(self.beta_turn1 >= 0, f"beta_turn1 must be >= 0, got {self.beta_turn1}")
        _check(len(self.ablation_rows) >= 1 and len(set(self.ablation_rows)) == len(self.ablation_rows)
               and all(a in ABLATION_ROWS for a in self.ablation_rows),
               f"ablation_rows must be distinct names from {list(ABLATION_ROWS)}, got {list(self.ablation_rows)}")
        _check(1 <= self.star_rounds <= self.steps, f"star_rounds must be in [1, steps], got {self.star_rounds}")
        _check(self.star_epochs > 0, f"star_epochs must be > 0, got {self.star_epochs}")
        _check(0 < self.star_lr < 1, f"star_lr must be in (0, 1), got {self.star_lr}")
        _check(self.star_batch_size >= 1, f"star_batch_size must be >= 1, got {self.star_batch_size}")
        _check(not self.sweep, "notebook 40 runs no sweep (its rows are the variants): leave sweep empty")


@dataclass(frozen=True)
class ThreeTurnConfig(RLCommon):
    """Notebook 45: SCoRe with three attempts (ICLR appendix A.1): Stage 1(a), Stage 1(b) and Stage 2 from the base,
    each with notebook 30's recipe; Acc@t1/t2/t3 of the base and of each stage."""

    seeds: tuple = (0,)  # one seed by default: three RL runs a seed (about 1.3 h on 2 cores); no claim rests on it
    steps: int = 100  # RL steps of each stage (notebook 30's Stage II steps)
    turn_budget: str = 'per_turn'  # Stage 2's (per_turn or joint); Stages 1(a), 1(b): joint
    beta_turn1: float = 0.01  # Stage 2's KL weight on turn-1 tokens (as notebook 30)
    temperatures: tuple = (0.0,)  # evaluation temperatures (0 is greedy, as the paper's three-turn rows)

    def validate(self) -> None:
        super().validate()
        _check(self.steps >= 1, f"steps must be >= 1, got {self.steps}")
        _check(self.lr_warmup < self.steps, f"lr_warmup must be < steps, got {self.lr_warmup} for {self.steps} steps")
        _check(self.beta_turn1 >= 0, f"beta_turn1 must be >= 0, got {self.beta_turn1}")
        _check(self.gamma == 0, "gamma discounts turn 2 into turn 1, defined for two turns: notebook 45 needs "
               f"gamma 0, got {self.gamma}")
        _check(self.turn2_baseline == "group", "turn2_baseline is defined for two turns: with three each turn's "
               f"advantage is RLOO of its own shaped reward, so notebook 45 needs 'group', got {self.turn2_baseline!r}")
        _check(not self.sweep, "notebook 45 runs no sweep: leave sweep empty")


@dataclass(frozen=True)
class ScalingConfig(FromBaseParams):
    """Notebook 50: inference-compute scaling (Fig. 1 right, claim C8) and sequential attempts (Fig. 7)."""

    eval_seed: int = 0  # seeds the base model's samples and the bootstrap CIs (SCoRe, Pair-SFT: seeds)
    score_run: str = "default"  # notebook 30's run: its Stage II model of each seed is SCoRe
    sft_run: str = "default"  # notebook 10's run: its Pair-SFT models join Fig. 7
    seeds: tuple = (0, 1, 2)  # each seed's own SCoRe and Pair-SFT; one shared base
    n_test: int = 512  # held-out problems for the budget curves
    eval_split: str = "test"  # test (reported numbers) or val (tuning; scorelib/protocol.py)
    budgets: tuple = (2, 4, 8, 16, 32)  # attempts per problem: B samples or B/2 pairs
    sample_temperature: float = 0.7  # both methods (paper: 0.7)
    n_seq_attempts: int = 10  # Fig. 7: greedy attempts, each seeing those before
    n_seq_problems: int = 128  # Fig. 7: the first of the held-out problems
    n_boot: int = 1000  # bootstrap resamples for 95% CIs
    max_new_tokens: int = 160  # longest attempt, in tokens
    gen_batch_size: int = 512  # rows per generation batch (all problems x samples)

    def inputs(self) -> list[tuple[str, str, str]]:
        return super().inputs() + [("30_score_stage2", self.score_run, "models")]

    def validate(self) -> None:
        super().validate()
        _check_name("score_run", self.score_run)
        _check_name("sft_run", self.sft_run)
        _check(len(self.seeds) >= 1 and all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in self.seeds)
               and len(set(self.seeds)) == len(self.seeds),
               f"seeds must be a non-empty list of distinct integers >= 0, got {self.seeds!r}")
        _check(len(self.budgets) >= 1 and all(isinstance(b, int) and not isinstance(b, bool) and b >= 2 and b % 2 == 0
                                              for b in self.budgets)
               and list(self.budgets) == sorted(set(self.budgets)),
               f"budgets must be increasing even integers >= 2 (sequential spends B/2 pairs), got {self.budgets!r}")
        _check(0 < self.sample_temperature <= 5, f"sample_temperature must be in (0, 5], got {self.sample_temperature}")
        for name in ("n_test", "n_seq_attempts", "n_seq_problems", "n_boot", "max_new_tokens", "gen_batch_size"):
            _check(getattr(self, name) >= 1, f"{name} must be >= 1, got {getattr(self, name)}")
        _check(self.n_seq_problems <= self.n_test, f"n_seq_problems must be <= n_test, got {self.n_seq_problems}")
        _check_eval_split(self)


# The report's run fields: the notebook (by number) whose run each names.
REPORT_RUN_FIELDS = {"pretrain_run": "00", "eval_run": "01", "sft_run": "10", "stage1_run": "20", "score_run": "30",
                     "ablations_run": "40", "three_turn_run": "45", "scaling_run": "50"}


@dataclass(frozen=True)
class ReportConfig(RunParams):
    """Notebook 90: every notebook's results beside the paper's, the claims checklist C1-C8, the environment. It
    reads runs and computes nothing new (so it has no seed): a missing run is shown as missing, with the command
    that makes it."""

    eval_split: str = "test"  # the split the runs should be evaluated on (a run on another is flagged)
    seeds: tuple = (0, 1, 2)  # the seeds the runs should use (a run with others is flagged)
    pretrain_run: str = "default"  # notebook 00's run (the base model)
    eval_run: str = "default"  # notebook 01's run (Table 2's base row, base Figs. 3, 6, 7; claim C1)
    sft_run: str = "default"  # notebook 10's run (Table 1, Figs. 3 and 4; claims C2-C4)
    stage1_run: str = "default"  # notebook 20's run (Fig. 5; claim C5)
    score_run: str = "default"  # notebook 30's run (Table 2, Fig. 1 left; claim C6)
    ablations_run: str = "default"  # notebook 40's run (Table 4, Fig. 8; claim C7)
    three_turn_run: str = "default"  # notebook 45's run (the three-turn extension, ICLR appendix A.1)
    scaling_run: str = "default"  # notebook 50's run (Fig. 1 right, Fig. 7; claim C8)

    def run_names(self) -> dict[str, str]:
        """Run field -> run name, for every notebook the report reads."""
        return {f: getattr(self, f) for f in REPORT_RUN_FIELDS}

    def upstream_runs(self) -> list[tuple[str, str]]:
        """(notebook, run_name) of every run the report reads (present or not): the runner reruns the report when
        one of them changed."""
        from scorelib.checklist import notebook_name

        return [(notebook_name(nb, self.results_dir), getattr(self, f)) for f, nb in REPORT_RUN_FIELDS.items()]

    def validate(self) -> None:
        super().validate()
        _check(self.eval_split in EVAL_SPLITS, f"eval_split must be one of {EVAL_SPLITS}, got {self.eval_split!r}")
        _check(len(self.seeds) >= 1 and len(set(self.seeds)) == len(self.seeds)
               and all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in self.seeds),
               f"seeds must be a non-empty list of distinct integers >= 0, got {self.seeds!r}")
        for name in REPORT_RUN_FIELDS:
            _check_name(name, getattr(self, name))


NOTEBOOK_CONFIGS: dict[str, type] = {
    "00_toy_world_and_base_model": PretrainConfig,
    "01_base_model_self_correction": EvalConfig,
    "10_sft_baselines": SFTConfig,
    "20_stage1_vs_multiturn_rl": Stage1Config,
    "30_score_stage2": Stage2Config,
    "40_ablations": AblationConfig,
    "45_three_turn": ThreeTurnConfig,
    "50_inference_scaling": ScalingConfig,
    "90_report": ReportConfig,  # reads every other notebook's runs: keep it last
}


def config_for(notebook: str) -> type:
    """The config class of a notebook, by its name with or without '.ipynb' (or a unique prefix)."""
    name = Path(notebook).name.removesuffix(".ipynb")
    matches = [n for n in NOTEBOOK_CONFIGS if n == name or n.startswith(name)]
    if len(matches) != 1:
        raise ConfigError(f"unknown notebook {notebook!r}; valid: {sorted(NOTEBOOK_CONFIGS)}")
    return NOTEBOOK_CONFIGS[matches[0]]


def field_names(cls) -> list[str]:
    return [f.name for f in fields(cls)]


def _coerce(name: str, value, typ):
    """Check (and gently convert: int -> float, list or one number -> tuple) a value against a field's type."""
    if typ is tuple and (isinstance(value, (int, float, str, dict)) and not isinstance(value, bool)):
        value = (value,)  # `-p seeds 3` or `-p lora_targets q_proj` means a list of one  # `-p temperatures 0.7` means one temperature
    ok = {
        bool: lambda v: isinstance(v, bool),
        int: lambda v: isinstance(v, int) and not isinstance(v, bool),
        float: lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        str: lambda v: isinstance(v, str),
        tuple: lambda v: isinstance(v, (list, tuple)),
    }[typ]
    if not ok(value):
        raise ConfigError(f"parameter {name!r} must be of type {typ.__name__}, got {value!r} ({type(value).__name__})")
    return float(value) if typ is float else tuple(value) if typ is tuple else value


PATH_FIELDS = ("data_path", "train_path", "model")


def absolute_path(value: str) -> str:
    """A user path made absolute: from the current folder if it exists there, else from the project
    root (notebooks run with notebooks/ as their folder); a hub id or a missing path is returned as is."""
    if not value:
        return value
    p = Path(value).expanduser()
    if p.is_absolute():
        return str(p)
    if p.exists():
        return str(p.resolve())
    root = Path(__file__).resolve().parents[1] / p
    return str(root.resolve()) if root.exists() else value


def make_config(cls, params: dict):
    """Build and validate a config from a dict of overrides; unknown names fail with the valid ones.

    Path parameters (data_path, train_path, a local model folder) are made absolute first."""
    valid = field_names(cls)
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise ConfigError(f"unknown parameter(s) {unknown} for {cls.__name__}; valid parameters: {valid}")
    hints = typing.get_type_hints(cls)
    values = {k: _coerce(k, v, hints[k]) for k, v in params.items()}
    values = {k: absolute_path(v) if k in PATH_FIELDS else v for k, v in values.items()}
    if isinstance(values.get("temperatures"), tuple):  # 0 and 0.0 must name the same result ("0.0")
        values["temperatures"] = tuple(float(t) if isinstance(t, (int, float)) and not isinstance(t, bool) else t
                                       for t in values["temperatures"])
    cfg = cls(**values)
    cfg.validate()
    return cfg


def from_params(cls, namespace: dict):
    """The config of a notebook from its parameters (the names of its fields in `namespace`)."""
    return make_config(cls, {k: namespace[k] for k in field_names(cls) if k in namespace})


def to_dict(cfg) -> dict:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(cfg).items()}


def load_profile(path: str | Path) -> dict:
    """A flat YAML map of parameter name to value (an empty file is an empty profile)."""
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"no profile file {p}")
    data = yaml.safe_load(p.read_text()) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"profile {p} must be a map of parameter name to value")
    check_profile_keys(data, f"profile {p}")
    return data


def check_profile_keys(profile: dict, where: str = "profile") -> None:
    """Every key of a profile names a parameter of some notebook (a profile is shared: each notebook takes the
    names it has), and "NN/name" a parameter of notebook NN; a misspelt key fails, naming it and the valid keys."""
    by_number = {n.split("_", 1)[0]: n for n in NOTEBOOK_CONFIGS}
    known = sorted(set().union(*(field_names(c) for c in NOTEBOOK_CONFIGS.values())))
    for key in map(str, profile):
        number, _, name = key.rpartition("/")
        if number and number not in by_number:
            raise ConfigError(f"{where}: key {key!r}: no notebook numbered {number!r}; valid: {sorted(by_number)}")
        valid = field_names(NOTEBOOK_CONFIGS[by_number[number]]) if number else known
        if name not in valid:
            close = difflib.get_close_matches(name, valid, n=1)
            raise ConfigError(f"{where}: unknown key {key!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
                              + (f"; notebook {by_number[number]}'s parameters: {valid}" if number else
                                 f": no notebook has it; valid keys: {valid}, or 'NN/name' for notebook NN alone"))


def profile_params(cls, profile: dict, notebook: str = "") -> dict:
    """The entries of a shared profile that this notebook's config has. A key "NN/name" (NN a notebook's number,
    e.g. "30/sweep") applies to that notebook alone and wins over a plain "name"."""
    names = set(field_names(cls))
    out = {k: v for k, v in profile.items() if k in names}
    numbers = {n.split("_", 1)[0] for n in NOTEBOOK_CONFIGS}
    for key, value in profile.items():
        if "/" not in str(key):
            continue
        number, name = str(key).split("/", 1)
        if number not in numbers:
            raise ConfigError(f"profile key {key!r}: no notebook numbered {number!r}; valid: {sorted(numbers)}")
        if notebook.split("_", 1)[0] == number:
            if name not in names:
                raise ConfigError(f"profile key {key!r}: notebook {notebook} has no parameter {name!r}")
            out[name] = value
    return out
