"""One contract suite, run against both adapters (HOUSE_STYLE 14), plus each adapter's own features."""

from __future__ import annotations

import asyncio
import copy
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from conftest import FakeScorer
from langchain_core.documents import Document
from llama_index.core.callbacks import CallbackManager, CBEventType, LlamaDebugHandler
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events.rerank import ReRankEndEvent, ReRankStartEvent
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
from pydantic import ValidationError

from langchain_xrerank import XRerankCompressor
from llamaindex_xrerank import XRerankPostprocessor
from xrerank_core import InputError, InputTypeError, Reranker

TEXTS = [
    "the cat sat on the mat",
    "a dog and a cat play",
    "nothing relevant here",
    "dog",
    "cat food for a dog",
]
QUERY = "dog cat"
EXPECTED_ORDER = [1, 4, 0, 3, 2]  # scores 2, 2, 1, 1, 0; ties in input order


@dataclass
class Out:
    """What the contract looks at, the same for both frameworks."""

    ids: list[str]
    texts: list[str]
    scores: list[float]
    metadata: list[dict[str, Any]]


class LangChainHarness:
    name = "langchain"

    def make(self, **kwargs: Any) -> XRerankCompressor:
        return XRerankCompressor(**kwargs)

    def inputs(self, texts: list[str]) -> list[Document]:
        return [Document(page_content=t, id=f"id{i}", metadata={"n": i, "tags": ["x"]}) for i, t in enumerate(texts)]

    def run(self, adapter: Any, items: list[Document], query: str) -> Out:
        return self._out(adapter.compress_documents(items, query))

    def arun(self, adapter: Any, items: list[Document], query: str) -> Out:
        return self._out(asyncio.run(adapter.acompress_documents(items, query)))

    def round_trips(self, adapter: Any) -> list[tuple[dict[str, Any], XRerankCompressor]]:
        data = adapter.model_dump()
        return [
            (data, XRerankCompressor(**data)),
            (data, XRerankCompressor.model_validate_json(adapter.model_dump_json())),
        ]

    @staticmethod
    def _out(docs: Any) -> Out:
        return Out(
            ids=[d.id for d in docs],
            texts=[d.page_content for d in docs],
            scores=[d.metadata["relevance_score"] for d in docs],
            metadata=[d.metadata for d in docs],
        )


class LlamaIndexHarness:
    name = "llamaindex"

    def make(self, **kwargs: Any) -> XRerankPostprocessor:
        return XRerankPostprocessor(**kwargs)

    def inputs(self, texts: list[str]) -> list[NodeWithScore]:
        return [
            NodeWithScore(node=TextNode(text=t, id_=f"id{i}", metadata={"n": i, "tags": ["x"]}), score=1.0 - i / 10)
            for i, t in enumerate(texts)
        ]

    def run(self, adapter: Any, items: list[NodeWithScore], query: str) -> Out:
        return self._out(adapter.postprocess_nodes(items, query_str=query))

    def arun(self, adapter: Any, items: list[NodeWithScore], query: str) -> Out:
        return self._out(asyncio.run(adapter.apostprocess_nodes(items, query_str=query)))

    def round_trips(self, adapter: Any) -> list[tuple[dict[str, Any], XRerankPostprocessor]]:
        data = adapter.to_dict()
        return [(data, XRerankPostprocessor.from_dict(data)), (data, XRerankPostprocessor.from_json(adapter.to_json()))]

    @staticmethod
    def _out(nodes: Any) -> Out:
        return Out(
            ids=[n.node.node_id for n in nodes],
            texts=[n.node.get_content() for n in nodes],
            scores=[n.score for n in nodes],
            metadata=[n.node.metadata for n in nodes],
        )


HARNESSES = [LangChainHarness(), LlamaIndexHarness()]


@pytest.fixture(params=HARNESSES, ids=lambda h: h.name)
def harness(request: pytest.FixtureRequest) -> Any:
    return request.param


@pytest.fixture
def reranker() -> Reranker:
    return Reranker(FakeScorer())


def test_orders_best_first_with_float_scores(harness: Any, reranker: Reranker) -> None:
    out = harness.run(harness.make(reranker=reranker, top_n=None), harness.inputs(TEXTS), QUERY)
    assert out.ids == [f"id{i}" for i in EXPECTED_ORDER]
    assert out.texts == [TEXTS[i] for i in EXPECTED_ORDER]
    assert out.scores == [2.0, 2.0, 1.0, 1.0, 0.0]
    assert all(type(s) is float for s in out.scores)


