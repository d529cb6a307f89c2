#!/usr/bin/env bash
# The main job: set up .venv (once), then answer a question with the two-stage pipeline
# (Chroma retrieves 100 SciFact abstracts, the shipped cross-encoder keeps the best 10).
# The first run builds the Chroma store (~4 min on 2 cores); later runs reuse it.
# Usage: bash scripts/demo.sh [--framework langchain|llamaindex] [--question "..."] [other xrerank demo options]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}"
if [ "$#" -eq 0 ]; then set -- --question "Does autophagy decline in aged organisms?"; fi
exec .venv/bin/xrerank demo "$@"
