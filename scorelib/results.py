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

import contextlib
import hashlib
import json
import math
import os
import platform
import shutil
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from scorelib import config as config_mod
from scorelib.jsonl import write_jsonl
from scorelib.provenance import git_dirty, git_revision, numerics


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


def require_run(results_dir: str | Path, notebook: str, run_name: str, what: str = "", params: str = "") -> Path:
    """The folder of an earlier run, or a clear error naming the command that makes it (with ``params``, e.g.
    '-p seed 1', when the run needs more than its name)."""
    d = run_dir(results_dir, notebook, run_name)
    target = d / what if what else d
    if not target.exists():
        raise MissingInput(
            f"{target} does not exist: run notebook {notebook} first, e.g.\n"
            f"    python -m scorelib run {notebook} -p run_name {run_name}" + (f" {params}" if params else "")
            + (f" --results {results_dir}" if str(results_dir) != "results" else ""))
    return d


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


# ------------------------------------------------------------------ writes that survive a kill
# Every file a run writes goes to a temporary name beside its target and is renamed over it (os.replace is atomic
# on POSIX): after a kill there is the old file or the new one, never half of one. A leftover temporary
# (``.NAME.partial-PID``) is ignored by readers and overwritten by the next write.

FAULT_ENV = "SCORELIB_FAULT"  # fault injection for the kill tests: "POINT[:N]" SIGKILLs the process the N-th time
_fault_counts: dict[str, int] = {}


def fault_point(point: str) -> None:
    """Die by SIGKILL here when the environment asks for it (tests of kill-safety; a no-op otherwise).
    Points: "write" (a result file's temporary written, not yet renamed), "eval" (an evaluation computed, not yet
    cached), "checkpoint" (an RL checkpoint saved)."""
    want = os.environ.get(FAULT_ENV, "")
    if not want:
        return
    name, _, n = want.partition(":")
    if name != point:
        return
    _fault_counts[point] = _fault_counts.get(point, 0) + 1
    if _fault_counts[point] >= int(n or 1):
        os.kill(os.getpid(), signal.SIGKILL)


def _partial(path: Path) -> Path:
    return path.with_name(f".{path.name}.partial-{os.getpid()}")


@contextlib.contextmanager
def atomic_path(path: str | Path):
    """Yield a temporary path beside ``path``; write it, and on leaving the block it is renamed over ``path``
    (a folder too: the old folder is removed first). An exception leaves ``path`` as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _partial(path)
    _remove(tmp)
    try:
        yield tmp
        fault_point("write")
        if tmp.is_dir() and path.exists():  # os.replace cannot replace a non-empty folder: move the old one aside
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            _remove(old)
            os.replace(path, old)
            os.replace(tmp, path)
            _remove(old)
        else:
            os.replace(tmp, path)
    finally:
        _remove(tmp)


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    elif p.exists() or p.is_symlink():
        p.unlink(missing_ok=True)


def atomic_write_text(path: str | Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path: Path, data) -> Path:
    return atomic_write_text(path, json.dumps(_jsonable(data), indent=2, sort_keys=False) + "\n")


# ------------------------------------------------------------------ one run per folder at a time
LOCK_ENV = "SCORELIB_RUN_LOCK"  # the run folder whose lock the runner holds for the kernel it starts
_held_locks: dict[str, int] = {}


class RunLocked(RuntimeError):
    """Another process is running in this run folder."""


def lock_run(d: str | Path) -> None:
    """Hold an exclusive lock on run folder ``d`` for the rest of this process's life (flock on d/.lock: the
    kernel releases it when the process ends, however it ends, so a killed run leaves no stale lock). Taking it
    again in the same process is a no-op; a process started by a runner that holds it (``LOCK_ENV``) does not
    take it. Raises RunLocked naming the holder when another process has it."""
    import fcntl

    d = Path(d).resolve()
    if str(d) in _held_locks or os.environ.get(LOCK_ENV) == str(d):
        return
    d.mkdir(parents=True, exist_ok=True)
    fd = os.open(d / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise RunLocked(f"run folder {d} is in use by another run ({holder}); wait for it to finish, or use "
                        "another run_name") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()}, since {time.strftime('%Y-%m-%dT%H:%M:%S')}".encode(), 0)
    _held_locks[str(d)] = fd


def unlock_run(d: str | Path) -> None:
    fd = _held_locks.pop(str(Path(d).resolve()), None)
    if fd is not None:
        os.close(fd)


# ------------------------------------------------------------------ caches keyed by their inputs
def code_digest() -> str:
    """A digest of scorelib's own source files: any change of the code invalidates every cache."""
    global _CODE_DIGEST
    if _CODE_DIGEST is None:
        h = hashlib.blake2b(digest_size=16)
        for f in sorted(Path(__file__).resolve().parent.rglob("*.py")):
            h.update(str(f.relative_to(Path(__file__).resolve().parent)).encode())
            h.update(f.read_bytes())
        _CODE_DIGEST = h.hexdigest()
    return _CODE_DIGEST


