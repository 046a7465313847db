"""Notebook 01 run in JupyterLab, driven by a person's clicks in headless Chromium.

The papermill smoke tests prove the notebooks run from the command line; this test proves they run interactively.
It starts ``jupyter lab`` on loopback (a free port, a random token, its own temporary Jupyter and IPython
folders), makes notebook 00's smoke base model with the command line, writes a copy of notebook 01 with the
smoke profile's parameters injected (papermill's ``parameterize_notebook``, which does not execute it), opens it
in Chromium, clicks Run > Run All Cells, waits for the kernel to finish, checks that the last cell's output is on
the page and that the run folder's files are on disk, and saves a screenshot in the test's temporary folder.

Needs Chromium and the ``playwright`` Python package (the dev extra): on Debian/Ubuntu ``apt-get install
chromium``; the browser is found as ``chromium``, ``chromium-browser`` or ``google-chrome`` on PATH, or at
``$SCORELIB_CHROMIUM``. Without them the test is skipped, saying what to install. Deselect it with
``-m "not browser"``.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NB = "01_base_model_self_correction"
BROWSER_ENV = "SCORELIB_CHROMIUM"
INSTALL = ("install a Chromium (Debian/Ubuntu: `apt-get install chromium`) and the playwright Python package "
           "(`pip install -e '.[dev]'`); never `playwright install`: the test uses the system browser")
# Chromium on a machine without internet: no background connections, no first-run work, a fresh profile.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
RUN_TIMEOUT_S = 240  # notebook 01 on the smoke profile takes ~15 s; a kernel that never goes idle fails here
SERVER_TIMEOUT_S = 60

pytestmark = pytest.mark.browser


def find_chromium() -> str | None:
    """The Chromium executable: $SCORELIB_CHROMIUM if set (a missing path means none), else the first on PATH."""
    if BROWSER_ENV in os.environ:
        p = os.environ[BROWSER_ENV]
        return p if p and os.access(p, os.X_OK) else None
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if path := shutil.which(name):
            return path
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, timeout: float = 5.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as r:  # loopback only
        return r.read()


def _write_lab_settings(settings: Path) -> None:
    """Every cell in the page (no windowing), and no news or update check (no network; no toast on the picture)."""
    for plugin, value in {"@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
                          "@jupyterlab/apputils-extension/notification": {"fetchNews": "false",
                                                                          "checkForUpdates": False}}.items():
        f = settings / f"{plugin}.jupyterlab-settings"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(json.dumps(value))


def _start_lab(root: Path, home: Path, port: int, token: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
           "JUPYTER_CONFIG_DIR": str(home / "config"), "JUPYTER_DATA_DIR": str(home / "data"),
           "JUPYTER_RUNTIME_DIR": str(home / "runtime"), "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"), "IPYTHONDIR": str(home / "ipython"),
           "JUPYTER_PLATFORM_DIRS": "1", "PYTHONPATH": str(ROOT)}
    _write_lab_settings(home / "settings")
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
           f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
           f"--ServerApp.root_dir={root}", "--LabApp.news_url=", "--LabApp.extension_manager=readonly",
           "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if os.geteuid() == 0:  # CI and these machines run as root; the server is on loopback behind a token
        cmd.append("--allow-root")
    log = open(home / "jupyterlab.log", "wb")
    return subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def _wait_for_server(proc: subprocess.Popen, base: str, token: str, log: Path) -> None:
    deadline = time.time() + SERVER_TIMEOUT_S
    while time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"jupyter lab exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            json.loads(_get(f"{base}/api/status?token={token}", timeout=2))
            return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"jupyter lab did not answer within {SERVER_TIMEOUT_S} s:\n{log.read_text()[-3000:]}")


def _stop_server(proc: subprocess.Popen, base: str, token: str) -> None:
    """Ask the server to shut down (it stops its kernels, which run in sessions of their own), then kill its group."""
    if proc.poll() is None:
        try:
            req = urllib.request.Request(f"{base}/api/shutdown", method="POST",
                                         headers={"Authorization": f"token {token}"})
            urllib.request.urlopen(req, timeout=5).close()
            proc.wait(timeout=15)
        except (OSError, subprocess.TimeoutExpired):
            pass
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if proc.poll() is not None:
            break
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass


def _smoke_notebook(results: Path, dest: Path) -> dict:
    """Notebook 01 with the smoke profile's parameters injected (not executed), as `scorelib run` would pass them."""
    import nbformat
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    from scorelib.cli import resolve_params

    _, params, _ = resolve_params(NB, "smoke", [], str(results))
    nb = parameterize_notebook(load_notebook_node(str(ROOT / "notebooks" / f"{NB}.ipynb")), params)
    nbformat.write(nb, dest)
    return params


# Read in the page: each code cell's prompt ("[*]:" queued or running, "[3]:" done, "[ ]:" not run), whether it
# shows a traceback (JupyterLab renders errors as stderr), and its output's text.
CELLS_JS = """() => Array.from(document.querySelectorAll('.jp-Notebook .jp-CodeCell')).map(c => ({
    prompt: ((c.querySelector('.jp-InputPrompt') || {}).innerText || '').trim(),
    error: Array.from(c.querySelectorAll('[data-mime-type="application/vnd.jupyter.stderr"]'))
        .some(o => o.innerText.includes('Traceback (most recent call last)')),
    text: (c.querySelector('.jp-Cell-outputArea') || {}).innerText || ''}))"""