def test_top_n_defaults_to_10_and_cuts(harness: Any, reranker: Reranker) -> None:
    many = [f"dog {i}" for i in range(25)]
    assert len(harness.run(harness.make(reranker=reranker), harness.inputs(many), "dog").ids) == 10
    assert harness.run(harness.make(reranker=reranker, top_n=2), harness.inputs(TEXTS), QUERY).ids == ["id1", "id4"]
    assert len(harness.run(harness.make(reranker=reranker, top_n=50), harness.inputs(TEXTS), QUERY).ids) == 5


def test_threshold(harness: Any, reranker: Reranker) -> None:
    out = harness.run(harness.make(reranker=reranker, score_threshold=1.5), harness.inputs(TEXTS), QUERY)
    assert out.ids == ["id1", "id4"]
    assert harness.run(harness.make(reranker=reranker, score_threshold=99), harness.inputs(TEXTS), QUERY).ids == []


def test_empty_input(harness: Any, reranker: Reranker) -> None:
    assert harness.run(harness.make(reranker=reranker), [], QUERY).ids == []


def test_input_is_never_mutated(harness: Any, reranker: Reranker) -> None:
    items = harness.inputs(TEXTS)
    before = copy.deepcopy(items)
    ids_before = [id(x) for x in items]
    out = harness.run(harness.make(reranker=reranker, top_n=3), items, QUERY)
    assert items == before
    assert [id(x) for x in items] == ids_before
    assert out.metadata[0]["n"] == 1 and out.metadata[0]["tags"] == ["x"]


def test_async_equals_sync(harness: Any, reranker: Reranker) -> None:
    adapter = harness.make(reranker=reranker, top_n=4)
    items = harness.inputs(TEXTS)
    assert harness.arun(adapter, items, QUERY) == harness.run(adapter, items, QUERY)


def test_bad_settings_and_input(harness: Any, reranker: Reranker) -> None:
    with pytest.raises(ValidationError):
        harness.make(reranker=reranker, top_n=0)
    with pytest.raises(ValidationError):
        harness.make(reranker=reranker, topn=3)  # extra="forbid"
    with pytest.raises(ValueError, match="not both"):
        harness.make(reranker=reranker, model="some/model")
    with pytest.raises(InputError):
        harness.run(harness.make(reranker=reranker), harness.inputs(TEXTS), "   ")


def test_model_name_builds_a_shared_reranker(harness: Any, tiny_bert: str) -> None:
    a = harness.make(model=tiny_bert, reranker_options={"device": "cpu"})
    b = harness.make(model=tiny_bert, reranker_options={"device": "cpu"})
    assert a._reranker.scorer is b._reranker.scorer
    out = harness.run(a, harness.inputs(TEXTS), QUERY)
    assert out.scores == sorted(out.scores, reverse=True)
    assert out.scores == pytest.approx(sorted(Reranker(tiny_bert, device="cpu").score(QUERY, TEXTS), reverse=True))


def test_serialisation_keeps_a_given_rerankers_model_and_options(harness: Any, tiny_bert: str) -> None:
    rr = Reranker(tiny_bert, device="cpu", max_length=64, fusion="rrf", long_documents="truncate")
    for data, back in harness.round_trips(harness.make(reranker=rr, top_n=3)):
        assert data["model"] == tiny_bert
        assert data["reranker_options"] == {
            "device": "cpu",
            "max_length": 64,
            "fusion": "rrf",
            "long_documents": "truncate",
        }
        assert back.top_n == 3
        assert back._reranker.config == rr.config
        assert back._reranker.scorer is rr.scorer  # the same model, shared
    # A reranker over a ready-made scorer cannot be written down: an error, not a file that loads another model.
    with pytest.raises(ValueError, match=r"ConfigError: cannot serialise .* ready-made FakeScorer"):
        harness.round_trips(harness.make(reranker=Reranker(FakeScorer())))


def test_an_adapter_pickles_with_its_reranker_as_a_recipe(harness: Any, tiny_bert: str) -> None:
    """Pickling (multiprocessing, Ray, caches) keeps the given reranker: rebuilt from its model and options."""
    import pickle

    rr = Reranker(tiny_bert, device="cpu", max_length=64, fusion="rrf")
    adapter = harness.make(reranker=rr, top_n=3)
    back = pickle.loads(pickle.dumps(adapter))
    assert back._reranker.config == rr.config and back._reranker.scorer is rr.scorer  # same process: shared
    assert harness.run(back, harness.inputs(TEXTS), QUERY) == harness.run(adapter, harness.inputs(TEXTS), QUERY)


