"""Soak (slow): 5,000 reranks in one process; resident memory after warm-up grows less than 5 %."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="reads RSS from Linux /proc")
def test_5000_reranks_keep_memory_flat() -> None:
    # A fresh process, so the figure is the reranker's own and not pytest's.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "soak.py"), "--calls", "5000", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=1800,
        check=False,
    )
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["calls"] == 5000 and report["documents"] > 5000 * 5
    assert report["growth_percent"] < 5.0, report
    assert proc.returncode == 0, proc.stderr[-2000:]
