"""SCoRe's stages as the notebooks run them: one RL run from a starting policy, checkpoint
selection by training reward, evaluation over seeds, sweeps judged on the validation split, and
the claims C5 and C6.

A run copies its starting policy (full fine-tuning) or wraps it in a fresh LoRA adapter; the
frozen reference is always the base model (a separate frozen copy, or for LoRA the same
model with the adapter disabled). Stage II starts from the Stage I checkpoint selected by
training reward; with LoRA it continues the Stage I adapter.
"""
from __future__ import annotations

import copy
import hashlib
from dataclasses import fields
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from scorelib import metrics as M
from scorelib import rl
from scorelib.evaluate import evaluate_attempts, evaluate_two_turn
from scorelib.jsonl import read_jsonl
from scorelib.models import is_peft, load_model, save_model, trainable_copy
from scorelib.results import cached, write_json


def settings(objective: str, cfg, steps: int | None = None) -> rl.RLSettings:
    """The RL settings of one objective (``rl.OBJECTIVES``) from a notebook's config: every ``rl.RLSettings``
    field the config has, by the same name (notebook 20's has no beta_turn1: Stage II's turn 1 then takes beta1).
    ``steps`` replaces cfg.steps (an interleaved Stage I round), the warm-up clipped to fit."""
    values = {f.name: getattr(cfg, f.name) for f in fields(rl.RLSettings) if hasattr(cfg, f.name)}
    if steps is not None:
        values.update(steps=steps, lr_warmup=min(cfg.lr_warmup, max(0, steps - 1)))
    return rl.objective(objective, **values)


def objective_reward(s: rl.RLSettings, summary: dict) -> float:
    """The unshaped reward an objective trains for, read off an evaluation summary (percent): turn 1, turn 2
    and/or turn 3 accuracy, as its settings reward them."""
    return sum(summary.get(f"acc_t{t + 1}", 0.0) for t, r in enumerate(rl.rewarded(s)) if r)


SWEEP_COLUMNS = ("acc_t1", "acc_t2", "delta", "delta_lo", "delta_hi", "delta_i2c", "delta_c2i", "fix_own",
                 "different_answer")


def sweep_row(label: str, variant: dict, summary: dict, checkpoint: str = "", training_reward: float = float("nan")
              ) -> dict:
    """One line of a sweep table: the variant's overrides, its validation metrics and the checkpoint kept."""
    return dict(variant=label, **{k: x if isinstance(x, str) else float(x) for k, x in variant.items()},
                **{k: summary.get(k, float("nan")) for k in SWEEP_COLUMNS}, checkpoint=checkpoint,
                training_reward=training_reward)


def selected_row(seed: int, log: list[dict], best: Path, best_reward: float, **extra) -> dict:
    """One line of a notebook's selected-checkpoints table: the checkpoint kept, its training reward and the run's
    mean seconds of sampling and of training per step."""
    return dict(seed=seed, **extra, checkpoint=Path(best).name, training_reward=round(best_reward, 3),
                sample_s=float(np.mean([x["sample_s"] for x in log])), train_s=float(np.mean([x["train_s"] for x in log])))


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
        return evaluate_all(model, tokenizer, task, val, [t], cfg.max_new_tokens, cfg.gen_batch_size, cfg.n_boot,
                            s0, cache_dir=run.dir / "cache")[t].summary

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


