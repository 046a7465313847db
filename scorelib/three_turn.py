"""Notebook 45: SCoRe with three attempts (the ICLR version's appendix A.1; digest section 3.6), as settings of the
one trainer (``rl_settings.objective``'s ``three_turn_*`` objectives, ``n_turns = 3``).

The paper's description is one line per stage; how this suite reads it:

* **Stage 1(a)** ("trains turn 2 with turn 1 held near the base"): Stage I on a three-turn rollout. Turn 2 is
  rewarded (RLOO of r2); turn 1 carries the strong KL beta2 against the base; turns 2 and 3 carry the default KL
  beta1 (the small KL that applies to every generated token in Stage I); turn 3 gets no reward.
* **Stage 1(b)** ("trains turn 3 with turns 1-2 held near the 1(a) model"), from the 1(a) model: turn 3 rewarded
  (RLOO of r3); beta2 on turns 1 and 2, beta1 on turn 3, all against **one reference, the 1(a) model** (the text names
  no other reference for the stage, and per-turn references would need a second frozen model in the update).
* **Stage 2** ("trains all turns with a bonus on each attempt's improvement over the previous one"), from the 1(b)
  model: turn 1 rewarded with r1, turn t >= 2 with r_t + alpha * (r_t - r_{t-1}), beta1 on every turn (turn 1:
  ``beta_turn1``, as notebook 30's Stage II), against the base, as the two-turn Stage II.

Every stage otherwise takes notebook 30's recipe (steps, batch, k, lr, selection), with the turn budget of its
two-turn counterpart: Stages 1(a) and 1(b) one joint loss, as notebook 20's Stage I (with a budget per turn, a turn
held only by its KL would get its own Adam, which divides out the β that makes the KL strong or weak), Stage 2 the
config's ``turn_budget`` (notebook 30's ``per_turn``).
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd

from scorelib import metrics as M
from scorelib import evaluate, paper, rl_settings, stages

# (key, label, objective): the stages in the order they run, each from the one before (the first from the base).
STAGES = (("stage1a", "Stage 1(a)", "three_turn_stage1a"), ("stage1b", "Stage 1(b)", "three_turn_stage1b"),
          ("stage2", "Stage 2", "three_turn_stage2"))
N_TURNS = 3
KEYS = ("acc_t1", "acc_t2", "acc_t3", "delta_t1_t2", "delta_t2_t3", "delta_t1_t3")
COLUMNS = {"acc_t1": "Accuracy@t1", "acc_t2": "Accuracy@t2", "acc_t3": "Accuracy@t3", "delta_t1_t2": "Δ(t1,t2)",
           "delta_t2_t3": "Δ(t2,t3)", "delta_t1_t3": "Δ(t1,t3)"}
SETTING_KEYS = ("n_turns", "reward_turn1", "reward_turn2", "reward_turn3", "alpha", "beta_turn1", "beta_turn2",
                "beta_turn3", "steps", "problems_per_step", "k", "lr", "turn_budget")


def stage_settings(cfg) -> dict[str, rl_settings.RLSettings]:
    """Stage key -> its RL settings, from the notebook's config (``stages.settings``: notebook 30's recipe; Stages
    1(a) and 1(b) with one joint loss, as notebook 20's Stage I)."""
    out = {key: stages.settings(objective, cfg) for key, _, objective in STAGES}
    for key in ("stage1a", "stage1b"):
        out[key] = replace(out[key], turn_budget="joint")
    for s in out.values():
        rl_settings.check_settings(s)
    return out


def settings_table(settings: dict[str, rl_settings.RLSettings]) -> pd.DataFrame:
    """What each stage trains: rewards, KL weights and budget, one column per stage."""
    labels = {key: label for key, label, _ in STAGES}
    df = pd.DataFrame({labels[k]: {f: rl_settings.applied(s)[f] for f in SETTING_KEYS} for k, s in settings.items()})
    df.index.name = "setting"
    return df


def settings_record(settings: dict[str, rl_settings.RLSettings]) -> dict[str, dict]:
    """Stage label -> its settings as the trainer applies them (``rl_settings.applied``), for metrics.json."""
    labels = {key: label for key, label, _ in STAGES}
    return {labels[k]: rl_settings.applied(s) for k, s in settings.items()}


def stage_seed(seed: int, index: int) -> int:
    """The RL run seed of stage `index` (0, 1, 2) of reporting seed `seed`: distinct for every stage and seed."""
    return 10 * seed + index


