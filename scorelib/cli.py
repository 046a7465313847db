"""Command line: ``python -m scorelib reproduce | run | report | grade``.

    python -m scorelib reproduce --profile default      every notebook, in order
    python -m scorelib reproduce --profile smoke        the same with CI-sized values
    python -m scorelib run 01_base_model_self_correction -p n_test 512 -p seed 1
    python -m scorelib run 00 --profile smoke -p run_name mytry
    python -m scorelib report --profile smoke           HTML of every run and the report -> results/html/smoke/
    python -m scorelib grade --task math answers.jsonl --out graded.jsonl

Parameters are checked against the notebook's config before anything runs.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import yaml

from scorelib import config as C
from scorelib.results import (BASE_NOTEBOOK, LOCK_ENV, MissingInput, RunLocked, code_digest, digest, lock_run,
                              require_run, resolve_model, resolve_results_dir, run_dir, unlock_run, write_json)

PACKAGE_ROOT = Path(__file__).resolve().parents[1]


def notebooks_dir() -> Path:
    """The notebooks/ folder of this checkout."""
    d = PACKAGE_ROOT / "notebooks"
    if not d.is_dir():
        raise SystemExit(f"no notebooks/ folder beside scorelib ({d}); install scorelib from a clone with "
                         "`pip install -e .`")
    return d


def profile_path(profile: str) -> Path:
    p = Path(profile)
    if p.suffix in (".yaml", ".yml") and p.exists():
        return p
    q = notebooks_dir() / "params" / f"{profile}.yaml"
    if not q.exists():
        valid = sorted(x.stem for x in (notebooks_dir() / "params").glob("*.yaml"))
        raise C.ConfigError(f"unknown profile {profile!r}; valid profiles: {valid} (or a path to a YAML file)")
    return q


def parse_value(text: str):
    """A command-line value as YAML (so 1 is an int, 0.5 a float, [0, 1] a list, true a bool)."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def resolve_params(notebook: str, profile: str | None, overrides: list[tuple[str, str]],
                   results: str | None) -> tuple[str, dict, object]:
    """(notebook name, papermill parameters, validated config) or a ConfigError."""
    cls = C.config_for(notebook)
    name = next(n for n, c in C.NOTEBOOK_CONFIGS.items() if c is cls)
    params: dict = {}
    raw = C.load_profile(profile_path(profile)) if profile else {}
    if profile:
        params.update(C.profile_params(cls, raw, name))
        params.setdefault("run_name", Path(profile).stem)
    for k, v in overrides:
        params[k] = parse_value(v)
    template = str(dict(raw, **{k: parse_value(v) for k, v in overrides}).get("base_run", ""))
    if name in PER_BASE and C.SEED_FIELD in template and "run_name" not in dict(overrides):
        # one base model a seed: notebooks 00 and 01 of seed s write the run that later notebooks read for seed s
        seed = params.get("seed", cls.seed)  # the field's default
        params["run_name"] = template.replace(C.SEED_FIELD, str(seed))
    if name == BASE_NOTEBOOK:
        params.pop("base_run", None)  # names notebook 00's run (above); not one of its parameters
    if results is not None:
        params["results_dir"] = results
    params["results_dir"] = str(resolve_results_dir(params.get("results_dir", "results")))
    cfg = C.make_config(cls, params)  # fails before any compute
    params.update({k: getattr(cfg, k) for k in C.PATH_FIELDS if k in params})  # absolute, as the notebook needs
    return name, {k: (list(v) if isinstance(v, tuple) else v) for k, v in params.items()}, cfg


# The notebooks that run once a base model: with a base_run holding '{seed}', seed s's run is named by it.
PER_BASE = (BASE_NOTEBOOK, "01_base_model_self_correction")
# The earlier notebooks a run's results depend on, by the config field that names their run.
UPSTREAM = {"base_run": BASE_NOTEBOOK, "sft_run": "10_sft_baselines", "stage1_run": "20_stage1_vs_multiturn_rl",
            "score_run": "30_score_stage2"}
DONE = "done.json"  # written into a run folder when its notebook finished: the inputs it ran with


def inputs_key(name: str, params: dict, cfg) -> str:
    """A digest of everything a notebook's results depend on: its parameters, the notebook's source, scorelib's
    source, and the finished runs of earlier notebooks it reads (their own keys), so that a rerun of an earlier
    notebook makes the later ones stale."""
    upstream = {}
    for field_name, nb in UPSTREAM.items():
        if field_name == "base_run" and hasattr(cfg, "base_runs") and not cfg.model:
            for run_name in cfg.base_runs():  # one base a seed, or the shared one (its key as before)
                done = run_dir(cfg.results_dir, nb, run_name) / DONE
                upstream[nb if run_name == cfg.base_run else f"{nb}/{run_name}"] = (
                    done.read_text() if done.exists() else None)
        elif hasattr(cfg, field_name) and field_name != "base_run":
            done = run_dir(cfg.results_dir, nb, getattr(cfg, field_name)) / DONE
            upstream[nb] = done.read_text() if done.exists() else None
    for nb, run_name in getattr(cfg, "upstream_runs", list)():  # the report (90): every run it reads
        done = run_dir(cfg.results_dir, nb, run_name) / DONE
        upstream[nb] = done.read_text() if done.exists() else None
    src = hashlib.blake2b((notebooks_dir() / f"{name}.ipynb").read_bytes()).hexdigest()
    return digest(name, params, src, code_digest(), upstream)


