"""The LangChain pipeline: Chroma (k=100) -> ContextualCompressionRetriever(XRerankCompressor) -> answer.

Copy this file into your own project: everything LangChain-specific is here; the shared
bits (store, output) are in :mod:`xrerank_demo._common`.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any
from uuid import UUID

from langchain_chroma import Chroma
from langchain_classic.retrievers import ContextualCompressionRetriever
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.documents import Document
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda, RunnableParallel, RunnablePassthrough
from langchain_huggingface import HuggingFaceEmbeddings

from langchain_xrerank import XRerankCompressor
from xrerank_core import Reranker
from xrerank_demo._common import (
    Answer,
    Source,
    Timer,
    abstract_text,
    embedder_path,
    extractive_answer,
    llm_from_env,
    open_store,
    run_cli,
)

__all__ = ["main", "make_ask"]

PROMPT = ChatPromptTemplate.from_messages(
    [
        (
            "system",
            "Answer the question from the numbered sources only; cite them like [2]. Say so if they do not answer it.",
        ),
        ("human", "Sources:\n{sources}\n\nQuestion: {question}"),
    ]
)


class _RetrieverTimes(BaseCallbackHandler):
    """Wall time of each retriever run, by class name (the base retriever runs inside the compressor's)."""

    def __init__(self) -> None:
        self.started: dict[UUID, tuple[str, float]] = {}
        self.seconds: dict[str, float] = {}

    def on_retriever_start(self, serialized: dict[str, Any], query: str, *, run_id: UUID, **kwargs: Any) -> None:
        name = kwargs.get("name") or (serialized or {}).get("name") or "retriever"
        self.started[run_id] = (str(name), time.perf_counter())

    def on_retriever_end(self, documents: Sequence[Document], *, run_id: UUID, **kwargs: Any) -> None:
        name, start = self.started.pop(run_id)
        self.seconds[name] = time.perf_counter() - start


def make_ask(args: argparse.Namespace) -> Callable[[str], Answer]:
    """Build the pipeline once; return a function that answers a question."""
    llm = llm_from_env()  # first: a bad setting fails before the store and the models load
    client, _, name = open_store(args.store, args.limit)
    embeddings = HuggingFaceEmbeddings(model_name=embedder_path(), encode_kwargs={"normalize_embeddings": True})
    store = Chroma(client=client, collection_name=name, embedding_function=embeddings)
    reranker = None if args.no_rerank else Reranker(args.model, backend=args.backend, device=args.device)
    timer = Timer()

    if reranker is not None:
        retriever: Any = ContextualCompressionRetriever(
            base_compressor=XRerankCompressor(reranker=reranker, top_n=args.top_n, rank_key="first_stage_rank"),
            base_retriever=store.as_retriever(search_kwargs={"k": args.k}),
        )
    else:

        def first_stage_only(question: str) -> list[Document]:
            with timer.span("retrieval"):  # a RunnableLambda, not a retriever: no retriever callbacks time it
                hits = store.similarity_search_with_score(question, k=args.top_n)
            return [
                d.model_copy(update={"metadata": {**d.metadata, "relevance_score": 1.0 - dist, "first_stage_rank": i}})
                for i, (d, dist) in enumerate(hits, 1)
            ]

        retriever = RunnableLambda(first_stage_only, name="VectorStoreRetriever")

    def to_sources(docs: list[Document]) -> list[Source]:
        return [
            Source(
                doc_id=str(d.id),
                title=str(d.metadata.get("title", "")),
                text=abstract_text(d.page_content, str(d.metadata.get("title", ""))),
                score=float(d.metadata["relevance_score"]),
                first_stage_rank=int(d.metadata["first_stage_rank"]),
            )
            for d in docs
        ]

    def generate(inputs: dict[str, Any]) -> Answer:
        sources = to_sources(inputs["docs"])
        with timer.span("generation"):
            if llm is not None:
                numbered = "\n".join(f"[{i}] {s.title}: {s.text}" for i, s in enumerate(sources, 1))
                text = (PROMPT | llm | StrOutputParser()).invoke({"sources": numbered, "question": inputs["question"]})
            else:
                text = extractive_answer(reranker, inputs["question"], sources)
        return Answer(inputs["question"], text, sources, generator=type(llm).__name__ if llm else "extractive")

    # LCEL: retrieve + rerank in parallel with passing the question through, then answer.
    chain = RunnableParallel(docs=retriever, question=RunnablePassthrough()) | RunnableLambda(generate)

    def ask(question: str) -> Answer:
        timer.seconds.clear()
        times = _RetrieverTimes()
        answer: Answer = chain.invoke(question, config={"callbacks": [times]})
        # With the reranker, the retriever callbacks time both stages; without it, first_stage_only times retrieval.
        first = times.seconds.get("VectorStoreRetriever", timer.seconds.pop("retrieval", 0.0))
        total = times.seconds.get("ContextualCompressionRetriever", first)
        answer.seconds = {"retrieval": first, "reranking": total - first, **timer.seconds}
        return answer

    return ask


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """Run the LangChain demo (see ``--help``)."""
    return run_cli(argv, "LangChain", make_ask, prog)


if __name__ == "__main__":
    sys.exit(main())
