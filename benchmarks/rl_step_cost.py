"""Where an RL step's time goes, at several batch sizes, for this checkout and for an earlier revision.

    python benchmarks/rl_step_cost.py [--model results/00_toy_world_and_base_model/default/model]
                                      [--rows 64 256 1024] [--repeats 3] [--against caf42ea]

One RL step of Stage II settings (two turns at T=1, k=4 samples per problem, RLOO, k3 KL against a frozen copy
of the model, Adam, max_new_tokens 160), split into: decoding turn 1, decoding turn 2, scoring and assembling
(the rest of the rollout), the reference pass, the policy's forward + backward, the optimizer step. Every
configuration runs in a fresh subprocess on the same problems (drawn here, passed as a file), the same seeds
and the same starting weights, first with this checkout's scorelib and then with the ``--against`` revision's
(a temporary ``git worktree``), interleaved per batch size so that drift in the machine's load hits both
alike. Each configuration takes one untimed warm-up step, then ``--repeats`` timed steps; medians are printed,
with the cost per row and the ratio old / new. Sampled texts differ between revisions (the decoders consume
the random stream differently), so compare the per-row costs and the tokens generated, not single steps.

The earlier revision's update has no breakdown: its figure is the whole update. Without ``--against none``
the comparison is skipped. Needs a saved model folder (notebook 00's ``model/``).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BEFORE = "caf42ea"  # the last revision before the compact decoder and the length-sorted update

CHILD = r'''
import copy, json, sys, time
import numpy as np, torch
try:  # this checkout: the trainer's settings, advantages and update in rl_settings, objectives and update
    from scorelib import objectives, rl_settings, update
    settings, policy_update = rl_settings.objective, update.policy_update
    def advantages(rewards, s):
        return objectives.advantages(rewards, **rl_settings.advantage_args(s))
except ImportError:  # an --against revision from before that split (e.g. caf42ea): all of them in rl
    from scorelib import rl
    settings, advantages, policy_update = rl.objective, rl.advantages, rl.policy_update
from scorelib.models import load_model
from scorelib.prompts import TOY
from scorelib.grading import reward
from scorelib.rollout import rollout

args = json.loads(sys.argv[1])
torch.manual_seed(0)
model, tok = load_model(args["model"], device="cpu")
ref = copy.deepcopy(model).eval().requires_grad_(False)
for p in model.parameters():
    p.requires_grad_(True)
problems = json.load(open(args["problems"]))
rows, k = args["rows"], 4
s = settings("stage2", steps=1, problems_per_step=rows // k, k=k)
opt = torch.optim.Adam(model.parameters(), lr=1e-4)
out = []
for step in range(args["repeats"] + 1):
    batch = problems[step * (rows // k):(step + 1) * (rows // k)]
    t0 = time.perf_counter()
    ro = rollout(model, tok, [p["problem"] for p in batch], [p["answer"] for p in batch], TOY, reward, n_turns=2,
                 k=k, temperature=1.0, max_new_tokens=160, batch_size=rows, seed=step)
    t1 = time.perf_counter()
    adv, _ = advantages(ro.rewards, s)
    masks = [ro.attempt_mask(t + 1).float() for t in range(2)]
    upd = policy_update(model, ref, opt, ro.input_ids, ro.attention_mask, masks, adv, [0.01, 0.01])
    t2 = time.perf_counter()
    sec = ro.meta.get("seconds", {})
    row = dict(sample_s=t1 - t0, update_s=t2 - t1, total_s=t2 - t0,
               tokens=int(sum(len(y) for turn in ro.attempt_ids for y in turn)),
               real_frac=float(ro.attention_mask.float().mean()))
    for key in ("decode_t1", "decode_t2"):
        if key in sec:
            row[key] = sec[key]
    if "decode_t1" in sec:
        row["score_assemble"] = row["sample_s"] - sec["decode_t1"] - sec.get("decode_t2", 0.0)
    for key in ("ref_s", "policy_s", "step_s"):
        if key in upd:
            row[key] = upd[key]
    if step:  # step 0 is the warm-up
        out.append(row)
print("RESULT " + json.dumps(out))
'''

COLUMNS = ("total_s", "sample_s", "decode_t1", "decode_t2", "score_assemble", "update_s", "ref_s", "policy_s",
           "step_s", "tokens", "real_frac")


def run_child(tree: Path, model: str, problems: str, rows: int, repeats: int, threads: int) -> list[dict]:
    env = dict(os.environ, PYTHONPATH=str(tree), OMP_NUM_THREADS=str(threads), TOKENIZERS_PARALLELISM="false")
    arg = json.dumps(dict(model=model, problems=problems, rows=rows, repeats=repeats))
    res = subprocess.run([sys.executable, "-c", CHILD, arg], env=env, capture_output=True, text=True, cwd=tree)
    lines = [x for x in res.stdout.splitlines() if x.startswith("RESULT ")]
    if res.returncode or not lines:
        raise SystemExit(f"benchmark step failed in {tree} (rows {rows}):\n{res.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def medians(rows: list[dict]) -> dict:
    return {c: statistics.median(r[c] for r in rows) for c in COLUMNS if all(c in r for r in rows)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(ROOT / "results/00_toy_world_and_base_model/default/model"))
    ap.add_argument("--rows", type=int, nargs="+", default=[64, 256, 1024], help="two-turn samples a step (k=4)")
    ap.add_argument("--repeats", type=int, default=3, help="timed steps per configuration (after one warm-up)")
    ap.add_argument("--against", default=BEFORE, help="git revision to compare with, or 'none'")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args(argv)
    if not (Path(a.model) / "config.json").exists():
        raise SystemExit(f"no model at {a.model}: run notebook 00 first (python -m scorelib run 00), or pass --model")
    if any(r % 4 or r < 8 for r in a.rows) or a.repeats < 1:
        raise SystemExit("--rows must be multiples of 4 (>= 8) and --repeats >= 1")
    sys.path.insert(0, str(ROOT))
    from scorelib.tasks import toy

    need = max(a.rows) // 4 * (a.repeats + 1)
    problems = [p.to_dict() for p in toy.generate(need, "train", seed=12345)]
    with tempfile.TemporaryDirectory() as tmp:
        pfile = Path(tmp) / "problems.json"
        pfile.write_text(json.dumps(problems))
        trees = {"now": ROOT}
        if a.against != "none":
            old = Path(tmp) / "before"
            subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(old), a.against], check=True,
                           capture_output=True)
            trees[f"before ({a.against})"] = old
        try:
            results = {}
            for rows in a.rows:
                for name, tree in trees.items():
                    results[(name, rows)] = medians(run_child(tree, str(Path(a.model).resolve()), str(pfile), rows,
                                                              a.repeats, a.threads))
                    print(f"  done: {name}, {rows} rows", file=sys.stderr, flush=True)
        finally:
            if a.against != "none":
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(old)],
                               capture_output=True)
    import torch

    print(f"RL step cost (Stage II settings, k=4, T=1, max_new_tokens 160), median of {a.repeats} steps after a "
          f"warm-up; torch {torch.__version__}, {a.threads} threads, {platform.processor() or platform.machine()}")
    print(f"model: {a.model}")
    print("| rows | code | step s | ms/row | sampling s (turn 1 / turn 2 / score+assemble) | update s (ref / "
          "policy fwd+bwd / optimizer) | tokens generated | real-token share |")
    print("|---|---|---|---|---|---|---|---|")
    for (name, rows), m in results.items():
        samp = f"{m['sample_s']:.2f}" + (f" ({m['decode_t1']:.2f} / {m['decode_t2']:.2f} / {m['score_assemble']:.2f})"
                                         if "decode_t1" in m else "")
        upd = f"{m['update_s']:.2f}" + (f" ({m['ref_s']:.2f} / {m['policy_s']:.2f} / {m['step_s']:.3f})"
                                        if "ref_s" in m else "")
        print(f"| {rows} | {name} | {m['total_s']:.2f} | {1000 * m['total_s'] / rows:.1f} | {samp} | {upd} | "
              f"{m['tokens']:.0f} | {m['real_frac']:.2f} |")
    if len(trees) == 2:
        print("\nratio before / now (whole step, medians):")
        for rows in a.rows:
            now, old = results[("now", rows)], results[(list(trees)[1], rows)]
            print(f"  {rows} rows: {old['total_s'] / now['total_s']:.2f}x (sampling {old['sample_s'] / now['sample_s']:.2f}x,"
                  f" update {old['update_s'] / now['update_s']:.2f}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
