"""Notebook 90's report: every notebook's tables and figures beside the paper's, SCoRe as others measured it, the
claims checklist (``scorelib.checklist``) and the environment of every run, written to ``report.md``.

The report computes no result of its own: it reads the files each notebook wrote (tables already hold the paper's
rows beside ours, with CIs and the number of seeds), so no number is typed twice. A run that is missing is shown as
missing, with the command that makes it.
"""
from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import pandas as pd

from scorelib import checklist
from scorelib import paper
from scorelib.claims import CLAIMS
from scorelib.config import REPORT_RUN_FIELDS
from scorelib.provenance import git_dirty, git_revision, numerics
from scorelib.results import atomic_write_text, project_root

NOTEBOOK = "90_report"


# ------------------------------------------------------------------ the runs the report reads
@dataclass
class RunInfo:
    """One upstream run: where it is, whether it finished, what it recorded."""

    field: str  # the report config's field naming it (e.g. "score_run")
    number: str  # the notebook's number ("30")
    notebook: str  # its full name where known
    run: str
    dir: Path
    status: str  # "finished", "unfinished" (a folder without metrics.json) or "missing"
    command: str = ""
    metrics: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)
    manifest: dict = field(default_factory=dict)
    done: dict = field(default_factory=dict)
    flags: list = field(default_factory=list)  # departures from the report's protocol (split, seeds)

    @property
    def present(self) -> bool:
        return self.status == "finished"

    @property
    def label(self) -> str:
        return f"{self.notebook}/{self.run}"


