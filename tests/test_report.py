"""The report's parts on hand-made run folders: the claims checklist (missing runs, recomputed verdicts that flip
with their numbers, stored ones, malformed files), the README block rewrite, and the HTML export."""
import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from scorelib import checklist, claims, config, export, report

ROOT = Path(__file__).resolve().parents[1]
RUNS = {f: "r" for f in config.REPORT_RUN_FIELDS}


def _write(d: Path, metrics=None, **files) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    if metrics is not None:
        (d / "metrics.json").write_text(metrics if isinstance(metrics, str) else json.dumps(metrics))
    for name, text in files.items():
        (d / name.replace("__", ".")).write_text(text)
    return d


def _row(t1, t2, i2c, c2i, **ci) -> dict:
    return dict(acc_t1=t1, acc_t2=t2, delta=t2 - t1, delta_i2c=i2c, delta_c2i=c2i, **ci)


def _verdicts(results: Path) -> dict:
    return {v.claim: v for v in checklist.collect(results, RUNS)}


def test_every_claim_is_registered_once_with_a_notebook_and_a_run_field():
    assert [c.id for c in claims.CLAIMS] == [f"C{i}" for i in range(1, 9)]
    assert {c.run_field for c in claims.CLAIMS} <= set(config.REPORT_RUN_FIELDS)
    assert all(config.REPORT_RUN_FIELDS[c.run_field] == c.notebook for c in claims.CLAIMS)


def test_claim_sources_say_which_verdicts_are_recomputed_and_where_each_is_stored(tmp_path):
    t = report.claim_sources()
    assert list(t.index) == [f"C{i}" for i in range(1, 9)]
    assert t.loc["C3", "verdict"] == "stored" and t.loc["C3", "run"] == "sft_run"  # needs every trace's edit ratio
    assert (t.drop("C3")["verdict"] == "recomputed").all()  # C1, C2, C4-C8: the claims_section text says so too
    assert t.loc["C8", "notebook"] == "50_inference_scaling" and t.loc["C8", "stored"] == "metrics.json: claims.C8"
    assert t.loc["C1", "stored"] == "metrics.json: c1_holds"
    how = report.claims_section(checklist.collect(tmp_path, RUNS)).text
    assert "(C1, C2, C4-C8)" in how and "(C3," in how


def test_missing_runs_are_reported_with_the_command_that_makes_them(tmp_path):
    vs = _verdicts(tmp_path)
    assert [v.status for v in vs.values()] == [checklist.MISSING] * 8
    assert "python -m scorelib run 01 -p run_name r" in vs["C1"].note and str(tmp_path) in vs["C1"].note
    assert vs["C6"].notebook == "30_score_stage2" and vs["C6"].holds is None
    _write(tmp_path / "30_score_stage2" / "r")  # a folder without metrics.json: unfinished or failed
    assert "unfinished or failed" in _verdicts(tmp_path)["C6"].note


def test_c1_is_recomputed_and_flips_with_its_numbers(tmp_path):
    d = tmp_path / "01_base_model_self_correction" / "r"
    _write(d, {**_row(50.0, 47.0, 2.0, 5.0), "c1_holds": True})  # Δ -3 <= 0, Δc→i 5 >= Δi→c 2
    v = _verdicts(tmp_path)["C1"]
    assert (v.status, v.holds, v.source, v.note) == ("holds", True, "recomputed", "")
    assert "Δ -3.0" in v.evidence and "Δi→c 2.0 vs Δc→i 5.0" in v.evidence
    _write(d, {**_row(50.0, 53.0, 5.0, 2.0), "c1_holds": False})  # Δ +3: self-correction helps
    v = _verdicts(tmp_path)["C1"]
    assert (v.status, v.holds) == ("does not hold", False)


def test_a_stored_verdict_that_disagrees_with_its_numbers_is_noted(tmp_path):
    _write(tmp_path / "01_base_model_self_correction" / "r", {**_row(50.0, 47.0, 2.0, 5.0), "c1_holds": False})
    v = _verdicts(tmp_path)["C1"]
    assert v.holds is True and "the run stored holds=False, its numbers give True" in v.note


