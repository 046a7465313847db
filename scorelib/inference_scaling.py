"""Notebook 50's steps (paper §3.5, Fig. 1 right, claim C8; Fig. 7): the runs it reads, the models it samples, the
tables it writes and its metrics.json.

One function per step of the notebook, so that its cells read as the paper and the tests can call each step. The
method itself (the majority vote, what a budget costs, sampling at the largest budget, the tables) is
``scorelib.scaling``; claim C8 is ``claims.claim_c8``.

- SCoRe is notebook 30's run ``score_run``: each seed's selected Stage II model of its last round (required: checked
  before any compute).
- Pair-SFT (Fig. 7 only) is notebook 10's run ``sft_run``: each seed's Pair-SFT on D_SFT (optional: a row marked
  missing, with the command that makes it, when the run or a seed's model is absent).
- The base model is notebook 00's ``base_run`` (or ``model``), shared by every seed and sampled once with
  ``eval_seed``; when each seed has its own base (``base_run`` holds '{seed}'), each is sampled with its seed.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from scorelib import scaling
from scorelib.from_base import BaseSetup, open_from_base
from scorelib.models import load_model
from scorelib.protocol import describe as describe_protocol
from scorelib.results import require_run, resolve_model, run_dir

NOTEBOOK = "50_inference_scaling"
PAIR_SFT_CHECKPOINT = "Pair-SFT_D_SFT"  # notebook 10's folder name (sft.checkpoint_name) of Pair-SFT on D_SFT


# --------------------------------------------------------------------------- upstream runs
def _differs(saved: dict, cfg, keys) -> list[str]:
    defaults = {"eval_split": "test"}  # what a run saved before the key existed used
    return [k for k in keys if saved.get(k, defaults.get(k)) != getattr(cfg, k)]


def _is_model(path: Path) -> bool:
    """A saved model folder: full weights (config.json) or a LoRA adapter (adapter_config.json)."""
    return any((Path(path) / f).exists() for f in ("config.json", "adapter_config.json"))


def _results_flag(cfg) -> str:
    return "" if str(cfg.results_dir) == "results" else f" --results {cfg.results_dir}"


def score_models(cfg, score_dir: Path) -> tuple[dict[int, Path], list[str]]:
    """(seed -> SCoRe model folder, notes) from notebook 30's run: each seed's selected Stage II model of its last
    round (``models/seed<N>/round<rounds>_stage2``). Raises ConfigError when that run was made for another task,
    model or base, and MissingInput naming the command that makes the missing seeds."""
    from scorelib.config import ConfigError
    from scorelib.results import MissingInput, read_json

    saved, name = read_json(Path(score_dir) / "config.json"), Path(score_dir).name
    differs = _differs(saved, cfg, ("task", "model", "base_run"))
    if differs:
        raise ConfigError(f"notebook 30's run {name!r} differs from this run in {differs}")
    rounds = int(saved.get("rounds", 1))
    paths = {s: Path(score_dir) / "models" / f"seed{s}" / f"round{rounds}_stage2" for s in cfg.seeds}
    missing = [s for s, p in paths.items() if not _is_model(p)]
    if missing:
        raise MissingInput(f"notebook 30's run {name!r} has no SCoRe model for seeds {missing}: make it with\n"
                           f"    python -m scorelib run 30_score_stage2 -p run_name {name} "
                           f"-p seeds '{list(cfg.seeds)}'" + _results_flag(cfg))
    notes = []
    if _differs(saved, cfg, ("eval_split",)):
        notes.append(f"notebook 30's run was evaluated on the {saved.get('eval_split')!r} split, this one on "
                     f"{cfg.eval_split!r}")
    return paths, notes


def pair_sft_models(cfg, sft_dir: Path) -> tuple[dict[int, Path], str]:
    """(seed -> Pair-SFT (D_SFT) model folder, note) from notebook 10's run (``checkpoints/seed<N>/Pair-SFT_D_SFT``).
    Never raises: a missing run, a run made for another task, model or base, or missing seeds give no folders and
    a note saying why and which command makes them (the notebook marks the row missing)."""
    from scorelib.results import read_json

    name = Path(sft_dir).name
    cmd = f"python -m scorelib run 10_sft_baselines -p run_name {name} -p seeds '{list(cfg.seeds)}'"
    cmd += _results_flag(cfg)
    if not (Path(sft_dir) / "config.json").exists():
        return {}, f"no notebook-10 run {name!r} (make it with: {cmd})"
    differs = _differs(read_json(Path(sft_dir) / "config.json"), cfg, ("task", "model", "base_run"))
    if differs:
        return {}, f"notebook 10's run {name!r} differs from this run in {differs}"
    paths = {s: Path(sft_dir) / "checkpoints" / f"seed{s}" / PAIR_SFT_CHECKPOINT for s in cfg.seeds}
    missing = [s for s, p in paths.items() if not _is_model(p)]
    if missing:
        return {}, f"notebook 10's run {name!r} has no Pair-SFT model for seeds {missing} ({cmd})"
    return paths, ""


# --------------------------------------------------------------------------- setup
@dataclass
class Setup(BaseSetup):
    """What every step of notebook 50 needs: ``BaseSetup`` (cfg: config.ScalingConfig), the SCoRe (and Pair-SFT)
    model of each seed, and how answers vote together."""

    score_dir: Path
    score_paths: dict  # seed -> notebook 30's Stage II model
    sft_paths: dict  # seed -> notebook 10's Pair-SFT model; {} when missing
    sft_note: str  # why Pair-SFT is missing ("" when present)
    notes: list = field(default_factory=list)  # about the upstream runs (e.g. another split)

    @property
    def rule(self) -> tuple:
        """(form, equivalent): how answers vote together, as the task's grader compares them."""
        return scaling.vote_rule(self.task.name)

    @property
    def protocol(self) -> str:
        return describe_protocol(self.cfg.eval_split, self.cfg.seeds)

    @property
    def seq_problems(self) -> list:
        """Fig. 7's problems: the first ``n_seq_problems`` held-out ones."""
        return self.held_out[: self.cfg.n_seq_problems]

    def describe(self) -> str:
        return "\n".join([f"{self.base_described}; SCoRe from {self.score_dir}; {self.task.describe}; "
                          f"{len(self.held_out)} held-out problems ({self.protocol}); base sampled with seed "
                          f"{self.cfg.eval_seed}", *self.notes])

    def load(self, path: Path):
        """One seed's policy (SCoRe or Pair-SFT), on this run's device and dtype."""
        return load_model(path, device=self.cfg.device, dtype=self.cfg.dtype)[0]