KERNEL_READY_JS = """() => Array.from(document.querySelectorAll('.jp-StatusBar-TextItem[title^="Change kernel"]'))
    .some(e => e.innerText.endsWith('| Idle') && !e.innerText.startsWith('No Kernel'))"""


def _ran(prompt: str) -> bool:
    return prompt.startswith("[") and prompt.rstrip(":").endswith("]") and prompt.rstrip(":")[1:-1].strip().isdigit()


def _kernel_idle(base: str, token: str) -> bool:
    sessions = json.loads(_get(f"{base}/api/sessions?token={token}"))
    return bool(sessions) and all(s["kernel"]["execution_state"] == "idle" for s in sessions)


def _wait_for_run(page, base: str, token: str, shot: Path) -> list[dict]:
    """Wait until every code cell ran and the kernel is idle. Fail, with a screenshot, when a cell shows an error,
    when the run stopped with cells not run (idle, nothing queued), or after RUN_TIMEOUT_S."""
    deadline, stopped = time.time() + RUN_TIMEOUT_S, 0
    while True:
        cells = page.evaluate(CELLS_JS)
        idle = _kernel_idle(base, token)
        if cells and all(_ran(c["prompt"]) for c in cells) and idle:
            return cells
        stopped = stopped + 1 if idle and not any("*" in c["prompt"] for c in cells) else 0
        bad = [c for c in cells if c["error"]]
        if bad or stopped >= 4 or time.time() > deadline:
            page.screenshot(path=str(shot))
            why = ("a cell shows an error" if bad else "the run stopped before the last cell" if stopped >= 4
                   else f"the notebook did not finish within {RUN_TIMEOUT_S} s")
            shown = (bad or [c for c in cells if c["text"]] or [{"text": ""}])[-1]["text"]
            pytest.fail(f"{why} (screenshot {shot}); prompts {[c['prompt'] for c in cells]}; "
                        f"last output:\n{shown[-3000:]}")
        page.wait_for_timeout(500)


def _no_browser(why: str):
    """Skip on a person's machine without a browser; fail in CI, whose .ci/run installs Debian's chromium (a CI log
    that shows this test skipped would hide that the suite was never tried interactively)."""
    if os.environ.get("CI") == "true" and BROWSER_ENV not in os.environ:
        pytest.fail(f"CI=true but {why}: .ci/run should have installed it ({INSTALL})")
    pytest.skip(f"{why}: {INSTALL}")


def test_notebook_01_runs_in_jupyterlab(tmp_path):
    chromium = find_chromium()
    if chromium is None:
        where = f"${BROWSER_ENV}={os.environ[BROWSER_ENV]!r} is not an executable" if BROWSER_ENV in os.environ \
            else "no chromium, chromium-browser or google-chrome on PATH"
        _no_browser(f"no browser ({where})")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _no_browser("the playwright Python package is not installed")

    results, root, home = tmp_path / "results", tmp_path / "lab", tmp_path / "jupyter"
    root.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    proc = subprocess.run([sys.executable, "-m", "scorelib", "run", "00_toy_world_and_base_model", "--profile",
                           "smoke", "--results", str(results)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    params = _smoke_notebook(results, root / f"{NB}.ipynb")
    run = results / NB / params["run_name"]

    port, token = _free_port(), secrets.token_hex(16)
    base, shot = f"http://127.0.0.1:{port}", tmp_path / "jupyterlab_01.png"
    server = _start_lab(root, home, port, token)
    try:
        _wait_for_server(server, base, token, home / "jupyterlab.log")
        with sync_playwright() as p:
            context = p.chromium.launch_persistent_context(
                str(tmp_path / "chromium-profile"), executable_path=chromium, headless=True, args=CHROMIUM_ARGS,
                viewport={"width": 1400, "height": 1000})
            try:
                page = context.new_page()
                page.set_default_timeout(SERVER_TIMEOUT_S * 1000)
                page.goto(f"{base}/lab/tree/{NB}.ipynb?token={token}")
                page.locator(".jp-Notebook .jp-CodeCell").first.wait_for()
                # the status bar names the started kernel ("Python 3 (ipykernel) | Idle") before anything runs
                page.wait_for_function(KERNEL_READY_JS)
                page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()  # Run > Run All Cells
                page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
                cells = _wait_for_run(page, base, token, shot)
                page.locator(".jp-Notebook .jp-CodeCell").last.scroll_into_view_if_needed()
                page.screenshot(path=str(shot))
            finally:
                context.close()
    finally:
        _stop_server(server, base, token)

    print(f"screenshot of the executed notebook: {shot}")
    assert shot.stat().st_size > 10_000
    # the run folder the notebook wrote, read back from disk
    for f in ("metrics.json", "config.json", "manifest.json", "tables/table2_base.csv", "tables/fig6_by_level.csv",
              "figures/fig3_edit_distance_base.png", "transcripts.md"):
        assert (run / f).exists(), f
    metrics = json.loads((run / "metrics.json").read_text())
    assert json.loads((run / "config.json").read_text())["n_test"] == params["n_test"] == metrics["n"]
    # the last cell's output, as the page shows it: the protocol line and every row of Table 2 from disk
    import pandas as pd

    last = cells[-1]["text"]
    assert metrics["protocol"] in last, last[-2000:]
    for row in pd.read_csv(run / "tables/table2_base.csv", index_col=0).index:
        assert row in last, (row, last[-2000:])
