#!/usr/bin/env bash
# Create .venv (if missing) and install xrerank with every extra and the dev tools.
# The CPU build of torch is installed first: a bare `torch` requirement would pull the
# multi-GB CUDA build. Set XRERANK_TORCH to change the pin (e.g. a CUDA build on a GPU box).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
TORCH="${XRERANK_TORCH:-torch==2.13.0}"
stamp=.venv/.xrerank-setup
want="$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then exit 0; fi
quiet() { "$@" 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }; }
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
quiet .venv/bin/python -m pip install -q --upgrade "pip>=25.1"
quiet .venv/bin/python -m pip install -q "$TORCH"
quiet .venv/bin/python -m pip install -q -e ".[all]" --group dev
echo "$want" > "$stamp"
