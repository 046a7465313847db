"""Run folders: every file a notebook writes, under <results>/<notebook>/<run_name>/.

The library owns the file names, so later notebooks (and tests) find earlier
outputs without hard-coded paths:

    config.json      resolved config
    manifest.json    versions, seed, git revision, start and end times
    metrics.json     headline metrics (acc_t1, acc_t2, delta, delta_i2c, delta_c2i, ...)
    history.jsonl    per-step training metrics
    tables/NAME.csv, tables/NAME.md
    figures/NAME.png, figures/NAME.pdf
    transcripts.md   example traces
    model/           checkpoints (save_pretrained folders)
    <notebook>.ipynb the executed notebook (written by the runner)
"""
from __future__ import annotations

import json
import math
import platform
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from scorelib import config as config_mod


def project_root(start: Path | None = None) -> Path:
    """The nearest folder above `start` (default: cwd) holding both notebooks/ and scorelib/."""
    here = (start or Path.cwd()).resolve()
    for p in [here, *here.parents]:
        if (p / "notebooks").is_dir() and (p / "scorelib").is_dir():
            return p
    return here


def resolve_results_dir(results_dir: str | Path) -> Path:
    """Absolute results folder; a relative one is taken from the project root."""
    p = Path(results_dir).expanduser()
    return p if p.is_absolute() else project_root() / p


def run_dir(results_dir: str | Path, notebook: str, run_name: str) -> Path:
    return resolve_results_dir(results_dir) / notebook / run_name


class MissingInput(FileNotFoundError):
    """An earlier notebook's output is missing: the message says which notebook to run."""


def require_run(results_dir: str | Path, notebook: str, run_name: str, what: str = "") -> Path:
    """The folder of an earlier run, or a clear error naming the command that makes it."""
    d = run_dir(results_dir, notebook, run_name)
    target = d / what if what else d
    if not target.exists():
        raise MissingInput(
            f"{target} does not exist: run notebook {notebook} first, e.g.\n"
            f"    python -m scorelib run {notebook} -p run_name {run_name}"
            + (f" --results {results_dir}" if str(results_dir) != "results" else ""))
    return d


def _git_revision() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             timeout=5, cwd=project_root())
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _jsonable(x):
    if isinstance(x, float) and math.isnan(x):
        return None
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if hasattr(x, "item"):  # numpy scalars
        return _jsonable(x.item())
    return x


def write_json(path: Path, data) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_jsonable(data), indent=2, sort_keys=False) + "\n")
    return path


@dataclass
class Run:
    """One notebook run's folder and its writers."""

    notebook: str
    dir: Path
    started: float

    @classmethod
    def start(cls, notebook: str, cfg) -> "Run":
        """Make the run folder, write the resolved config and a manifest."""
        d = run_dir(cfg.results_dir, notebook, cfg.run_name)
        d.mkdir(parents=True, exist_ok=True)
        run = cls(notebook, d, time.time())
        write_json(d / "config.json", config_mod.to_dict(cfg))
        run.write_manifest()
        return run

    def write_manifest(self, **extra) -> None:
        import torch
        import transformers

        import scorelib

        info = dict(notebook=self.notebook, started=time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(self.started)),
                    git_revision=_git_revision(), python=platform.python_version(), torch=torch.__version__,
                    transformers=transformers.__version__, scorelib=getattr(scorelib, "__version__", "0"),
                    threads=torch.get_num_threads(), platform=platform.platform())
        old = self.dir / "manifest.json"
        if old.exists():
            info = {**json.loads(old.read_text()), **info}
        write_json(old, {**info, **extra})

    def finish(self, metrics: dict | None = None) -> None:
        """Write the headline metrics and close the manifest with the end time."""
        if metrics is not None:
            write_json(self.dir / "metrics.json", metrics)
        self.write_manifest(finished=time.strftime("%Y-%m-%dT%H:%M:%S"),
                            seconds=round(time.time() - self.started, 1))

    def path(self, name: str) -> Path:
        return self.dir / name

    def table(self, name: str, df: pd.DataFrame) -> pd.DataFrame:
        """Write a table as CSV and Markdown; returns it for display."""
        (self.dir / "tables").mkdir(exist_ok=True)
        df.to_csv(self.dir / "tables" / f"{name}.csv")
        (self.dir / "tables" / f"{name}.md").write_text(_markdown(df))
        return df

    def figure(self, name: str, fig) -> Path:
        """Save a matplotlib figure as PNG and PDF."""
        (self.dir / "figures").mkdir(exist_ok=True)
        fig.savefig(self.dir / "figures" / f"{name}.png", dpi=120, bbox_inches="tight")
        fig.savefig(self.dir / "figures" / f"{name}.pdf", bbox_inches="tight")
        return self.dir / "figures" / f"{name}.png"

    def history(self, rows: list[dict], name: str = "history.jsonl") -> Path:
        p = self.dir / name
        p.write_text("".join(json.dumps(_jsonable(r)) + "\n" for r in rows))
        return p


def _markdown(df: pd.DataFrame) -> str:
    """A plain Markdown table (pandas' to_markdown would need the tabulate package)."""
    d = df.reset_index()
    cols = [str(c) for c in d.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in d.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def read_json(path: Path):
    return json.loads(Path(path).read_text())


BASE_NOTEBOOK = "00_toy_world_and_base_model"


def write_base_model(run: Run, model: str, task: str) -> Path:
    """Notebook 00's record of the base model every later notebook starts from (a local folder
    is recorded as an absolute path; the tiny model as its folder name inside the run)."""
    local = Path(model).expanduser()
    if model != "model" and local.exists():
        model = str(local.resolve())
    return write_json(run.path("base_model.json"), dict(model=model, task=task))


def base_model_ref(results_dir: str | Path, base_run: str) -> tuple[str, str]:
    """(model hub id or folder, task) of notebook 00's run ``base_run``.

    The tiny model is the run's ``model/`` folder; with a real model, notebook 00 records its
    hub id or path in ``base_model.json`` instead of pretraining.
    """
    d = require_run(results_dir, BASE_NOTEBOOK, base_run)
    info = d / "base_model.json"
    if info.exists():
        data = read_json(info)
        ref = data["model"]
        local = d / ref
        return (str(local) if not Path(ref).is_absolute() and local.exists() else ref), data.get("task", "toy")
    if (d / "model").exists():
        return str(d / "model"), "toy"
    raise MissingInput(f"{d} holds no base model (model/ or base_model.json): rerun notebook {BASE_NOTEBOOK} "
                       f"with run_name {base_run}")


def resolve_model(cfg, base_run: str | None = None) -> str:
    """The model a notebook starts from: cfg.model when given, else notebook 00's base model.

    Fails clearly when the base run was made for another task than cfg.task.
    """
    if cfg.model:
        return cfg.model
    ref, task = base_model_ref(cfg.results_dir, base_run or cfg.base_run)
    if task != cfg.task:
        raise config_mod.ConfigError(
            f"base run {base_run or cfg.base_run!r} was made for task {task!r}, not {cfg.task!r}: run notebook "
            f"{BASE_NOTEBOOK} with -p task {cfg.task} -p model <hub id or folder>, or pass -p model here")
    return ref
