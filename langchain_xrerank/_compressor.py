"""``XRerankCompressor``: documents in, the best documents out, scored by a cross-encoder."""

from __future__ import annotations

import reprlib
from collections.abc import Sequence
from numbers import Real
from typing import Any

from langchain_core.callbacks import Callbacks
from langchain_core.documents import BaseDocumentCompressor, Document
from pydantic import (
    ConfigDict,
    Field,
    PrivateAttr,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

from xrerank_core import InputError, InputTypeError, Ranked, Reranker
from xrerank_core._config import validate_budget, validate_threshold, validate_top_n
from xrerank_core._engine import dump_with_recipe, shared_reranker
from xrerank_core._text import with_metadata

__all__ = ["XRerankCompressor"]


class XRerankCompressor(BaseDocumentCompressor):
    """Rerank retrieved documents with a cross-encoder; keep the best ``top_n``.

    Drop-in for ``ContextualCompressionRetriever(base_compressor=...)``::

        from xrerank_core import Reranker
        rr = Reranker("cross-encoder/ms-marco-MiniLM-L-6-v2")
        compressor = XRerankCompressor(reranker=rr, top_n=10)

    Returns new ``Document`` objects (same ``page_content`` and ``id``, metadata copied,
    the score added under ``score_key``), best first. The input is never modified.
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    reranker: Reranker | None = Field(default=None, exclude=True)
    """A ready :class:`~xrerank_core.Reranker`; share one across pipelines to load the model once.
    ``model_dump()`` writes its model and options as ``model`` / ``reranker_options``; one over a
    ready-made ``Scorer`` cannot be written (``model_dump()`` raises, naming the fix)."""

    model: str | None = None
    """A hub id, local folder or bundled model name, used when no ``reranker`` is given."""

    reranker_options: dict[str, Any] = Field(default_factory=dict)
    """Options for the ``Reranker`` built from ``model`` (``device``, ``backend``, ``max_length``, ...)."""

    top_n: int | None = 10
    """Keep at most this many documents (``None``: keep all, reordered)."""

    score_threshold: float | None = None
    """Drop documents whose score is below this (applied before the cut to ``top_n``)."""

    budget_ms: float | None = None
    """A latency budget per call, in milliseconds (see :meth:`xrerank_core.Reranker.rerank`):
    the cross-encoder scores as many of the first documents as fit, and the rest follow them
    in input order with ``None`` under ``score_key``. ``None``: score all."""

    score_key: str = "relevance_score"
    """Metadata key that receives the reranker's score (a Python float; ``None`` for a
    document left unscored by ``budget_ms``)."""

    rank_key: str | None = None
    """If set, metadata key that receives the document's 1-based position in the input
    (its first-stage rank)."""

    first_stage_score_key: str | None = None
    """Metadata key holding the first stage's score (higher is better: any real number, numpy's
    included), passed to the reranker's ``fusion``; without it, fusion uses the input order.
    With fusion on, every document must carry a number under this key: a document without one
    raises :class:`~xrerank_core.InputError` (``InputTypeError`` for a value that is not a
    number) naming it. Ignored when the reranker's ``fusion`` is ``"none"``."""

    metadata_keys: Sequence[str] = ()
    """Metadata fields written before the text the model reads (``"title: ...\\n"``);
    empty by default: the model reads ``page_content`` only."""

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
    def _load(self) -> XRerankCompressor:
        self._reranker = shared_reranker(self.reranker, self.model, self.reranker_options)
        return self

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # A given reranker is written as the model and options that rebuild it (never as model=None).
        return dump_with_recipe(handler(self), self.reranker, type(self).__name__)

    def _texts(self, documents: Sequence[Document]) -> list[str]:
        for i, d in enumerate(documents):
            if not isinstance(d, Document):
                msg = f"documents[{i}] is a {type(d).__name__}, not a langchain_core Document"
                raise InputTypeError(msg)
            if not isinstance(d.page_content, str):
                msg = (
                    f"documents[{i}] (id {d.id!r}) has a page_content of type {type(d.page_content).__name__}, "
                    'not a string; give every Document its text ("" for an empty one)'
                )
                raise InputTypeError(msg)
        keys = self.metadata_keys
        return [with_metadata(d.page_content, d.metadata, keys) if keys else d.page_content for d in documents]

    def _first_stage(self, documents: Sequence[Document]) -> list[float] | None:
        key = self.first_stage_score_key
        if key is None or self._reranker.config.fusion == "none":
            return None  # unused: a NaN or infinite score in the metadata must not fail the rerank
        scores = []
        for i, d in enumerate(documents):
            if key not in d.metadata:
                msg = (
                    f"documents[{i}] (id {d.id!r}) has no metadata[{key!r}], the first-stage score that fusion needs; "
                    "give every document its score, or first_stage_score_key=None to fuse with the input order"
                )
                raise InputError(msg)
            value = d.metadata[key]
            if isinstance(value, bool) or not isinstance(value, Real):
                msg = (
                    f"documents[{i}] (id {d.id!r}) has metadata[{key!r}] = {reprlib.repr(value)} "
                    f"({type(value).__name__}), not a number; store the first-stage score as a number, higher is better"
                )
                raise InputTypeError(msg)
            scores.append(float(value))
        return scores

    def _to_documents(self, documents: Sequence[Document], ranked: list[Ranked]) -> list[Document]:
        out = []
        for r in ranked:
            doc = documents[r.index]
            # A document a budget left unscored gets None, not -inf: JSON (tracing, serving) can't carry -inf.
            metadata = {**doc.metadata, self.score_key: r.score if r.scored else None}
            if self.rank_key is not None:
                metadata[self.rank_key] = r.index + 1
            out.append(doc.model_copy(update={"metadata": metadata}))
        return out

    def compress_documents(
        self,
        documents: Sequence[Document],
        query: str,
        callbacks: Callbacks | None = None,
    ) -> Sequence[Document]:
        """Rerank ``documents`` for ``query``; return the best ``top_n`` as new documents."""
        docs = list(documents)
        ranked = self._reranker.rerank(
            query, self._texts(docs), self.top_n, self.score_threshold, self._first_stage(docs), self.budget_ms
        )
        return self._to_documents(docs, ranked)

    async def acompress_documents(
        self,
        documents: Sequence[Document],
        query: str,
        callbacks: Callbacks | None = None,
    ) -> Sequence[Document]:
        """Async :meth:`compress_documents`; scoring runs in a worker thread."""
        docs = list(documents)
        ranked = await self._reranker.arerank(
            query, self._texts(docs), self.top_n, self.score_threshold, self._first_stage(docs), self.budget_ms
        )
        return self._to_documents(docs, ranked)