def _c6_rows(score_delta: float) -> dict:
    ci = dict(delta_lo=score_delta - 1.0, delta_hi=score_delta + 1.0)
    return {"Base model": _row(50.0, 47.0, 2.0, 5.0), "Multi-turn RL": _row(52.0, 51.0, 2.0, 3.0),
            "SCoRe": _row(52.0, 52.0 + score_delta, 4.0, 4.0 - score_delta, **ci)}


def test_c6_is_recomputed_and_flips_with_its_numbers(tmp_path):
    d = tmp_path / "30_score_stage2" / "r"
    _write(d, dict(rows=_c6_rows(3.0), claims=dict(C6=dict(claim="C6", holds=True, evidence="stored"))))
    v = _verdicts(tmp_path)["C6"]
    assert (v.holds, v.source, v.note) == (True, "recomputed", "")
    assert v.evidence.startswith("SCoRe Δ +3.0 [+2.0, +4.0]") and v.details["largest"] is True
    _write(d, dict(rows=_c6_rows(-0.5), claims=dict(C6=dict(claim="C6", holds=False, evidence="stored"))))
    v = _verdicts(tmp_path)["C6"]
    assert (v.holds, v.details["positive"], v.note) == (False, False, "")


def test_c2_and_c4_are_recomputed_from_notebook_10s_numbers(tmp_path):
    base = _row(50.0, 47.0, 2.0, 5.0)
    ci0 = dict(delta_lo=-1.0, delta_hi=1.0)
    rows = {"Base model": base, "STaR D_STaR": _row(50.0, 44.0, 3.0, 9.0, delta_c2i_lo=7.0, delta_c2i_hi=11.0),
            "STaR D+_STaR": _row(50.0, 50.0, 1.0, 1.0, **ci0), "Pair-SFT D+_SFT": _row(50.0, 50.0, 1.0, 1.0, **ci0)}
    fig4 = {"epoch fraction": [0.0, 0.5, 1.0], "fixed y1, training problems": [10.0, 15.0, 20.0],
            "fixed y1, held-out problems": [10.0, 12.0, 14.0], "own y1, held-out problems": [9.0, 6.0, 4.0]}
    d = _write(tmp_path / "10_sft_baselines" / "r", dict(rows=rows, fig4=fig4, claims=dict(
        C2=dict(holds=True), C3=dict(claim="C3", holds=True, evidence="near-0 share: ..."), C4=dict(holds=True))))
    vs = _verdicts(tmp_path)
    assert [(vs[c].holds, vs[c].source, vs[c].note) for c in ("C2", "C3", "C4")] == [
        (True, "recomputed", ""), (True, "stored", ""), (True, "recomputed", "")]
    assert vs["C4"].details["change"] == {"fixed y1, training problems": 10.0, "fixed y1, held-out problems": 4.0,
                                          "own y1, held-out problems": -5.0}
    # STaR's Δc→i CI no longer above the base's, and the model's own first attempts now gain: both flip
    rows["STaR D_STaR"]["delta_c2i_lo"] = 4.0
    fig4["own y1, held-out problems"] = [9.0, 10.0, 12.0]
    _write(d, dict(rows=rows, fig4=fig4, claims=dict(C2=dict(holds=True), C4=dict(holds=True))))
    vs = _verdicts(tmp_path)
    assert (vs["C2"].holds, vs["C4"].holds) == (False, False)
    assert "numbers give False" in vs["C2"].note and "numbers give False" in vs["C4"].note
    assert vs["C3"].status == checklist.NOT_RECORDED


def _history(steps: int, t1: float, t2: float, diff: tuple) -> str:
    return "".join(json.dumps(dict(step=s, acc_t1=t1, acc_t2=t2,
                                   different_answer=diff[0] + (diff[1] - diff[0]) * s / steps)) + "\n"
                   for s in range(1, steps + 1))


