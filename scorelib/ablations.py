"""Notebook 40's ablations of SCoRe (paper §3.4, Table 4; Fig. 8; claim C7): each row is a setting of the trainer of
notebooks 20 and 30 (``rl_settings.RLSettings`` through ``stages.train_stage``), or for the STaR row the SFT code of
notebook 10, never a copy of either.

The reference recipe is notebook 30's Stage II (``stages.settings("stage2", cfg)``, from notebook 20's Stage I model of
the seed). Each row changes one thing (``ablation``; a test compares every row's settings with the reference):

* ``single_turn`` (w/o multi-turn training): single-turn RL on turn 1 from the base (one attempt, rewarded, β on its
  tokens), evaluated with two turns like every row;
* ``no_stage1`` (w/o Stage I): Stage II from the base instead of from Stage I;
* ``no_shaping`` (w/o reward shaping): α = 0;
* ``star`` (w/ STaR instead of REINFORCE in Stage II): the samples Stage II would draw, filtered by reward and
  fine-tuned on (``star_stage2``);
* ``gamma`` (Fig. 8): multi-turn RL from the base with turn 1's return r1 + γ·r2 (γ = 0.8) and α = 1;
* ``offline_y1`` (w/o online turn-1 samples): Stage II whose first attempts come from a fixed pool sampled once from
  the Stage I model (``y1_pool``, ``RLSettings.turn1_source = "pool"``).

Budget: rows that start from the base replace both of SCoRe's stages, so with ``matched_budget`` they train Stage I's
steps plus Stage II's (every row then draws as many training samples as SCoRe did from the base to its final model);
rows that start from Stage I train Stage II's steps. Every row uses SCoRe's Stage II run seed (10 x seed), so each
step's problems are the ones SCoRe's Stage II saw at that step.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from scorelib import metrics as M
from scorelib import evaluate, rl, rl_settings, stages
from scorelib.config import ABLATION_ROWS
from scorelib.jsonl import read_jsonl

ROWS = ABLATION_ROWS
LABELS = {
    "single_turn": "w/o multi-turn training",
    "no_stage1": "w/o Stage I",
    "no_shaping": "w/o reward shaping",
    "star": "w/ STaR instead of REINFORCE in Stage II",
    "gamma": "multi-turn RL, γ = 0.8, α = 1 (Fig. 8)",
    "offline_y1": "w/o online turn-1 samples",
}
FIG8_GAMMA, FIG8_ALPHA = 0.8, 1.0  # Fig. 8's multi-turn RL variant


def _paper(t1, t2, d) -> dict:
    return dict(acc_t1=t1, acc_t2=t2, delta=d, delta_i2c=math.nan, delta_c2i=math.nan, fix_own=math.nan)


# Table 4 of the paper (digest section 3.4; MATH, Gemini 1.5 Flash): Acc@t1, Acc@t2 and Δ only. Fig. 8 has no row.
PAPER_TABLE4 = {
    "SCoRe": _paper(60.0, 64.4, 4.4),
    "single_turn": _paper(61.8, 59.4, -2.4),
    "no_stage1": _paper(59.2, 61.4, 2.2),
    "no_shaping": _paper(60.0, 62.6, 2.6),
    "star": _paper(56.2, 58.4, 2.2),
    "offline_y1": _paper(60.4, 60.6, 0.2),
}

# The reference recipe's settings that notebook 40's run must share with notebook 30's run (config fields).
RECIPE_KEYS = ("task", "model", "base_run", "stage1_run", "eval_split", "n_test", "n_train", "problems_per_step", "k",
               "lr", "temperature", "alpha", "beta1", "beta2", "gamma", "turn2_baseline", "lora_rank", "lora_alpha",
               "lora_targets", "micro_batch", "checkpoint_every", "select", "select_window", "n_select", "lr_warmup",
               "lr_schedule", "drop_flat_groups", "turn_budget", "steps", "beta_turn1", "max_new_tokens",
               "gen_batch_size", "n_boot", "temperatures")


@dataclass(frozen=True)
class Ablation:
    """One row of Table 4: where it starts, how it trains, and its trainer settings."""

    row: str  # one of ROWS
    label: str  # the paper's name of the row
    start: str  # "stage1": notebook 20's Stage I model of the seed; "base": the base model
    method: str  # "reinforce": stages.train_stage; "star": star_stage2 (sampling as settings say, then SFT)
    settings: rl_settings.RLSettings


def reference(cfg) -> rl_settings.RLSettings:
    """SCoRe's Stage II settings, as notebook 30 builds them from the same config values."""
    return stages.settings("stage2", cfg)


