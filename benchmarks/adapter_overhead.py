"""What each adapter adds over calling ``Reranker.rerank`` directly, on 100 documents.

Same model, same 100 DL19 BM25 passages, calls interleaved (direct, LangChain, LlamaIndex)
so drift hits all three alike; reports medians and the ratio to the direct call.

    .venv/bin/python benchmarks/adapter_overhead.py [--rounds 7] [--queries 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

from _common import benchmark_model, dl19_bm25_top100, machine
from langchain_core.documents import Document
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from langchain_xrerank import XRerankCompressor
from llamaindex_xrerank import XRerankPostprocessor
from xrerank_core import Reranker


class InstantScorer:
    """Scores a pair by shared words: no model, so only the code around the model is timed."""

    name = "instant"
    max_length = 512
    num_special_tokens = 3

    def token_offsets(self, texts):  # type: ignore[no-untyped-def]
        out = []
        for t in texts:
            spans, pos = [], 0
            for word in t.split():
                start = t.index(word, pos)
                spans.append((start, start + len(word)))
                pos = start + len(word)
            out.append(spans)
        return out

    def score_pairs(self, pairs):  # type: ignore[no-untyped-def]
        return [float(len(set(q.split()) & set(d.split()))) for q, d in pairs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--queries", type=int, default=3)
    parser.add_argument(
        "--instant-scorer",
        action="store_true",
        help="score with a scorer that costs nothing (a word count), so the times are the "
        "engine's and the adapters' own work; their differences are what each adapter adds",
    )
    args = parser.parse_args()

    if args.instant_scorer:
        model = "instant word-count scorer"
        rr = Reranker(InstantScorer())
    else:
        model = benchmark_model()
        rr = Reranker(model, device="cpu", max_length=512)
    compressor = XRerankCompressor(reranker=rr, top_n=10)
    postprocessor = XRerankPostprocessor(reranker=rr, top_n=10)
    data = dl19_bm25_top100()[: args.queries]

    times: dict[str, list[float]] = {"direct": [], "langchain": [], "llamaindex": []}
    for query, texts in data:
        docs = [Document(page_content=t, id=str(i), metadata={"i": i}) for i, t in enumerate(texts)]
        nodes = [NodeWithScore(node=TextNode(text=t, id_=str(i)), score=1.0) for i, t in enumerate(texts)]
        bundle = QueryBundle(query)
        runs = {
            "direct": lambda q=query, t=texts: rr.rerank(q, t, top_n=10),
            "langchain": lambda q=query, d=docs: compressor.compress_documents(d, q),
            "llamaindex": lambda b=bundle, n=nodes: postprocessor.postprocess_nodes(n, b),
        }
        for fn in runs.values():  # warm-up
            fn()
        for _ in range(args.rounds):
            for name, fn in runs.items():
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)

    direct = statistics.median(times["direct"])
    print(f"machine: {machine()}")
    print(f"model: {model}")
    print(f"{len(data)} DL19 queries x 100 BM25 passages, {args.rounds} rounds, top_n 10")
    print("| path | median ms / 100 docs | ratio to direct | overhead |")
    print("|---|---|---|---|")
    for name, values in times.items():
        m = statistics.median(values)
        added = f"{1000 * (m - direct):+.2f} ms ({100 * (m / direct - 1):+.2f} %)"
        print(f"| {name} | {1000 * m:.2f} | {m / direct:.4f} | {added} |")


if __name__ == "__main__":
    main()