def test_c5_is_recomputed_from_the_training_histories(tmp_path):
    d = tmp_path / "20_stage1_vs_multiturn_rl" / "r"
    stored = dict(claims=dict(C5=dict(holds=True)), seeds=[0])
    _write(d, stored, history_seed0_multi_turn__jsonl=_history(30, 50.0, 50.0, (40.0, 10.0)),
           history_seed0_stage1__jsonl=_history(30, 48.0, 52.0, (40.0, 30.0)))
    v = _verdicts(tmp_path)["C5"]
    assert (v.holds, v.source, v.note) == (True, "recomputed", "")
    assert "Stage I turn 2 - turn 1 = +4.0" in v.evidence
    _write(d, stored, history_seed0_stage1__jsonl=_history(30, 50.0, 50.0, (40.0, 30.0)))  # Stage I keeps no gap
    assert _verdicts(tmp_path)["C5"].holds is False


def test_a_run_without_the_numbers_gives_its_stored_verdict(tmp_path):
    nb40, nb50 = checklist.notebook_name("40"), checklist.notebook_name("50")
    nb40, nb50 = (nb40 if nb40 != "40" else "40_x"), (nb50 if nb50 != "50" else "50_x")
    _write(tmp_path / nb40 / "r", dict(claims=dict(C7=dict(claim="C7", holds=False, evidence="e7"))))
    _write(tmp_path / nb50 / "r", dict(claims=dict(C8=dict(claim="C8", holds=True, evidence="e8"))))
    vs = _verdicts(tmp_path)
    assert (vs["C7"].status, vs["C7"].evidence, vs["C7"].source) == ("does not hold", "e7", "stored")
    assert (vs["C8"].status, vs["C8"].evidence, vs["C8"].source) == ("holds", "e8", "stored")
    assert vs["C8"].note.startswith("not recomputed (") and "the stored verdict is shown" in vs["C8"].note


def test_a_notebook_not_registered_is_found_by_its_number(tmp_path, monkeypatch):
    monkeypatch.setattr(config, "NOTEBOOK_CONFIGS", {k: v for k, v in config.NOTEBOOK_CONFIGS.items()
                                                     if not k.startswith("50")})
    assert checklist.notebook_name("50", tmp_path) == "50"
    _write(tmp_path / "50_other_name" / "r", dict(claims=dict(C8=dict(claim="C8", holds=True, evidence="e8"))))
    v = _verdicts(tmp_path)["C8"]
    assert (v.notebook, v.status) == ("50_other_name", "holds")
    assert "(notebook 50 is not in this checkout yet)" in checklist.run_command("50", "r")
    assert checklist.run_command("40", "default") == "python -m scorelib run 40 --profile default"  # its profile's
    assert checklist.run_command("40", "seed1", "/x") == "python -m scorelib run 40 -p run_name seed1 --results /x"


def test_c8_is_recomputed_and_flips_with_its_numbers(tmp_path):
    pytest.importorskip("scorelib.scaling")
    row = dict(budget=32, sequential=70.0, parallel=67.0, diff=3.0, diff_lo=1.0, diff_hi=5.0, n=64, seeds=1,
               single=60.0)
    d = tmp_path / checklist.notebook_name("50") / "r"
    _write(d, dict(scaling={"SCoRe": [{**row, "budget": 2, "diff_lo": -9.0}, row]}, claims=dict(C8=dict(holds=True))))
    v = _verdicts(tmp_path)["C8"]
    assert (v.holds, v.source, v.note) == (True, "recomputed", "") and v.details["budget"] == 32
    _write(d, dict(scaling={"SCoRe": [{**row, "diff_lo": -1.0}]}, claims=dict(C8=dict(holds=True))))
    v = _verdicts(tmp_path)["C8"]
    assert v.holds is False and "numbers give False" in v.note