def execute(name: str, params: dict, cfg, force: bool = False) -> Path:
    """Run one notebook with papermill; the executed copy goes into its run folder.

    One run per folder at a time (a lock that a killed run does not leave behind). A notebook that already
    finished with the same inputs (``inputs_key``) is not run again unless ``force``. The executed notebook is
    written beside its final name and renamed when the run ends, so a kill never leaves half of one; when a cell
    fails, the executed notebook shows the error and the message names it and the cell."""
    import papermill as pm

    src = notebooks_dir() / f"{name}.ipynb"
    if not src.exists():
        raise SystemExit(f"notebook {src} not found")
    out_dir = run_dir(cfg.results_dir, name, cfg.run_name)
    out_dir.mkdir(parents=True, exist_ok=True)
    lock_run(out_dir)
    os.environ[LOCK_ENV] = str(out_dir.resolve())  # the kernel runs under this process's lock
    try:
        out, done, key = out_dir / f"{name}.ipynb", out_dir / DONE, inputs_key(name, params, cfg)
        if not force and out.exists() and done.exists() and _done_key(done) == key:
            print(f"[scorelib] {name}: already finished with these inputs in {out_dir} (skipped; --force reruns it)",
                  flush=True)
            return out_dir
        done.unlink(missing_ok=True)
        running = out_dir / f".{name}.running.ipynb"
        print(f"[scorelib] running {name} -> {out_dir}", flush=True)
        t0 = time.time()
        try:
            pm.execute_notebook(str(src), str(running), parameters=params, kernel_name="python3",
                                cwd=str(notebooks_dir()), progress_bar=False, log_output=False)
        except BaseException as e:
            if running.exists():
                os.replace(running, out)  # the error stays visible in the executed notebook
            raise NotebookFailed(name, out, e) from e
        os.replace(running, out)
        write_json(done, dict(key=key, finished=time.strftime("%Y-%m-%dT%H:%M:%S"), seconds=round(time.time() - t0, 1)))
        print(f"[scorelib] {name} done in {time.time() - t0:.0f} s", flush=True)
        return out_dir
    finally:
        os.environ.pop(LOCK_ENV, None)
        unlock_run(out_dir)


def _done_key(path: Path) -> str | None:
    try:
        return json.loads(path.read_text()).get("key")
    except (OSError, ValueError):
        return None


class NotebookFailed(RuntimeError):
    """A notebook stopped: a cell raised, the kernel died, or the run was interrupted."""

    def __init__(self, name: str, out: Path, err: BaseException):
        if type(err).__name__ == "PapermillExecutionError":
            what = f"cell {getattr(err, 'exec_count', '?')} raised {getattr(err, 'ename', '')}: {getattr(err, 'evalue', '')}"
        elif type(err).__name__ == "DeadKernelError":
            what = "its kernel died (killed, or out of memory)"
        else:
            what = f"{type(err).__name__}: {err}"
        super().__init__(f"notebook {name} failed: {what}\n    executed notebook (error shown in it): {out}\n"
                         "    rerun the same command to continue: finished training, evaluations and notebooks are kept")


def check_inputs(cfg, made_by_plan: set = frozenset()) -> None:
    """Fail before any compute when an earlier notebook's output is missing."""
    per_seed = C.SEED_FIELD in getattr(cfg, "base_run", "")
    seed_of = {cfg.base_run_for(s): s for s in cfg.base_seeds()} if per_seed else {}
    for nb, run_name, what in cfg.inputs():
        if (nb, run_name) not in made_by_plan:
            seed = seed_of.get(run_name) if nb == BASE_NOTEBOOK else None
            require_run(cfg.results_dir, nb, run_name, what, "" if seed is None else f"-p seed {seed}")
    for base_run in (cfg.base_runs() if hasattr(cfg, "base_runs") and not cfg.model else []):
        if (BASE_NOTEBOOK, base_run) not in made_by_plan:
            resolve_model(cfg, base_run)  # the base run exists and was made for this task


def cmd_run(args) -> int:
    name, params, cfg = resolve_params(args.notebook, args.profile, args.param or [], args.results)
    check_inputs(cfg)
    execute(name, params, cfg, force=args.force)
    return 0


