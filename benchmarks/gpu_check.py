"""GPU check: a Qwen2.5-0.5B-shaped model (random weights) through the real-model path.

    python benchmarks/gpu_check.py                      # on a GPU machine: the full check
    python benchmarks/gpu_check.py --shape tiny-qwen2 --batch 4 --max-new-tokens 8 --device cpu   # a dry run

No weights can be fetched on the GPU machines, so the model is built from Qwen2.5-0.5B's config
(896 wide, 24 layers, 14 heads, 2 KV heads, 151,936-token vocabulary) with random weights, and the
tokenizer is scorelib's byte-level ChatML tokenizer padded to that vocabulary. It measures:

1. **Rollout vs plain generate.** Generated tokens/s of the one-turn rollout engine next to
   ``model.generate`` on the same left-padded batch of MATH-format prompts (the paper's MATH
   prompt; problems from ../shared/data/math500.jsonl when present, else toy problems in MATH
   format), same max_new_tokens, greedy; each called once to warm up (the first call of either is
   several times slower), then ``--repeats`` times interleaved; medians and their ratio. Then the
   two-turn rollout [x, y1, p, y2] (the paper's instruction p) at T=1, tokens/s.
2. **One Stage II-style training step**, full fine-tuning (frozen reference copy) and LoRA
   (reference = the same model with the adapter disabled): k=2 samples per problem, rewards on
   both turns with the turn-2 bonus alpha*(r2 - r1), RLOO advantages, k3 KL with beta1 on both
   turns, gradient accumulation over micro-batches. Seconds of sampling and of training, and the
   peak GPU memory of each.

A random model almost never writes its stop token, so every row runs to max_new_tokens: the
numbers are an upper bound on sequence length for the given max_new_tokens.
"""
from __future__ import annotations

import argparse
import copy
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # runnable from a checkout without `pip install -e .`
    sys.path.insert(0, str(ROOT))

import transformers  # noqa: E402

from scorelib import grading, prompts  # noqa: E402
from scorelib import rollout as R  # noqa: E402
from scorelib.models import (SHAPES, apply_lora, build_random_model, n_params, n_trainable, pick_device,  # noqa: E402
                             pick_dtype)
from scorelib import objectives, rl_settings  # noqa: E402
from scorelib.update import policy_update  # noqa: E402

MATH500 = ROOT.parent / "shared" / "data" / "math500.jsonl"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def peak_gib(device: torch.device) -> float:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def load_problems(n: int) -> tuple[list, str]:
    if MATH500.exists():
        from scorelib.tasks.math import load_math

        return load_math(MATH500)[:n], f"MATH500 ({MATH500})"
    from scorelib.tasks import toy

    return toy.generate(n, "test", seed=0), "toy problems in MATH format (MATH500 not found)"


def timed(fn, device):
    sync(device)
    t0 = time.perf_counter()
    out = fn()
    sync(device)
    return out, time.perf_counter() - t0