def test_c7_is_recomputed_and_flips_with_its_numbers(tmp_path):
    ablations = pytest.importorskip("scorelib.ablations")
    rows = {"SCoRe": _row(50.0, 53.0, 5.0, 2.0, delta_lo=2.0, delta_hi=4.0)}
    rows.update({r: _row(50.0, 50.0, 3.0, 3.0) for r in claims.C7_ROWS})
    diffs = {r: dict(diff=-3.0, diff_lo=-5.0, diff_hi=-1.0, n=64) for r in claims.C7_ROWS}
    d = tmp_path / checklist.notebook_name("40") / "r"
    _write(d, dict(rows=rows, differences=diffs, claims=dict(C7=dict(holds=True))))
    v = _verdicts(tmp_path)["C7"]
    assert (v.holds, v.source, v.note) == (True, "recomputed", "")
    diffs[claims.C7_ROWS[0]]["diff_hi"] = 0.5  # one ablation's difference no longer below 0
    _write(d, dict(rows=rows, differences=diffs, claims=dict(C7=dict(holds=True))))
    assert _verdicts(tmp_path)["C7"].holds is False


@pytest.mark.parametrize("text", ["{not json", "[1, 2]"])
def test_a_malformed_metrics_file_is_reported_not_raised(tmp_path, text):
    _write(tmp_path / "30_score_stage2" / "r", text)
    vs = _verdicts(tmp_path)
    assert vs["C6"].status == checklist.UNREADABLE and "metrics.json" in vs["C6"].note
    assert vs["C1"].status == checklist.MISSING


def test_checklist_table_lists_every_claim(tmp_path):
    _write(tmp_path / "01_base_model_self_correction" / "r", {**_row(50.0, 47.0, 2.0, 5.0), "c1_holds": True})
    t = checklist.table(checklist.collect(tmp_path, RUNS))
    assert list(t.index) == [f"C{i}" for i in range(1, 9)]
    assert list(t["verdict"]) == ["holds"] + [checklist.MISSING] * 7


# ------------------------------------------------------------------ README block
README = "# X\n\nintro\n\n<!-- results:begin -->\n## Results so far\n\nold table\n<!-- results:end -->\n\n## Next\n"


def test_replace_block_exact_text():
    assert export.replace_block(README, "## Results\n\nnew table\n") == (
        "# X\n\nintro\n\n<!-- results:begin -->\n## Results\n\nnew table\n<!-- results:end -->\n\n## Next\n")
    assert export.replace_block(README, "") == "# X\n\nintro\n\n<!-- results:begin -->\n\n<!-- results:end -->\n\n## Next\n"


@pytest.mark.parametrize("text,msg", [
    ("no markers\n", "found 0 and 0"),
    (README + "<!-- results:begin -->\n", "found 2 and 1"),
    ("<!-- results:end -->\nx\n<!-- results:begin -->\n", "comes before"),
])
def test_replace_block_refuses_bad_markers(text, msg):
    with pytest.raises(ValueError, match=msg):
        export.replace_block(text, "x")


def test_update_readme_from_a_report_run(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(README)
    rep = _write(tmp_path / "results" / "90_report" / "r", None, readme_results__md="## Results (run r)\n\n| a |\n")
    export.update_readme(readme, rep)
    assert readme.read_text() == ("# X\n\nintro\n\n<!-- results:begin -->\n## Results (run r)\n\n| a |\n"
                                  "<!-- results:end -->\n\n## Next\n")
    with pytest.raises(FileNotFoundError, match="run notebook 90 first"):
        export.update_readme(readme, tmp_path / "results" / "90_report" / "nope")


# ------------------------------------------------------------------ the report's Markdown and the HTML export
def _executed(path: Path, png: bytes) -> None:
    import base64

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# title"), nbformat.v4.new_code_cell(
        "1", outputs=[nbformat.v4.new_output("display_data", data={"image/png": base64.b64encode(png).decode()})])])
    nbformat.write(nb, str(path))


PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                    "1f15c4890000000d4944415478da63f8cfc0f01f0005000201a5f6e5b40000000049454e44ae426082")