def ablation(row: str, cfg, stage1_steps: int) -> Ablation:
    """The settings of one ablation row: the reference recipe with the one change the row names (see the module
    docstring). ``stage1_steps``: Stage I's steps in notebook 20's run (for rows from the base, matched budget)."""
    ref = reference(cfg)
    from_base = cfg.steps + stage1_steps if cfg.matched_budget else cfg.steps
    if row == "single_turn":
        s = replace(ref, objective="single_turn", steps=from_base)
        return Ablation(row, LABELS[row], "base", "reinforce", s)
    if row == "no_stage1":
        return Ablation(row, LABELS[row], "base", "reinforce", replace(ref, steps=from_base))
    if row == "no_shaping":
        return Ablation(row, LABELS[row], "stage1", "reinforce", replace(ref, alpha=0.0))
    if row == "star":
        return Ablation(row, LABELS[row], "stage1", "star", ref)
    if row == "gamma":
        s = replace(ref, alpha=FIG8_ALPHA, gamma=FIG8_GAMMA, steps=from_base)
        return Ablation(row, LABELS[row], "base", "reinforce", s)
    if row == "offline_y1":
        return Ablation(row, LABELS[row], "stage1", "reinforce", replace(ref, turn1_source="pool"))
    raise ValueError(f"unknown ablation {row!r}; valid: {list(ROWS)}")


def changes(ab: Ablation, ref: rl_settings.RLSettings) -> dict:
    """What a row changes from the reference: {setting: (reference value, row value)}, plus where it starts and how
    it trains where those differ from Stage II's (from Stage I, by REINFORCE). Settings are compared as the trainer
    applies them (``rl_settings.applied``: each turn's reward and KL weight), so a row that changes the objective lists
    what that changes turn by turn."""
    a, b = rl_settings.applied(ref), rl_settings.applied(ab.settings)
    out = {k: (a[k], b[k]) for k in a if a[k] != b[k]}
    if ab.start != "stage1":
        out["start"] = ("stage1", ab.start)
    if ab.method != "reinforce":
        out["method"] = ("reinforce", ab.method)
    return out


def sampled_rows(s: rl_settings.RLSettings) -> int:
    """Training samples (rows of k per problem) a run of these settings draws: its data budget."""
    return s.steps * s.problems_per_step * s.k


def check_score_run(cfg, score_dir: Path) -> dict:
    """Notebook 30's run must have been made with this run's recipe (RECIPE_KEYS), in one round, on every seed this
    run trains: the rows differ from SCoRe in one thing each only if everything else is SCoRe's. Returns its config.
    Raises ConfigError naming what differs."""
    from scorelib.config import ConfigError, saved_config
    from scorelib.results import read_json

    theirs = saved_config(read_json(Path(score_dir) / "config.json"), "30_score_stage2")
    ours = {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(cfg).items()}
    differs = {k: (theirs.get(k), ours[k]) for k in RECIPE_KEYS if theirs.get(k) != ours[k]}
    if differs:
        raise ConfigError(f"notebook 30's run {Path(score_dir).name!r} was made with other settings than this run "
                          f"(theirs, ours): {differs}; give notebook 40 the same values (each ablation changes one "
                          "thing from SCoRe's recipe)")
    if theirs.get("rounds", 1) != 1:
        raise ConfigError(f"notebook 30's run {Path(score_dir).name!r} ran {theirs['rounds']} rounds of Stage II: the "
                          "ablations compare with one round (rounds 1)")
    lacking = [s for s in cfg.seeds if s not in theirs.get("seeds", [])]
    if lacking:
        raise ConfigError(f"notebook 30's run {Path(score_dir).name!r} has no SCoRe model for seeds {lacking}: run "
                          "it with those seeds, or give notebook 40 seeds it has")
    return theirs


def score_model_dir(score_dir: Path, seed: int) -> Path:
    """Notebook 30's selected SCoRe model of one seed (one round of Stage II)."""
    return Path(score_dir) / "models" / f"seed{seed}" / "round1_stage2"


