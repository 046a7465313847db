"""Scale-out (scorelib.distributed): 2 processes give the same update as 1 process, and 1 process is untouched.

The 2-process run is ``scripts/distributed_check.py`` under accelerate's launcher, on the CPU with the gloo backend:
``ACCELERATE_USE_CPU=true accelerate launch --multi_gpu --num_processes 2``. accelerate's ``--cpu`` flag alone starts
several processes only through mpirun (not installed here); its ``--multi_gpu`` launcher (torch.distributed.run
underneath) with ``ACCELERATE_USE_CPU`` set gives accelerate's MULTI_CPU setup, DDP over gloo. The single-process
reference runs the same scenario functions in this process. Each scenario feeds both runs the same examples or
rollouts (sampling differs between processes by design), so equal weights mean an equal update.

Tolerance: for every parameter tensor, max |w2 - w1| <= 1e-5 * max |w1| (+ 1e-7): DDP sums the two shards' gradients
in another order than one process sums its rows, and Adam divides by sqrt(v), which turns float32 rounding in the
gradient into a relative difference of the same size in the update (measured: at most 4.3e-6, per-turn Adam).
"""
from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from scorelib import distributed, prompts
from scorelib.models import build_tiny_tokenizer
from scorelib.rollout import rollout, rollout_sharded
from scorelib.tasks import toy
from scorelib.training import Example, train_masked_lm

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "distributed_check.py"
RTOL, ATOL = 1e-5, 1e-7


