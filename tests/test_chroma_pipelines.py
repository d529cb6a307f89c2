"""The real thing: Chroma (100 candidates) then the cross-encoder (10), in LangChain and in LlamaIndex.

SciFact abstracts from ../shared/data, embedded with the packaged all-MiniLM-L6-v2; one
cross-encoder built from the same packaged weights serves both frameworks.
"""

from __future__ import annotations

import csv
import gzip
import json
from typing import Any

import pytest
from conftest import SHARED_DATA

from xrerank_core import Reranker

SCIFACT = SHARED_DATA / "scifact"
pytestmark = pytest.mark.skipif(not SCIFACT.is_dir(), reason="../shared/data/scifact is not beside the project")

N_DOCS_DEFAULT = 400  # embedding all 5,183 abstracts takes minutes on 2 cores: that is the slow test


def _corpus() -> list[dict[str, str]]:
    with gzip.open(SCIFACT / "corpus.jsonl.gz", "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def _claim_and_relevant() -> tuple[str, set[str]]:
    with gzip.open(SCIFACT / "anserini-tools/topics/topics.beir-v1.0.0-scifact.test.tsv.gz", "rt") as f:
        topics = dict(line.rstrip("\n").split("\t", 1) for line in f)
    relevant: dict[str, set[str]] = {}
    with open(SCIFACT / "beir-qrels/test.tsv", encoding="utf-8") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            relevant.setdefault(row["query-id"], set()).add(row["corpus-id"])
    qid = sorted(relevant, key=int)[0]
    return topics[qid], relevant[qid]


class Pipelines:
    def __init__(self, docs: list[dict[str, str]], minilm: str, cross_encoder: str) -> None:
        import chromadb
        from langchain_chroma import Chroma
        from langchain_huggingface import HuggingFaceEmbeddings
        from llama_index.core import VectorStoreIndex
        from llama_index.embeddings.huggingface import HuggingFaceEmbedding
        from llama_index.vector_stores.chroma import ChromaVectorStore
        from sentence_transformers import SentenceTransformer

        texts = [d["title"] + " " + d["text"] for d in docs]
        embeddings = (
            SentenceTransformer(minilm, device="cpu").encode(texts, batch_size=32, normalize_embeddings=True).tolist()
        )
        # One Chroma collection, written once; both frameworks read it.
        client = chromadb.EphemeralClient()
        name = f"scifact-{len(docs)}"
        collection = client.create_collection(name, metadata={"hnsw:space": "cosine"})
        collection.add(
            ids=[d["_id"] for d in docs],
            embeddings=embeddings,
            documents=texts,
            metadatas=[{"title": d["title"]} for d in docs],
        )
        self.langchain_store = Chroma(
            client=client,
            collection_name=name,
            embedding_function=HuggingFaceEmbeddings(model_name=minilm, encode_kwargs={"normalize_embeddings": True}),
        )
        self.index = VectorStoreIndex.from_vector_store(
            ChromaVectorStore(chroma_collection=collection),
            embed_model=HuggingFaceEmbedding(model_name=minilm, device="cpu", normalize=True),
        )
        self.reranker = Reranker(cross_encoder, device="cpu", max_length=256)

    def langchain(self, claim: str) -> list[Any]:
        from langchain_classic.retrievers import ContextualCompressionRetriever

        from langchain_xrerank import XRerankCompressor

        retriever = ContextualCompressionRetriever(
            base_compressor=XRerankCompressor(reranker=self.reranker, top_n=10),
            base_retriever=self.langchain_store.as_retriever(search_kwargs={"k": 100}),
        )
        return retriever.invoke(claim)

    def llamaindex(self, claim: str) -> list[Any]:
        from llama_index.core.llms import MockLLM

        from llamaindex_xrerank import XRerankPostprocessor

        engine = self.index.as_query_engine(
            similarity_top_k=100,
            node_postprocessors=[XRerankPostprocessor(reranker=self.reranker, top_n=10)],
            llm=MockLLM(),
        )
        return list(engine.query(claim).source_nodes)


def _check_same_ten(pipes: Pipelines, claim: str) -> None:
    first_lc = [d.id for d in pipes.langchain_store.similarity_search(claim, k=100)]
    first_li = [n.node.node_id for n in pipes.index.as_retriever(similarity_top_k=100).retrieve(claim)]
    assert len(first_lc) == 100 and first_lc == first_li  # the same first stage

    docs = pipes.langchain(claim)
    nodes = pipes.llamaindex(claim)
    assert len(docs) == 10 and len(nodes) == 10
    lc_scores = [d.metadata["relevance_score"] for d in docs]
    li_scores = [n.score for n in nodes]
    assert all(type(s) is float for s in lc_scores + li_scores)
    assert lc_scores == sorted(lc_scores, reverse=True)
    assert [d.id for d in docs] == [n.node.node_id for n in nodes]
    assert lc_scores == pytest.approx(li_scores, abs=1e-5)
    assert [d.page_content for d in docs] == [n.node.get_content() for n in nodes]
    # the ten are the cross-encoder's best ten of the hundred, not the first stage's
    texts = {d.id: d.page_content for d in pipes.langchain_store.similarity_search(claim, k=100)}
    direct = pipes.reranker.rerank(claim, list(texts.values()), top_n=10)
    assert [list(texts)[r.index] for r in direct] == [d.id for d in docs]


def _slice(n: int | None) -> list[dict[str, str]]:
    corpus = _corpus()
    if n is None:
        return corpus
    _, relevant = _claim_and_relevant()
    return [d for d in corpus if d["_id"] in relevant] + [d for d in corpus[:n] if d["_id"] not in relevant]


def test_chroma_then_xrerank_in_both_frameworks(minilm_path: str, minilm_cross_encoder: str) -> None:
    claim, _ = _claim_and_relevant()
    _check_same_ten(Pipelines(_slice(N_DOCS_DEFAULT), minilm_path, minilm_cross_encoder), claim)


@pytest.mark.slow
def test_chroma_then_xrerank_full_scifact(minilm_path: str, minilm_cross_encoder: str) -> None:
    claim, _ = _claim_and_relevant()
    corpus = _slice(None)
    assert len(corpus) == 5183
    _check_same_ten(Pipelines(corpus, minilm_path, minilm_cross_encoder), claim)