def base_seeds_needed(profile: str, results: str | None) -> list[int]:
    """The seeds whose own base model the profile's later notebooks read (their ``base_run`` holds '{seed}'), in
    order of first use; [] when they share one base (notebooks 00 and 01 then run once, at their ``seed``)."""
    seeds: list[int] = []
    if C.SEED_FIELD not in str(C.load_profile(profile_path(profile)).get("base_run", "")):
        return seeds
    for name in sorted(C.NOTEBOOK_CONFIGS):
        try:
            cfg = resolve_params(name, profile, [], results)[2]
        except C.ConfigError:  # a notebook this profile cannot run (a reproduce --only leaves it out, or says why)
            continue
        if name not in PER_BASE and hasattr(cfg, "base_runs") and C.SEED_FIELD in cfg.base_run and not cfg.model:
            seeds += [s for s in cfg.base_seeds() if s not in seeds]
    return seeds


def cmd_reproduce(args) -> int:
    plan, base_seeds = [], base_seeds_needed(args.profile, args.results)
    for name in sorted(C.NOTEBOOK_CONFIGS):  # in order of number; validate every notebook before running any
        if args.only and not any(name.startswith(o) for o in args.only):
            continue
        if name in PER_BASE and base_seeds:  # one run a base model
            plan += [resolve_params(name, args.profile, [("seed", str(s))], args.results) for s in base_seeds]
        else:
            plan.append(resolve_params(name, args.profile, [], args.results))
    made = set()
    for name, _, cfg in plan:
        check_inputs(cfg, made)
        made.add((name, cfg.run_name))
    times = {}
    for name, params, cfg in plan:
        t0 = time.time()
        execute(name, params, cfg, force=args.force)
        several = sum(n == name for n, _, _ in plan) > 1
        times[f"{name}/{cfg.run_name}" if several else name] = round(time.time() - t0, 1)
    results = resolve_results_dir(args.results or "results")
    html_s = None
    if any(name == "90_report" for name, _, _ in plan):  # last step: every executed notebook and the report as HTML
        t0 = time.time()
        from scorelib.export import export_profile

        print(f"[scorelib] HTML of every run and the report: {export_profile(args.profile, args.results)}")
        html_s = round(time.time() - t0, 1)
    write_json(results / f"reproduce_{Path(args.profile).stem}.json", dict(profile=args.profile, seconds=times,
                                                                          total=round(sum(times.values()), 1),
                                                                          html_export_s=html_s))
    print("[scorelib] wall time per notebook (s):", times, "total", round(sum(times.values()), 1))
    return 0


def cmd_report(args) -> int:
    from scorelib import export

    t0 = time.time()
    index = export.export_profile(args.profile, args.results)
    print(f"[scorelib] HTML of every run and the report: {index} ({time.time() - t0:.1f} s)")
    if args.readme:
        results_dir, run_name, _ = export.profile_runs(args.profile, args.results)
        try:
            path = export.update_readme(args.readme, results_dir / export.REPORT_NOTEBOOK / run_name)
        except ValueError as e:
            raise C.ConfigError(f"{args.readme}: {e}") from None
        print(f"[scorelib] results section of {path} rewritten from the report of run {run_name}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m scorelib", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run one notebook with papermill")
    r.add_argument("notebook", help="notebook name (e.g. 01_base_model_self_correction, or a prefix like 01)")
    r.add_argument("-p", "--param", nargs=2, action="append", metavar=("NAME", "VALUE"), help="override a parameter")
    r.add_argument("--profile", help="take values from notebooks/params/PROFILE.yaml first")
    r.add_argument("--results", help="results folder (default: results/ in the project root)")
    r.add_argument("--force", action="store_true", help="run even if it already finished with the same inputs")
    r.set_defaults(fn=cmd_run)
    q = sub.add_parser("reproduce", help="run every notebook in order")
    q.add_argument("--profile", default="default", help="default, smoke, or a YAML file of parameter values")
    q.add_argument("--results", help="results folder (default: results/ in the project root)")
    q.add_argument("--only", nargs="*", help="run only notebooks whose names start with these prefixes")
    q.add_argument("--force", action="store_true", help="rerun notebooks that already finished with the same inputs")
    q.set_defaults(fn=cmd_reproduce)
    rp = sub.add_parser("report", help="export every executed notebook of a profile's runs and the report to HTML")
    rp.add_argument("--profile", default="default", help="whose runs (default, smoke, or a YAML file)")
    rp.add_argument("--results", help="results folder (default: results/ in the project root)")
    rp.add_argument("--readme", metavar="PATH", help="also rewrite PATH's block between <!-- results:begin --> and "
                    "<!-- results:end --> from the report run (notebook 90's readme_results.md)")
    rp.set_defaults(fn=cmd_report)
    from scorelib.cli_grade import add_parser as add_grade_parser

    add_grade_parser(sub)
    args = ap.parse_args(argv)
    try:
        return args.fn(args)
    except (C.ConfigError, MissingInput, RunLocked) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except NotebookFailed as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
