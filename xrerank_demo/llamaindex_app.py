"""The LlamaIndex pipeline: VectorStoreIndex over ChromaVectorStore (k=100) -> XRerankPostprocessor -> answer.

Copy this file into your own project: everything LlamaIndex-specific is here; the shared
bits (store, output) are in :mod:`xrerank_demo._common`.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import llama_index.core.instrumentation as instrument
from llama_index.core import VectorStoreIndex, get_response_synthesizer
from llama_index.core.bridge.pydantic import Field
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events import BaseEvent
from llama_index.core.instrumentation.events.rerank import ReRankEndEvent, ReRankStartEvent
from llama_index.core.instrumentation.events.retrieval import RetrievalEndEvent, RetrievalStartEvent
from llama_index.core.instrumentation.events.synthesis import SynthesizeEndEvent, SynthesizeStartEvent
from llama_index.core.llms import MockLLM
from llama_index.core.response_synthesizers.no_text import NoText
from llama_index.embeddings.huggingface import HuggingFaceEmbedding
from llama_index.vector_stores.chroma import ChromaVectorStore

from llamaindex_xrerank import XRerankPostprocessor
from xrerank_core import Reranker
from xrerank_demo._common import (
    Answer,
    Source,
    abstract_text,
    embedder_path,
    extractive_answer,
    llm_from_env,
    open_store,
    run_cli,
)

__all__ = ["main", "make_ask"]

_SPANS = {
    RetrievalStartEvent: ("retrieval", True),
    RetrievalEndEvent: ("retrieval", False),
    ReRankStartEvent: ("reranking", True),
    ReRankEndEvent: ("reranking", False),
    SynthesizeStartEvent: ("generation", True),
    SynthesizeEndEvent: ("generation", False),
}


class _StageTimes(BaseEventHandler):
    """Times retrieval, reranking and synthesis from LlamaIndex's instrumentation events."""

    seconds: dict[str, float] = Field(default_factory=dict)
    started: dict[str, float] = Field(default_factory=dict)
    first_stage_order: list[str] = Field(default_factory=list)

    @classmethod
    def class_name(cls) -> str:
        return "XRerankDemoStageTimes"

    def handle(self, event: BaseEvent, **kwargs: Any) -> None:
        span = _SPANS.get(type(event))
        if span is None:
            return
        name, start = span
        if start:
            self.started[name] = time.perf_counter()
        else:
            self.seconds[name] = time.perf_counter() - self.started.pop(name, time.perf_counter())
        if isinstance(event, ReRankStartEvent):
            self.first_stage_order = [n.node.node_id for n in event.nodes]


def _score(score: float | None, *, reranked: bool) -> float:
    """The source's score: the reranker's, or the first stage's cosine similarity (as the LangChain demo shows).

    ChromaVectorStore reports ``exp(-distance)``; the store's space is cosine, so the similarity
    is ``1 - distance = 1 + ln(score)``.
    """
    if score is None:
        return 0.0
    if reranked or score <= 0.0:
        return float(score)
    return 1.0 + math.log(score)


def make_ask(args: argparse.Namespace) -> Callable[[str], Answer]:
    """Build the pipeline once; return a function that answers a question."""
    llm = llm_from_env()  # first: a bad setting fails before the store and the models load
    _, collection, _ = open_store(args.store, args.limit)
    index = VectorStoreIndex.from_vector_store(
        ChromaVectorStore(chroma_collection=collection),
        embed_model=HuggingFaceEmbedding(model_name=embedder_path(), normalize=True),
    )
    reranker = None if args.no_rerank else Reranker(args.model, backend=args.backend, device=args.device)
    postprocessors = (
        [XRerankPostprocessor(reranker=reranker, top_n=args.top_n, keep_retrieval_score=True)] if reranker else []
    )
    engine = index.as_query_engine(
        similarity_top_k=args.k if reranker else args.top_n,
        node_postprocessors=postprocessors,
        llm=llm or MockLLM(),
        # Without a configured LLM, skip synthesis: the answer is extracted from the sources.
        # (NoText is built directly: get_response_synthesizer drops the llm for "no_text".)
        response_synthesizer=get_response_synthesizer(llm=llm) if llm is not None else NoText(llm=MockLLM()),
    )
    times = _StageTimes()
    instrument.get_dispatcher().add_event_handler(times)  # type: ignore[attr-defined]

    def ask(question: str) -> Answer:
        times.seconds.clear()
        times.first_stage_order = []
        response = engine.query(question)
        nodes = list(response.source_nodes)
        order = times.first_stage_order or [n.node.node_id for n in nodes]
        rank = {node_id: i for i, node_id in enumerate(order, 1)}
        sources = [
            Source(
                doc_id=n.node.node_id,
                title=str(n.node.metadata.get("title", "")),
                text=abstract_text(n.node.get_content(), str(n.node.metadata.get("title", ""))),
                score=_score(n.score, reranked=reranker is not None),
                first_stage_rank=rank[n.node.node_id],
            )
            for n in nodes
        ]
        if llm is not None:
            text, generator = str(response), type(llm).__name__
        else:
            started = time.perf_counter()
            text, generator = extractive_answer(reranker, question, sources), "extractive"
            times.seconds["generation"] = time.perf_counter() - started
        seconds = {k: times.seconds.get(k, 0.0) for k in ("retrieval", "reranking", "generation")}
        return Answer(question, text, sources, seconds, generator)

    return ask


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """Run the LlamaIndex demo (see ``--help``)."""
    return run_cli(argv, "LlamaIndex", make_ask, prog)


if __name__ == "__main__":
    sys.exit(main())
