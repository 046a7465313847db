"""Browse the results without Jupyter: every executed notebook of a profile's runs and the report, as HTML in one
folder with an index page (``python -m scorelib report``, and the runner's last step when it ran notebook 90);
and the README's results section, rewritten from a report run between two marker comments.

    <results>/html/<run_name>/index.html      links to report.html and each notebook's HTML (or says it is missing)
    <results>/html/<run_name>/<notebook>.html  nbconvert's HTML of the executed notebook (figures embedded)
    <results>/html/<run_name>/report.html      report.md with its figures embedded
"""
from __future__ import annotations

import html
import json
import time
from pathlib import Path

from scorelib.results import MissingInput, atomic_write_text

REPORT_NOTEBOOK = "90_report"
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"


# ------------------------------------------------------------------ HTML
def _exporter():
    from nbconvert import HTMLExporter

    return HTMLExporter(template_name="lab", embed_images=True)  # embed_images: Markdown images become data URIs


def notebook_html(path: Path) -> str:
    """An executed notebook as one self-contained HTML page."""
    body, _ = _exporter().from_filename(str(path))
    return body


def markdown_html(path: Path, title: str) -> str:
    """A Markdown file as an HTML page in the notebooks' style, its PNG images (relative links) embedded."""
    import base64
    import re

    import nbformat

    text, attachments = Path(path).read_text(), {}

    def attach(m: re.Match) -> str:
        img = Path(path).parent / m.group(2)
        if not img.is_file():
            return m.group(0)
        name = f"fig{len(attachments)}.png"
        attachments[name] = {"image/png": base64.b64encode(img.read_bytes()).decode("ascii")}
        return f"![{m.group(1)}](attachment:{name})"

    text = re.sub(r"!\[([^\]]*)\]\(([^)\s]+\.png)\)", attach, text)
    cell = nbformat.v4.new_markdown_cell(text, attachments=attachments)
    nb = nbformat.v4.new_notebook(cells=[cell], metadata={"title": title})
    body, _ = _exporter().from_notebook_node(nb, resources={"metadata": {"name": title}})
    return body


def _wall(run_dir: Path) -> str:
    try:
        return f"{json.loads((run_dir / 'done.json').read_text())['seconds']:.0f} s"
    except (OSError, ValueError, KeyError, TypeError):
        return ""


def export_html(results_dir: str | Path, runs: list[tuple[str, str]], out_dir: str | Path,
                title: str = "SCoRe reproduction") -> Path:
    """Export the executed notebook of each (notebook, run_name) in ``runs`` and, for notebook 90's run, its
    report.md, into ``out_dir``, with an index page. A missing run is listed with the command that makes it.
    Returns the index page's path."""
    from scorelib.checklist import run_command

    results, out = Path(results_dir), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows, report_link = [], ""
    for notebook, run in runs:
        d = results / notebook / run
        src = d / f"{notebook}.ipynb"
        if not src.exists():
            cmd = run_command(notebook.split("_", 1)[0], run, results)
            rows.append((notebook, run, "missing", "", f"<code>{html.escape(cmd)}</code>"))
            continue
        atomic_write_text(out / f"{notebook}.html", notebook_html(src))
        state = "finished" if (d / "done.json").exists() else "did not finish (the error is shown in it)"
        rows.append((notebook, run, state, _wall(d), f'<a href="{notebook}.html">{notebook}.html</a>'))
        if notebook == REPORT_NOTEBOOK and (d / "report.md").exists():
            atomic_write_text(out / "report.html", markdown_html(d / "report.md", f"{title}: report"))
            report_link = '<p><a href="report.html"><b>The report</b></a> (report.md: every table and figure ' \
                          "beside the paper's, the claims C1–C8, the environment)</p>"
    body = "\n".join("<tr>" + "".join(f"<td>{c if i == 4 else html.escape(str(c))}</td>" for i, c in enumerate(r))
                     + "</tr>" for r in rows)
    page = (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}td,th{padding:4px 10px;"
            "border-bottom:1px solid #ddd;text-align:left}</style></head><body>\n"
            f"<h1>{html.escape(title)}</h1>\n<p>Results folder <code>{html.escape(str(results))}</code>; exported "
            f"{time.strftime('%Y-%m-%d %H:%M:%S')}.</p>\n{report_link or '<p>No report: run notebook 90.</p>'}\n"
            "<table><tr><th>notebook</th><th>run</th><th>status</th><th>wall time</th><th>page</th></tr>\n"
            f"{body}\n</table>\n</body></html>\n")
    return atomic_write_text(out / "index.html", page)


def profile_runs(profile: str | None, results: str | None) -> tuple[Path, str, list[tuple[str, str]]]:
    """(results folder, the report's run name, [(notebook, run_name)]) of a profile: the runs notebook 90 reads
    under it (its *_run parameters), then the report itself and any other notebook at the profile's run name."""
    from scorelib import config as C
    from scorelib.cli import resolve_params

    _, _, cfg = resolve_params(REPORT_NOTEBOOK, profile, [], results)
    runs = list(cfg.upstream_runs())
    for name in sorted(C.NOTEBOOK_CONFIGS):
        if not any(nb == name for nb, _ in runs):
            try:
                runs.append((name, resolve_params(name, profile, [], results)[2].run_name))
            except C.ConfigError:  # a profile that does not configure this notebook (e.g. no train_path)
                pass
    return Path(cfg.results_dir), cfg.run_name, sorted(runs)


def html_dir(results_dir: str | Path, run_name: str) -> Path:
    """Where ``python -m scorelib report`` exports a report run's HTML: <results>/html/<report run name>/."""
    return Path(results_dir) / "html" / run_name


def export_profile(profile: str | None, results: str | None) -> Path:
    """Export a profile's runs to <results>/html/<report run name>/; returns the index page."""
    results_dir, run_name, runs = profile_runs(profile, results)
    return export_html(results_dir, runs, html_dir(results_dir, run_name), title=f"SCoRe reproduction: {run_name} runs")


# ------------------------------------------------------------------ README's results section
def replace_block(text: str, block: str, begin: str = BEGIN, end: str = END) -> str:
    """``text`` with what lies between the marker lines ``begin`` and ``end`` replaced by ``block`` (markers kept).
    Raises ValueError unless each marker occurs exactly once, begin first."""
    nb, ne = text.count(begin), text.count(end)
    if nb != 1 or ne != 1:
        raise ValueError(f"expected one {begin} and one {end} marker, found {nb} and {ne}")
    i, j = text.index(begin) + len(begin), text.index(end)
    if j < i:
        raise ValueError(f"{end} comes before {begin}")
    return text[:i] + "\n" + block.strip("\n") + "\n" + text[j:]


def update_readme(readme: str | Path, report_dir: str | Path) -> Path:
    """Rewrite README's results block from a report run's readme_results.md (notebook 90 writes it)."""
    src = Path(report_dir) / "readme_results.md"
    if not src.exists():
        raise MissingInput(f"{src} does not exist: run notebook 90 first (python -m scorelib run 90 "
                                f"-p run_name {Path(report_dir).name})")
    return atomic_write_text(readme, replace_block(Path(readme).read_text(), src.read_text()))