def train_stages(base, tokenizer, task, train: list, settings: dict[str, rl_settings.RLSettings], seed: int,
                 run_dir: Path, lora, tiny: bool, select_on, held_out: list, ev: dict, cfg) -> dict[str, dict]:
    """Stage 1(a) from the base, 1(b) from the selected 1(a) model (with it as the KL reference), Stage 2 from the
    selected 1(b) model (reference: the base), each through ``stages.train_stage`` (checkpoints, resumption,
    selection; models under run_dir/models/seed<seed>/<stage>). Each stage's selected model is evaluated on
    ``held_out`` (``evaluate.evaluate_attempts_all`` with the keywords ``ev``) before the next stage starts. Returns
    stage key -> dict(log, eval: temperature -> AttemptsEval, selected: a ``stages.selected_row``)."""
    out, init, reference = {}, None, None
    for i, (key, label, _) in enumerate(STAGES):
        policy, log, best, best_reward = stages.train_stage(
            base, tokenizer, task, train, settings[key], stage_seed(seed, i), run_dir, f"seed{seed}/{key}",
            init_dir=init, lora=lora, select_window=cfg.select_window, tiny=tiny, device=cfg.device, dtype=cfg.dtype,
            progress=cfg.progress, select_problems=select_on, gen_batch_size=cfg.gen_batch_size,
            reference=reference)
        evals = evaluate.evaluate_attempts_all(policy, tokenizer, task, held_out, seed=seed, **ev)
        out[key] = dict(log=log, eval=evals, selected=stages.selected_row(seed, log, best, best_reward, stage=label))
        init = Path(run_dir) / "models" / f"seed{seed}" / key
        reference = policy if key == "stage1a" else None  # 1(b) is held near the 1(a) model
    return out


def paper_row(label: str) -> dict:
    """The paper's row of a stage with its consecutive differences (points, rounded as the paper's accuracies)."""
    r = dict(paper.THREE_TURN[label])
    r.update(delta_t1_t2=round(r["acc_t2"] - r["acc_t1"], 1), delta_t2_t3=round(r["acc_t3"] - r["acc_t2"], 1),
             delta_t1_t3=round(r["acc_t3"] - r["acc_t1"], 1))
    return r


def table(rows: dict[str, dict], task: str, how: str) -> pd.DataFrame:
    """Ours (``evaluate.pooled_attempts`` rows, 95% CIs; labelled with the task, ``how`` they were evaluated, e.g.
    'greedy', and their number of seeds) with each stage's paper row after it, as strings."""
    shown = {}
    for label, row in rows.items():
        shown[f"{label} ({task}, {how}, {row['seeds']} seed(s))"] = row
        if label in paper.THREE_TURN:
            shown[f"{label} (paper, Gemma-2 2B)"] = paper_row(label)
    return M.format_table(shown, keys=KEYS).rename(columns=COLUMNS)


def transitions_table(rows: dict[str, dict]) -> pd.DataFrame:
    """Ours only: how each attempt changed the one before (Δi→c, Δc→i, different answers; % of problems)."""
    out = {}
    for label, r in rows.items():
        out[label] = {f"{kind} t{a}→t{a + 1}": r[f"{key}_t{a}_t{a + 1}"] for a in (1, 2)
                      for kind, key in (("Δi→c", "delta_i2c"), ("Δc→i", "delta_c2i"), ("different", "different"))}
    df = pd.DataFrame(out).T.round(1)
    df.index.name = "model"
    return df


def summary_lines(rows: dict[str, dict]) -> list[str]:
    """One sentence per row: its consecutive Δs, each marked where its 95% CI excludes 0."""
    def d(r, key):
        lo, hi = r[f"{key}_lo"], r[f"{key}_hi"]
        sign = " (CI above 0)" if lo > 0 else " (CI below 0)" if hi < 0 else ""
        return f"{r[key]:+.1f} [{lo:+.1f}, {hi:+.1f}]{sign}"

    return [f"{label}: Acc@t1/t2/t3 {r['acc_t1']:.1f}/{r['acc_t2']:.1f}/{r['acc_t3']:.1f}; Δ(t1,t2) "
            f"{d(r, 'delta_t1_t2')}, Δ(t2,t3) {d(r, 'delta_t2_t3')}" for label, r in rows.items()]
