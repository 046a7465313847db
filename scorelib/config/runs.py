"""The parameters every notebook shares, and the configs of the notebooks before RL.

- ``Seed``, ``RunParams`` and ``Common`` (= ``RunParams`` with a ``seed``): what every notebook has;
- ``FromBaseParams`` and ``FromBase``: a notebook that starts from notebook 00's base model (or from ``model``);
- ``PretrainConfig`` (notebook 00), ``EvalConfig`` (notebook 01) and ``SFTConfig`` (notebook 10).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass

from scorelib.config.checks import (DTYPES, TASKS, ConfigError, _check, _check_eval_split, _check_model, _check_name,
                                    _check_training)
from scorelib.tasks.toy import check_level_weights


SEED_FIELD = "{seed}"  # in a base_run: replaced by each seed (one base model a seed)


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
        _check(self.turn2_mode in ("edit", "rewrite"),
               f"turn2_mode must be 'edit' or 'rewrite', got {self.turn2_mode!r}")
        for name in ("single_frac", "wrong_frac", "fix_rate", "break_rate", "rewrite_rate", "alt_single_frac"):
            _check(0 <= getattr(self, name) <= 1, f"{name} must be in [0, 1], got {getattr(self, name)}")
        _check(self.error_source in ("own", "injected"),
               f"error_source must be 'own' or 'injected', got {self.error_source!r}")
        _check_eval_split(self)


@dataclass(frozen=True)
class FromBaseParams(RunParams):
    """Parameters of a notebook that starts from notebook 00's base model (or from `model`), but for its seed."""

    base_run: str = "default"  # notebook 00's run of the base model; '{seed}' in it: one base a seed

    def base_seeds(self) -> tuple:
        """The seeds this run trains or evaluates (``seeds``, else its one ``seed``)."""
        return tuple(getattr(self, "seeds", None) or (getattr(self, "seed", 0),))

    def base_run_for(self, seed: int) -> str:
        """Notebook 00's run whose base model seed ``seed`` starts from: ``base_run`` with '{seed}' replaced by the
        seed (one base model a seed, e.g. 'seed{seed}' -> seed0, seed1, ...), else ``base_run`` itself (one base
        shared by every seed)."""
        return self.base_run.replace(SEED_FIELD, str(seed))

    def base_runs(self) -> list[str]:
        """Notebook 00's runs this run reads, in the order of its seeds, each once."""
        return list(dict.fromkeys(self.base_run_for(s) for s in self.base_seeds()))

    def inputs(self) -> list[tuple[str, str, str]]:
        """(notebook, run_name, path) of the earlier outputs this notebook reads."""
        return [] if self.model else [("00_toy_world_and_base_model", r, "") for r in self.base_runs()]

    def validate(self) -> None:
        super().validate()
        _check("{" not in self.base_run.replace(SEED_FIELD, "") and "}" not in self.base_run.replace(SEED_FIELD, ""),
               f"base_run may hold '{SEED_FIELD}' and no other braces, got {self.base_run!r}")
        _check_name("base_run", self.base_run_for(0))


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
        _check(len(self.temperatures) >= 1 and all(isinstance(t, (int, float)) and not isinstance(t, bool)
                                                   and 0 <= t <= 5 for t in self.temperatures),
               f"temperatures must be a non-empty list of numbers in [0, 5], got {self.temperatures!r}")


@dataclass(frozen=True)
class SFTConfig(FromBaseParams):
    """Notebook 10: STaR and Pair-SFT on the model's own correction traces (Table 1, Figs. 3 and 4).
    ``scorelib.sft`` and ``scorelib.baselines`` read these fields by these names."""

    eval_seed: int = 0  # seeds the bootstrap of Table 1's CIs only (data and training: seeds)
    seeds: tuple = (0, 1, 2)  # one pipeline run per seed (data, fine-tuning), from its base (base_run)
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
