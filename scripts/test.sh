#!/usr/bin/env bash
# Set up a virtual environment (once) and run the default checks: lint, types, tests.
# Usage: bash scripts/test.sh [extra pytest args]     e.g.  bash scripts/test.sh -m slow
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
if [ "$#" -eq 0 ]; then set -- -m "not slow"; fi
exec .venv/bin/python -m pytest -p no:cacheprovider "$@"
