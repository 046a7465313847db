"""SCoRe's stages as the notebooks run them (paper section 5): the RL settings of a stage from a notebook's config,
one RL run from a starting policy with its checkpoint selected (by training reward, the paper's rule, or by greedy
reward on validation problems) and saved, the training curves of such runs over seeds, and sweeps of settings
judged on the validation split.

A run copies its starting policy (full fine-tuning) or wraps it in a fresh LoRA adapter; the
frozen reference is always the base model (a separate frozen copy, or for LoRA the same
model with the adapter disabled). Stage II starts from the Stage I checkpoint selected by
training reward; with LoRA it continues the Stage I adapter.

Where the rest lives: the trainer in ``rl`` (its settings in ``rl_settings``, checkpoints in ``checkpoints``);
evaluation over temperatures and its pooling over seeds in ``evaluate``; notebook 30's reads of notebooks 10's and
20's runs (the Table 2 rows, the training time) in ``upstream``.
"""
from __future__ import annotations

import copy
from dataclasses import fields
from pathlib import Path

import numpy as np
import pandas as pd

from scorelib import checkpoints, evaluate, rl, rl_settings
from scorelib.models import is_peft, load_model, save_model, trainable_copy
from scorelib.results import write_json


def settings(objective: str, cfg, steps: int | None = None) -> rl_settings.RLSettings:
    """The RL settings of one objective (``rl_settings.OBJECTIVES``) from a notebook's config: every
    ``rl_settings.RLSettings`` field the config has, by the same name (notebook 20's has no beta_turn1: Stage II's turn
    1 then takes beta1).
    ``steps`` replaces cfg.steps (an interleaved Stage I round), the warm-up clipped to fit."""
    values = {f.name: getattr(cfg, f.name) for f in fields(rl_settings.RLSettings) if hasattr(cfg, f.name)}
    if steps is not None:
        values.update(steps=steps, lr_warmup=min(cfg.lr_warmup, max(0, steps - 1)))
    return rl_settings.objective(objective, **values)


def objective_reward(s: rl_settings.RLSettings, summary: dict) -> float:
    """The unshaped reward an objective trains for, read off an evaluation summary (percent): turn 1, turn 2
    and/or turn 3 accuracy, as its settings reward them."""
    return sum(summary.get(f"acc_t{t + 1}", 0.0) for t, r in enumerate(rl_settings.rewarded(s)) if r)

def start_policy(base, init_dir: str | Path | None, lora_rank: int, lora_alpha: float, lora_targets, device="auto",
                 dtype="auto"):
    """(policy, ref): a trainable policy from `base` (or from a saved checkpoint folder) and the frozen
    reference (None when the policy is a LoRA model: its disabled adapter is the base)."""
    if init_dir is not None:
        policy, _ = load_model(init_dir, device=device, dtype=dtype, trainable=True)
        if is_peft(policy):
            return policy, None
    else:
        policy = trainable_copy(base, lora_rank, lora_alpha, lora_targets)
        if is_peft(policy):
            return policy, None
    for p in policy.parameters():
        p.requires_grad_(True)
    ref = copy.deepcopy(base).eval().requires_grad_(False)
    return policy, ref


def selection_problems(task, cfg) -> list | None:
    """The validation problems behind checkpoint selection when cfg.select is 'val_greedy' (None: selection by
    training reward, the paper's rule). Never test problems."""
    return task.val_problems(cfg.n_select) if cfg.select == "val_greedy" else None


def train_stage(base, tokenizer, task, train: list, settings: rl_settings.RLSettings, seed: int, run_dir: Path,
                name: str, init_dir=None, lora=(0, 16.0, ("q_proj", "v_proj")), select_window: int = 10, tiny: bool = False,
                device="auto", dtype="auto", progress: bool = False, select_problems: list | None = None,
                gen_batch_size: int = 512, y1_pool: dict | None = None, reference=None):
    """One RL run: checkpoints under run_dir/checkpoints/<name>/ (a killed run resumes there), the selected
    checkpoint loaded and saved as run_dir/models/<name>/. Selection: the best training reward (the paper's rule),
    or with ``select_problems`` (validation problems) the best greedy reward of the objective on them
    (``objective_reward``; the starting policy is a candidate when settings.select is val_greedy); each
    candidate's score is written to the checkpoint folder's selection.json. ``y1_pool``: fixed first attempts
    (settings.turn1_source "pool"; rl.rl_train), part of the run's identity by their digest. ``reference``: a
    model to be the frozen KL reference instead of the base (the three-turn Stage 1(b): the Stage 1(a) model; also
    with LoRA, as a separate copy), part of the run's identity by its weights' fingerprint. A three-turn objective
    (settings.n_turns 3) is selected on three greedy attempts (``evaluate.evaluate_attempts_all``).
    Returns (policy, log, selected checkpoint, its selection score)."""
    from scorelib.results import digest

    policy, ref = start_policy(base, init_dir, *lora, device=device, dtype=dtype)
    ckpt_dir = Path(run_dir) / "checkpoints" / name
    run_info = dict(init=str(init_dir), lora=list(lora), base=str(getattr(base, "name_or_path", "")), task=task.name)
    if y1_pool is not None:
        run_info["y1_pool"] = digest(sorted((int(i), ys) for i, ys in y1_pool.items()))
    if reference is not None:
        ref = reference.eval().requires_grad_(False)
        run_info["reference"] = evaluate.model_fingerprint(ref)
    log = rl.rl_train(policy, ref, tokenizer, task.protocol, train, settings, seed=seed, progress=progress,
                      reward_fn=task.reward, extract_fn=task.extract, checkpoint_dir=ckpt_dir, run_info=run_info,
                      y1_pool=y1_pool)
    if select_problems is None:
        best, best_reward = checkpoints.best_checkpoint(ckpt_dir, window=select_window)
    else:
        def greedy_reward(model) -> float:
            if settings.n_turns == 3:
                e = evaluate.evaluate_attempts_all(model, tokenizer, task, select_problems, 3, [0.0],
                                                   settings.max_new_tokens, gen_batch_size, n_boot=10, seed=seed,
                                                   cache_dir=Path(run_dir) / "cache")[0.0]
                return objective_reward(settings, e.summary)
            e = evaluate.evaluate_all(model, tokenizer, task, select_problems, [0.0], settings.max_new_tokens,
                                      gen_batch_size, n_boot=10, seed=seed, cache_dir=Path(run_dir) / "cache")[0.0]
            return objective_reward(settings, e.summary)

        best, best_reward, table = checkpoints.best_checkpoint_by(ckpt_dir, policy, greedy_reward)
        write_json(ckpt_dir / "selection.json", dict(rule="greedy validation reward", n_problems=len(select_problems),
                                                    scores=table))
    checkpoints.load_checkpoint(best, policy)
    policy.eval()
    save_model(policy, tokenizer, Path(run_dir) / "models" / name, tiny=tiny)
    return policy, log, best, best_reward

