"""``XRerankPostprocessor``: nodes in, the best nodes out, scored by a cross-encoder."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import llama_index.core.instrumentation as instrument
from llama_index.core.bridge.pydantic import (
    ConfigDict,
    Field,
    PrivateAttr,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)
from llama_index.core.callbacks import CBEventType, EventPayload
from llama_index.core.instrumentation.events.rerank import ReRankEndEvent, ReRankStartEvent
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle

from xrerank_core import InputError, InputTypeError, Ranked, Reranker
from xrerank_core._config import validate_budget, validate_threshold, validate_top_n
from xrerank_core._engine import dump_with_recipe, shared_reranker

__all__ = ["XRerankPostprocessor"]

dispatcher = instrument.get_dispatcher(__name__)  # type: ignore[attr-defined]


class XRerankPostprocessor(BaseNodePostprocessor):
    """Rerank retrieved nodes with a cross-encoder; keep the best ``top_n``.

    Use it in any query or chat engine::

        from xrerank_core import Reranker
        rr = Reranker("cross-encoder/ms-marco-MiniLM-L-6-v2")
        engine = index.as_query_engine(similarity_top_k=100,
                                       node_postprocessors=[XRerankPostprocessor(reranker=rr, top_n=10)])

    Returns new ``NodeWithScore`` objects whose ``score`` is the cross-encoder's, best
    first. The input nodes are never modified.
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    reranker: Reranker | None = Field(default=None, exclude=True)
    """A ready :class:`~xrerank_core.Reranker`; share one across pipelines to load the model once.
    ``to_dict()`` / ``to_json()`` write its model and options as ``model`` / ``reranker_options``;
    one over a ready-made ``Scorer`` cannot be written (they raise, naming the fix)."""

    model: str | None = None
    """A hub id, local folder or bundled model name, used when no ``reranker`` is given."""

    reranker_options: dict[str, Any] = Field(default_factory=dict)
    """Options for the ``Reranker`` built from ``model`` (``device``, ``backend``, ``max_length``, ...)."""

    top_n: int | None = 10
    """Keep at most this many nodes (``None``: keep all, reordered)."""

    score_threshold: float | None = None
    """Drop nodes whose score is below this (applied before the cut to ``top_n``)."""

    budget_ms: float | None = None
    """A latency budget per call, in milliseconds (see :meth:`xrerank_core.Reranker.rerank`):
    the cross-encoder scores as many of the first nodes as fit, and the rest follow them in
    input order with ``score=None``. ``None``: score all."""

    metadata_mode: MetadataMode = MetadataMode.NONE
    """Which metadata the model reads with the node's text (``NONE``: the text only)."""

    keep_retrieval_score: bool = False
    """Copy the first-stage score into the node's metadata under ``retrieval_score_key``."""

    retrieval_score_key: str = "retrieval_score"
    """Metadata key for the first-stage score (hidden from the LLM and the embedder)."""

    _reranker: Reranker = PrivateAttr()

    @field_validator("top_n")
    @classmethod
    def _check_top_n(cls, value: int | None) -> int | None:
        return validate_top_n(value)

    @field_validator("score_threshold")
    @classmethod
    def _check_threshold(cls, value: float | None) -> float | None:
        return validate_threshold(value)

    @field_validator("budget_ms")
    @classmethod
    def _check_budget(cls, value: float | None) -> float | None:
        return validate_budget(value)

    @model_validator(mode="after")
    def _load(self) -> XRerankPostprocessor:
        self._reranker = shared_reranker(self.reranker, self.model, self.reranker_options)
        return self

    @model_serializer(mode="wrap")
    def custom_model_dump(self, handler: SerializerFunctionWrapHandler, info: SerializationInfo) -> dict[str, Any]:
        """``BaseComponent``'s dump, with a given reranker written as the model and options that rebuild it."""
        data = dump_with_recipe(handler(self), self.reranker, type(self).__name__)
        data["class_name"] = self.class_name()
        return data

    @classmethod
    def class_name(cls) -> str:
        """The name LlamaIndex serialises this component under."""
        return "XRerankPostprocessor"

    @staticmethod
    def _bundle(query_bundle: QueryBundle | None) -> QueryBundle:
        if query_bundle is None:
            msg = "XRerankPostprocessor needs the query: pass query_bundle= or query_str="
            raise InputError(msg)
        return query_bundle

    def _texts(self, nodes: list[NodeWithScore]) -> list[str]:
        texts = []
        for i, n in enumerate(nodes):
            if not isinstance(n, NodeWithScore):
                msg = f"nodes[{i}] is a {type(n).__name__}, not a NodeWithScore; wrap it: NodeWithScore(node=...)"
                raise InputTypeError(msg)
            # Checked without metadata: a template would turn a missing text into the word "None".
            text = n.node.get_content(metadata_mode=MetadataMode.NONE)
            if not isinstance(text, str):
                msg = (
                    f"nodes[{i}] (id {n.node.node_id!r}) has a text of type {type(text).__name__}, not a string; "
                    'give every node its text ("" for none)'
                )
                raise InputTypeError(msg)
            texts.append(n.node.get_content(metadata_mode=self.metadata_mode))
        return texts

    def _first_stage(self, nodes: list[NodeWithScore]) -> list[float] | None:
        """The retriever's scores, for the reranker's ``fusion`` (``None`` if any is missing, or without fusion)."""
        if self._reranker.config.fusion == "none":
            return None  # unused: a NaN or infinite retrieval score must not fail the rerank
        scores = [n.score for n in nodes]
        return None if any(s is None for s in scores) else [float(s) for s in scores if s is not None]

    def _to_nodes(self, nodes: list[NodeWithScore], ranked: list[Ranked]) -> list[NodeWithScore]:
        out = []
        for r in ranked:
            node = nodes[r.index].node
            if self.keep_retrieval_score:
                key = self.retrieval_score_key
                node = node.model_copy(
                    update={
                        "metadata": {**node.metadata, key: nodes[r.index].score},
                        "excluded_llm_metadata_keys": [*node.excluded_llm_metadata_keys, key],
                        "excluded_embed_metadata_keys": [*node.excluded_embed_metadata_keys, key],
                    }
                )
            # A node a budget left unscored gets None, not -inf: JSON (tracing, serving) can't carry -inf.
            out.append(NodeWithScore(node=node, score=r.score if r.scored else None))
        return out

    @contextmanager
    def _events(self, query_bundle: QueryBundle, nodes: list[NodeWithScore]) -> Iterator[list[NodeWithScore]]:
        """Emit the instrumentation and callback events around a rerank; yields the output list."""
        top_n = self.top_n if self.top_n is not None else len(nodes)
        dispatcher.event(
            ReRankStartEvent(query=query_bundle, nodes=nodes, top_n=top_n, model_name=self._reranker.config.model)
        )
        result: list[NodeWithScore] = []
        with self.callback_manager.event(
            CBEventType.RERANKING,
            payload={
                EventPayload.NODES: nodes,
                EventPayload.MODEL_NAME: self._reranker.config.model,
                EventPayload.QUERY_STR: query_bundle.query_str,
                EventPayload.TOP_K: top_n,
            },
        ) as event:
            yield result
            event.on_end(payload={EventPayload.NODES: result})
        dispatcher.event(ReRankEndEvent(nodes=result))

    def _postprocess_nodes(
        self,
        nodes: list[NodeWithScore],
        query_bundle: QueryBundle | None = None,
    ) -> list[NodeWithScore]:
        bundle = self._bundle(query_bundle)
        query = bundle.query_str
        nodes = list(nodes)
        texts = self._texts(nodes)
        with self._events(bundle, nodes) as result:
            ranked = self._reranker.rerank(
                query, texts, self.top_n, self.score_threshold, self._first_stage(nodes), self.budget_ms
            )
            result.extend(self._to_nodes(nodes, ranked))
        return result

    async def _apostprocess_nodes(
        self,
        nodes: list[NodeWithScore],
        query_bundle: QueryBundle | None = None,
    ) -> list[NodeWithScore]:
        bundle = self._bundle(query_bundle)
        query = bundle.query_str
        nodes = list(nodes)
        texts = self._texts(nodes)
        with self._events(bundle, nodes) as result:
            ranked = await self._reranker.arerank(
                query, texts, self.top_n, self.score_threshold, self._first_stage(nodes), self.budget_ms
            )
            result.extend(self._to_nodes(nodes, ranked))
        return result
