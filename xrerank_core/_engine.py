"""The reranking engine: everything between "a query and some texts" and "ranked results"."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from xrerank_core._backends import Scorer
from xrerank_core._config import DEFAULT_MODEL, RerankerConfig, validate_threshold, validate_top_n
from xrerank_core._exceptions import ConfigError, InputError, InputTypeError, ScoringError, XRerankError
from xrerank_core._fusion import fuse
from xrerank_core._models import get_scorer, resolve_model
from xrerank_core._text import split_windows

__all__ = ["Ranked", "Reranker", "shared_reranker"]

logger = logging.getLogger(__name__)

# Tokens kept free in each window, because a window's text re-tokenized next to the
# query can take a token or two more than its span did alone.
_WINDOW_SLACK = 4
_LONG = ("maxp", "truncate")


@dataclass(frozen=True, slots=True)
class Ranked:
    """One reranked input.

    Attributes:
        index: Position of the text in the input list.
        score: The score the ranking uses: the cross-encoder's (raw logit, or probability
            with ``normalize="sigmoid"``), or the fused score when fusion is on.
        text: The input text, unchanged.
        model_score: The cross-encoder's own score (equal to ``score`` without fusion).
    """

    index: int
    score: float
    text: str
    model_score: float = math.nan

    def __post_init__(self) -> None:
        if math.isnan(self.model_score):
            object.__setattr__(self, "model_score", self.score)


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def _check_query(query: object) -> str:
    if not isinstance(query, str):
        msg = f"query must be a string, got {type(query).__name__}"
        raise InputTypeError(msg)
    if not query.strip():
        msg = "query is empty (or only whitespace); there is nothing to rank against"
        raise InputError(msg)
    _check_encodable(query, "the query")
    return query


def _check_encodable(text: str, what: str) -> None:
    """Refuse a string that cannot be UTF-8 encoded (lone surrogates), which no tokenizer can read."""
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        msg = (
            f"{what} holds {text[exc.start]!r} at character {exc.start}: a lone surrogate, not valid Unicode "
            "(what decoding invalid UTF-8 with errors='surrogateescape' leaves); decode the bytes with "
            "errors='replace', or clean the text with text.encode('utf-8', 'replace').decode('utf-8')"
        )
        raise InputError(msg) from None


def _check_texts(texts: object) -> list[str]:
    if isinstance(texts, str | bytes):
        msg = "texts must be a list of strings, got a single string; wrap it in a list"
        raise InputTypeError(msg)
    if not isinstance(texts, Sequence):
        msg = f"texts must be a sequence of strings, got {type(texts).__name__}"
        raise InputTypeError(msg)
    out = list(texts)
    for i, t in enumerate(out):
        if not isinstance(t, str):
            msg = f"document {i} is a {type(t).__name__}, not a string"
            raise InputTypeError(msg)
        _check_encodable(t, f"document {i}")
    return out


def _check_first_stage(scores: Sequence[float] | None, n: int) -> list[float] | None:
    if scores is None:
        return None
    out = list(scores)
    if len(out) != n:
        msg = f"first_stage_scores has {len(out)} values for {n} documents"
        raise InputError(msg)
    for i, s in enumerate(out):
        if isinstance(s, bool) or not isinstance(s, int | float) or not math.isfinite(s):
            msg = f"first_stage_scores[{i}] is {s!r}, not a finite number"
            raise InputError(msg)
    return [float(s) for s in out]


class Reranker:
    """A cross-encoder reranker: load once, then score and rank many queries.

    Example:
        >>> rr = Reranker("cross-encoder/ms-marco-MiniLM-L-6-v2")  # doctest: +SKIP
        >>> [r.index for r in rr.rerank("capital of France", ["Berlin ...", "Paris ..."], top_n=1)]  # doctest: +SKIP
        [1]

    The model is loaded when the ``Reranker`` is built, and shared with every other
    ``Reranker`` of the same model, backend and device. Instances are thread-safe;
    :meth:`arerank` runs in a worker thread so it never blocks the event loop.
    """

    def __init__(
        self,
        model: str | Scorer = DEFAULT_MODEL,
        *,
        config: RerankerConfig | None = None,
        **options: Any,
    ) -> None:
        """Load (or reuse) the model.

        Args:
            model: A hub id, a local folder, the short name of a bundled model, or a
                ready :class:`~xrerank_core.Scorer`.
            config: A full configuration (``model`` and ``options`` then override it).
            **options: Any field of :class:`RerankerConfig`: ``backend``, ``device``,
                ``max_length``, ``batch_size``, ``normalize``, ``long_documents``, ...

        Raises:
            ConfigError: An option is invalid.
            ModelLoadError: The model could not be loaded (see its subclasses).
        """
        base = config or RerankerConfig()
        unknown = set(options) - set(RerankerConfig.__dataclass_fields__) - {"model"}
        if unknown:
            fields = ", ".join(sorted(set(RerankerConfig.__dataclass_fields__) - {"model"}))
            msg = f"unknown option(s) {', '.join(sorted(unknown))}; the options are: {fields}"
            raise ConfigError(msg)
        if isinstance(model, str):
            self.config = replace(base, model=model, **options)
            self.scorer: Scorer = get_scorer(self.config)
        else:
            if not isinstance(model, Scorer):
                msg = f"model must be a name, a folder or a Scorer, got {type(model).__name__}"
                raise InputTypeError(msg)
            self.config = replace(base, model=model.name, **options)
            self.scorer = model
        limit = self.scorer.max_length
        wanted = self.config.max_length
        if wanted is not None and wanted > limit:
            logger.warning("max_length=%d is more than %s accepts; using %d", wanted, self.config.model, limit)
        self.max_length = min(wanted or 512, limit)
        recorded = self._recorded_settings()
        long_documents = self.config.long_documents
        if long_documents == "auto":
            long_documents = recorded["long_documents"] if recorded.get("long_documents") in _LONG else "maxp"
        self.long_documents: str = long_documents
        self.fusion_weight: float = 0.5
        if self.config.fusion_weight is not None:
            self.fusion_weight = float(self.config.fusion_weight)
        elif isinstance(recorded.get("fusion_weight"), int | float) and 0.0 <= recorded["fusion_weight"] <= 1.0:
            self.fusion_weight = float(recorded["fusion_weight"])

    def _recorded_settings(self) -> dict[str, Any]:
        """The settings a model folder records in ``xrerank.json`` (chosen when it was trained), or ``{}``."""
        try:
            path = Path(resolve_model(self.config.model)) / "xrerank.json"
            recorded = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        except (OSError, ValueError, XRerankError):
            return {}
        return recorded if isinstance(recorded, dict) else {}

    def __repr__(self) -> str:
        """Show the model and the settings that change scores."""
        c = self.config
        return (
            f"Reranker(model={c.model!r}, backend={c.backend!r}, max_length={self.max_length}, "
            f"normalize={c.normalize!r}, long_documents={self.long_documents!r})"
        )

    # -- public API ---------------------------------------------------------------

    def score(self, query: str, texts: Sequence[str]) -> list[float]:
        """Score each text against ``query``.

        Args:
            query: The question or search query.
            texts: The documents, as strings.

        Returns:
            One Python float per text, in input order (normalised if configured).

        Raises:
            InputError: An empty query; :class:`InputTypeError` for a non-string.
            ScoringError: The model produced NaN or infinite scores.
        """
        query = _check_query(query)
        docs = _check_texts(texts)
        if not docs:
            return []
        raw = self._score_raw(query, docs)
        if self.config.normalize == "sigmoid":
            return [_sigmoid(x) for x in raw]
        return raw

    def rerank(
        self,
        query: str,
        texts: Sequence[str],
        top_n: int | None = None,
        score_threshold: float | None = None,
        first_stage_scores: Sequence[float] | None = None,
    ) -> list[Ranked]:
        """Rank ``texts`` by relevance to ``query``, best first.

        Args:
            query: The question or search query.
            texts: The documents, as strings, in first-stage order.
            top_n: Keep at most this many (``None``: all).
            score_threshold: Drop texts scoring below this (compared with the score
                the ranking uses, before the cut to ``top_n``).
            first_stage_scores: The first stage's scores (higher is better), used by
                ``fusion``; without them fusion uses the input order.

        Returns:
            :class:`Ranked` items, best first; equal scores keep input order.
        """
        top_n = validate_top_n(top_n)
        threshold = validate_threshold(score_threshold)
        first = _check_first_stage(first_stage_scores, len(texts) if isinstance(texts, Sequence) else -1)
        model = self.score(query, texts)
        scores = fuse(model, first, self.config.fusion, self.fusion_weight, self.config.rrf_k)
        order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
        ranked = [Ranked(i, scores[i], texts[i], model[i]) for i in order]
        if threshold is not None:
            ranked = [r for r in ranked if r.score >= threshold]
        return ranked if top_n is None else ranked[:top_n]

    def score_many(self, requests: Sequence[tuple[str, Sequence[str]]]) -> list[list[float]]:
        """Score several queries' documents in one job: their pairs share length-sorted batches.

        What a server does with requests that arrive together (dynamic batching): the result
        equals ``[self.score(q, texts) for q, texts in requests]``, with fewer, fuller forward passes.

        Args:
            requests: ``(query, texts)`` pairs.

        Returns:
            For each request, one float per text, in input order.

        Raises:
            InputError: An empty query; :class:`InputTypeError` for a non-string.
            ScoringError: The model produced NaN or infinite scores.
        """
        checked = [(_check_query(q), _check_texts(t)) for q, t in requests]
        raw = self._score_raw_many([(q, t) for q, t in checked if t])
        out: list[list[float]] = []
        filled = iter(raw)
        for _, texts in checked:
            scores = next(filled) if texts else []
            out.append([_sigmoid(x) for x in scores] if self.config.normalize == "sigmoid" else scores)
        return out

    async def ascore(self, query: str, texts: Sequence[str]) -> list[float]:
        """Like :meth:`score`, in a worker thread so the event loop keeps running."""
        return await asyncio.to_thread(self.score, query, texts)

    async def arerank(
        self,
        query: str,
        texts: Sequence[str],
        top_n: int | None = None,
        score_threshold: float | None = None,
        first_stage_scores: Sequence[float] | None = None,
    ) -> list[Ranked]:
        """Like :meth:`rerank`, in a worker thread so the event loop keeps running."""
        return await asyncio.to_thread(self.rerank, query, texts, top_n, score_threshold, first_stage_scores)

    # -- internals ----------------------------------------------------------------

    def _prepare_query(self, query: str) -> tuple[str, int]:
        offsets = self.scorer.token_offsets([query])
        if offsets is None:
            return query, 0
        spans = offsets[0]
        limit = self.config.max_query_tokens or self.max_length // 2
        limit = min(limit, self.max_length // 2)
        if len(spans) > limit:
            logger.warning("the query has %d tokens; only its first %d are used (max_query_tokens)", len(spans), limit)
            return query[: spans[limit - 1][1]], limit
        return query, len(spans)

    def _windows(self, query_tokens: int, docs: list[str]) -> tuple[list[str], list[int], list[list[int]]]:
        """Unique windows to score, their token counts, and each document's window ids."""
        all_offsets = self.scorer.token_offsets(docs)
        budget = self.max_length - self.scorer.num_special_tokens - query_tokens - _WINDOW_SLACK
        budget = max(budget, 8)
        window_ids: dict[str, int] = {}
        windows: list[str] = []
        lengths: list[int] = []
        per_doc: list[list[int]] = []
        truncate = self.long_documents == "truncate"
        n_split = 0
        for d, doc in enumerate(docs):
            if all_offsets is None:
                pieces = [(doc, len(doc) // 4)]
            else:
                pieces = split_windows(doc, all_offsets[d], budget, self.config.window_overlap, truncate=truncate)
                n_split += len(all_offsets[d]) > budget
            ids = []
            for text, n_tokens in pieces:
                wid = window_ids.get(text)
                if wid is None:
                    wid = window_ids[text] = len(windows)
                    windows.append(text)
                    lengths.append(n_tokens)
                ids.append(wid)
            per_doc.append(ids)
        if n_split:
            how = "truncated to their first window" if truncate else "split into windows (MaxP)"
            logger.debug("%d of %d documents are longer than %d tokens: %s", n_split, len(docs), budget, how)
        return windows, lengths, per_doc

    def _batches(self, order: list[int], lengths: list[int], query_tokens: int) -> Iterator[list[int]]:
        """Group window ids (sorted longest first) by ``batch_size`` and ``max_batch_tokens``."""
        size, budget = self.config.batch_size, self.config.max_batch_tokens
        # A remote scorer takes a whole request's documents at once (it batches on its side).
        remote = getattr(self.scorer, "batch_pairs", None)
        if isinstance(remote, int) and remote > 0:
            size, budget = remote, None
        batch: list[int] = []
        longest = 0
        for wid in order:
            n = lengths[wid] + query_tokens + self.scorer.num_special_tokens
            # Padding makes a batch cost len(batch) * its longest member.
            if batch and (len(batch) >= size or (budget is not None and (len(batch) + 1) * max(longest, n) > budget)):
                yield batch
                batch, longest = [], 0
            batch.append(wid)
            longest = max(longest, n)
        if batch:
            yield batch

    def _score_raw(self, query: str, docs: list[str]) -> list[float]:
        """Raw logits per document: dedupe, window, sort by length, batch, score, take the max."""
        return self._score_raw_many([(query, docs)])[0]

    def _score_raw_many(self, items: Sequence[tuple[str, list[str]]]) -> list[list[float]]:
        """Raw logits for several (query, documents) at once; their pairs share length-sorted batches."""
        pairs: list[tuple[str, str]] = []
        lengths: list[int] = []
        pair_ids: dict[tuple[str, str], int] = {}
        plans: list[tuple[list[int], list[list[int]]]] = []
        for query, docs in items:
            unique: dict[str, int] = {}
            doc_ids = [unique.setdefault(d, len(unique)) for d in docs]
            prepared, query_tokens = self._prepare_query(query)
            windows, window_lengths, per_doc = self._windows(query_tokens, list(unique))
            ids = []
            for text, n_tokens in zip(windows, window_lengths, strict=True):
                pid = pair_ids.get((prepared, text))
                if pid is None:
                    pid = pair_ids[(prepared, text)] = len(pairs)
                    pairs.append((prepared, text))
                    lengths.append(n_tokens + query_tokens)
                ids.append(pid)
            plans.append((doc_ids, [[ids[w] for w in wids] for wids in per_doc]))
        order = sorted(range(len(pairs)), key=lambda p: -lengths[p])
        pair_scores = [0.0] * len(pairs)
        batches = list(self._batches(order, lengths, 0))
        for batch in self._progress(batches, len(pairs)):
            scores = self.scorer.score_pairs([pairs[p] for p in batch])
            if len(scores) != len(batch):
                msg = f"the scorer returned {len(scores)} scores for {len(batch)} pairs"
                raise ScoringError(msg)
            for p, s in zip(batch, scores, strict=True):
                if not math.isfinite(s):
                    msg = (
                        f"the model returned {s} for a document; its weights may be damaged, or it "
                        "overflowed in reduced precision (try a float32 device/backend)"
                    )
                    raise ScoringError(msg)
                pair_scores[p] = float(s)
        out = []
        for doc_ids, per_doc in plans:
            per_unique = [max(pair_scores[p] for p in ids) for ids in per_doc]
            out.append([per_unique[u] for u in doc_ids])
        return out

    def _progress(self, batches: list[list[int]], n_pairs: int) -> Iterator[list[int]]:
        show = self.config.show_progress
        if show is None:
            show = len(batches) > 50 and sys.stderr.isatty()
        if not show:
            yield from batches
            return
        from tqdm.auto import tqdm

        with tqdm(total=n_pairs, desc="reranking", unit="pair") as bar:
            for batch in batches:
                yield batch
                bar.update(len(batch))


def shared_reranker(reranker: Reranker | None, model: str | None, options: Mapping[str, Any]) -> Reranker:
    """The ``Reranker`` an adapter uses: the one it was given, or one built from ``model`` + ``options``.

    A built one shares its loaded model with every other user of the same model, backend
    and device.

    Raises:
        ConfigError: Both a ready reranker and a model (or options) were given.
    """
    if reranker is not None:
        if model is not None or options:
            msg = "pass either reranker=... or model=... (with reranker_options), not both"
            raise ConfigError(msg)
        return reranker
    return Reranker(model, **options) if model is not None else Reranker(**options)