def train_stage(base, tokenizer, task, train: list, settings: rl.RLSettings, seed: int, run_dir: Path, name: str,
                init_dir=None, lora=(0, 16.0, ("q_proj", "v_proj")), select_window: int = 10, tiny: bool = False,
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
    (settings.n_turns 3) is selected on three greedy attempts (``evaluate_attempts_all``).
    Returns (policy, log, selected checkpoint, its selection score)."""
    from scorelib.results import digest

    policy, ref = start_policy(base, init_dir, *lora, device=device, dtype=dtype)
    ckpt_dir = Path(run_dir) / "checkpoints" / name
    run_info = dict(init=str(init_dir), lora=list(lora), base=str(getattr(base, "name_or_path", "")), task=task.name)
    if y1_pool is not None:
        run_info["y1_pool"] = digest(sorted((int(i), ys) for i, ys in y1_pool.items()))
    if reference is not None:
        ref = reference.eval().requires_grad_(False)
        run_info["reference"] = model_fingerprint(ref)
    log = rl.rl_train(policy, ref, tokenizer, task.protocol, train, settings, seed=seed, progress=progress,
                      reward_fn=task.reward, extract_fn=task.extract, checkpoint_dir=ckpt_dir, run_info=run_info,
                      y1_pool=y1_pool)
    if select_problems is None:
        best, best_reward = rl.best_checkpoint(ckpt_dir, window=select_window)
    else:
        def greedy_reward(model) -> float:
            if settings.n_turns == 3:
                e = evaluate_attempts_all(model, tokenizer, task, select_problems, 3, [0.0], settings.max_new_tokens,
                                          gen_batch_size, n_boot=10, seed=seed, cache_dir=Path(run_dir) / "cache")[0.0]
                return objective_reward(settings, e.summary)
            e = evaluate_all(model, tokenizer, task, select_problems, [0.0], settings.max_new_tokens, gen_batch_size,
                             n_boot=10, seed=seed, cache_dir=Path(run_dir) / "cache")[0.0]
            return objective_reward(settings, e.summary)

        best, best_reward, table = rl.best_checkpoint_by(ckpt_dir, policy, greedy_reward)
        write_json(ckpt_dir / "selection.json", dict(rule="greedy validation reward", n_problems=len(select_problems),
                                                    scores=table))
    rl.load_checkpoint(best, policy)
    policy.eval()
    save_model(policy, tokenizer, Path(run_dir) / "models" / name, tiny=tiny)
    return policy, log, best, best_reward


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
    (``evaluate.evaluate_attempts``; the three-turn extension's Acc@t1/t2/t3), kept under cache_dir/eval/ by their
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


def curves(logs: dict[str, list[list[dict]]], keys=("acc_t1", "acc_t2", "different_answer"), smooth: int = 5
           ) -> pd.DataFrame:
    """Training curves: for each method, the mean over seeds of each key per step, smoothed by a
    trailing moving average of `smooth` steps. Columns (method, key), index step."""
    frames = {}
    for method, runs in logs.items():
        df = pd.concat([pd.DataFrame(r).set_index("step")[list(keys)] for r in runs]).groupby(level=0).mean()
        frames[method] = df.rolling(smooth, min_periods=1).mean()
    return pd.concat(frames, axis=1)


def _log_seconds(path: Path) -> tuple[float, float]:
    rows = read_jsonl(path) if Path(path).exists() else []
    return sum(r["sample_s"] for r in rows), sum(r["train_s"] for r in rows)


def training_time(stage1_dir: Path, stage2_dir: Path, seeds) -> pd.DataFrame:
    """Seconds of sampling and of updating per seed: Stage I (notebook 20's log) and every Stage II (and interleaved
    Stage I) round of this run, with the total in minutes. A missing log counts 0 (and shows as such)."""
    rows = []
    for s in seeds:
        s1 = _log_seconds(Path(stage1_dir) / f"history_seed{s}_stage1.jsonl")
        later = [_log_seconds(p) for p in sorted(Path(stage2_dir).glob(f"history_seed{s}_round*.jsonl"))]
        s2 = (sum(x[0] for x in later), sum(x[1] for x in later))
        rows.append(dict(seed=s, stage1_sample_s=s1[0], stage1_train_s=s1[1], stage2_sample_s=s2[0],
                         stage2_train_s=s2[1], total_min=(sum(s1) + sum(s2)) / 60))
    return pd.DataFrame(rows).set_index("seed")


_SAVED_DEFAULTS = {"eval_split": "test"}  # what a run saved before the key existed used


def _differs(saved: dict, cfg, keys) -> list[str]:
    return [k for k in keys if saved.get(k, _SAVED_DEFAULTS.get(k)) != getattr(cfg, k)]


def _saved_config(run_dir: Path, notebook: str) -> dict:
    """A run's config.json under today's parameter names (``config.saved_config``: old runs still read)."""
    from scorelib.config import saved_config
    from scorelib.results import read_json

    return saved_config(read_json(Path(run_dir) / "config.json"), notebook)


def check_stage1_run(cfg, stage1_dir: Path) -> None:
    """Stage II must start from a notebook-20 run made for the same task, model, base and adapter rank."""
    from scorelib.config import ConfigError

    differs = _differs(_saved_config(stage1_dir, "20_stage1_vs_multiturn_rl"), cfg,
                       ("task", "model", "base_run", "lora_rank"))
    if differs:
        raise ConfigError(f"notebook 20's run {Path(stage1_dir).name!r} differs from this run in {differs}")


def table2_rows(cfg, stage1_dir: Path, sft_dir: Path, score_row: dict, temperature: float, tiny: bool
                ) -> tuple[dict, list[str], list[str]]:
    """Rows of the Table 2 analogue: Base, Multi-turn RL and Stage I (notebook 20's evaluation), Self-Refine,
    STaR w/ D+_STaR and Pair-SFT w/ D_SFT (notebook 10's run, when it was made for the same task, model and
    base, and the table is greedy as notebook 10 is), and SCoRe; a row from a run evaluated on another split
    (eval_split) is left out with a note. Returns (rows, missing row names, notes).

    Raises ConfigError when notebook 20's run was made for another task, model, base or adapter rank."""
    from scorelib.results import read_json

    check_stage1_run(cfg, stage1_dir)
    stage1 = read_json(Path(stage1_dir) / "metrics.json")
    sft_rows, notes = {}, []
    rows20 = stage1["rows"].get(str(float(temperature))) or {}
    if _differs(_saved_config(stage1_dir, "20_stage1_vs_multiturn_rl"), cfg, ("eval_split",)):
        notes.append(f"notebook 20's run {Path(stage1_dir).name!r} was evaluated on another split than "
                     f"{cfg.eval_split!r}: its rows are left out")
        rows20 = {}
    if (Path(sft_dir) / "metrics.json").exists():
        sft_cfg = _saved_config(sft_dir, "10_sft_baselines")
        differs = _differs(sft_cfg, cfg, ("task", "model", "base_run", "eval_split"))
        if differs:
            notes.append(f"notebook 10's run {Path(sft_dir).name!r} differs in {differs}: its rows are left out")
        elif temperature != 0:
            notes.append("notebook 10 evaluates greedily: its rows are left out of a table at T != 0")
        else:
            sft_rows = read_json(Path(sft_dir) / "metrics.json")["rows"]
            if sft_cfg.get("n_test") != cfg.n_test:
                notes.append(f"STaR, Pair-SFT and Self-Refine rows come from {sft_cfg.get('n_test')} held-out "
                             f"problems, SCoRe's from {cfg.n_test}")
    rows = {"Base model": rows20.get("Base model"), "Multi-turn RL": rows20.get("Multi-turn RL"),
            "Stage I only": rows20.get("Stage I"), "Self-Refine": sft_rows.get("Self-Refine"),
            "STaR w/ D+_STaR": sft_rows.get("STaR D+_STaR"),
            "Pair-SFT w/ D_SFT": sft_rows.get("Pair-SFT D_SFT"), "SCoRe": score_row}
    if rows["Self-Refine"] is None and tiny:
        del rows["Self-Refine"]  # never run for the tiny model (notebook 10 says why)
    missing = [k for k, v in rows.items() if v is None]
    return {k: v for k, v in rows.items() if v is not None}, missing, notes