# ------------------------------------------------------------------ w/o online turn-1 samples: the fixed pool
def pool_problems(n_problems: int, s: rl_settings.RLSettings, seed: int) -> list[int]:
    """Every problem index the run's steps draw (rl.step_problems), sorted: the pool needs first attempts of these."""
    return sorted({int(i) for step in range(s.steps) for i in rl.step_problems(n_problems, s, seed, step)})


def y1_pool(model, tokenizer, task, problems: list, s: rl_settings.RLSettings, seed: int, gen_batch_size: int = 512,
            cache_dir: str | Path | None = None) -> dict[int, list[list[int]]]:
    """First attempts sampled once from ``model`` (the Stage I model): k per problem the run will draw, at the
    training temperature, as {problem index: [k token-id lists]}. Cached by the model's weights, the problems, the
    settings and the seed, so a resumed run gets the same pool."""
    from scorelib.results import cached, digest
    from scorelib.rollout import rollout

    idx = pool_problems(len(problems), s, seed)

    def compute() -> dict:
        ro = rollout(model, tokenizer, [problems[i].problem for i in idx], [problems[i].answer for i in idx],
                     task.protocol, task.reward, n_turns=1, k=s.k, temperature=s.temperature,
                     max_new_tokens=s.max_new_tokens, batch_size=gen_batch_size, seed=seed * 100_003 + 99_991)
        return {i: [list(ro.attempt_ids[0][j * s.k + r]) for r in range(s.k)] for j, i in enumerate(idx)}

    if cache_dir is None:
        return compute()
    parts = [evaluate.model_fingerprint(model), digest([(problems[i].problem, problems[i].answer) for i in idx]),
             task.name, repr(task.protocol), s.k, s.temperature, s.max_new_tokens, seed]
    return cached(Path(cache_dir) / "pool", "y1_pool", parts, compute)


# ------------------------------------------------------------------ w/ STaR instead of REINFORCE in Stage II
def star_examples(tokenizer, protocol, problems: list, traces: list, stop_ids: list[int]) -> tuple[list, dict]:
    """STaR's filter on Stage II samples: keep the traces whose second attempt is correct (i→c and c→c, the
    D⁺_STaR filter of notebook 10); the loss goes on y2, and on y1 too where y1 is correct (Stage II trains both
    attempts; a wrong y1 is context, not a target). Returns (examples, counts of kept traces by kind)."""
    from scorelib.sft import d_star, pair_examples

    kept = d_star(traces, plus=True)
    fixes = [p for p in kept if p.kind == "i2c"]
    keeps = [p for p in kept if p.kind == "c2c"]
    examples = (pair_examples(tokenizer, protocol, problems, fixes, stop_ids, train_turn1=False)
                + pair_examples(tokenizer, protocol, problems, keeps, stop_ids, train_turn1=True))
    return examples, dict(sampled=len(traces), kept=len(kept), fixes=len(fixes), keeps=len(keeps))


