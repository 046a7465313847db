#!/usr/bin/env bash
# Install (scripts/install.sh; its settings, e.g. VENV, apply here too) and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
. "${VENV:-.venv}/bin/activate"
python -m pytest "$@"
