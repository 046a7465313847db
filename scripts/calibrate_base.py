"""Calibration probe for the base model: pretrain with notebook 00's code and some overrides, then evaluate the
two-turn protocol on VALIDATION problems (greedy and T=1), and print one JSON line.

    python scripts/calibrate_base.py NAME '{"seed": 100, "turn2_mode": "rewrite", "rewrite_rate": 0.6}'
                                     [--n-val 1024] [--out results/_explore]

The base is calibrated to the paper's base row (Table 2, Gemini 1.5 Flash: Acc@t1 52.6, Δi→c 4.6, Δc→i 15.8,
Δ -11.2), never to SCoRe's: see runbook.md. The phase-1 model and its own attempts are cached under
OUT/phase1_<key>/ (phase 1 is the same for every corpus mix), so a probe of phase-2 settings costs only phase 2.
Never touches test problems.
"""
from __future__ import annotations

import argparse
import json
import pickle
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from scorelib import config as C  # noqa: E402
from scorelib.evaluate import evaluate_two_turn  # noqa: E402
from scorelib.models import build_tiny_model, build_tiny_tokenizer, load_model, save_model  # noqa: E402
from scorelib.pretrain import build_phase2_corpus, collect_own_attempts, mix_from_config, run_phase1, run_phase2  # noqa: E402
from scorelib.tasks import load_task  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("name")
    ap.add_argument("overrides", help="JSON map of notebook-00 parameters")
    ap.add_argument("--n-val", type=int, default=1024)
    ap.add_argument("--out", default=str(ROOT / "results" / "_explore"))
    a = ap.parse_args(argv)
    cfg = C.make_config(C.PretrainConfig, dict(progress=False, **json.loads(a.overrides)))
    out = Path(a.out)
    task = load_task("toy")
    torch.manual_seed(cfg.seed)
    train = task.train_problems(cfg.n_train, seed=cfg.seed, level_weights=cfg.level_weights)
    t0 = time.time()
    key = out / (f"phase1_s{cfg.seed}_{cfg.phase1_steps}_a{cfg.alt_single_frac}_{cfg.d_model}x{cfg.n_layers}_"
                 f"{cfg.n_own_problems}x{cfg.own_k}_{cfg.n_train}_{'-'.join(map(str, cfg.level_weights))}")
    if (key / "own.pkl").exists():
        model, tok = load_model(key / "model", device="cpu")
        model.requires_grad_(True)
        own = pickle.loads((key / "own.pkl").read_bytes())
    else:
        tok = build_tiny_tokenizer()
        model = build_tiny_model(tok, cfg.d_model, cfg.n_layers, cfg.n_heads, cfg.d_ffn, seed=cfg.seed)
        run_phase1(model, tok, task.protocol, train, cfg)
        own = collect_own_attempts(model, tok, task.protocol, train, cfg)
        save_model(model, tok, key / "model", tiny=True)
        (key / "own.pkl").write_bytes(pickle.dumps(own))
    t1 = time.time()
    corpus, counts = build_phase2_corpus(tok, task.protocol, own, train, cfg.n_phase2, mix_from_config(cfg), cfg.seed)
    run_phase2(model, tok, corpus, cfg)
    t2 = time.time()
    save_model(model, tok, out / a.name / "model", tiny=True)
    val = task.val_problems(a.n_val)
    res = dict(name=a.name, overrides=json.loads(a.overrides), counts=counts,
               own_acc=float(np.mean([x.correct for x in own])), phase1_s=t1 - t0, phase2_s=t2 - t1)
    for t in (0.0, 1.0):
        ev = evaluate_two_turn(model, tok, val, task.protocol, temperature=t, seed=cfg.seed)
        s = ev.summary
        hist = np.histogram(ev.edit_ratio, bins=10, range=(0, 1))[0] / len(val)
        res[f"T{t:g}"] = dict({k: round(float(s[k]), 2) for k in ("acc_t1", "acc_t2", "delta", "delta_i2c",
                                                                     "delta_c2i", "fix_own", "different_answer")},
                              edit_hist=[round(float(h), 3) for h in hist],
                              by_level=ev.by_level()[["acc_t1", "acc_t2"]].round(1).to_dict() if t == 0 else None)
    (out / a.name / "summary.json").write_text(json.dumps(res, indent=1))
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
