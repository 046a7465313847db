"""Papermill smoke runs of the notebooks on the CI-sized profile, asserting on the files they write."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
KEYS = ("acc_t1", "acc_t2", "delta", "delta_i2c", "delta_c2i")
REPORTING = "test split, reporting seed 0"  # the smoke profile: the test split, seed 0 (scorelib/protocol.py)


@pytest.fixture(scope="module")
def smoke_results(tmp_path_factory):
    """Run `reproduce --profile smoke` once into a temporary results folder."""
    out = tmp_path_factory.mktemp("results")
    proc = subprocess.run([sys.executable, "-m", "scorelib", "reproduce", "--profile", "smoke", "--results", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out


def _metrics(d: Path) -> dict:
    return json.loads((d / "metrics.json").read_text())


def test_00_writes_model_tables_figures(smoke_results):
    d = smoke_results / "00_toy_world_and_base_model" / "smoke"
    for f in ("00_toy_world_and_base_model.ipynb", "config.json", "manifest.json", "history.jsonl",
              "tables/examples.csv", "tables/corpus_mix.md", "tables/base_quick_check.csv",
              "figures/training_curve.png", "figures/training_curve.pdf", "model/config.json",
              "model/tokenizer.json", "model/scorelib_tiny.json"):
        assert (d / f).exists(), f
    m = _metrics(d)
    assert set(KEYS) <= set(m)
    assert m["delta"] == pytest.approx(m["delta_i2c"] - m["delta_c2i"])
    assert m["protocol"] == REPORTING
    assert json.loads((d / "config.json").read_text())["phase1_steps"] == 30  # the profile reached the notebook
    manifest = json.loads((d / "manifest.json").read_text())
    assert {"git_revision", "torch", "transformers", "seconds"} <= set(manifest)
    history = [json.loads(line) for line in (d / "history.jsonl").read_text().splitlines()]
    assert {h["phase"] for h in history} == {1, 2}


def test_01_writes_table2_and_figures(smoke_results):
    d = smoke_results / "01_base_model_self_correction" / "smoke"
    for f in ("01_base_model_self_correction.ipynb", "tables/table2_base.csv", "tables/table2_base.md",
              "tables/fig6_by_level.csv", "tables/fig7_sequential_base.csv", "figures/fig3_edit_distance_base.png",
              "figures/fig6_by_level.png", "figures/fig7_sequential_base.pdf", "transcripts.md"):
        assert (d / f).exists(), f
    m = _metrics(d)
    for k in KEYS:
        assert m[f"{k}_lo"] <= m[k] <= m[f"{k}_hi"]
    assert m["n"] == 64 and m["protocol"] == REPORTING
    assert len(m["sequential"]) == 3
    assert set(m["by_temperature"]) == {"0.0", "1.0"}
    table = (d / "tables/table2_base.csv").read_text()
    assert "Base model (paper, MATH)" in table and "52.6" in table


def test_01_on_the_validation_split_records_its_protocol(smoke_results):
    """A tuning run of notebook 01 (eval_split val, a tuning seed) on smoke's base model: it evaluates validation
    problems only and says so in its output and its metrics."""
    import re

    from scorelib.tasks import toy

    proc = subprocess.run([sys.executable, "-m", "scorelib", "run", "01", "--profile", "smoke", "-p", "eval_split",
                           "val", "-p", "seed", "100", "-p", "run_name", "smoke_val", "--results", str(smoke_results)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    d = smoke_results / "01_base_model_self_correction" / "smoke_val"
    m = _metrics(d)
    assert m["protocol"] == "validation split, tuning seed 100" and m["n"] == 64
    assert json.loads((d / "config.json").read_text())["eval_split"] == "val"
    assert "validation split, tuning seed 100" in (d / "01_base_model_self_correction.ipynb").read_text()
    shown = re.findall(r"Compute \$[^$]+\$\.", (d / "transcripts.md").read_text())
    assert all(toy.split_of(t) == "val" for t in shown), shown


def test_missing_base_model_fails_before_compute(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "scorelib", "run", "01", "-p", "base_run", "nope",
                           "--results", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "run notebook 00_toy_world_and_base_model first" in proc.stderr
    assert not (tmp_path / "01_base_model_self_correction").exists()


def test_10_writes_table1_figures_and_seed_runs(smoke_results):
    d = smoke_results / "10_sft_baselines" / "smoke"
    for f in ("10_sft_baselines.ipynb", "tables/table1.csv", "tables/table1.md", "tables/table1_per_seed.csv",
              "tables/data_sizes.csv", "tables/star_rounds.csv", "tables/fig4_distribution_shift.csv",
              "tables/claims.csv", "figures/fig3_edit_distance_models.png", "figures/fig3_edit_distance_data_vs_model.png",
              "figures/fig4_distribution_shift.png", "data_examples.md", "transcripts.md", "seeds/seed0/metrics.json",
              "checkpoints/seed0/STaR_Dplus_STaR/config.json", "checkpoints/seed0/Pair-SFT_D_SFT/model.safetensors"):
        assert (d / f).exists(), f
    m = _metrics(d)
    assert set(m["rows"]) == {"Base model", "STaR D_STaR", "STaR D+_STaR", "Pair-SFT D_SFT", "Pair-SFT D+_SFT",
                              "No-info retry (D_SFT data)"}  # no Self-Refine row for the tiny model
    for name, r in m["rows"].items():
        assert r["delta"] == pytest.approx(r["delta_i2c"] - r["delta_c2i"]), name
    assert set(m["claims"]) == {"C2", "C3", "C4"} and m["protocol"] == REPORTING
    table = (d / "tables/table1.csv").read_text()
    assert "STaR D+_STaR (paper, MATH)" in table and "-14.2" in table
    seed = json.loads((d / "seeds/seed0/metrics.json").read_text())
    assert seed["seed"] == 0 and set(seed["data_sizes"]) == {"D_STaR", "D+_STaR", "D_SFT", "D+_SFT"}
    assert [r["iteration"] for r in seed["star_rounds"]["STaR D_STaR"]] == [1, 2]  # smoke: 2 STaR rounds


def test_20_writes_fig5_and_stage1_models(smoke_results):
    d = smoke_results / "20_stage1_vs_multiturn_rl" / "smoke"
    for f in ("tables/evaluation_greedy.csv", "tables/evaluation_T1.csv", "tables/fig5_curves.csv",
              "tables/selected_checkpoints.csv", "tables/claims.csv", "figures/fig5_training_curves.png",
              "history_seed0_stage1.jsonl", "history_seed0_multi_turn.jsonl", "models/seed0/stage1/config.json",
              "models/seed0/multi_turn/model.safetensors", "checkpoints/seed0/stage1/step_000003/state.json"):
        assert (d / f).exists(), f
    history = [json.loads(x) for x in (d / "history_seed0_stage1.jsonl").read_text().splitlines()]
    assert [h["step"] for h in history] == [1, 2, 3]
    assert {"acc_t1", "acc_t2", "different_answer", "kl_t1", "kl_t2", "reward", "shaped_reward", "sample_s",
            "train_s"} <= set(history[0])
    m = _metrics(d)
    assert set(m["rows"]["0.0"]) == {"Base model", "Multi-turn RL", "Stage I"} and "C5" in m["claims"]
    assert m["protocol"] == REPORTING and m["sweep_protocol"].startswith("validation split, reporting seed 0")
    # the smoke profile's one sweep variant (lr 2e-4): its own Stage I run, a row beside base and default, a figure
    assert [r["variant"] for r in m["sweep"]] == ["lr-0.0002"] and m["sweep"][0]["lr"] == 0.0002
    assert (d / "checkpoints/sweep/lr-0.0002/stage1/step_000003/state.json").exists()
    assert (d / "figures/sweep_deltas.png").exists() and (d / "history_sweep_lr-0.0002.jsonl").exists()
    sweep = (d / "tables/sweep.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in sweep[1:]] == ["base", "default", "lr-0.0002"]
    assert "0.0002" in sweep[3]  # the override is not rounded away


def test_30_writes_table2_and_fig1(smoke_results):
    d = smoke_results / "30_score_stage2" / "smoke"
    for f in ("tables/table2.csv", "tables/table2_fix_own.csv", "tables/claims.csv", "figures/fig1_accuracy_bars.png",
              "figures/fig3_edit_distance_score.png", "transcripts.md", "models/seed0/round1_stage2/config.json",
              "history_seed0_round1_stage2.jsonl"):
        assert (d / f).exists(), f
    m = _metrics(d)
    assert m["missing"] == []  # notebooks 10 and 20 ran before it in the same profile
    assert set(m["rows"]) == {"Base model", "Multi-turn RL", "Stage I only", "STaR w/ D+_STaR", "Pair-SFT w/ D_SFT",
                              "SCoRe"}
    assert set(m["claims"]["C6"]) >= {"largest", "positive", "i2c_above_c2i", "final_above"}
    assert m["protocol"] == REPORTING and m["sweep_protocol"].startswith("validation split, reporting seed 0")
    table = (d / "tables/table2.csv").read_text()
    assert "SCoRe (paper, MATH)" in table and "64.4" in table
    assert [r["variant"] for r in m["sweep"]] == ["turn2_baseline-first_attempt", "steps-2"]
    assert m["sweep"][0]["turn2_baseline"] == "first_attempt" and m["sweep"][1]["steps"] == 2
    assert (d / "models/sweep/steps-2/stage2/config.json").exists()
    assert [h["step"] for h in map(json.loads, (d / "history_sweep_steps-2.jsonl").read_text().splitlines())] == [1, 2]
    time = (d / "tables/training_time.csv").read_text().splitlines()
    assert time[0].startswith("seed,stage1_sample_s") and len(time) == 2
    # the smoke profile selects Stage II's checkpoint on greedy validation reward, the starting policy a candidate
    sel = json.loads((d / "checkpoints/seed0/round1_stage2/selection.json").read_text())
    assert [r["step"] for r in sel["scores"]] == [0, 2, 3] and sel["n_problems"] == 8
    assert m["selected"][0]["checkpoint"] in ("step_000000", "step_000002", "step_000003")
    sweep = (d / "tables/sweep.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in sweep[1:]] == ["Stage I", "default", "turn2_baseline-first_attempt", "steps-2"]


def test_40_writes_table4_fig8_and_c7(smoke_results):
    d = smoke_results / "40_ablations" / "smoke"
    rl_rows = ("single_turn", "no_stage1", "no_shaping", "gamma", "offline_y1")
    for f in ("40_ablations.ipynb", "tables/table4_greedy.csv", "tables/table4_T1.md", "tables/changes.csv",
              "tables/selected_checkpoints.csv", "tables/star_rounds.csv", "tables/claims.csv",
              "tables/fig8_curves.csv", "figures/table4_accuracy_bars.png", "figures/fig8_discount.pdf",
              "models/seed0/star/config.json", *(f"history_seed0_{r}.jsonl" for r in rl_rows),
              *(f"models/seed0/{r}/config.json" for r in rl_rows)):
        assert (d / f).exists(), f
    steps = {r: len((d / f"history_seed0_{r}.jsonl").read_text().splitlines()) for r in rl_rows}
    assert steps == dict(single_turn=6, no_stage1=6, no_shaping=3, gamma=6, offline_y1=3)  # smoke: 3 + 3 steps
    assert list((d / "cache" / "pool").glob("y1_pool-*.pkl"))  # the fixed first attempts, sampled once
    m = _metrics(d)
    assert set(m["rows"]) == {"SCoRe", *rl_rows, "star"} and set(m["differences"]) == {*rl_rows, "star"}
    for name, r in m["rows"].items():
        assert r["delta"] == pytest.approx(r["delta_i2c"] - r["delta_c2i"]), name
    for r in m["differences"].values():
        assert r["diff_lo"] <= r["diff"] <= r["diff_hi"]
    stored = _metrics(smoke_results / "30_score_stage2" / "smoke")["rows"]["SCoRe"]
    assert m["rows"]["SCoRe"] == stored  # read from notebook 30's run, not retrained
    c7 = m["claims"]["C7"]
    assert c7["claim"] == "C7" and isinstance(c7["holds"], bool) and set(c7["rows"]) == set(m["differences"])
    assert m["changes"]["no_shaping"] == {"alpha": [10.0, 0.0]} and m["changes"]["star"] == {
        "method": ["reinforce", "star"]}
    assert set(m["fig8"]) == {"collapses", "evidence"} and m["protocol"] == REPORTING
    table = (d / "tables/table4_greedy.csv").read_text()
    assert "w/o reward shaping (paper, MATH)" in table and "62.6" in table
    star = (d / "tables/star_rounds.csv").read_text().splitlines()
    assert len(star) == 1 + 3  # three STaR rounds over Stage II's 3 steps


def test_40_refuses_a_score_run_with_another_recipe(smoke_results):
    proc = subprocess.run([sys.executable, "-m", "scorelib", "run", "40", "--profile", "smoke", "-p", "lr", "0.0003",
                           "-p", "run_name", "smoke_lr", "--results", str(smoke_results)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode != 0
    assert "was made with other settings" in proc.stdout + proc.stderr and "'lr'" in proc.stdout + proc.stderr
    assert not list((smoke_results / "40_ablations" / "smoke_lr").glob("checkpoints/*"))  # before any training


def test_90_report_runs_last_and_writes_report_claims_and_html(smoke_results):
    import re

    from scorelib import claims, config

    record = json.loads((smoke_results / "reproduce_smoke.json").read_text())
    assert list(record["seconds"])[-1] == "90_report" and record["html_export_s"] is not None
    d = smoke_results / "90_report" / "smoke"
    report = (d / "report.md").read_text()
    checklist = report.split("### Claims C1–C8", 1)[1].split("\n### ", 1)[0]
    verdicts = {r.split(" | ")[0].strip("| "): r.split(" | ")[1] for r in checklist.splitlines() if r.startswith("| C")}
    assert list(verdicts) == [f"C{i}" for i in range(1, 9)]
    assert set(verdicts.values()) <= {"holds", "does not hold", "missing run"}, verdicts
    m = _metrics(d)
    registered = {n.split("_", 1)[0] for n in config.NOTEBOOK_CONFIGS}
    for c in claims.CLAIMS:  # every claim whose notebook ran has a verdict, recomputed to the one it stored
        v = m["claims"][c.id]
        if c.notebook in registered:
            assert v["status"] in ("holds", "does not hold") and v["note"] == "", (c.id, v)
            assert v["source"] == ("stored" if c.id == "C3" else "recomputed") and v["run"].endswith("/smoke")
        else:
            assert v["status"] == "missing run" and f"python -m scorelib run {c.notebook}" in v["note"]
    for link in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report):  # every figure the report shows exists
        assert (d / link).is_file(), link
    assert "fig1_accuracy_bars.png" in report and "| this suite (30_score_stage2/smoke) |" in report
    assert "## Results (generated from the report of run `smoke`)" in (d / "readme_results.md").read_text()
    html = smoke_results / "html" / "smoke"
    index = (html / "index.html").read_text()
    for name in config.NOTEBOOK_CONFIGS:  # every executed notebook of the profile, exported and linked
        assert f'<a href="{name}.html">' in index and (html / f"{name}.html").stat().st_size > 0, name
    assert '<a href="report.html">' in index and "data:image/png;base64" in (html / "report.html").read_text()


def test_50_writes_scaling_curves_fig7_and_c8(smoke_results):
    from scorelib.claims import claim_c8

    d = smoke_results / "50_inference_scaling" / "smoke"
    for f in ("50_inference_scaling.ipynb", "tables/fig1_scaling.csv", "tables/fig1_scaling.md", "tables/gains.csv",
              "tables/scaling_base.csv", "tables/scaling_score.csv", "tables/sampling_seconds.csv", "tables/claims.csv",
              "tables/fig7_accuracy.md", "tables/fig7_changed.csv", "tables/fig7_pair_sft.csv",
              "figures/fig1_inference_scaling.png", "figures/fig1_inference_scaling.pdf",
              "figures/fig7_sequential_attempts.png", "figures/fig7_sequential_attempts.pdf"):
        assert (d / f).exists(), f
    m = _metrics(d)
    assert m["budgets"] == [2, 4, 8] and m["seeds"] == [0] and m["n"] == 64 and m["protocol"] == REPORTING
    assert set(m["scaling"]) == {"Base", "SCoRe"}
    for name, rows in m["scaling"].items():
        assert [r["budget"] for r in rows] == [2, 4, 8], name
        for r in rows:
            for k in ("parallel", "sequential", "diff"):
                assert r[f"{k}_lo"] <= r[k] <= r[f"{k}_hi"], (name, r)
            assert r["diff"] == pytest.approx(r["sequential"] - r["parallel"]) and r["n"] == 64
    assert m["claims"]["C8"] == claim_c8(m["scaling"]) and m["claims"]["C8"]["budget"] == 8
    assert set(m["sequential"]) == {"Base", "Pair-SFT", "SCoRe"} and m["missing"] == []
    assert all([r["attempt"] for r in rows] == [1, 2, 3] for rows in m["sequential"].values())  # smoke: 3 attempts
    fig1 = (d / "tables/fig1_scaling.csv").read_text()
    assert "paper sequential (SCoRe, MATH500, approx.)" in fig1 and "SCoRe sequential − parallel" in fig1
    assert [line.split(",")[0] for line in (d / "tables/fig7_accuracy.csv").read_text().splitlines()] == [
        "model", "Base", "Pair-SFT", "SCoRe"]


def test_50_marks_missing_pair_sft_and_needs_notebook_30(smoke_results):
    proc = subprocess.run([sys.executable, "-m", "scorelib", "run", "50", "--profile", "smoke", "-p", "sft_run", "nope",
                           "-p", "run_name", "smoke_nosft", "-p", "budgets", "[2]", "-p", "n_seq_attempts", "2",
                           "--results", str(smoke_results)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    d = smoke_results / "50_inference_scaling" / "smoke_nosft"
    m = _metrics(d)
    assert m["missing"] == ["Pair-SFT"] and set(m["sequential"]) == {"Base", "SCoRe"}
    assert "python -m scorelib run 10_sft_baselines -p run_name nope" in m["notes"][-1]
    fig7 = (d / "tables/fig7_accuracy.csv").read_text().splitlines()
    assert fig7[2].startswith("Pair-SFT,missing,missing,") and "10_sft_baselines" in fig7[2]
    proc = subprocess.run([sys.executable, "-m", "scorelib", "run", "50", "--profile", "smoke", "-p", "score_run",
                           "nope", "-p", "run_name", "smoke_noscore", "--results", str(smoke_results)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "run notebook 30_score_stage2 first" in proc.stderr, proc.stderr[-2000:]
    assert not (smoke_results / "50_inference_scaling" / "smoke_noscore").exists()


def test_45_writes_three_turn_table_figure_and_stages(smoke_results):
    d = smoke_results / "45_three_turn" / "smoke"
    stages = ("stage1a", "stage1b", "stage2")
    for f in ("45_three_turn.ipynb", "tables/three_turn.csv", "tables/three_turn.md",
              "tables/three_turn_transitions.md", "tables/stage_settings.csv", "tables/selected_checkpoints.csv",
              "tables/training_curves.csv",
              "figures/three_turn_accuracy.png", "figures/three_turn_accuracy.pdf", "transcripts.md",
              *(f"history_seed0_{s}.jsonl" for s in stages), *(f"models/seed0/{s}/config.json" for s in stages),
              *(f"checkpoints/seed0/{s}/selection.json" for s in stages)):
        assert (d / f).exists(), f
    m = _metrics(d)
    assert list(m["rows"]) == ["Base model", "Stage 1(a)", "Stage 1(b)", "Stage 2"] and m["protocol"] == REPORTING
    for name, r in m["rows"].items():
        assert r["n"] == 64 and r["seeds"] == 1, name
        for k in ("acc_t1", "acc_t2", "acc_t3", "delta_t1_t2", "delta_t2_t3", "delta_t1_t3"):
            assert r[f"{k}_lo"] <= r[k] <= r[f"{k}_hi"], (name, k)
        assert r["delta_t2_t3"] == pytest.approx(r["acc_t3"] - r["acc_t2"])
        assert r["delta_t2_t3"] == pytest.approx(r["delta_i2c_t2_t3"] - r["delta_c2i_t2_t3"])
    assert {k: (s["reward_turn1"], s["reward_turn2"], s["reward_turn3"]) for k, s in m["settings"].items()} == {
        "Stage 1(a)": (False, True, False), "Stage 1(b)": (False, False, True), "Stage 2": (True, True, True)}
    assert m["paper"]["Stage 1(b)"]["acc_t3"] == 23.2 and m["seeds"] == [0]
    for s in stages:  # three turns trained and logged at every step (smoke: 3 steps a stage)
        log = [json.loads(x) for x in (d / f"history_seed0_{s}.jsonl").read_text().splitlines()]
        assert len(log) == 3 and {"acc_t3", "kl_t3", "different_answer_t3"} <= set(log[0]), s
    runs = {s: json.loads(next((d / "checkpoints/seed0" / s).glob("step_*/state.json")).read_text())["run"]
            for s in stages}
    assert "reference" in runs["stage1b"] and "reference" not in runs["stage2"]  # 1(b) against the 1(a) model
    assert runs["stage2"]["init"].endswith("models/seed0/stage1b")
    table = (d / "tables/three_turn.csv").read_text()
    assert "Stage 2 (paper, Gemma-2 2B)" in table and "Stage 1(b) (toy, greedy, 1 seed(s))" in table
    report = (smoke_results / "90_report" / "smoke" / "report.md").read_text()
    three = report.split("### Three-turn extension", 1)[1].split("\n### ", 1)[0]
    assert "45_three_turn/smoke" in three and "three_turn.md" in three and "Stage 2 (paper, Gemma-2 2B)" in three