_CODE_DIGEST: str | None = None


def cached(cache_dir: str | Path, name: str, parts, compute, read_from=()):
    """``compute()``'s result, kept in cache_dir/NAME-<key>.pkl, the key a digest of ``parts`` (everything the
    result depends on: settings, seeds, a model's fingerprint...) and of scorelib's source code. A rerun after a
    kill reuses what was finished; a changed input gets a new key. An unreadable file is recomputed.
    ``read_from``: other cache folders (e.g. an earlier notebook's) looked in, read only, when this one lacks the
    key."""
    import pickle

    path = Path(cache_dir) / f"{name}-{digest(code_digest(), parts)}.pkl"
    for candidate in (path, *(Path(d) / path.name for d in read_from)):
        if candidate.exists():
            try:
                return pickle.loads(candidate.read_bytes())
            except Exception:
                pass
    value = compute()
    fault_point("eval")
    with atomic_path(path) as tmp:
        tmp.write_bytes(pickle.dumps(value))
    return value


def digest(*parts) -> str:
    """A stable digest of JSON-able parts (tuples as lists, NaN as null)."""
    return hashlib.blake2b(json.dumps(_jsonable(list(parts)), sort_keys=True, default=str).encode(),
                           digest_size=16).hexdigest()


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
        lock_run(d)  # one run per folder at a time (released when this process ends)
        run = cls(notebook, d, time.time())
        write_json(d / "config.json", config_mod.to_dict(cfg))
        run.write_manifest()
        return run

    def write_manifest(self, **extra) -> None:
        import torch
        import transformers

        import scorelib

        root = project_root()
        info = dict(notebook=self.notebook, started=time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(self.started)),
                    git_revision=git_revision(root), git_dirty=git_dirty(root), python=platform.python_version(),
                    torch=torch.__version__, cpus=os.cpu_count(),
                    transformers=transformers.__version__, scorelib=getattr(scorelib, "__version__", "0"),
                    threads=torch.get_num_threads(), platform=platform.platform(), **numerics())
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

    def text(self, name: str, text: str) -> Path:
        """Write a text file (e.g. transcripts.md) into the run folder."""
        return atomic_write_text(self.dir / name, text)

    def table(self, name: str, df: pd.DataFrame) -> pd.DataFrame:
        """Write a table as CSV and Markdown; returns it for display."""
        with atomic_path(self.dir / "tables" / f"{name}.csv") as tmp:
            df.to_csv(tmp)
        atomic_write_text(self.dir / "tables" / f"{name}.md", _markdown(df))
        return df

    def figure(self, name: str, fig) -> Path:
        """Save a matplotlib figure as PNG and PDF."""
        for ext, kw in (("png", dict(dpi=120)), ("pdf", {})):
            with atomic_path(self.dir / "figures" / f"{name}.{ext}") as tmp:
                fig.savefig(tmp, format=ext, bbox_inches="tight", **kw)
        return self.dir / "figures" / f"{name}.png"

    def history(self, rows: list[dict], name: str = "history.jsonl") -> Path:
        """Write per-step rows as JSONL (NaN as null); ``scorelib.jsonl.read_jsonl`` reads them back."""
        return write_jsonl(self.dir / name, [_jsonable(r) for r in rows])


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


def resolve_model(cfg, base_run: str | None = None, seed: int | None = None) -> str:
    """The model a notebook starts from: cfg.model when given, else notebook 00's base model: of run ``base_run``
    when given, else of seed ``seed``'s base run (``cfg.base_run_for``; default: the first seed's).

    Fails clearly when the base run was made for another task than cfg.task.
    """
    if cfg.model:
        return cfg.model
    if base_run is None:
        base_run = cfg.base_run_for(cfg.base_seeds()[0] if seed is None else seed)
    ref, task = base_model_ref(cfg.results_dir, base_run)
    if task != cfg.task:
        raise config_mod.ConfigError(
            f"base run {base_run!r} was made for task {task!r}, not {cfg.task!r}: run notebook "
            f"{BASE_NOTEBOOK} with -p task {cfg.task} -p model <hub id or folder>, or pass -p model here")
    return ref
