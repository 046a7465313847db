"""The checks every config's ``validate`` builds on, and the sweeps of the RL notebooks.

- ``ConfigError`` (a bad parameter, raised before any compute) and ``_check`` (raise it unless a condition holds);
- the valid tasks, evaluation splits and dtypes;
- the checks shared by several configs: run names, training files and seeds, the evaluation split, the model;
- sweeps (notebooks 20 and 30): what a variant may vary, its config (``sweep_config``) and its name
  (``sweep_label``), and ``_check_sweep``, which checks every variant of a config.
"""
from __future__ import annotations

import dataclasses
import math
import os
import re

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
