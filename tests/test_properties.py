"""Property tests: for any documents, the output is a sorted, bounded subset of the input."""

from __future__ import annotations

import asyncio
import copy

import pytest
from conftest import FakeScorer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.documents import Document
from llama_index.core.schema import NodeWithScore, TextNode

from langchain_xrerank import XRerankCompressor
from llamaindex_xrerank import XRerankPostprocessor
from xrerank_core import Reranker

WORDS = ["dog", "cat", "fish", "the", "a", "Ünïcode", "שלום", "🙂", "x" * 30]
text = st.one_of(
    st.lists(st.sampled_from(WORDS), max_size=80).map(" ".join),
    st.text(max_size=200),
)
query = st.lists(st.sampled_from(WORDS[:5]), min_size=1, max_size=6).map(" ".join)
top_n = st.one_of(st.none(), st.integers(min_value=1, max_value=30))
metadata = st.dictionaries(st.sampled_from(["title", "src", "n"]), st.one_of(st.text(max_size=10), st.integers()))

RR = Reranker(FakeScorer(max_length=24), window_overlap=4)
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(q=query, docs=st.lists(text, max_size=30), n=top_n)
def test_engine(q: str, docs: list[str], n: int | None) -> None:
    ranked = RR.rerank(q, docs, top_n=n)
    assert len(ranked) == min(len(docs), n or len(docs))
    assert len({r.index for r in ranked}) == len(ranked)
    assert all(docs[r.index] == r.text for r in ranked)
    scores = [r.score for r in ranked]
    assert scores == sorted(scores, reverse=True)
    assert ranked == RR.rerank(q, docs, top_n=n)  # deterministic
    assert ranked == asyncio.run(RR.arerank(q, docs, top_n=n))
    full = RR.score(q, docs)
    assert all(full[r.index] == r.score for r in ranked)
    # nothing better was left out
    kept = {r.index for r in ranked}
    assert all(full[i] <= min(scores) for i in range(len(docs)) if i not in kept) if ranked else True


@SETTINGS
@given(q=query, docs=st.lists(st.tuples(text, metadata), max_size=25), n=top_n)
def test_langchain(q: str, docs: list[tuple[str, dict[str, object]]], n: int | None) -> None:
    items = [Document(page_content=t, metadata=m, id=str(i)) for i, (t, m) in enumerate(docs)]
    before = copy.deepcopy(items)
    comp = XRerankCompressor(reranker=RR, top_n=n)
    out = comp.compress_documents(items, q)
    assert items == before
    assert len(out) == min(len(items), n or len(items))
    by_id = {d.id: d for d in items}
    for d in out:
        src = by_id[d.id]
        assert d.page_content == src.page_content
        assert {k: v for k, v in d.metadata.items() if k != "relevance_score"} == src.metadata
    scores = [d.metadata["relevance_score"] for d in out]
    assert scores == sorted(scores, reverse=True)
    assert list(asyncio.run(comp.acompress_documents(items, q))) == list(out)


@SETTINGS
@given(q=query, docs=st.lists(st.tuples(text, metadata), max_size=25), n=top_n)
def test_llamaindex(q: str, docs: list[tuple[str, dict[str, object]]], n: int | None) -> None:
    items = [NodeWithScore(node=TextNode(text=t, metadata=m, id_=str(i)), score=0.5) for i, (t, m) in enumerate(docs)]
    before = copy.deepcopy(items)
    post = XRerankPostprocessor(reranker=RR, top_n=n)
    out = post.postprocess_nodes(items, query_str=q)
    assert items == before
    assert len(out) == min(len(items), n or len(items))
    by_id = {x.node.node_id: x for x in items}
    for x in out:
        assert x.node.get_content() == by_id[x.node.node_id].node.get_content()
        assert x.node.metadata == by_id[x.node.node_id].node.metadata
    scores = [x.score for x in out]
    assert scores == sorted(scores, reverse=True)  # type: ignore[type-var]
    assert asyncio.run(post.apostprocess_nodes(items, query_str=q)) == out


# -- nothing lost: thresholds, duplicates, ids and metadata --------------------------------