def _read(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _protocol_flags(cfg, run_cfg: dict) -> list[str]:
    flags = []
    split = run_cfg.get("eval_split", "test")
    if split != cfg.eval_split:
        flags.append(f"evaluated on the {split} split, not {cfg.eval_split}")
    seeds = run_cfg.get("seeds", [run_cfg["seed"]] if "seed" in run_cfg else [])
    if seeds and not set(seeds) <= set(cfg.seeds):
        flags.append(f"seeds {list(seeds)} are not among {list(cfg.seeds)}")
    return flags


def find_runs(cfg, command_results: str | Path | None = None) -> dict[str, RunInfo]:
    """Every run the report config names, by field, present or not."""
    results = Path(cfg.results_dir)
    out = {}
    for f, number in REPORT_RUN_FIELDS.items():
        name, run = checklist.notebook_name(number, results), getattr(cfg, f)
        d = results / name / run
        status = "finished" if (d / "metrics.json").exists() else "unfinished" if d.exists() else "missing"
        info = RunInfo(f, number, name, run, d, status,
                       command=checklist.run_command(number, run, command_results or results))
        if d.exists():
            info.metrics, info.config = _read(d / "metrics.json"), _read(d / "config.json")
            info.manifest, info.done = _read(d / "manifest.json"), _read(d / "done.json")
            info.flags = _protocol_flags(cfg, info.config) if info.config else []
        out[f] = info
    return out


def runs_table(runs: dict[str, RunInfo]) -> pd.DataFrame:
    rows = [dict(notebook=r.notebook, run=r.run, status=r.status,
                 protocol=r.metrics.get("protocol", "") if r.present else "",
                 differs="; ".join(r.flags), finished=r.done.get("finished", r.manifest.get("finished", "")),
                 command="" if r.present else r.command) for r in runs.values()]
    return pd.DataFrame(rows).set_index("notebook")


# ------------------------------------------------------------------ sections
@dataclass
class Section:
    """A part of the report: Markdown text, figures (caption, PNG path) and tables to write (name -> frame)."""

    title: str
    text: str = ""
    figures: list = field(default_factory=list)
    tables: dict = field(default_factory=dict)

    def markdown(self, base: Path, level: int = 3) -> str:
        """The section as Markdown, figure links relative to ``base`` (the folder report.md is written to)."""
        parts = [f"{'#' * level} {self.title}", self.text.strip()]
        parts += [f"![{cap}]({os.path.relpath(p, base)})" for cap, p in self.figures]
        return "\n\n".join(x for x in parts if x) + "\n"


def show(*sections: Section) -> None:
    """Display sections in a notebook: each one's text, then its figures embedded (so an HTML export carries
    them)."""
    from IPython.display import Image, Markdown, display

    for section in sections:
        display(Markdown(f"### {section.title}\n\n{section.text}"))
        for cap, p in section.figures:
            display(Markdown(f"*{cap}*"), Image(filename=str(p)))


# What the report shows of each paper artefact: (run field, "table" or "figure", file name pattern) items.
def _t(f: str, *names: str) -> list:
    return [(f, "table", n) for n in names]


def _f(f: str, *names: str) -> list:
    return [(f, "figure", n) for n in names]


ARTEFACTS: tuple[tuple[str, str, list], ...] = (
    ("Table 2 and Fig. 1 (left): SCoRe beside the baselines", "§3.2: MATH500, Gemini 1.5 Flash, greedy",
     _t("score_run", "table2", "table2_fix_own") + _f("score_run", "fig1_accuracy_bars")),
    ("Table 2, the base model's row (greedy and T = 1)", "§3.2, base row",
     _t("eval_run", "table2_base", "fix_own")),
    ("Table 1: SFT on self-generated corrections (STaR, Pair-SFT)", "§3.1: MATH, Gemini 1.5 Flash",
     _t("sft_run", "table1", "table1_fix_own_and_spread")),
    ("Fig. 3: edit-distance ratio between the two attempts", "Pair-SFT collapses to tiny edits, STaR keeps the "
     "base's bimodal shape", _f("eval_run", "fig3_edit_distance_base")
     + _f("sft_run", "fig3_edit_distance_models", "fig3_edit_distance_data_vs_model")
     + _f("score_run", "fig3_edit_distance_score")),
    ("Fig. 4: distribution shift during Pair-SFT", "gains on fixed first attempts, losses on the model's own",
     _t("sft_run", "fig4_distribution_shift") + _f("sft_run", "fig4_distribution_shift")),
    ("Fig. 5: standard multi-turn RL collapses, Stage I does not", "both turns rise together; the change "
     "frequency falls (≈0.38 → 0.16) for multi-turn RL, stays higher (≈0.39 → 0.28) for Stage I",
     _f("stage1_run", "fig5_training_curves") + _t("stage1_run", "evaluation_greedy", "fix_own_and_spread")),
    ("Fig. 6: Δi→c and Δc→i by difficulty level", "ICLR version", _t("eval_run", "fig6_by_level")
     + _f("eval_run", "fig6_by_level")),
    ("Table 4 and Fig. 8: ablations", "§3.4: every ablation's Δ below SCoRe's; γ = 0.8, α = 1 still collapses",
     _t("ablations_run", "table4*") + _f("ablations_run", "table4*", "fig8*")),
    ("Three-turn extension", "ICLR appendix A.1, Gemma-2 2B: Stage 2 23.0/24.0/24.0 from a base at 16.8/16.8/17.0",
     _t("three_turn_run", "three_turn*") + _f("three_turn_run", "three_turn*")),
    ("Fig. 1 (right): inference-compute scaling", "§3.5: MATH500, T = 0.7, budgets 2-32: sequential +10.5, "
     "parallel +7.4 at 32", _t("scaling_run", "fig1*", "gains")
     + _f("scaling_run", "fig1*")),
    ("Fig. 7: ten sequential attempts", "the base oscillates and never beats attempt 1; SCoRe rises then plateaus",
     _t("scaling_run", "fig7_accuracy", "fig7_changed") + _f("scaling_run", "fig7*")
     + _f("eval_run", "fig7_sequential_base")),
)


def _source_line(r: RunInfo) -> str:
    if not r.present:
        return f"**{r.label}: {'missing run' if r.status == 'missing' else 'unfinished run'}**: `{r.command}`"
    seeds = r.config.get("seeds", [r.config.get("seed")])
    line = f"From `{r.label}` ({r.metrics.get('protocol', 'protocol not recorded')}; seeds {list(seeds)})"
    return line + (f" **differs from this report's protocol: {'; '.join(r.flags)}**" if r.flags else "")


def artefact_sections(runs: dict[str, RunInfo]) -> list[Section]:
    """One section per paper table or figure: its claim in the paper, then each run's tables (Markdown, as the
    notebook wrote them) and figures, or the command that makes a missing run."""
    out = []
    for title, paper_says, items in ARTEFACTS:
        sec, seen = Section(title), []
        lines = [f"*Paper:* {paper_says}."]
        for f in dict.fromkeys(i[0] for i in items):
            r = runs[f]
            lines.append(_source_line(r))
            if not r.present:
                continue
            for _, kind, pattern in (i for i in items if i[0] == f):
                folder, ext = ("tables", "md") if kind == "table" else ("figures", "png")
                found = sorted((r.dir / folder).glob(f"{pattern}.{ext}"))
                if not found:
                    lines.append(f"*(this run wrote no {folder}/{pattern}.{ext})*")
                for p in found:
                    if kind == "table":
                        lines.append(f"`{folder}/{p.name}`:\n\n{p.read_text().strip()}")
                    elif p not in seen:
                        seen.append(p)
                        sec.figures.append((f"{r.label}: {p.stem}", p))
        sec.text = "\n\n".join(lines)
        out.append(sec)
    return out


def external_section(runs: dict[str, RunInfo]) -> Section:
    """SCoRe as others measured it (digest section 11), each with its protocol, beside this suite's rows."""
    rows = [dict(source=e["source"], protocol=e["protocol"], model=e["model"],
                 base=f"{e['base_t1']:.1f} → {e['base_t2']:.1f}",
                 SCoRe=f"{e['score_t1']:.1f} → {e['score_t2']:.1f} ({e['score_delta']:+.1f})", other=e["other"])
            for e in paper.EXTERNAL]
    p = paper.TABLE2
    rows.insert(0, dict(source="SCoRe paper, Table 2", protocol="greedy, MATH500", model="Gemini 1.5 Flash",
                        base=f"{p['Base model']['acc_t1']:.1f} → {p['Base model']['acc_t2']:.1f}",
                        SCoRe=f"{p['SCoRe']['acc_t1']:.1f} → {p['SCoRe']['acc_t2']:.1f} ({p['SCoRe']['delta']:+.1f})",
                        other=""))
    r = runs["score_run"]
    ours = r.metrics.get("rows", {}) if r.present else {}
    if "SCoRe" in ours and "Base model" in ours:
        b, s = ours["Base model"], ours["SCoRe"]
        rows.append(dict(source=f"this suite ({r.label})", model=r.config.get("model") or "tiny Llama (notebook 00)",
                         protocol=f"greedy, {r.config.get('task', 'toy')}, {r.metrics.get('protocol', '')}",
                         base=f"{b['acc_t1']:.1f} → {b['acc_t2']:.1f}",
                         SCoRe=(f"{s['acc_t1']:.1f} → {s['acc_t2']:.1f} ({s['delta']:+.1f} "
                                f"[{s.get('delta_lo', float('nan')):+.1f}, {s.get('delta_hi', float('nan')):+.1f}])"),
                         other=f"{s.get('seeds', 1)} seed(s), {s.get('n', '?')} problems"))
    table = pd.DataFrame(rows).set_index("source")
    note = "" if len(rows) > len(paper.EXTERNAL) + 1 else f"\n\nOur row: {_source_line(r)}"
    text = ("Protocols differ (greedy vs Avg@32 at T = 0.6): compare each row with its protocol. "
            f"{paper.EXTERNAL_NOTE}{note}\n\n{_md(table)}")
    return Section("SCoRe as others measured it", text, tables={"external": table})


# ------------------------------------------------------------------ environment
def _versions(names=("torch", "transformers", "numpy", "pandas", "papermill", "nbconvert", "peft", "accelerate")
              ) -> str:
    out = []
    for n in names:
        try:
            out.append(f"{n} {metadata.version(n)}")
        except metadata.PackageNotFoundError:
            pass
    return ", ".join(out)


def environment_section(runs: dict[str, RunInfo]) -> Section:
    """Versions, git revision and dirtiness, machine and wall time of every run, and of this report's machine."""
    rows = []
    for r in runs.values():
        m, d = r.manifest, r.done
        dirty = m.get("git_dirty")
        rows.append(dict(notebook=r.notebook, run=r.run, status=r.status,
                         wall_s=d.get("seconds", m.get("seconds")), started=m.get("started", ""),
                         finished=d.get("finished", m.get("finished", "")), git=m.get("git_revision", ""),
                         dirty="not recorded" if dirty is None and m else dirty if m else "",
                         python=m.get("python", ""), torch=m.get("torch", ""), transformers=m.get("transformers", ""),
                         threads=m.get("threads", ""), cpus=m.get("cpus", ""), machine=m.get("platform", ""),
                         cpu=m.get("cpu", "not recorded" if m else ""),
                         cpu_capability=m.get("cpu_capability", "not recorded" if m else "")))
    table = pd.DataFrame(rows).set_index("notebook")
    walls = [float(x) for x in table["wall_s"] if isinstance(x, (int, float)) and pd.notna(x)]
    revs = sorted({x for x in table["git"] if x})
    root = project_root(Path(__file__).parent)
    machine = numerics()
    try:
        mem = f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB"
    except (ValueError, OSError, AttributeError):
        mem = "unknown"
    here = [f"- Report made {time.strftime('%Y-%m-%d %H:%M:%S')} at git revision "
            f"{git_revision(root)} ({'dirty' if git_dirty(root) else 'clean'} tree)",
            f"- Machine: {platform.platform()}, {os.cpu_count()} CPUs ({machine['cpu']}; torch kernels "
            f"{machine['cpu_capability']}), {mem} memory",
            f"- Python {platform.python_version()}; {_versions()}",
            f"- Wall time of the runs shown: {sum(walls):.0f} s over {len(walls)} notebooks (the runner's "
            "measure where it ran them, else the notebook's own)",
            "- Runs made at " + (f"more than one git revision: {revs}" if len(revs) > 1 else
                                 f"git revision {revs[0]}" if revs else "no recorded revision")]
    text = "\n".join(here) + "\n\n" + _md(table)
    return Section("Environment", text, tables={"environment": table})


# ------------------------------------------------------------------ report.md and the README block
def _md(df: pd.DataFrame) -> str:
    from scorelib.results import _markdown

    return _markdown(df).strip()


def claim_sources() -> pd.DataFrame:
    """How the checklist obtains each claim's verdict: the notebook that checks it, the report parameter naming
    that notebook's run, where the run stores its verdict in metrics.json, and whether the report recomputes it
    from the run's files with the notebook's own check (``claims.CLAIMS``) or reads the stored one."""
    return pd.DataFrame([dict(claim=c.id, notebook=checklist.notebook_name(c.notebook), run=c.run_field,
                              stored=f"metrics.json: {c.stored}",
                              verdict="stored" if c.recompute is None else "recomputed")
                         for c in CLAIMS]).set_index("claim")


def claims_section(verdicts: list) -> Section:
    table = checklist.table(verdicts)
    how = ("*recomputed*: from the run's stored numbers with the notebook's own `claim_c*` function (C1, C2, "
           "C4-C8); *stored*: the verdict the notebook wrote (C3, which needs every trace's edit ratio).")
    return Section("Claims C1–C8", f"{how}\n\n{_md(table)}", tables={"claims": table})


def render(cfg, runs: dict[str, RunInfo], sections: list[Section], base: Path) -> str:
    """The whole report as Markdown (figure links relative to ``base``)."""
    head = (f"# SCoRe reproduction report: run `{cfg.run_name}`\n\nResults folder `{cfg.results_dir}`; expected "
            f"protocol: {cfg.eval_split} split, seeds {list(cfg.seeds)}. Every number below is read from the "
            "runs' files; missing runs are marked with the command that makes them.\n\n## Runs\n\n"
            + _md(runs_table(runs)))
    return head + "\n\n## Results\n\n" + "\n".join(s.markdown(base) for s in sections)


def readme_block(cfg, runs: dict[str, RunInfo], claims_sec: Section, report_path: Path) -> str:
    """The README's results section: the main table and the claims, with a pointer to the full report."""
    r = runs["score_run"]
    table2 = r.dir / "tables" / "table2.md"
    main = (f"The Table 2 analogue. {_source_line(r)}:\n\n{table2.read_text().strip()}" if r.present and table2.exists()
            else _source_line(r))
    table = claims_sec.tables["claims"][["verdict", "evidence", "run"]]
    return (f"## Results (generated from the report of run `{cfg.run_name}`)\n\n{main}\n\n### Claims C1–C8\n\n"
            f"{_md(table)}\n\nThe full report, with every table and figure beside the paper's and the environment: "
            f"`{report_path}`.\n")


def write(run, cfg, runs: dict[str, RunInfo], sections: list[Section], claims_sec: Section,
          env: Section) -> Path:
    """report.md and readme_results.md in the run folder, and every section's tables under tables/."""
    all_sections = [*sections, claims_sec, env]
    for s in all_sections:
        for name, df in s.tables.items():
            run.table(name, df)
    run.table("runs", runs_table(runs))
    path = atomic_write_text(run.path("report.md"), render(cfg, runs, all_sections, run.dir))
    atomic_write_text(run.path("readme_results.md"), readme_block(cfg, runs, claims_sec, _display_path(path)))
    return path


def _display_path(p: Path) -> Path:
    try:
        return Path(p).resolve().relative_to(project_root(Path(__file__).parent))
    except ValueError:
        return Path(p)


def metrics(cfg, runs: dict[str, RunInfo], verdicts: list) -> dict:
    """The report's metrics.json: every claim's verdict and the runs it read."""
    return dict(claims={v.claim: dict(status=v.status, holds=v.holds, evidence=v.evidence, run=f"{v.notebook}/{v.run}",
                                      source=v.source, note=v.note) for v in verdicts},
                runs={f: dict(notebook=r.notebook, run=r.run, status=r.status, flags=r.flags) for f, r in runs.items()},
                protocol=f"{cfg.eval_split} split, seeds {list(cfg.seeds)} expected")