def star_stage2(policy, tokenizer, task, problems: list, s: rl_settings.RLSettings, seed: int, rounds: int,
                epochs: float, lr: float, star_batch_size: int, checkpoint_dir: str | Path, gen_batch_size: int = 512,
                progress: bool = False,
                score_fn=None) -> tuple[list[dict], int]:
    """STaR in place of REINFORCE in Stage II, trained in place on ``policy`` (the Stage I model).

    The steps of a Stage II run are cut into ``rounds`` consecutive blocks; in each round the current model samples
    k two-turn traces (at s.temperature) of every problem the block's steps draw (``rl.step_problems``: the same
    problems and the same number of sampled rows as REINFORCE's Stage II, so the data budget is equal), the traces
    are filtered (``star_examples``) and the model is fine-tuned on them for ``epochs`` (``training.train_masked_lm``,
    notebook 10's SFT loop, which resumes from checkpoint_dir/<round key>/). With ``score_fn`` (e.g. greedy
    validation reward) the start and every round are candidates and the best is loaded at the end (ties: earlier);
    without it the last round is kept. Returns (one dict per round, the kept candidate: 0 = the start, r = round r,
    its selection score or NaN)."""
    from scorelib.results import digest
    from scorelib.rollout import stop_token_ids
    from scorelib.sft import collect_traces, epoch_steps
    from scorelib.training import train_masked_lm

    if rounds < 1 or rounds > s.steps:
        raise ValueError(f"rounds must be in [1, steps = {s.steps}], got {rounds}")
    bounds = np.linspace(0, s.steps, rounds + 1).round().astype(int)
    stop = stop_token_ids(policy, tokenizer)
    trainable = [(n, p) for n, p in policy.named_parameters() if p.requires_grad]
    snapshot = lambda: {n: p.detach().clone() for n, p in trainable}  # noqa: E731
    scores = [float(score_fn(policy))] if score_fn is not None else []
    best, kept = snapshot() if score_fn is not None else None, 0
    info = []
    for r in range(rounds):
        block = [problems[i] for step in range(bounds[r], bounds[r + 1])
                 for i in rl.step_problems(len(problems), s, seed, step)]
        key = digest(evaluate.model_fingerprint(policy), asdict(s), seed, r, rounds, epochs, lr, star_batch_size)[:12]
        traces = collect_traces(policy, tokenizer, block, task.protocol, task.reward, k=s.k, temperature=s.temperature,
                                max_new_tokens=s.max_new_tokens, batch_size=gen_batch_size, seed=seed * 1000 + r,
                                progress=progress)
        examples, counts = star_examples(tokenizer, task.protocol, block, traces, stop)
        steps = epoch_steps(len(examples), star_batch_size, epochs) if examples else 0
        if examples:  # no correct second attempt at all: nothing to learn this round
            train_masked_lm(policy, examples, steps, star_batch_size, lr, tokenizer.pad_token_id,
                            warmup=max(1, steps // 10), seed=seed * 1000 + r, log_every=max(1, steps // 10),
                            progress=progress, desc="star", checkpoint_dir=Path(checkpoint_dir) / f"round{r + 1}-{key}")
        policy.eval()
        row = dict(round=r + 1, steps_from=int(bounds[r]), steps_to=int(bounds[r + 1]), **counts, sft_steps=steps,
                   train_acc_t1=100 * float(np.mean([t.c1 for t in traces])),
                   train_acc_t2=100 * float(np.mean([t.c2 for t in traces])))
        if score_fn is not None:
            scores.append(float(score_fn(policy)))
            row["selection_score"] = scores[-1]
            if scores[-1] > max(scores[:-1]):
                best, kept = snapshot(), r + 1
        info.append(row)
    if score_fn is None:
        return info, rounds, math.nan
    params = dict(trainable)
    with torch.no_grad():
        for n, v in best.items():
            params[n].copy_(v)
    return info, kept, scores[kept]


# ------------------------------------------------------------------ one row on one seed
def train_row(ab: Ablation, base, tokenizer, task, train: list, seed: int, run_dir: Path, stage1_model: Path,
              cfg, lora, tiny: bool, select_problems: list | None):
    """Train one ablation row on one seed (run seed 10 x seed, as SCoRe's Stage II). Returns (policy, training log,
    selection row). REINFORCE rows go through stages.train_stage (checkpoints, resumption, selection as notebook 30);
    the STaR row through star_stage2, its model saved as run_dir/models/seed<N>/star."""
    from scorelib.models import save_model

    rl_seed = seed * 10
    init = stage1_model if ab.start == "stage1" else None
    name = f"seed{seed}/{ab.row}"
    if ab.method == "reinforce":
        pool = None
        if ab.settings.turn1_source == "pool":
            s1 = stages.start_policy(base, stage1_model, *lora, device=cfg.device, dtype=cfg.dtype)[0].eval()
            pool = y1_pool(s1, tokenizer, task, train, ab.settings, rl_seed, cfg.gen_batch_size,
                           Path(run_dir) / "cache")
            del s1
        policy, log, best, best_reward = stages.train_stage(
            base, tokenizer, task, train, ab.settings, rl_seed, run_dir, name, init_dir=init, lora=lora,
            select_window=cfg.select_window, tiny=tiny, device=cfg.device, dtype=cfg.dtype, progress=cfg.progress,
            select_problems=select_problems, gen_batch_size=cfg.gen_batch_size, y1_pool=pool)
        return policy, log, stages.selected_row(seed, log, best, best_reward, row=ab.row)
    policy, _ = stages.start_policy(base, init, *lora, device=cfg.device, dtype=cfg.dtype)
    score_fn = None
    if select_problems is not None:
        def score_fn(model) -> float:
            e = evaluate.evaluate_all(model, tokenizer, task, select_problems, [0.0], ab.settings.max_new_tokens,
                                      cfg.gen_batch_size, n_boot=10, seed=rl_seed, cache_dir=Path(run_dir) / "cache")[0.0]
            return stages.objective_reward(ab.settings, e.summary)
    info, kept, kept_score = star_stage2(policy, tokenizer, task, train, ab.settings, rl_seed, cfg.star_rounds,
                                         cfg.star_epochs, cfg.star_lr, cfg.star_batch_size,
                                         Path(run_dir) / "checkpoints" / name, gen_batch_size=cfg.gen_batch_size,
                                         progress=cfg.progress, score_fn=score_fn)
    save_model(policy, tokenizer, Path(run_dir) / "models" / name, tiny=tiny)
    return policy, info, dict(seed=seed, row=ab.row, checkpoint=f"round{kept}" if kept else "start",
                              training_reward=round(kept_score, 3))


# ------------------------------------------------------------------ Table 4 (claim C7: scorelib.claims)
def difference(evals_a: list, evals_b: list, temperature: float, n_boot: int, seed: int = 0) -> dict:
    """Δ of row a minus Δ of row b (e.g. an ablation minus SCoRe) at one temperature, pooled over each row's seeds,
    with the paired cluster-bootstrap CI of metrics.delta_difference (same held-out problems)."""
    return M.delta_difference([e[temperature].c1 for e in evals_a], [e[temperature].c2 for e in evals_a],
                              [e[temperature].c1 for e in evals_b], [e[temperature].c2 for e in evals_b],
                              n_boot=n_boot, seed=seed)


def changes_table(rows: dict, ref: rl_settings.RLSettings):
    """One line per row: what it changes from SCoRe's Stage II (settings, start, method) and its data budget."""
    import pandas as pd

    out = {}
    for r, ab in rows.items():
        ch = changes(ab, ref)
        out[ab.label] = {"changes from SCoRe's Stage II": "; ".join(f"{k}: {a} → {b}" for k, (a, b) in ch.items()),
                         "starts from": "base model" if ab.start == "base" else "Stage I (notebook 20)",
                         "sampled rows": sampled_rows(ab.settings)}
    df = pd.DataFrame(out).T
    df.index.name = "row"
    return df


def same_point_estimates(ours: dict, stored: dict, keys=M.METRIC_KEYS, tol: float = 1e-9) -> None:
    """ValueError unless two metric rows agree on every key (notebook 30's stored SCoRe row against its models'
    outcomes as evaluated here: they must be the same evaluation)."""
    bad = {k: (stored.get(k), ours.get(k)) for k in keys if not abs(float(stored.get(k, math.nan)) - ours[k]) <= tol}
    if bad:
        raise ValueError(f"notebook 30's stored SCoRe row and its models evaluated here disagree (stored, here): {bad}")


def table4(rows: dict, diffs: dict, suffix: str = ""):
    """The Table 4 analogue: SCoRe and each row (pooled metrics with 95% CIs; fix own), each beside the paper's row
    where it has one, and the difference of each row's Δ from SCoRe's with its CI."""
    shown, diff_col = {}, {}
    for r, row in rows.items():
        name = "SCoRe" if r == "SCoRe" else LABELS.get(r, r)
        shown[f"{name}{suffix}"] = row
        diff_col[f"{name}{suffix}"] = (f"{diffs[r]['diff']:+.1f} [{diffs[r]['diff_lo']:+.1f}, {diffs[r]['diff_hi']:+.1f}]"
                                       if r in diffs else "")
        if r in PAPER_TABLE4:
            shown[f"{name} (paper, MATH)"] = PAPER_TABLE4[r]
            diff_col[f"{name} (paper, MATH)"] = ("" if r == "SCoRe" else
                                                 f"{PAPER_TABLE4[r]['delta'] - PAPER_TABLE4['SCoRe']['delta']:+.1f}")
    df = M.format_table(shown, keys=(*M.METRIC_KEYS, "fix_own"))
    df["Δ − SCoRe's Δ"] = [diff_col[k] for k in df.index]
    return df


def stage1_histories(stage1_dir: Path, seeds) -> dict:
    """Notebook 20's training logs of multi-turn RL and Stage I for these seeds (for Fig. 8 beside Fig. 5); a
    method whose log is missing for some seed is left out."""
    out = {}
    for name, key in (("Multi-turn RL (notebook 20)", "multi_turn"), ("Stage I (notebook 20)", "stage1")):
        paths = [Path(stage1_dir) / f"history_seed{s}_{key}.jsonl" for s in seeds]
        if all(p.exists() for p in paths):
            out[name] = [read_jsonl(p) for p in paths]
    return out
