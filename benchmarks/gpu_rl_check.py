"""GPU check of the SCoRe trainer on a real-model shape (random weights), through the notebooks' code path.

    python benchmarks/gpu_rl_check.py --data .devdata/math500.jsonl          # on a GPU machine
    python benchmarks/gpu_rl_check.py --shape tiny-qwen2 --device cpu --steps 2 --max-new-tokens 8   # a dry run

No weights can be fetched on the GPU machines, so the model is a Qwen2 shape (default Qwen2.5-1.5B: 1,536 wide,
28 layers) with random weights, saved to a local folder and loaded back with ``scorelib.models.load_model`` as
notebooks 20 and 30 load a ``model`` parameter. Then, with the MATH task (problems of the given MATH500-format
file, its first problems used as training problems: this checks mechanics and cost, not learning; a random model is never right, so training rewards the parity of
a response's length, which gives non-zero advantages):

1. **Stage I** (``stages.train_stage``, LoRA adapter; the reference is the same model with the adapter disabled):
   seconds per step sampling vs training, peak GPU memory, KL of each turn at step 1 (must be 0: a fresh LoRA
   adapter's B matrix is zero, so the policy is the reference).
2. **Stage II** from Stage I's selected checkpoint (the adapter is continued), the same figures.
3. **Resumption**: Stage I run again in a folder holding only its first checkpoint (as if killed after it) resumes
   there; its log is compared with the uninterrupted run's.
4. **Evaluation** of the Stage II policy (``evaluate.evaluate_all``, greedy) on a few problems.

A random model almost never writes its stop token, so every attempt runs to max_new_tokens.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from gpu_check import peak_gib, reset_peak  # noqa: E402 - beside this script

from scorelib import checkpoints, evaluate, rl_settings, stages  # noqa: E402
from scorelib.models import SHAPES, build_random_model, load_model, n_params, n_trainable, save_model  # noqa: E402
from scorelib.tasks import load_task  # noqa: E402


class Killed(Exception):
    pass


def parity_reward(response: str, gold: str) -> float:
    return float(len(response) % 2)


def summary(log: list[dict]) -> dict:
    later = log[1:] or log  # the first step includes warm-up
    med = lambda k: statistics.median(r[k] for r in later)  # noqa: E731
    return dict(steps=len(log), sample_s_median=round(med("sample_s"), 2), train_s_median=round(med("train_s"), 2),
                kl_t1_step1=log[0]["kl_t1"], kl_t2_step1=log[0]["kl_t2"], kl_t1_last=log[-1]["kl_t1"],
                kl_t2_last=log[-1]["kl_t2"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", default="qwen2.5-1.5b", choices=sorted(SHAPES))
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "math500.jsonl"),
                    help="a MATH500-format file (its first problems serve as training and test problems)")
    ap.add_argument("--steps", type=int, default=3, help="RL steps of each stage (default 3)")
    ap.add_argument("--checkpoint-every", type=int, default=1)
    ap.add_argument("--problems-per-step", type=int, default=4)
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--micro-batch", type=int, default=4, help="rows per forward/backward (8 ran out of 80 GB at "
                    "1.5B with 1,900-token rows)")
    ap.add_argument("--lora-rank", type=int, default=16)
    ap.add_argument("--n-eval", type=int, default=16)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--dtype", default="auto")
    args = ap.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="gpu_rl_check_"))
    try:
        t0 = time.perf_counter()
        model, tok = build_random_model(args.shape, dtype=torch.bfloat16 if args.device != "cpu" else torch.float32)
        save_model(model, tok, work / "model")
        del model
        base, tok = load_model(work / "model", device=args.device, dtype=args.dtype)
        dev = next(base.parameters()).device
        print(f"torch {torch.__version__}; device {torch.cuda.get_device_name() if dev.type == 'cuda' else dev}; "
              f"random {args.shape}: {n_params(base):,} parameters, {next(base.parameters()).dtype}; "
              f"saved and loaded in {time.perf_counter() - t0:.1f} s")
        # A random model is never right: reward the parity of the response's length instead, so that the advantages
        # are non-zero and the adapter moves (the MATH grader still runs in the evaluation).
        math_task = load_task("math", data_path=args.data)
        task = dataclasses.replace(math_task, reward=parity_reward)
        problems = task.test_problems(max(args.problems_per_step * 4, args.n_eval))
        budget = dict(steps=args.steps, problems_per_step=args.problems_per_step, k=args.k, lr=1e-5,
                      max_new_tokens=args.max_new_tokens, micro_batch=args.micro_batch,
                      checkpoint_every=args.checkpoint_every)
        lora = (args.lora_rank, 2.0 * args.lora_rank, ("q_proj", "k_proj", "v_proj", "o_proj"))
        common = dict(lora=lora, device=args.device, dtype=args.dtype, select_window=2)
        report = dict(shape=args.shape, params=n_params(base), settings=budget)

        for name, init in (("stage1", None), ("stage2", work / "run" / "models" / "stage1")):
            reset_peak(dev)
            s = rl_settings.objective(name, **budget)
            t = time.perf_counter()
            torch.manual_seed(0)  # the fresh adapter's initialisation (the resumption check below repeats it)
            policy, log, best, reward = stages.train_stage(base, tok, task, problems, s, 0, work / "run", name,
                                                           init_dir=init, **common)
            res = summary(log) | dict(wall_s=round(time.perf_counter() - t, 1), peak_gib=round(peak_gib(dev), 2),
                                      trainable=n_trainable(policy), selected=best.name)
            print(f"[{name}] {json.dumps(res)}")
            report[name] = res
            if name == "stage1":
                report["_stage1_log"] = log
            if name == "stage2":
                reset_peak(dev)
                t = time.perf_counter()
                ev = evaluate.evaluate_all(policy, tok, math_task, problems[: args.n_eval], [0.0], args.max_new_tokens,
                                           args.n_eval, 100, 0)[0.0]
                report["eval"] = dict(problems=args.n_eval, wall_s=round(time.perf_counter() - t, 1),
                                      peak_gib=round(peak_gib(dev), 2), acc_t1=ev.summary["acc_t1"],
                                      acc_t2=ev.summary["acc_t2"])
                print(f"[eval] {json.dumps(report['eval'])}")
            del policy

        # Resumption: Stage I again in a fresh folder (same adapter initialisation), killed (its reward raises) during
        # the step after its first checkpoint, then started again: it must resume there and log (loss and KL included)
        # and end with what the uninterrupted run did; exactly on CPU, up to non-repeatable GPU kernels on a GPU.
        killed_dir = work / "killed"
        first = killed_dir / "checkpoints" / "stage1" / f"step_{args.checkpoint_every:06d}"

        def dies_after_first_checkpoint(response, gold):
            if first.exists():
                raise Killed
            return task.reward(response, gold)

        try:
            torch.manual_seed(0)
            stages.train_stage(base, tok, dataclasses.replace(task, reward=dies_after_first_checkpoint), problems,
                               rl_settings.objective("stage1", **budget), 0, killed_dir, "stage1", **common)
            raise RuntimeError("the run was not killed")
        except Killed:
            pass
        left = [c.name for c in checkpoints.checkpoints(first.parent)]
        _, log2, _, _ = stages.train_stage(base, tok, task, problems, rl_settings.objective("stage1", **budget), 0,
                                           killed_dir, "stage1", **common)
        log1 = report.pop("_stage1_log")
        keys = ("acc_t1", "acc_t2", "reward", "different_answer", "loss", "kl_t1", "kl_t2")
        same = [all(abs(a[k] - b[k]) < 1e-9 for k in keys) for a, b in zip(log1, log2)]
        last = f"step_{args.steps:06d}"
        w1, w2 = (torch.load(d / "checkpoints" / "stage1" / last / "trainable.pt") for d in (work / "run", killed_dir))
        weights_diff = max(float((w1[k].float() - w2[k].float()).abs().max()) for k in w1)
        res = dict(checkpoints_left_by_killed_run=left, steps_logged=len(log2), rows_equal=sum(same), rows=len(same),
                   final_weights_max_abs_diff=weights_diff,
                   kl_t1_uninterrupted=[round(r["kl_t1"], 6) for r in log1],
                   kl_t1_resumed=[round(r["kl_t1"], 6) for r in log2])
        print(f"[resume] {json.dumps(res)}")
        report["resume"] = res
        print("JSON " + json.dumps(report))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