def selected_row(seed: int, log: list[dict], best: Path, best_reward: float, **extra) -> dict:
    """One line of a notebook's selected-checkpoints table: the checkpoint kept, its training reward and the run's
    mean seconds of sampling and of training per step."""
    return dict(seed=seed, **extra, checkpoint=Path(best).name, training_reward=round(best_reward, 3),
                sample_s=float(np.mean([x["sample_s"] for x in log])), train_s=float(np.mean([x["train_s"] for x in log])))

def curves(logs: dict[str, list[list[dict]]], keys=("acc_t1", "acc_t2", "different_answer"), smooth: int = 5
           ) -> pd.DataFrame:
    """Training curves: for each method, the mean over seeds of each key per step, smoothed by a
    trailing moving average of `smooth` steps. Columns (method, key), index step."""
    frames = {}
    for method, runs in logs.items():
        df = pd.concat([pd.DataFrame(r).set_index("step")[list(keys)] for r in runs]).groupby(level=0).mean()
        frames[method] = df.rolling(smooth, min_periods=1).mean()
    return pd.concat(frames, axis=1)


SWEEP_COLUMNS = ("acc_t1", "acc_t2", "delta", "delta_lo", "delta_hi", "delta_i2c", "delta_c2i", "fix_own",
                 "different_answer")


def sweep_row(label: str, variant: dict, summary: dict, checkpoint: str = "", training_reward: float = float("nan")
              ) -> dict:
    """One line of a sweep table: the variant's overrides, its validation metrics and the checkpoint kept."""
    return dict(variant=label, **{k: x if isinstance(x, str) else float(x) for k, x in variant.items()},
                **{k: summary.get(k, float("nan")) for k in SWEEP_COLUMNS}, checkpoint=checkpoint,
                training_reward=training_reward)


def sweep_problems(task, cfg) -> list:
    """The problems every sweep is judged on: the first cfg.n_test validation problems, whatever cfg.eval_split is.
    A sweep exists to choose settings, so it never sees a test problem."""
    return task.val_problems(cfg.n_test)


def run_sweep(objective: str, cfg, base, tokenizer, task, run, init_dir, rl_seed: int, lora, tiny: bool,
              references: dict | None = None) -> list[dict]:
    """Each of cfg.sweep's variants trained once on the first seed's training problems (objective 'stage1' or
    'stage2', from init_dir; run seed rl_seed), its log saved as history_sweep_<label>.jsonl and its selected
    checkpoint evaluated on the validation split (sweep_problems) at the first evaluation temperature.

    references: label -> (a model or a saved model folder, its checkpoint name, its training reward), evaluated the
    same way first, as the rows to compare with (e.g. the base and the main run's first seed). Returns their rows,
    then one sweep_row per variant; [] when cfg.sweep is empty (nothing is evaluated)."""
    from scorelib import config as C

    if not cfg.sweep:
        return []
    s0, t = cfg.seeds[0], cfg.temperatures[0]
    val = sweep_problems(task, cfg)

    def judge(model) -> dict:
        return evaluate.evaluate_all(model, tokenizer, task, val, [t], cfg.max_new_tokens, cfg.gen_batch_size,
                                     cfg.n_boot, s0, cache_dir=run.dir / "cache")[t].summary

    rows = []
    for label, (model, checkpoint, reward) in (references or {}).items():
        if isinstance(model, (str, Path)):
            model = load_model(model, device=cfg.device, dtype=cfg.dtype)[0]
        rows.append(sweep_row(label, {}, judge(model), checkpoint, reward))
        del model
    train = task.train_problems(cfg.n_train, seed=s0)
    for v in cfg.sweep:
        label = C.sweep_label(v)
        policy, log, best, best_reward = train_stage(base, tokenizer, task, train, settings(objective, C.sweep_config(cfg, v)),
                                                     rl_seed, run.dir, f"sweep/{label}/{objective}", init_dir=init_dir,
                                                     lora=lora, select_window=cfg.select_window, tiny=tiny,
                                                     device=cfg.device, dtype=cfg.dtype, progress=cfg.progress,
                                                     select_problems=selection_problems(task, C.sweep_config(cfg, v)))
        run.history(log, f"history_sweep_{label}.jsonl")
        rows.append(sweep_row(label, v, judge(policy), best.name, round(best_reward, 3)))
        del policy
    return rows
