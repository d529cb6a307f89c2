"""Property tests: for any documents, the output is a sorted, bounded subset of the input."""

from __future__ import annotations

import asyncio
import copy

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
