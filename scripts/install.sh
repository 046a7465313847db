#!/usr/bin/env bash
# Create .venv (if missing) and install scorelib with its dev extra.
# torch is pinned to the CPU build that pip finds on these machines; on a GPU machine
# set TORCH_SPEC (e.g. TORCH_SPEC="torch") to take the build your platform needs.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
python -m pip install -q "${TORCH_SPEC:-torch==2.13.0}" -e ".[dev]"
