"""One system per process: pairs/s of the seed recipe or one xrerank configuration, with nothing else loaded.

``speed.py`` interleaves every system in one process; this measures one alone, so no other
library's idle threads share the CPU with it. Run it once per system and compare:

    for s in seed torch-bfloat16 onnx-int8 onnx-int8-one-session; do
        .venv/bin/python benchmarks/speed_isolated.py scifact 12 $s
    done
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from _common import ROOT
from speed import dl19, scifact, seed_model, xrerank_system

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def main() -> None:
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    which, n, system = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    queries = (scifact(n, ROOT / "build" / "chroma") if which == "scifact" else dl19(n))[0]
    if system == "seed":
        run = seed_model(192)
    else:
        if system == "torch-bfloat16":
            options: dict[str, Any] = {"backend": "torch", "dtype": "bfloat16"}
        else:
            backend = system.removesuffix("-one-session")
            options = {"backend": backend, "workers": 1 if system != backend else None}
        run = xrerank_system(system, "", **options)[2]

    run(queries[0].text, queries[0].texts)  # untimed warm-up
    start, pairs = time.perf_counter(), 0
    for q in queries:
        run(q.text, q.texts)
        pairs += len(q.texts)
    print(f"{which} {len(queries)} queries, {system}: {pairs / (time.perf_counter() - start):.1f} pairs/s")


if __name__ == "__main__":
    main()