# -- LangChain-specific -----------------------------------------------------------


def test_langchain_keys_and_metadata_text(reranker: Reranker) -> None:
    docs = [
        Document(page_content="about pets", metadata={"title": "dog"}),
        Document(page_content="about cars", metadata={"title": "engine"}),
    ]
    plain = XRerankCompressor(reranker=reranker).compress_documents(docs, "dog")
    assert [d.metadata["relevance_score"] for d in plain] == [0.0, 0.0]  # text only by default
    comp = XRerankCompressor(reranker=reranker, metadata_keys=["title"], score_key="ce", rank_key="first_rank")
    out = comp.compress_documents(docs, "dog")
    assert [d.page_content for d in out] == ["about pets", "about cars"]
    assert [d.metadata["ce"] for d in out] == [1.0, 0.0]
    assert [d.metadata["first_rank"] for d in out] == [1, 2]
    assert "relevance_score" not in out[0].metadata


def test_langchain_first_stage_scores_of_any_real_type_are_fused() -> None:
    rr = Reranker(FakeScorer(), fusion="zscore", fusion_weight=0.5)
    comp = XRerankCompressor(reranker=rr, top_n=None, first_stage_score_key="score")

    def docs(*scores: object) -> list[Document]:  # equal model scores: the order comes from the first stage
        return [Document(page_content="dog", id=str(i), metadata={"score": s}) for i, s in enumerate(scores)]

    for kind in (float, np.float32, np.float64, Fraction):
        ranked = comp.compress_documents(docs(kind(1) / 10, kind(2) / 10, kind(9) / 10), "dog")
        assert [d.id for d in ranked] == ["2", "1", "0"], kind
    assert [d.id for d in comp.compress_documents(docs(1, np.int64(5), 3), "dog")] == ["1", "2", "0"]
    # A document without a usable score fails loudly instead of fusing with the input order.
    missing = [*docs(0.1, 0.2), Document(page_content="dog", id="x")]
    with pytest.raises(InputError, match=r"documents\[2\] \(id 'x'\) has no metadata\['score'\]"):
        comp.compress_documents(missing, "dog")
    for bad in ("0.9", True, None):
        with pytest.raises(InputTypeError, match=r"documents\[1\] \(id '1'\) has metadata\['score'\] = .*not a number"):
            asyncio.run(comp.acompress_documents(docs(0.1, bad), "dog"))
    # Without fusion the key is not read.
    plain = XRerankCompressor(reranker=Reranker(FakeScorer()), first_stage_score_key="score")
    assert len(plain.compress_documents(missing, "dog")) == 3


# -- LlamaIndex-specific ----------------------------------------------------------


def test_llamaindex_events_callbacks_and_retrieval_score(reranker: Reranker) -> None:
    events: list[Any] = []

    class Collect(BaseEventHandler):
        def handle(self, event: Any, **kwargs: Any) -> None:
            if isinstance(event, ReRankStartEvent | ReRankEndEvent):
                events.append(event)

    handler = Collect()
    root = get_dispatcher()
    root.add_event_handler(handler)
    debug = LlamaDebugHandler()
    try:
        post = XRerankPostprocessor(
            reranker=reranker, top_n=2, keep_retrieval_score=True, callback_manager=CallbackManager([debug])
        )
        nodes = LlamaIndexHarness().inputs(TEXTS)
        out = post.postprocess_nodes(nodes, QueryBundle(QUERY))
    finally:
        root.event_handlers.remove(handler)
    assert [type(e) for e in events] == [ReRankStartEvent, ReRankEndEvent]
    assert events[0].top_n == 2 and events[0].model_name == "fake"
    assert [n.node.node_id for n in events[1].nodes] == ["id1", "id4"]
    pairs = debug.get_event_pairs(CBEventType.RERANKING)
    assert len(pairs) == 1
    assert [n.node.metadata["retrieval_score"] for n in out] == [nodes[1].score, nodes[4].score]
    assert "retrieval_score" not in nodes[1].node.metadata
    assert "retrieval_score" not in out[0].node.get_content(metadata_mode="llm")  # type: ignore[arg-type]
    assert XRerankPostprocessor.class_name() == "XRerankPostprocessor"


def test_llamaindex_needs_a_query(reranker: Reranker) -> None:
    with pytest.raises(InputError, match="query"):
        XRerankPostprocessor(reranker=reranker).postprocess_nodes(LlamaIndexHarness().inputs(TEXTS))
