#!/usr/bin/env bash
# Install (scripts/install.sh) and run every notebook headless: bash scripts/reproduce.sh [default|smoke]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
. "${VENV:-.venv}/bin/activate"
python -m scorelib reproduce --profile "${1:-default}"