POOL = ["dog", "cat", "dog cat", "a fish", "", "the dog and the dog", "שלום 🙂", "x" * 30 + " dog"]
pooled = st.lists(st.one_of(st.sampled_from(POOL), text), max_size=25)  # duplicates are likely
threshold = st.one_of(st.none(), st.floats(min_value=-1, max_value=4, allow_nan=False))
nested = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=8)),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)),
    max_leaves=8,
)
rich_metadata = st.dictionaries(st.sampled_from(["title", "src", "n", "deep"]), nested, max_size=4)
ids = st.one_of(st.none(), st.sampled_from(["a", "b", "c"]))  # shared ids are likely


def expected_cut(q: str, docs: list[str], n: int | None, t: float | None) -> list[int]:
    """The documented result, from the scores alone: threshold, then the best n, ties in input order."""
    scores = RR.score(q, docs)
    keep = [i for i in sorted(range(len(docs)), key=lambda i: (-scores[i], i)) if t is None or scores[i] >= t]
    return keep if n is None else keep[:n]


@SETTINGS
@given(q=query, docs=pooled, n=top_n, t=threshold)
def test_engine_keeps_exactly_the_documented_cut(q: str, docs: list[str], n: int | None, t: float | None) -> None:
    ranked = RR.rerank(q, docs, top_n=n, score_threshold=t)
    assert [r.index for r in ranked] == expected_cut(q, docs, n, t)
    assert all(r.text is docs[r.index] for r in ranked)
    # identical texts get identical scores
    full = RR.score(q, docs)
    assert all(full[i] == full[j] for i in range(len(docs)) for j in range(i) if docs[i] == docs[j])


@SETTINGS
@given(q=query, docs=st.lists(st.tuples(text, rich_metadata, ids), max_size=20), n=top_n, t=threshold)
def test_langchain_keeps_every_document_and_its_metadata(
    q: str, docs: list[tuple[str, dict[str, object], str | None]], n: int | None, t: float | None
) -> None:
    items = [Document(page_content=s, metadata={**m, "pos": i}, id=d) for i, (s, m, d) in enumerate(docs)]
    before = copy.deepcopy(items)
    out = XRerankCompressor(reranker=RR, top_n=n, score_threshold=t, metadata_keys=["title"]).compress_documents(
        items, q
    )
    assert items == before
    texts = XRerankCompressor(reranker=RR, metadata_keys=["title"])._texts(items)
    assert [d.metadata["pos"] for d in out] == expected_cut(q, texts, n, t)
    for d in out:
        src = items[d.metadata["pos"]]
        assert (d.id, d.page_content) == (src.id, src.page_content)
        assert {k: v for k, v in d.metadata.items() if k != "relevance_score"} == src.metadata


@SETTINGS
@given(q=query, docs=st.lists(st.tuples(text, rich_metadata, ids), max_size=20), n=top_n, t=threshold)
def test_llamaindex_keeps_every_node_and_its_metadata(
    q: str, docs: list[tuple[str, dict[str, object], str | None]], n: int | None, t: float | None
) -> None:
    items = [
        NodeWithScore(node=TextNode(text=s, metadata={**m, "pos": i}, id_=d or f"n{i}"), score=None)
        for i, (s, m, d) in enumerate(docs)
    ]
    before = copy.deepcopy(items)
    post = XRerankPostprocessor(reranker=RR, top_n=n, score_threshold=t, keep_retrieval_score=True)
    out = post.postprocess_nodes(items, query_str=q)
    assert items == before
    assert [x.node.metadata["pos"] for x in out] == expected_cut(q, [s for s, _, _ in docs], n, t)
    for x in out:
        src = items[x.node.metadata["pos"]].node
        assert (x.node.node_id, x.node.get_content()) == (src.node_id, src.get_content())
        assert {k: v for k, v in x.node.metadata.items() if k != "retrieval_score"} == src.metadata


def test_real_model_scores_do_not_depend_on_the_batch(tiny_bert: str) -> None:
    rr = Reranker(tiny_bert, device="cpu", batch_size=3, max_length=40, window_overlap=4)

    @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
    @given(q=query, docs=st.lists(text, min_size=1, max_size=8))
    def run(q: str, docs: list[str]) -> None:
        together = rr.score(q, docs)
        alone = [rr.score(q, [d])[0] for d in docs]
        assert together == pytest.approx(alone, abs=1e-4)
        assert [r.index for r in rr.rerank(q, docs)] == sorted(range(len(docs)), key=lambda i: (-together[i], i))

    run()
