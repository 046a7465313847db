"""How often a model re-solves (y2 opens with the second style's "Again") after a right and after a wrong first
attempt, and how often that re-solve is right; VALIDATION problems 512 .. 512 + n (disjoint from the problems that
`select: val_greedy` uses). The tables "Where the base's breaks and fixes come from" and "What RL does to the
decision" in runbook.md were made this way.

    python scripts/decision_rates.py results/_explore/rsc/model [--checkpoint DIR/step_000100] [--t 0 1]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from scorelib import checkpoints  # noqa: E402
from scorelib.evaluate import evaluate_two_turn  # noqa: E402
from scorelib.models import load_model  # noqa: E402
from scorelib.tasks import load_task  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", help="a notebook-00 model folder (the base)")
    ap.add_argument("--checkpoint", default="", help="an RL checkpoint folder to load into the base")
    ap.add_argument("--t", type=float, nargs="+", default=[0.0, 1.0], help="evaluation temperatures")
    ap.add_argument("--n", type=int, default=1024)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2], help="sampling seeds, averaged (T > 0)")
    a = ap.parse_args(argv)
    task = load_task("toy")
    val = task.val_problems(512 + a.n)[512:]
    model, tok = load_model(a.model, device="cpu", trainable=bool(a.checkpoint))
    if a.checkpoint:
        checkpoints.load_checkpoint(a.checkpoint, model)
    model.eval()
    for t in a.t:
        rows = []
        for seed in (a.seeds if t > 0 else a.seeds[:1]):
            ev = evaluate_two_turn(model, tok, val, task.protocol, temperature=t, seed=seed)
            resolve = np.array([y.lstrip().startswith("Again") for y in ev.rollouts.texts[1]])
            c1, c2 = np.asarray(ev.c1, bool), np.asarray(ev.c2, bool)
            rows.append([ev.summary["acc_t1"], ev.summary["acc_t2"], resolve[c1].mean(), resolve[~c1].mean(),
                         c2[c1 & resolve].mean(), c2[~c1 & resolve].mean()])
        m = np.nanmean(rows, 0)
        print(f"T={t:g}: Acc@t1 {m[0]:.1f}, Acc@t2 {m[1]:.1f}, P(re-solve | y1 right) {m[2]:.3f}, "
              f"P(re-solve | y1 wrong) {m[3]:.3f}, re-solve right | y1 right {m[4]:.3f}, | y1 wrong {m[5]:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
