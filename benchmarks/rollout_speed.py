"""Generated tokens/s of the rollout engine next to plain ``model.generate`` on the same batch.

    python benchmarks/rollout_speed.py [--model PATH] [--batch 64] [--repeats 5]
                                       [--max-new-tokens 160] [--threads N] [--device cpu]

One-turn greedy rollout (``scorelib.rollout.rollout``, n_turns=1, one batch of ``--batch`` toy test
problems) against ``model.generate`` on the same left-padded batch with the same max_new_tokens,
eos ids and pad id. Each is called once to warm up, then ``--repeats`` times, interleaved (so drift
in machine load hits both alike); the medians and the ratio rollout / generate are printed.

Generated tokens are counted the same way for both: per row, the tokens up to and including the
first stop token (all max_new_tokens when there is none). The reward function is a constant by
default so that the comparison is about generation; ``--reward grading`` uses scorelib.grading.reward.

Without ``--model`` the model is an untrained tiny Llama at notebook 00's default size
(PretrainConfig: d_model, n_layers, n_heads, d_ffn); an untrained model never writes eos, so every
row runs to max_new_tokens. ``--model`` takes a saved model folder (e.g. a notebook-00 run's model/).
"""
from __future__ import annotations

import argparse
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
from scorelib.config import PretrainConfig  # noqa: E402
from scorelib.models import (  # noqa: E402
    build_tiny_model,
    build_tiny_tokenizer,
    load_model,
    n_params,
    pick_device,
)
from scorelib.tasks import toy  # noqa: E402


def count_generated(rows: list[list[int]], stop: set[int]) -> int:
    """Generated tokens counted alike for both: per row up to and including the first stop token."""
    return sum(len(R.trim_at_stop(row, stop)) for row in rows)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="a saved model folder (save_pretrained); default: untrained tiny model")
    ap.add_argument("--batch", type=int, default=64, help="toy problems, all in one batch (default 64)")
    ap.add_argument("--repeats", type=int, default=5, help="timed calls of each, after one warm-up (default 5)")
    ap.add_argument("--max-new-tokens", type=int, default=PretrainConfig.max_new_tokens)
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's own)")
    ap.add_argument("--device", default="cpu", help="cpu (default), cuda or auto")
    ap.add_argument("--reward", choices=("constant", "grading"), default="constant",
                    help="reward function inside the rollout (default: constant 0, to time generation)")
    args = ap.parse_args(argv)
    if args.batch < 1 or args.repeats < 1 or args.max_new_tokens < 1:
        ap.error("--batch, --repeats and --max-new-tokens must be >= 1")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)

    if args.model:
        model, tok = load_model(args.model, device=str(device))
        source = args.model
    else:
        d = PretrainConfig()
        tok = build_tiny_tokenizer()
        model = build_tiny_model(tok, d.d_model, d.n_layers, d.n_heads, d.d_ffn, seed=0).to(device).eval()
        source = (f"untrained tiny Llama, PretrainConfig defaults d_model={d.d_model} n_layers={d.n_layers} "
                  f"n_heads={d.n_heads} d_ffn={d.d_ffn}")
    model.eval()

    problems = toy.generate(args.batch, "test", seed=0)
    texts = [p.problem for p in problems]
    answers = [p.answer for p in problems]
    protocol = prompts.TOY
    stop = R.stop_token_ids(model, tok)
    stop_set = set(stop)
    contexts = [R.encode_turn1(tok, protocol, t) for t in texts]
    ids, att = R.pad_left(contexts, tok.pad_token_id, device)
    reward_fn = grading.reward if args.reward == "grading" else (lambda response, gold: 0.0)

    def run_rollout() -> tuple[int, list[list[int]]]:
        ro = R.rollout(model, tok, texts, answers, protocol, reward_fn, n_turns=1, k=1, temperature=0.0,
                       max_new_tokens=args.max_new_tokens, batch_size=args.batch)
        rows = ro.attempt_ids[0]
        return count_generated(rows, stop_set), rows

    @torch.no_grad()
    def run_generate() -> tuple[int, list[list[int]]]:
        out = model.generate(input_ids=ids, attention_mask=att, max_new_tokens=args.max_new_tokens,
                             do_sample=False, eos_token_id=stop, pad_token_id=tok.pad_token_id)
        gen = out[:, ids.shape[1]:].tolist()
        rows = [R.trim_at_stop(row, stop_set) for row in gen]
        return count_generated(gen, stop_set), rows

    def timed(fn):
        sync(device)
        t0 = time.perf_counter()
        n, rows = fn()
        sync(device)
        return n, time.perf_counter() - t0, rows

    print(f"python {platform.python_version()}  torch {torch.__version__}  transformers {transformers.__version__}  "
          f"platform {platform.platform()}")
    print(f"torch threads {torch.get_num_threads()} (interop {torch.get_num_interop_threads()})  device {device}  "
          f"dtype {next(model.parameters()).dtype}")
    print(f"model: {source}; {n_params(model):,} parameters")
    print(f"batch {args.batch} toy test problems, prompt lengths {min(map(len, contexts))}-{max(map(len, contexts))} "
          f"tokens (left-padded to {ids.shape[1]}), max_new_tokens {args.max_new_tokens}, greedy, stop ids {stop}, "
          f"reward {args.reward}, {args.repeats} repeats after 1 warm-up each")

    _, warm_r, rows_r = timed(run_rollout)  # warm-up
    _, warm_g, rows_g = timed(run_generate)  # warm-up
    same = rows_r == rows_g
    print(f"warm-up seconds: rollout {warm_r:.3f}, generate {warm_g:.3f}")
    res = {"rollout": [], "generate": []}
    for _ in range(args.repeats):
        for name, fn in (("rollout", run_rollout), ("generate", run_generate)):
            n, sec, _ = timed(fn)
            res[name].append((n, sec))

    print(f"same generated ids from both: {same}")
    med = {}
    for name, runs in res.items():
        tps = [n / s for n, s in runs]
        med[name] = statistics.median(tps)
        print(f"{name:9s} tokens/call {runs[0][0]:6d}  seconds/call median {statistics.median(s for _, s in runs):7.3f}"
              f"  tokens/s median {med[name]:9.1f}  (all: {', '.join(f'{x:.0f}' for x in tps)})")
    print(f"ratio rollout / generate (tokens/s, medians): {med['rollout'] / med['generate']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