def test_report_sections_and_html_export(tmp_path):
    results = tmp_path / "results"
    d30 = _write(results / "30_score_stage2" / "r", dict(rows=_c6_rows(3.0), protocol="test split, reporting seed 0",
                                                         claims={}), config__json=json.dumps(dict(seed=0, seeds=[7])))
    _write(d30 / "tables", None, table2__md="| Method | Δ |\n|---|---|\n| SCoRe (toy, 1 seed(s)) | 3.0 [2.0, 4.0] |\n")
    (d30 / "figures").mkdir()
    (d30 / "figures" / "fig1_accuracy_bars.png").write_bytes(PNG)
    _executed(d30 / "30_score_stage2.ipynb", PNG)
    (d30 / "done.json").write_text(json.dumps(dict(key="k", seconds=12.0, finished="t")))
    cfg = config.make_config(config.ReportConfig, dict(results_dir=str(results), seeds=[0], run_name="r",
                                                       **{f: "r" for f in config.REPORT_RUN_FIELDS}))
    runs = report.find_runs(cfg)
    assert runs["score_run"].present and runs["score_run"].flags == ["seeds [7] are not among [0]"]
    assert runs["sft_run"].status == "missing"
    table2 = report.artefact_sections(runs)[0]
    assert "| SCoRe (toy, 1 seed(s)) | 3.0 [2.0, 4.0] |" in table2.text and "differs from this report" in table2.text
    assert [p.name for _, p in table2.figures] == ["fig1_accuracy_bars.png"]
    assert "](../../30_score_stage2/r/figures/fig1_accuracy_bars.png)" in table2.markdown(results / "90_report" / "r")
    sft = report.artefact_sections(runs)[2]
    assert "10_sft_baselines/r: missing run**: `python -m scorelib run 10 -p run_name r" in sft.text
    ours = report.external_section(runs).tables["external"].loc["this suite (30_score_stage2/r)"]
    assert ours["SCoRe"] == "52.0 → 55.0 (+3.0 [+2.0, +4.0])" and ours["base"] == "50.0 → 47.0"
    rep = _write(results / "90_report" / "r", None,
                 report__md="# Report\n\n![fig](../../30_score_stage2/r/figures/fig1_accuracy_bars.png)\n")
    _executed(rep / "90_report.ipynb", PNG)
    index = export.export_html(results, [("30_score_stage2", "r"), ("10_sft_baselines", "r"), ("90_report", "r")],
                               results / "html" / "r")
    page = index.read_text()
    for name in ("30_score_stage2", "90_report"):
        assert f'<a href="{name}.html">' in page and (index.parent / f"{name}.html").exists()
        assert "data:image/png;base64" in (index.parent / f"{name}.html").read_text()
    assert '<a href="report.html">' in page and "12 s" in page
    assert "missing" in page and "python -m scorelib run 10 -p run_name r" in page
    assert not (index.parent / "10_sft_baselines.html").exists()
    assert "data:image/png;base64" in (index.parent / "report.html").read_text()  # the figure travels with it


def test_cli_report_exports_and_refuses_a_readme_without_report(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(README)
    proc = subprocess.run([sys.executable, "-m", "scorelib", "report", "--profile", "smoke", "--results",
                           str(tmp_path / "res"), "--readme", str(readme)], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 2 and "run notebook 90 first" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert export.html_dir(tmp_path / "res", "smoke") == tmp_path / "res" / "html" / "smoke"
    index = (export.html_dir(tmp_path / "res", "smoke") / "index.html").read_text()
    assert "No report: run notebook 90." in index and "python -m scorelib run 30 --profile smoke" in index
    assert readme.read_text() == README


def test_manifest_records_what_decides_the_floating_point_path(monkeypatch):
    from scorelib import provenance

    monkeypatch.setenv("MKL_CBWR", "AVX2")
    monkeypatch.delenv("ATEN_CPU_CAPABILITY", raising=False)
    n = provenance.numerics()
    assert n["numerics_env"]["MKL_CBWR"] == "AVX2" and "ATEN_CPU_CAPABILITY" not in n["numerics_env"]
    assert n["cpu_capability"] in {"DEFAULT", "NO AVX", "AVX2", "AVX512", "ZVECTOR", "VSX", "SVE256", "SVE128"}
    assert n["cpu"] and n["cpu"] == provenance.cpu_model()
