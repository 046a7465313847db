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

The notebook's steps (``setup``, ``run_all``, the tables, ``summary``) follow the definitions, one function per
step, so that its cells read as the paper and the tests can call each step.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import NamedTuple

import pandas as pd

from scorelib import metrics as M
from scorelib import evaluate, paper, plots, rl_settings, stage1, stages
from scorelib.from_base import open_from_base
from scorelib.results import resolve_model
from scorelib.tables import temperature_label

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


# ------------------------------------------------------------------ notebook 45's steps
NOTEBOOK = "45_three_turn"
BASE_ROW = "Base model"


@dataclass
class Setup(stage1.Setup):
    """What every step of notebook 45 needs: notebook 20's (``stage1.Setup``; cfg: config.ThreeTurnConfig) and
    each stage's settings (``stage_settings``)."""

    stage_settings: dict  # stage key -> rl_settings.RLSettings

    def evaluate(self, policy, seed: int) -> dict:
        """temperature -> AttemptsEval: three attempts of ``policy`` on the held-out problems (each attempt sees
        the ones before), kept under the run's cache/ by their inputs."""
        cfg = self.cfg
        return evaluate.evaluate_attempts_all(
            policy, self.tokenizer, self.task, self.held_out, seed=seed, n_turns=N_TURNS,
            temperatures=cfg.temperatures, max_new_tokens=cfg.max_new_tokens, batch_size=cfg.gen_batch_size,
            n_boot=cfg.n_boot, progress=cfg.progress, cache_dir=self.run.dir / "cache")

    def settings_table(self) -> pd.DataFrame:
        """Written as tables/stage_settings: each stage's rewards, KL weights and budget."""
        return self.run.table("stage_settings", settings_table(self.stage_settings))


def setup(cfg) -> Setup:
    """Check the stages' settings and find the base model (a missing base run fails here, before any compute),
    then open this run's folder and load the base model and the held-out problems."""
    model_ref = resolve_model(cfg)
    settings = stage_settings(cfg)
    opened = open_from_base(NOTEBOOK, cfg, model_ref)
    return Setup(**opened, select_on=stages.selection_problems(opened["task"], cfg), stage_settings=settings)


class Runs(NamedTuple):
    evals: dict  # row label (the base, then each stage) -> one dict per seed: temperature -> AttemptsEval
    logs: dict  # stage key -> one training log per seed
    selected: list  # the selected-checkpoints lines, seed by seed, stage by stage


def train_stages(su: Setup, seed: int) -> dict[str, dict]:
    """Stage 1(a) from the base, 1(b) from the selected 1(a) model (with it as the KL reference), Stage 2 from the
    selected 1(b) model (reference: the base), each through ``stages.train_stage`` (checkpoints, resumption,
    selection; models under <run>/models/seed<seed>/<stage>, RL seed ``stage_seed``). Each stage's selected model is
    evaluated on the held-out problems (``Setup.evaluate``) before the next stage starts. Returns stage key ->
    dict(log, eval: temperature -> AttemptsEval, selected: a ``stages.selected_row``)."""
    cfg, run_dir = su.cfg, su.run.dir
    train = su.task.train_problems(cfg.n_train, seed=seed)
    out, init, reference = {}, None, None
    for i, (key, label, _) in enumerate(STAGES):
        policy, log, best, best_reward = stages.train_stage(
            su.base_for(seed), su.tokenizer, su.task, train, su.stage_settings[key], stage_seed(seed, i), run_dir,
            f"seed{seed}/{key}", init_dir=init, lora=su.lora, select_window=cfg.select_window, tiny=su.tiny,
            device=cfg.device, dtype=cfg.dtype, progress=cfg.progress, select_problems=su.select_on,
            gen_batch_size=cfg.gen_batch_size, reference=reference)
        out[key] = dict(log=log, eval=su.evaluate(policy, seed),
                        selected=stages.selected_row(seed, log, best, best_reward, stage=label))
        init = Path(run_dir) / "models" / f"seed{seed}" / key
        reference = policy if key == "stage1a" else None  # 1(b) is held near the 1(a) model
    return out