def setup(cfg) -> Setup:
    """Check the upstream runs (notebook 30's SCoRe models: required; notebook 10's Pair-SFT: optional) before any
    compute, then open this run's folder and load the base model and the held-out problems."""
    model_ref = resolve_model(cfg)  # cfg.model, else the base model of notebook 00's run base_run
    score_dir = require_run(cfg.results_dir, "30_score_stage2", cfg.score_run, "models")
    score_paths, notes = score_models(cfg, score_dir)
    sft_paths, sft_note = pair_sft_models(cfg, run_dir(cfg.results_dir, "10_sft_baselines", cfg.sft_run))
    return Setup(**open_from_base(NOTEBOOK, cfg, model_ref), score_dir=score_dir, score_paths=score_paths,
                 sft_paths=sft_paths, sft_note=sft_note, notes=notes)


# --------------------------------------------------------------------------- Fig. 1 (right)
def sample_all(su: Setup) -> dict[str, list]:
    """Model -> one ``scaling.BudgetSamples`` per seed at the largest budget: the base once (seed ``eval_seed``;
    once a seed with one base a seed, ``BaseSetup.base_row``), SCoRe once per seed (its own model and seed). Kept
    under the run's cache/ by their inputs."""
    cfg = su.cfg
    top = max(cfg.budgets)
    gen = dict(temperature=cfg.sample_temperature, max_new_tokens=cfg.max_new_tokens,
               batch_size=cfg.gen_batch_size, progress=cfg.progress, cache_dir=su.run.path("cache"))
    samples = {"Base": [scaling.sample_budget(base, su.tokenizer, su.task, su.held_out, top, seed=seed, **gen)
                        for seed, base in su.base_row(cfg.eval_seed)], "SCoRe": []}
    for s in cfg.seeds:
        policy = su.load(su.score_paths[s])
        samples["SCoRe"].append(scaling.sample_budget(policy, su.tokenizer, su.task, su.held_out, top, seed=s,
                                                      **gen))
        del policy
    return samples


