"""scripts/compare_runs.py: the before/after check of a refactor ignores timing and nothing else."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("compare_runs", ROOT / "scripts" / "compare_runs.py")
compare_runs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(compare_runs)


def _run(root: Path, acc: float, seconds: float, weights: bytes, train_s: float) -> None:
    d = root / "20_x" / "smoke"
    (d / "tables").mkdir(parents=True)
    (d / "metrics.json").write_text(json.dumps({"acc_t1": acc, "seconds": seconds, "rows": [{"sample_s": seconds}]}))
    (d / "tables" / "sel.csv").write_text(f"seed,checkpoint,train_s\n0,step_2,{train_s}\n")
    (d / "history_seed0_stage1.jsonl").write_text(json.dumps({"step": 1, "acc_t1": acc, "train_s": seconds}) + "\n")
    (d / "model.safetensors").write_bytes(weights)


def test_timing_alone_is_no_difference(tmp_path):
    _run(tmp_path / "a", 50.0, 1.0, b"w", 0.1)
    _run(tmp_path / "b", 50.0, 9.0, b"w", 0.7)
    assert compare_runs.compare(tmp_path / "a", tmp_path / "b", "smoke") == []


def test_a_number_or_a_weight_that_changed_is_reported(tmp_path):
    _run(tmp_path / "a", 50.0, 1.0, b"w", 0.1)
    _run(tmp_path / "b", 50.5, 1.0, b"v", 0.1)
    assert compare_runs.compare(tmp_path / "a", tmp_path / "b", "smoke") == [
        "20_x/history_seed0_stage1.jsonl: differs", "20_x/metrics.json: differs", "20_x/model.safetensors: weights differ"]
    assert compare_runs.main([str(tmp_path / "a"), str(tmp_path / "b")]) == 1


def test_a_missing_run_is_reported(tmp_path):
    _run(tmp_path / "a", 50.0, 1.0, b"w", 0.1)
    (tmp_path / "b").mkdir()
    assert compare_runs.compare(tmp_path / "a", tmp_path / "b", "smoke") == ["20_x: no run in " + str(tmp_path / "b")]