def run_all(su: Setup) -> Runs:
    """The base evaluated once (greedy attempts do not depend on the seed; with the first seed's sampling seed), or
    once a seed when each seed has its own base, then for every seed the three stages (``train_stages``), their logs
    saved as history_seed<seed>_<stage>.jsonl."""
    evals = {BASE_ROW: [su.evaluate(base, s) for s, base in su.base_row(su.cfg.seeds[0])],
             **{label: [] for _, label, _ in STAGES}}
    logs, selected = {key: [] for key, _, _ in STAGES}, []
    for s in su.cfg.seeds:
        done = train_stages(su, s)
        for key, label, _ in STAGES:
            su.run.history(done[key]["log"], f"history_seed{s}_{key}.jsonl")
            logs[key].append(done[key]["log"])
            evals[label].append(done[key]["eval"])
            selected.append(done[key]["selected"])
        del done
    return Runs(evals, logs, selected)


def selected_table(su: Setup, runs: Runs) -> pd.DataFrame:
    """Written as tables/selected_checkpoints: the checkpoint each stage kept on each seed."""
    return su.run.table("selected_checkpoints", pd.DataFrame(runs.selected).set_index(["seed", "stage"]).round(3))


def training_curves(su: Setup, runs: Runs) -> pd.DataFrame:
    """Written as tables/training_curves: each stage's training accuracy per attempt and reward over its steps
    (``stages.curves``: mean over seeds, smoothed)."""
    curve = stages.curves({label: runs.logs[key] for key, label, _ in STAGES},
                          keys=("acc_t1", "acc_t2", "acc_t3", "reward"))
    return su.run.table("training_curves", curve.round(2))


class Rows(NamedTuple):
    by_temperature: dict  # temperature -> {row label: pooled three-attempt metrics with 95% CIs}
    tables: dict  # temperature -> the table beside the paper's rows


def attempt_rows(su: Setup, runs: Runs) -> Rows:
    """Every row pooled over seeds (``evaluate.pooled_attempts``) at each evaluation temperature, with its table
    beside the paper's rows (``table``), written as tables/three_turn (the first temperature) and
    tables/three_turn_<label> (the others)."""
    cfg, first = su.cfg, su.cfg.temperatures[0]
    by_t, tables = {}, {}
    for t in cfg.temperatures:
        by_t[t] = {name: evaluate.pooled_attempts(e, t, cfg.n_boot, cfg.eval_seed) for name, e in runs.evals.items()}
        how = temperature_label(t)
        name = "three_turn" if t == first else f"three_turn_{how.replace('=', '')}"
        tables[t] = su.run.table(name, table(by_t[t], cfg.task, how))
    return Rows(by_t, tables)


def transitions(su: Setup, rows: dict) -> pd.DataFrame:
    """Written as tables/three_turn_transitions: how each attempt changed the one before (``transitions_table``)."""
    return su.run.table("three_turn_transitions", transitions_table(rows))


def paper_rows() -> dict:
    """Stage label -> the paper's row with its consecutive differences (``paper_row``)."""
    return {label: paper_row(label) for label in paper.THREE_TURN}


def accuracy_figure(su: Setup, rows: dict) -> Path:
    """Acc@t1/t2/t3 of every row beside the paper's, written as figures/three_turn_accuracy."""
    return su.run.figure("three_turn_accuracy", plots.three_turn_bars(rows, paper_rows()))


TRANSCRIPT_PATTERNS = ((False, True, True), (False, False, True))  # i→c→c and i→i→c


def transcripts(su: Setup, runs: Runs) -> str:
    """Stage 2's transcripts (first seed, first evaluation temperature) of problems fixed at the second attempt
    and kept, and fixed only at the third, written as transcripts.md."""
    first = runs.evals["Stage 2"][0][su.cfg.temperatures[0]]
    text = "\n".join(first.transcripts_markdown(p, su.cfg.n_transcripts) for p in TRANSCRIPT_PATTERNS)
    text = text or "no such problems\n"
    su.run.text("transcripts.md", text)
    return text


def summary(su: Setup, rows: Rows, runs: Runs) -> dict:
    """metrics.json: the rows (first evaluation temperature, and by temperature), the paper's rows, the selected
    checkpoints, each stage's settings as applied, one sentence per row and the protocol."""
    first = rows.by_temperature[su.cfg.temperatures[0]]
    return dict(rows=first, rows_by_temperature={str(t): r for t, r in rows.by_temperature.items()},
                paper=paper_rows(), seeds=list(su.cfg.seeds), selected=runs.selected,
                settings=settings_record(su.stage_settings), summary=summary_lines(first), protocol=su.protocol)
