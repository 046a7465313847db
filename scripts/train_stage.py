"""An RL stage (or Pair-SFT) of the notebooks as a script, so it can run under ``accelerate launch``.

The notebooks run in one Jupyter process. To train on several GPUs (or CPU processes), run the same stage with this
script under a launcher; each process runs it, the trainers split the work (``scorelib.distributed``) and the main
process writes the checkpoints, the log, the metrics and the final model. Without a launcher it is a plain
single-process run. Rerunning the same command resumes an RL stage from its newest checkpoint.

    # one process
    python scripts/train_stage.py --objective stage1 --base tiny-random --out results/_scale/stage1 --steps 3
    # two CPU processes (gloo)
    ACCELERATE_USE_CPU=true accelerate launch --multi_gpu --num_processes 2 scripts/train_stage.py \\
        --objective stage1 --base tiny-random --out results/_scale/stage1_2p --steps 3
    # eight GPUs (runbook.md, "Scale-out"): accelerate launch --config_file scripts/accelerate/ddp_8gpu.yaml ...

``--base``: a model folder (notebook 00's ``results/00_toy_world_and_base_model/<run>/model``, or a real model's
folder or hub id) or ``tiny-random`` (a random 1-layer tiny model: plumbing only). ``--init``: a checkpoint folder to
start from (Stage II from Stage I's saved model). ``--objective pair_sft``: Pair-SFT on the base's own samples
(``sft.collect_traces`` + ``sft.fine_tune``), one epoch.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scorelib import distributed, rl, rl_settings, sft  # noqa: E402
from scorelib.config import SFTConfig  # noqa: E402
from scorelib.evaluate import evaluate_two_turn  # noqa: E402
from scorelib.models import build_tiny_model, build_tiny_tokenizer, load_model, save_model  # noqa: E402
from scorelib.stages import start_policy  # noqa: E402
from scorelib.tasks import load_task  # noqa: E402


def write_json(path: Path, data) -> None:
    """Main process only; written beside and renamed (a kill leaves the old file or the new one)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str))
    os.replace(tmp, path)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--objective", default="stage1", choices=[*rl_settings.OBJECTIVES, "pair_sft"])
    ap.add_argument("--base", required=True, help="model folder / hub id, or tiny-random")
    ap.add_argument("--init", default=None, help="checkpoint folder to start the policy from (e.g. Stage I's model)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--task", default="toy")
    ap.add_argument("--data-path", default="")
    ap.add_argument("--train-path", default="")
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--problems-per-step", type=int, default=32)
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--lr", type=float, default=None, help="default: the RL settings' (1e-4) or SFT's")
    ap.add_argument("--max-new-tokens", type=int, default=160)
    ap.add_argument("--micro-batch", type=int, default=None)
    ap.add_argument("--checkpoint-every", type=int, default=10)
    ap.add_argument("--lora-rank", type=int, default=0)
    ap.add_argument("--n-train", type=int, default=2000)
    ap.add_argument("--n-eval", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dtype", default="auto")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    dev = distributed.device()  # builds the Accelerator first under a launcher, so each process gets its own GPU
    out = Path(args.out)
    if distributed.is_main():
        out.mkdir(parents=True, exist_ok=True)
    distributed.barrier()
    task = load_task(args.task, data_path=args.data_path, train_path=args.train_path)
    if args.base == "tiny-random":
        tok = build_tiny_tokenizer()
        base = build_tiny_model(tok, 32, 1, 2, 64, seed=args.seed).to(dev if dev != "auto" else "cpu").eval()
    else:
        base, tok = load_model(args.base, device=dev, dtype=args.dtype)
    train = task.train_problems(args.n_train, seed=args.seed)
    lora = (args.lora_rank, 16.0, ("q_proj", "v_proj"))
    if args.objective == "pair_sft":
        s = SFTConfig(n_problems=len(train), lora_rank=args.lora_rank, max_new_tokens=args.max_new_tokens,
                      **({"lr": args.lr} if args.lr else {}))  # notebook 10's settings, by its names
        traces = sft.collect_traces(base, tok, train, task.protocol, task.reward, k=s.k, temperature=s.temperature,
                                    seed=args.seed, **sft.generation(s))
        pairs = sft.d_pair_sft(traces, seed=args.seed)
        policy, log, steps = sft.fine_tune(base, tok, task.protocol, train, pairs, s, s.pair_epochs, seed=args.seed)
        settings = dict(asdict(s), pairs=len(pairs), steps=steps)
    else:
        budget = dict(steps=args.steps, problems_per_step=args.problems_per_step, k=args.k,
                      max_new_tokens=args.max_new_tokens, micro_batch=args.micro_batch,
                      checkpoint_every=args.checkpoint_every, **({"lr": args.lr} if args.lr else {}))
        s = rl_settings.objective(args.objective, **budget)
        policy, ref = start_policy(base, args.init, *lora, device=dev, dtype=args.dtype)
        run_info = dict(init=str(args.init), lora=list(lora), base=args.base, task=task.name)
        log = rl.rl_train(policy, ref, tok, task.protocol, train, s, seed=args.seed, reward_fn=task.reward,
                          extract_fn=task.extract, checkpoint_dir=out / "checkpoints", run_info=run_info)
        settings = asdict(s)
    t_train = time.perf_counter() - t0
    e = evaluate_two_turn(policy, tok, task.test_problems(args.n_eval), task.protocol, temperature=0.0,
                          max_new_tokens=args.max_new_tokens, n_boot=200, seed=args.seed, reward_fn=task.reward,
                          extract_fn=task.extract)
    if distributed.is_main():
        save_model(policy, tok, out / "model", tiny=args.base == "tiny-random")
        write_json(out / "history.json", log)
        write_json(out / "metrics.json", dict(objective=args.objective, settings=settings,
                                              processes=distributed.world(), train_seconds=t_train,
                                              total_seconds=time.perf_counter() - t0, summary=e.summary))
        print(json.dumps(dict(processes=distributed.world(), train_seconds=round(t_train, 1),
                              acc_t1=e.summary.get("acc_t1"), acc_t2=e.summary.get("acc_t2"))))
    distributed.barrier()


if __name__ == "__main__":
    main()
