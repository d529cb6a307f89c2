"""Training speed: seconds per step of ``xrerank train`` in float32 and with ``bf16=True``.

Stage 2 of the shipped model's recipe (SciFact train claims, 16 groups of 1 positive + 3 mined
negatives + 1 in-batch negative, 192 tokens, from the shipped weights), a few steps each, one
after the other in one process; the same groups in the same order for both. On a CPU with AMX,
bfloat16 matmuls run on its matrix units.

    .venv/bin/python benchmarks/train_speed.py [--steps 12] [--out benchmarks/RESULTS.md]
"""

from __future__ import annotations

import argparse
import datetime as dt
import shlex
import sys
import tempfile
from pathlib import Path

from _common import BUNDLED, ROOT, SHARED_DATA, load_average, machine, write_section

SECTION_START = "<!-- train_speed.py:start -->"
SECTION_END = "<!-- train_speed.py:end -->"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=12, help="optimiser steps per precision")
    parser.add_argument("--chroma-dir", type=Path, default=ROOT / "build" / "chroma")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "RESULTS.md")
    args = parser.parse_args()

    import os

    from xrerank_core.train import TrainConfig, train

    started = dt.datetime.now(dt.UTC)
    load_before = os.getloadavg()
    rows = []
    per_step: dict[bool, float] = {}
    for bf16 in (False, True):
        with tempfile.TemporaryDirectory(prefix="xrerank-train-speed-") as tmp:
            result = train(
                TrainConfig(
                    base=str(BUNDLED),
                    data=str(SHARED_DATA / "scifact"),
                    output=tmp,
                    dev_queries=0,
                    max_steps=args.steps,
                    eval_steps=max(1, args.steps // 2),  # also the logging interval
                    learning_rate=5e-5,
                    head_learning_rate=5e-5,
                    chroma_dir=str(args.chroma_dir),
                    device="cpu",
                    bf16=bf16,
                )
            )
        per_step[bf16] = result.seconds / result.steps
        first, last = result.losses[0][1], result.losses[-1][1]
        rows.append(
            f"| {'bf16 (autocast)' if bf16 else 'float32'} | {result.steps} | {result.seconds:.1f} | "
            f"{per_step[bf16]:.2f} | {first:.3f} -> {last:.3f} |"
        )
        print(rows[-1], file=sys.stderr, flush=True)
    command = shlex.join([".venv/bin/python", "benchmarks/train_speed.py", *sys.argv[1:]])
    lines = [
        "## Training speed: float32 and bf16",
        "",
        f"- date: {started:%Y-%m-%d %H:%M} UTC; load average at the start: {load_average(load_before)}",
        f"- machine: {machine()}",
        f"- command (from the repo root): `{command}`",
        "- stage 2 of the shipped model's recipe from its weights: SciFact train claims, 16 groups per step "
        "(1 positive + 3 mined negatives + 1 in-batch), 192 tokens, no dev split; "
        "time = `trainer.train` only (two checkpoints saved)",
        "",
        "| precision | steps | seconds | s / step | loss first -> last log |",
        "|---|---|---|---|---|",
        *rows,
        "",
        f"bf16 / float32 speed: **{per_step[False] / per_step[True]:.2f}x** steps per second.",
    ]
    text = "\n".join(lines)
    print(text)
    write_section(args.out, text, SECTION_START, SECTION_END)


if __name__ == "__main__":
    main()
