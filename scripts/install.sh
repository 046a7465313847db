#!/usr/bin/env bash
# Create a virtual environment (if missing) and install scorelib with its dev extra, at the exact versions CI
# tested (constraints.txt). Every setting is an environment variable:
#   PYTHON=python3.12        the interpreter that creates the environment (default python3; >= 3.10)
#   VENV=/path/to/venv       where it lives (default .venv in the project root)
#   CONSTRAINTS=none         the newest versions pyproject.toml's ranges allow, not the tested ones
#                            (or a path to another constraints file; default constraints.txt)
#   TORCH_INDEX_URL=URL      an extra package index holding the torch build you want, e.g. PyTorch's CPU-only
#                            index (.../whl/cpu) on a machine without a GPU, or a CUDA one (.../whl/cu128);
#                            pytorch.org's "Get started" page lists them. Without it, pip takes torch from the
#                            ordinary indexes: on Linux x86_64 that is the CUDA build, here the CPU wheel on disk
#   TORCH_SPEC="torch==X"    another torch requirement (with CONSTRAINTS=none, or change constraints.txt)
# pip itself is upgraded only when it is too old for an editable install from pyproject.toml (pip < 21.3).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${VENV:-.venv}
CONSTRAINTS=${CONSTRAINTS:-constraints.txt}
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
. "$VENV/bin/activate"
if ! python -c 'import sys, pip; sys.exit(tuple(int(x) for x in pip.__version__.split(".")[:2]) < (21, 3))'; then
    python -m pip install -q --upgrade "pip>=21.3"
fi
args=()
[ "$CONSTRAINTS" = none ] || args+=(-c "$CONSTRAINTS")
[ -z "${TORCH_INDEX_URL:-}" ] || args+=(--extra-index-url "$TORCH_INDEX_URL")
python -m pip install -q ${args[@]+"${args[@]}"} "${TORCH_SPEC:-torch}" -e ".[dev]"