def sampling_seconds(samples: dict[str, list], seeds) -> dict[str, float]:
    """Seconds spent sampling and grading: the base's, then SCoRe's per seed."""
    return {"Base": sum(x.seconds for x in samples["Base"]),
            **{f"SCoRe, seed {s}": x.seconds for s, x in zip(seeds, samples["SCoRe"])}}


def seconds_table(seconds: dict[str, float]) -> pd.DataFrame:
    return pd.Series(seconds, name="seconds").rename_axis("model").round(1).to_frame()


def budget_tables(su: Setup, samples: dict[str, list]) -> dict[str, pd.DataFrame]:
    """Model -> ``scaling.scaling_table`` (one row per budget, pooled over seeds), each written to
    tables/scaling_<model>."""
    cfg, out = su.cfg, {}
    for name, per_seed in samples.items():
        votes = [scaling.budget_votes(x, cfg.budgets, su.rule) for x in per_seed]
        out[name] = scaling.scaling_table(votes, cfg.budgets, cfg.n_boot, cfg.eval_seed)
        su.run.table(f"scaling_{name.lower()}", out[name].round(2))
    return out


# --------------------------------------------------------------------------- Fig. 7
@dataclass
class Attempts:
    """Fig. 7's series: model -> one ``scaling.AttemptOutcomes`` per seed, and the models marked missing (why)."""

    outcomes: dict
    missing: dict
    source: str  # where Pair-SFT came from, or why it is missing


def sequential_attempts(su: Setup) -> Attempts:
    """``n_seq_attempts`` greedy attempts in a row on Fig. 7's problems, for the base (seed ``eval_seed``), then
    Pair-SFT and SCoRe per seed; Pair-SFT is marked missing when notebook 10's models are absent."""
    cfg = su.cfg
    att = dict(max_new_tokens=cfg.max_new_tokens, batch_size=cfg.gen_batch_size, progress=cfg.progress,
               cache_dir=su.run.path("cache"))
    outcomes = {"Base": [scaling.attempt_outcomes(base, su.tokenizer, su.task, su.seq_problems, cfg.n_seq_attempts,
                                                  seed=seed, **att)
                         for seed, base in su.base_row(cfg.eval_seed)]}
    for name, paths in (("Pair-SFT", su.sft_paths), ("SCoRe", su.score_paths)):
        outcomes[name] = []
        for s in cfg.seeds if paths else []:
            policy = su.load(paths[s])
            outcomes[name].append(scaling.attempt_outcomes(policy, su.tokenizer, su.task, su.seq_problems,
                                                           cfg.n_seq_attempts, seed=s, **att))
            del policy
    missing = {} if su.sft_paths else {"Pair-SFT": su.sft_note}
    source = su.sft_note or f"notebook 10's run {cfg.sft_run!r}, seeds {list(cfg.seeds)}"
    return Attempts({name: o for name, o in outcomes.items() if o}, missing, source)


def attempt_tables(su: Setup, attempts: Attempts) -> dict[str, pd.DataFrame]:
    """Model -> ``scaling.attempts_table`` (one row per attempt, pooled over seeds), each written to
    tables/fig7_<model>."""
    out = {}
    for name, o in attempts.outcomes.items():
        out[name] = scaling.attempts_table(o, su.cfg.n_boot, su.cfg.eval_seed)
        su.run.table(f"fig7_{name.lower().replace('-', '_')}", out[name].round(2))
    return out


# --------------------------------------------------------------------------- metrics.json
def summary(su: Setup, curves: dict, c8: dict, attempts: Attempts, per_attempt: dict, seconds: dict) -> dict:
    """What metrics.json holds: the curves and claim C8, Fig. 7's rows, what is missing and why, the settings."""
    cfg = su.cfg
    return dict(scaling=scaling.rows(curves), claims=dict(C8=c8),
                sequential={name: t.reset_index().to_dict("records") for name, t in per_attempt.items()},
                missing=sorted(attempts.missing), notes=su.notes + ([su.sft_note] if su.sft_note else []),
                seeds=list(cfg.seeds), base_seed=cfg.eval_seed, budgets=list(cfg.budgets), n=len(su.held_out),
                n_seq=len(su.seq_problems), sampling_seconds=seconds, protocol=su.protocol)