def _check_module():
    spec = importlib.util.spec_from_file_location("distributed_check", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """(2-process results, 1-process results, seconds the launch took)."""
    out = tmp_path_factory.mktemp("dist") / "two.pt"
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    env.update(ACCELERATE_USE_CPU="true", OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--main_process_ip", "127.0.0.1", "--main_process_port", str(_free_port()), str(SCRIPT), "--out", str(out)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    seconds = time.perf_counter() - t0
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    two = torch.load(out, weights_only=False)
    mod = _check_module()
    one = {name: fn() for name, fn in mod.SCENARIOS.items()}
    return two, one, seconds


def max_rel_diff(a: dict, b: dict) -> float:
    """max over tensors of max |a - b| / max |a|."""
    assert a.keys() == b.keys()
    return max(float((a[n] - b[n]).abs().max()) / max(1e-12, float(a[n].abs().max())) for n in a)


def assert_same_weights(a: dict, b: dict) -> None:
    for n in a:
        bound = RTOL * float(a[n].abs().max()) + ATOL
        assert float((a[n] - b[n]).abs().max()) <= bound, (n, float((a[n] - b[n]).abs().max()), bound)


def test_two_processes_really_ran(runs):
    two, one, seconds = runs
    assert two["world"] == 2 and "world" not in one
    print(f"2-process launch (all scenarios): {seconds:.1f} s")


def test_sft_two_processes_equal_one(runs):
    """train_masked_lm, global batch 5 split 3 / 2 rows with different token counts, 5 steps (a pass of 12 examples
    ends in a 2-row batch, 1 row a process), clipping at 1.0, AdamW, warm-up then cosine."""
    two, one, _ = runs
    assert_same_weights(one["sft"]["weights"], two["sft"]["weights"])
    print(f"SFT max relative weight difference: {max_rel_diff(one['sft']['weights'], two['sft']['weights']):.2e}")
    for h1, h2 in zip(one["sft"]["history"], two["sft"]["history"], strict=True):  # the logged loss is the global one
        assert h1["step"] == h2["step"] and h1["loss"] == pytest.approx(h2["loss"], rel=1e-5)


@pytest.mark.parametrize("scenario", ["update", "update_per_turn"])
def test_rl_update_on_fixed_rollouts_two_processes_equal_one(runs, scenario):
    """Two policy_update calls on one batch of rollouts (5 RLOO groups of 2: 3 groups on process 0, 2 on process 1),
    micro-batches of 2 rows, gradient clipping at 0.5 (the gradient norm is 2-4: clipping is active)."""
    two, one, _ = runs
    assert_same_weights(one[scenario]["weights"], two[scenario]["weights"])
    print(f"{scenario} max relative weight difference: "
          f"{max_rel_diff(one[scenario]['weights'], two[scenario]['weights']):.2e}")
    for o1, o2 in zip(one[scenario]["outs"], two[scenario]["outs"], strict=True):
        assert o1["grad_norm"] > 0.5  # clipped
        for key in o1:
            assert o2[key] == pytest.approx(o1[key], rel=1e-4, abs=1e-7), key


def test_rl_train_two_processes_equal_one_and_resume_from_main_process_checkpoints(runs):
    """rl_train, 4 steps of 3 problems x k=2 (2 problems on process 0, 1 on process 1) with a sampler that gives a
    problem the same samples on any process; killed during step 3 and started again: both runs resume from the
    checkpoint of step 2 written by the main process alone, and end where an uninterrupted 1-process run ends."""
    two, one, _ = runs
    assert_same_weights(one["rl_train"]["weights"], two["rl_train"]["weights"])
    print(f"rl_train max relative weight difference: "
          f"{max_rel_diff(one['rl_train']['weights'], two['rl_train']['weights']):.2e}")
    assert two["rl_train"]["resumed_at"] == one["rl_train"]["resumed_at"] == "step_000002"
    assert two["rl_train"]["checkpoints"] == one["rl_train"]["checkpoints"] == [f"step_00000{i}" for i in range(1, 5)]
    for r1, r2 in zip(one["rl_train"]["log"], two["rl_train"]["log"], strict=True):  # the global log on every process
        for key in r1:
            assert r2[key] == pytest.approx(r1[key], rel=1e-4, abs=1e-6), key


def test_greedy_evaluation_sharded_and_gathered_equals_one_process(runs):
    two, one, _ = runs
    a, b = one["evaluate"], two["evaluate"]
    assert a["index"] == b["index"] == list(range(5))
    assert a["texts"] == b["texts"] and a["c1"] == b["c1"] and a["c2"] == b["c2"]
    assert torch.equal(a["input_ids"], b["input_ids"]) and torch.equal(a["segments"], b["segments"])
    assert a["summary"] == b["summary"]


# --- a single process takes the existing code paths ---------------------------------------------------------------

def test_share_splits_contiguously_and_evenly():
    assert [list(distributed.share(5, r, 2)) for r in range(2)] == [[0, 1, 2], [3, 4]]
    assert [list(distributed.share(2, r, 3)) for r in range(3)] == [[0], [1], []]
    assert sum((list(distributed.share(17, r, 4)) for r in range(4)), []) == list(range(17))
    assert list(distributed.share(7)) == list(range(7))  # one process: everything


def test_single_process_builds_no_accelerator_and_takes_the_plain_paths(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert not distributed.active() and distributed.world() == 1 and distributed.is_main()
    assert distributed.rank_seed(5) == 5
    mod = _check_module()
    tok = build_tiny_tokenizer()
    model = mod.fresh(tok)
    assert distributed.wrap(model) is model
    ex = [Example(list(range(5, 15)), [0] * 4 + [1] * 6), Example(list(range(7, 14)), [0] * 2 + [1] * 5)]
    train_masked_lm(model, ex, steps=2, batch_size=2, lr=1e-3, pad_id=tok.pad_token_id, progress=False)
    assert distributed._ACCELERATOR is None  # nothing of accelerate was set up
    problems = toy.generate(3, "train", seed=0)
    args = (mod.fresh(tok, seed=2), tok, [p.problem for p in problems], [p.answer for p in problems], prompts.TOY,
            mod.text_reward)
    a = rollout(*args, k=2, temperature=1.0, max_new_tokens=6, seed=4)
    b = rollout_sharded(*args, k=2, temperature=1.0, max_new_tokens=6, seed=4)
    assert a.texts == b.texts and np.array_equal(a.rewards, b.rewards) and torch.equal(a.input_ids, b.input_ids)
    assert b.meta.keys() == a.meta.keys()  # rollout's own result, no "processes" key
