"""Compare two results folders written by the same profile (e.g. before and after a refactor): every metrics.json
(timing keys left out), tables/*.csv, history*.jsonl (timing keys left out) and model weight file of each run.

    python scripts/compare_runs.py BEFORE_DIR AFTER_DIR [--run smoke]

Prints one line per difference and a summary; exit status 1 when anything but timing differs."""
from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

from scorelib.jsonl import read_jsonl
from scorelib.results import read_json

TIMING = {"seconds", "sample_s", "train_s", "sampling_seconds", "wall_s", "elapsed", "finished", "started",
          "html_export_s", "time", "seconds_per_step", "step_s"}
SKIP_TABLES = {"sampling_seconds.csv", "runs.csv", "environment.csv", "training_time.csv"}


def _strip(x):
    if isinstance(x, dict):
        return {k: _strip(v) for k, v in x.items() if not _timing(k)}
    if isinstance(x, list):
        return [_strip(v) for v in x]
    return x


def _timing(column: str) -> bool:
    return column in TIMING or column.endswith("_s") or column.endswith("_seconds")


def _table(p: Path):
    import pandas as pd

    df = pd.read_csv(p)
    return df[[c for c in df.columns if not _timing(c)]]


def _digest(p: Path) -> str:
    return hashlib.blake2b(p.read_bytes(), digest_size=16).hexdigest()


def compare(before: Path, after: Path, run: str) -> list[str]:
    diffs = []
    for b_run in sorted(before.glob(f"*/{run}")):
        a_run = after / b_run.parent.name / run
        if not a_run.is_dir():
            diffs.append(f"{b_run.parent.name}: no run in {after}")
            continue
        for b in sorted(b_run.rglob("*")):
            if not b.is_file():
                continue
            rel = b.relative_to(b_run)
            a = a_run / rel
            name = f"{b_run.parent.name}/{rel}"
            if b.name == "metrics.json" or (b.suffix == ".jsonl" and b.name.startswith("history")):
                if not a.exists():
                    diffs.append(f"{name}: missing after")
                    continue
                load = read_json if b.suffix == ".json" else read_jsonl
                if _strip(load(b)) != _strip(load(a)):
                    diffs.append(f"{name}: differs")
            elif b.suffix == ".csv" and "tables" in rel.parts and b.name not in SKIP_TABLES:
                if not a.exists():
                    diffs.append(f"{name}: missing after")
                elif not _table(b).equals(_table(a)):
                    diffs.append(f"{name}: differs")
            elif b.suffix in (".safetensors", ".bin"):
                if not a.exists() or _digest(a) != _digest(b):
                    diffs.append(f"{name}: weights differ" if a.exists() else f"{name}: missing after")
    return diffs


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("before", type=Path)
    ap.add_argument("after", type=Path)
    ap.add_argument("--run", default="smoke")
    args = ap.parse_args(argv)
    diffs = compare(args.before, args.after, args.run)
    for d in diffs:
        print(d)
    n = sum(1 for _ in args.before.glob(f"*/{args.run}"))
    print(f"{n} runs compared, {len(diffs)} differences (timing left out)")
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main())