def stage2_step(model, ref, tok, problems, k, max_new_tokens, micro_batch, lr, device, alpha=10.0, beta1=0.01):
    """Sample k two-turn rollouts per problem at T=1, then one policy update; seconds and peak memory."""
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    reset_peak(device)
    ro, sample_s = timed(lambda: R.rollout(model, tok, [p.problem for p in problems], [p.answer for p in problems],
                                           prompts.MATH, grading.reward, n_turns=2, k=k, temperature=1.0,
                                           max_new_tokens=max_new_tokens, batch_size=len(problems) * k, seed=0),
                         device)
    s = rl_settings.objective("stage2", alpha=alpha, beta1=beta1, k=k)
    adv, _ = objectives.advantages(ro.rewards, **rl_settings.advantage_args(s))
    masks = [ro.attempt_mask(1).float(), ro.attempt_mask(2).float()]
    upd, train_s = timed(lambda: policy_update(model, ref, opt, ro.input_ids, ro.attention_mask, masks, adv,
                                               [beta1, beta1], micro_batch=micro_batch), device)
    changed = opt.state != {}
    return dict(rows=int(ro.input_ids.shape[0]), seq_len=int(ro.input_ids.shape[1]), sample_s=round(sample_s, 2),
                train_s=round(train_s, 2), peak_gib=round(peak_gib(device), 2), loss=upd["loss"],
                kl_t1=upd["kl_t1"], kl_t2=upd["kl_t2"], optimizer_stepped=changed)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", default="qwen2.5-0.5b", choices=sorted(SHAPES))
    ap.add_argument("--batch", type=int, default=32, help="problems in the rollout/generate batch (default 32)")
    ap.add_argument("--max-new-tokens", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3, help="timed calls of each after one warm-up (default 3)")
    ap.add_argument("--train-problems", type=int, default=8, help="problems in the training step (x k=2 samples)")
    ap.add_argument("--micro-batch", type=int, default=4, help="rows per forward/backward in the training step")
    ap.add_argument("--lora-rank", type=int, default=16)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--dtype", default="auto", help="auto: bfloat16 on a GPU, float32 on a CPU")
    ap.add_argument("--skip", nargs="*", default=[], choices=("generate", "full", "lora"))
    args = ap.parse_args(argv)
    device = pick_device(args.device)
    dtype = pick_dtype(args.dtype, device)

    print(f"python {platform.python_version()}  torch {torch.__version__}  transformers {transformers.__version__}")
    if device.type == "cuda":
        print(f"device {torch.cuda.get_device_name(device)}, {torch.cuda.get_device_properties(device).total_memory / 2**30:.0f} GiB")
    else:
        print(f"device {device} (no GPU: a dry run of the script)")
    t0 = time.perf_counter()
    model, tok = build_random_model(args.shape, dtype=dtype)
    model.to(device).eval()
    print(f"model: random {args.shape} (Qwen2ForCausalLM), {n_params(model):,} parameters, {dtype}; "
          f"vocabulary {len(tok)}; built in {time.perf_counter() - t0:.1f} s")
    problems, source = load_problems(max(args.batch, args.train_problems))
    print(f"prompts: {source}; the paper's MATH prompt through the ChatML template")
    report: dict = dict(shape=args.shape, device=str(torch.cuda.get_device_name(device) if device.type == "cuda"
                                                      else device), dtype=str(dtype), params=n_params(model))

    if "generate" not in args.skip:
        batch = problems[: args.batch]
        texts, answers = [p.problem for p in batch], [p.answer for p in batch]
        stop = R.stop_token_ids(model, tok)
        ids, att = R.pad_left([R.encode_turn1(tok, prompts.MATH, t) for t in texts], tok.pad_token_id, device)
        zero = lambda response, gold: 0.0  # noqa: E731 - time generation, not grading

        def run_rollout():
            ro = R.rollout(model, tok, texts, answers, prompts.MATH, zero, n_turns=1, temperature=0.0,
                           max_new_tokens=args.max_new_tokens, batch_size=args.batch)
            return sum(len(R.trim_at_stop(r, set(stop))) for r in ro.attempt_ids[0])

        @torch.no_grad()
        def run_generate():
            out = model.generate(input_ids=ids, attention_mask=att, max_new_tokens=args.max_new_tokens,
                                 do_sample=False, eos_token_id=stop, pad_token_id=tok.pad_token_id)
            return sum(len(R.trim_at_stop(r, set(stop))) for r in out[:, ids.shape[1]:].tolist())

        reset_peak(device)
        (_, warm_r), (_, warm_g) = timed(run_rollout, device), timed(run_generate, device)
        runs = {"rollout": [], "generate": []}
        for _ in range(args.repeats):
            for name, fn in (("rollout", run_rollout), ("generate", run_generate)):
                n, sec = timed(fn, device)
                runs[name].append(n / sec)
        med = {k: statistics.median(v) for k, v in runs.items()}
        print(f"\n[1] batch {args.batch}, prompts {ids.shape[1]} tokens (left-padded), max_new_tokens "
              f"{args.max_new_tokens}, greedy; warm-up s: rollout {warm_r:.2f}, generate {warm_g:.2f}")
        for name, v in runs.items():
            print(f"    {name:8s} tokens/s median {med[name]:10.1f}  (all: {', '.join(f'{x:.0f}' for x in v)})")
        print(f"    ratio rollout / generate: {med['rollout'] / med['generate']:.3f}; peak memory "
              f"{peak_gib(device):.2f} GiB")
        reset_peak(device)
        two, sec2 = timed(lambda: R.rollout(model, tok, texts, answers, prompts.MATH, zero, n_turns=2, temperature=1.0,
                                            max_new_tokens=args.max_new_tokens, batch_size=args.batch, seed=0), device)
        n2 = sum(len(R.trim_at_stop(r, set(stop))) for t in two.attempt_ids for r in t)
        print(f"    two-turn rollout [x, y1, p, y2] at T=1: {n2} tokens in {sec2:.2f} s = {n2 / sec2:.1f} tokens/s; "
              f"sequences {two.input_ids.shape[1]} tokens; peak {peak_gib(device):.2f} GiB")
        report.update(rollout_tps=med["rollout"], generate_tps=med["generate"],
                      ratio=med["rollout"] / med["generate"], two_turn_tps=n2 / sec2)

    train = problems[: args.train_problems]
    if "full" not in args.skip:
        ref = copy.deepcopy(model).eval().requires_grad_(False)
        res = stage2_step(model, ref, tok, train, 2, args.max_new_tokens, args.micro_batch, 1e-6, device)
        del ref
        print(f"\n[2] Stage II step, full fine-tuning ({n_trainable(model):,} trainable), frozen reference copy: {res}")
        report["full"] = res
    if "lora" not in args.skip:
        model, _ = build_random_model(args.shape, dtype=dtype)
        lora = apply_lora(model.to(device), rank=args.lora_rank, alpha=2 * args.lora_rank)
        res = stage2_step(lora, None, tok, train, 2, args.max_new_tokens, args.micro_batch, 1e-5, device)
        print(f"[2] Stage II step, LoRA r={args.lora_rank} ({n_trainable(lora):,} trainable), reference = adapter "
              f"disabled: {res}")
        report["lora"] = res
    print("\nJSON " + json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
