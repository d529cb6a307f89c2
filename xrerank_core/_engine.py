"""The reranking engine: everything between "a query and some texts" and "ranked results"."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import numbers
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from dataclasses import fields as dataclass_fields
from pathlib import Path
from typing import Any

from xrerank_core._backends import Scorer
from xrerank_core._cache import ScoreCache, Throughput
from xrerank_core._config import RerankerConfig, validate_budget, validate_threshold, validate_top_n
from xrerank_core._exceptions import ConfigError, InputError, InputTypeError, ScoringError, XRerankError
from xrerank_core._fusion import fuse, input_order_scores
from xrerank_core._models import get_scorer, resolve_model
from xrerank_core._text import split_windows

__all__ = ["Ranked", "Ranking", "Reranker", "shared_reranker"]

logger = logging.getLogger(__name__)

# Tokens kept free in each window, because a window's text re-tokenized next to the
# query can take a token or two more than its span did alone.
_WINDOW_SLACK = 4
# The fewest document tokens a window holds, however long the query.
_MIN_WINDOW = 8
_LONG = ("maxp", "truncate")
# budget_ms: the share of the time left that the predicted scoring time may fill, and the
# padding allowance on top of the pairs' own tokens.
_BUDGET_SAFETY = 0.7
_PADDING_ALLOWANCE = 1.1
_BUDGET_BATCH_TOKENS = 512
DEFAULT_BATCH_SIZE = 32
"""Pairs per forward pass when neither ``batch_size`` nor the scorer says otherwise."""
# budget_ms before any batch was timed: the first documents, at most this many, calibrate.
_CALIBRATION_DOCS = 8


@dataclass(frozen=True, slots=True)
class Ranked:
    """One reranked input.

    Attributes:
        index: Position of the text in the input list.
        score: The score the ranking uses: the cross-encoder's (raw logit, or probability
            with ``normalize="sigmoid"``), or the fused score when fusion is on.
        text: The input text, unchanged.
        model_score: The cross-encoder's own score (equal to ``score`` without fusion).
        scored: ``False`` for an input the cross-encoder left unscored: past a ``budget_ms``,
            or outside a cascade's ``cascade_top_k`` (see :attr:`Ranking.reranked`).
    """

    index: int
    score: float
    text: str
    model_score: float = math.nan
    scored: bool = True

    def __post_init__(self) -> None:
        if math.isnan(self.model_score):
            object.__setattr__(self, "model_score", self.score)


class Ranking(list[Ranked]):
    """What :meth:`Reranker.rerank` returns: a list of :class:`Ranked`, best first.

    It is a plain ``list`` in every way, with one more attribute.

    Attributes:
        reranked: How many of the inputs the cross-encoder scored. Without ``budget_ms``
            or a cascade that is all of them. With ``budget_ms``, the first ``reranked``
            inputs (the first stage's best) were scored; the others follow them in input
            order with score ``-inf`` (``0.0`` with ``normalize="sigmoid"``). With a cascade,
            the full model scored ``reranked`` of them; the others follow in the cheaper
            scorer's order, with score ``-inf`` and the cheaper scorer's score as ``model_score``.
            Each :class:`Ranked` says whether it was scored (``scored``).
    """

    reranked: int

    def __init__(self, items: Sequence[Ranked] = (), reranked: int = 0) -> None:
        super().__init__(items)
        self.reranked = reranked

    def __repr__(self) -> str:
        return f"Ranking({list.__repr__(self)}, reranked={self.reranked})"


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
        # numbers.Real: NumPy scores (a FAISS or NumPy retriever's float32 / int64) are numbers too.
        if isinstance(s, bool) or not isinstance(s, numbers.Real) or not math.isfinite(float(s)):
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
        model: str | Scorer | None = None,
        *,
        config: RerankerConfig | None = None,
        **options: Any,
    ) -> None:
        """Load (or reuse) the model.

        Args:
            model: A hub id, a local folder, the short name of a bundled model, or a
                ready :class:`~xrerank_core.Scorer`. ``None``: ``config.model``, or
                :data:`~xrerank_core.DEFAULT_MODEL` without a ``config``.
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
        if model is None:
            model = base.model
        self._from_name = isinstance(model, str)  # else a ready Scorer, which no name rebuilds
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
        self._query_cap = self._query_tokens_cap()  # the most query tokens a pair keeps
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
        self._throughput = Throughput()
        self._cache: ScoreCache | None = None
        if self.config.cache_size:
            model_id = f"{type(self.scorer).__name__}:{self.scorer.name}:{getattr(self.scorer, 'quantized', '')}"
            self._cache = ScoreCache(self.config.cache_size, model_id)
        self._cascade: Reranker | None = None
        if self.config.cascade_top_k is not None:
            self._cascade = self._build_cascade(model)

    def _build_cascade(self, model: str | Scorer) -> Reranker:
        """The cheaper scorer of the cascade: this reranker's windows, or its first ``cascade_max_length`` tokens."""
        cheap_model = self.config.cascade_model
        if cheap_model is None:
            if not isinstance(model, str):
                msg = "a cascade on a ready Scorer needs cascade_model=... (the cheaper model's name or folder)"
                raise ConfigError(msg)
            cheap_model = model
        c = self.config
        short = c.cascade_max_length
        return Reranker(
            cheap_model,
            config=replace(
                c,
                backend=c.cascade_backend,
                cascade_top_k=None,
                cascade_max_length=None,
                fusion="none",
                max_length=short or self.max_length,
                workers=c.workers if c.cascade_backend.startswith("onnx") else None,
            ),
            long_documents="truncate" if short else self.long_documents,
        )

    @property
    def cache(self) -> ScoreCache | None:
        """The score cache (``cache_size`` > 0), with its hit and miss counts; ``None`` when off."""
        return self._cache

    def _recorded_settings(self) -> dict[str, Any]:
        """The settings a model folder records in ``xrerank.json`` (chosen when it was trained), or ``{}``."""
        try:
            path = Path(resolve_model(self.config.model)).expanduser() / "xrerank.json"
            recorded = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        except (OSError, ValueError, XRerankError):
            return {}
        return recorded if isinstance(recorded, dict) else {}

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        """Pickle as the recipe, not the loaded model.

        The recipe is the model name (or the ready ``Scorer``, which must pickle itself) and
        the options off their defaults. Unpickled in a process that already holds the model,
        it shares it; elsewhere it loads it. The score cache and the throughput record start
        empty.
        """
        model = self.config.model if self._from_name else self.scorer
        return (_unpickle_reranker, (model, _options_off_default(self.config)))

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
            ScoringError: The model produced NaN or infinite scores, or the backend failed
                (the backend's own exception is its ``__cause__``).
        """
        query = _check_query(query)
        docs = _check_texts(texts)
        if not docs:
            return []
        raw, _ = self._score_raw(query, docs)
        return self._normalized(raw)

    def _normalized(self, raw: list[float]) -> list[float]:
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
        budget_ms: float | None = None,
    ) -> Ranking:
        """Rank ``texts`` by relevance to ``query``, best first.

        Args:
            query: The question or search query.
            texts: The documents, as strings, in first-stage order (best first).
            top_n: Keep at most this many (``None``: all).
            score_threshold: Drop texts scoring below this (compared with the score
                the ranking uses, before the cut to ``top_n``).
            first_stage_scores: The first stage's scores (higher is better), used by
                ``fusion``; without them fusion uses the input order.
            budget_ms: A latency budget for this call, in milliseconds: the cross-encoder
                scores as many of the first texts as it predicts will fit (from the
                throughput it measured on earlier batches; the first call calibrates on a
                few texts), and the rest follow them in input order. The result's
                ``reranked`` says how many were scored. With a cascade, the cheaper scorer
                scores every text first and the full model then scores its best, best
                first, as many of ``cascade_top_k`` as fit in the time left. ``None``: score all.

        Returns:
            A :class:`Ranking` (a list of :class:`Ranked`), best first; equal scores keep
            input order.

        Raises:
            ConfigError: A bad ``top_n``, ``score_threshold`` or ``budget_ms``.
        """
        start = time.perf_counter()
        top_n = validate_top_n(top_n)
        threshold = validate_threshold(score_threshold)
        budget = validate_budget(budget_ms)
        first = _check_first_stage(first_stage_scores, len(texts) if isinstance(texts, Sequence) else -1)
        query = _check_query(query)
        docs = _check_texts(texts)
        if not docs:
            return Ranking([], 0)
        deadline = None if budget is None else start + budget / 1000.0
        if self._cascade is not None:
            scored, model, rest, rest_model = self._cascade_scores(query, docs, deadline)
        else:
            raw, k = self._score_raw(query, docs, deadline)
            scored, model = list(range(k)), self._normalized(raw)
            rest = list(range(k, len(docs)))
            rest_model = [self._normalized([-math.inf])[0]] * len(rest)
        if first is None and self.config.fusion != "none":
            # The input order is the first stage's: a cascade's `scored` is in its cheaper scorer's order.
            first = input_order_scores(len(docs))
        first_scored = None if first is None else [first[i] for i in scored]
        fused = fuse(model, first_scored, self.config.fusion, self.fusion_weight, self.config.rrf_k)
        order = sorted(range(len(scored)), key=lambda j: (-fused[j], scored[j]))
        ranked = [Ranked(scored[j], fused[j], docs[scored[j]], model[j]) for j in order]
        unscored = self._normalized([-math.inf])[0]
        ranked += [Ranked(i, unscored, docs[i], m, scored=False) for i, m in zip(rest, rest_model, strict=True)]
        if threshold is not None:
            ranked = [r for r in ranked if r.score >= threshold]
        return Ranking(ranked if top_n is None else ranked[:top_n], len(scored))

    def _cascade_scores(
        self, query: str, docs: list[str], deadline: float | None = None
    ) -> tuple[list[int], list[float], list[int], list[float]]:
        """Cheap scores for all, full scores for the cheap scorer's best k.

        With a ``deadline`` the cheap pass scores everything, then the full model scores the
        cheap scorer's best, best first, as many of the ``k`` as fit before it.

        Returns:
            The input positions the full model scored, their scores, the other positions in
            the cheaper scorer's order, and the cheaper scorer's scores for them.
        """
        cheap = self._cascade
        top_k = self.config.cascade_top_k
        if cheap is None or top_k is None:  # pragma: no cover - only called with a cascade
            msg = "no cascade configured"
            raise ConfigError(msg)
        cheap_raw, _ = cheap._score_raw(query, docs)
        cheap_scores = cheap._normalized(cheap_raw)
        best = sorted(range(len(docs)), key=lambda i: (-cheap_raw[i], i))
        top = best[:top_k]  # best first: under a deadline the most promising are scored first
        # The same scorer read the whole pair of a document that fit in the cheap pass's tokens:
        # its cheap score is already the full model's, so it is kept, not computed again.
        kept = [False] * len(top)
        if cheap.scorer is self.scorer:
            kept = self._read_whole(cheap, query, [docs[i] for i in top])
        kept_pos = [i for i, whole in zip(top, kept, strict=True) if whole]
        todo = [i for i in top if i not in set(kept_pos)]
        full_raw, k = self._score_raw(query, [docs[i] for i in todo], deadline)
        scored = kept_pos + todo[:k]
        raw = [cheap_raw[i] for i in kept_pos] + full_raw
        done = set(scored)
        rest = [i for i in best if i not in done]
        return scored, self._normalized(raw), rest, [cheap_scores[i] for i in rest]

    def _read_whole(self, cheap: Reranker, query: str, docs: list[str]) -> list[bool]:
        """Whether ``cheap`` (same scorer, fewer tokens) scored each document's whole pair, uncut."""
        offsets = self.scorer.token_offsets([query, *docs])
        if offsets is None:
            return [False] * len(docs)
        q_tokens = len(offsets[0])
        if q_tokens > min(self._query_cap, cheap._query_cap):
            return [False] * len(docs)
        room = cheap.max_length - self.scorer.num_special_tokens - q_tokens
        # The full model reads a document whole only up to its own window (see _windows: the
        # slack is left out unless the scorer cuts truncated pairs itself); a longer one it would
        # split or cut, so the cheap score of the whole pair is not its score.
        exact = self._cuts_truncated_pairs_exactly()
        full_room = self.max_length - self.scorer.num_special_tokens - q_tokens - (0 if exact else _WINDOW_SLACK)
        room = min(room, full_room)
        return [len(spans) <= room for spans in offsets[1:]]

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
            ScoringError: The model produced NaN or infinite scores, or the backend failed
                (the backend's own exception is its ``__cause__``).
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
        budget_ms: float | None = None,
    ) -> Ranking:
        """Like :meth:`rerank`, in a worker thread so the event loop keeps running."""
        return await asyncio.to_thread(self.rerank, query, texts, top_n, score_threshold, first_stage_scores, budget_ms)

    def count_tokens(self, query: str, texts: Sequence[str]) -> int | None:
        """Tokens the model reads for one call with these inputs, padding aside, before any cache.

        Counts what :meth:`score` feeds the model: the query cut to ``max_query_tokens``, each
        distinct text split into windows (MaxP) or cut (``truncate``), and the special tokens of
        every pair. ``None`` when the tokenizer cannot report offsets (no fast tokenizer).

        Raises:
            InputError: An empty query; :class:`InputTypeError` for a non-string.
        """
        query = _check_query(query)
        docs = _check_texts(texts)
        if self.scorer.token_offsets([query]) is None:
            return None
        _, query_tokens = self._prepare_query(query)
        _, lengths, _ = self._windows(query_tokens, list(dict.fromkeys(docs)))
        return sum(lengths) + len(lengths) * (query_tokens + self.scorer.num_special_tokens)

    # -- internals ----------------------------------------------------------------

    def _query_tokens_cap(self) -> int:
        """The most query tokens a pair keeps: ``max_query_tokens`` (default half of ``max_length``).

        An explicit value is honoured up to what leaves the document a window of
        ``_MIN_WINDOW`` tokens (plus the slack) in ``max_length``; beyond that it is capped,
        with a warning.
        """
        wanted = self.config.max_query_tokens
        room = self.max_length - self.scorer.num_special_tokens - _WINDOW_SLACK - _MIN_WINDOW
        room = max(room, 1)
        if wanted is None:
            # Half of max_length, less where a very short max_length would leave no whole window.
            return min(self.max_length // 2, room)
        if wanted > room:
            logger.warning(
                "max_query_tokens=%d leaves no room for the document in pairs of max_length=%d tokens; using %d",
                wanted,
                self.max_length,
                room,
            )
            return room
        return wanted

    def _prepare_query(self, query: str) -> tuple[str, int]:
        offsets = self.scorer.token_offsets([query])
        if offsets is None:
            return query, 0
        spans = offsets[0]
        limit = self._query_cap
        if len(spans) > limit:
            logger.warning("the query has %d tokens; only its first %d are used (max_query_tokens)", len(spans), limit)
            return query[: spans[limit - 1][1]], limit
        return query, len(spans)

    def _cuts_truncated_pairs_exactly(self) -> bool:
        """Truncating, with a scorer that cuts pairs itself: a document is cut at the exact token, no slack."""
        return self.long_documents == "truncate" and bool(getattr(self.scorer, "truncates_pairs", False))

    def _windows(self, query_tokens: int, docs: list[str]) -> tuple[list[str], list[int], list[list[int]]]:
        """Unique windows to score, their token counts, and each document's window ids."""
        all_offsets = self.scorer.token_offsets(docs)
        budget = self.max_length - self.scorer.num_special_tokens - query_tokens - _WINDOW_SLACK
        budget = max(budget, _MIN_WINDOW)
        window_ids: dict[str, int] = {}
        windows: list[str] = []
        lengths: list[int] = []
        per_doc: list[list[int]] = []
        truncate = self.long_documents == "truncate"
        # Truncating, a scorer that cuts pairs itself gets a few tokens more than fit and cuts at
        # the exact token (as CrossEncoder.predict does); the slack would otherwise drop them.
        # It cuts at its own max_length, though, and longest_first would cut a query longer than
        # half the pair (max_query_tokens above that): then the engine cuts at the exact token.
        exact = self._cuts_truncated_pairs_exactly()
        fits = max(self.max_length - self.scorer.num_special_tokens - query_tokens, 1)
        scorer_cuts = exact and self.max_length == self.scorer.max_length and query_tokens <= self.max_length // 2
        cut = budget + 2 * _WINDOW_SLACK if scorer_cuts else fits if exact else budget
        n_split = 0
        for d, doc in enumerate(docs):
            if all_offsets is None:
                pieces = [(doc, len(doc) // 4)]
            else:
                pieces = split_windows(doc, all_offsets[d], cut, self.config.window_overlap, truncate=truncate)
                if exact:
                    pieces = [(text, min(n, fits)) for text, n in pieces]
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

    def _batches(
        self, order: list[int], lengths: list[int], query_tokens: int, cap: int | None = None
    ) -> Iterator[list[int]]:
        """Group window ids (sorted longest first) by ``batch_size`` and ``max_batch_tokens`` (and ``cap``)."""
        size, budget = self.config.batch_size, self.config.max_batch_tokens
        if size is None:
            preferred_size = getattr(self.scorer, "preferred_batch_size", None)
            size = preferred_size if isinstance(preferred_size, int) and preferred_size > 0 else DEFAULT_BATCH_SIZE
        if budget is None:
            preferred = getattr(self.scorer, "preferred_batch_tokens", None)
            budget = preferred if isinstance(preferred, int) and preferred > 0 else None
        if cap is not None:
            budget = cap if budget is None else min(budget, cap)
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

    def _plan(self, items: Sequence[tuple[str, list[str]]]) -> tuple[_Pairs, list[tuple[list[int], list[list[int]]]]]:
        """The unique (query, window) pairs of several requests, and each request's documents' pair ids.

        Each plan is (the unique-document id of each document, each unique document's pair ids);
        pairs already in the score cache come with their scores.
        """
        texts: list[tuple[str, str]] = []
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
                    pid = pair_ids[(prepared, text)] = len(texts)
                    texts.append((prepared, text))
                    lengths.append(n_tokens + query_tokens)
                ids.append(pid)
            plans.append((doc_ids, [[ids[w] for w in wids] for wids in per_doc]))
        scores: list[float | None] = [None] * len(texts)
        keys: list[bytes] | None = None
        if self._cache is not None:
            keys = [self._cache.key(q, t) for q, t in texts]
            scores = self._cache.get_many(keys)
        return _Pairs(texts, lengths, scores, keys), plans

    def _score_raw(self, query: str, docs: list[str], deadline: float | None = None) -> tuple[list[float], int]:
        """Raw logits of the first ``k`` documents, and ``k``: all of them, or what fits before ``deadline``.

        Dedupe, window, look up the cache, sort by length, batch, score, take each document's best window.
        """
        pairs, plans = self._plan([(query, docs)])
        doc_ids, per_doc = plans[0]
        if deadline is None:
            k = len(docs)
            self._score_windows(pairs, [p for p, s in enumerate(pairs.scores) if s is None])
        else:
            k = self._score_within(pairs, [per_doc[u] for u in doc_ids], deadline)
        return [_best(pairs.scores, per_doc[u]) for u in doc_ids[:k]], k

    def _score_raw_many(self, items: Sequence[tuple[str, list[str]]]) -> list[list[float]]:
        """Raw logits for several (query, documents) at once; their pairs share length-sorted batches."""
        pairs, plans = self._plan(items)
        self._score_windows(pairs, [p for p, s in enumerate(pairs.scores) if s is None])
        out = []
        for doc_ids, per_doc in plans:
            per_unique = [_best(pairs.scores, ids) for ids in per_doc]
            out.append([per_unique[u] for u in doc_ids])
        return out

    def _score_within(self, pairs: _Pairs, doc_pairs: list[list[int]], deadline: float) -> int:
        """Score the first documents whose predicted cost fits before ``deadline``; return how many."""
        specials = self.scorer.num_special_tokens
        n, k = len(doc_pairs), 0
        if self._throughput.seconds_per_token is None:
            # Nothing measured yet: the first few documents calibrate.
            k = min(n, _CALIBRATION_DOCS)
            todo = {p for ids in doc_pairs[:k] for p in ids if pairs.scores[p] is None}
            self._score_windows(pairs, sorted(todo))
        rate = self._throughput.cautious_seconds_per_token or 0.0
        allowed = (deadline - time.perf_counter()) * _BUDGET_SAFETY
        counted: set[int] = set()
        predicted = 0.0
        while k < n:
            new = [p for p in doc_pairs[k] if pairs.scores[p] is None and p not in counted]
            cost = sum(pairs.lengths[p] + specials for p in new) * rate * _PADDING_ALLOWANCE
            # A document whose every pair is scored already (cache, or a window it shares) costs
            # nothing and is kept even when planning has used up the budget.
            if new and predicted + cost > allowed:
                break
            predicted += cost
            counted.update(new)
            k += 1
        self._score_windows(pairs, sorted(counted), deadline)
        # A batch the deadline stopped leaves pairs unscored: keep the prefix that is complete.
        done = 0
        while done < k and all(pairs.scores[p] is not None for p in doc_pairs[done]):
            done += 1
        return done

    def _scoring_error(self, exc: Exception, n_pairs: int) -> ScoringError:
        """A backend's own exception (torch, onnxruntime, a user's Scorer) as a :class:`ScoringError`."""
        hint = ""
        if "out of memory" in str(exc).lower():
            hint = "; lower batch_size or max_batch_tokens, or max_length"
        msg = (
            f"the {type(self.scorer).__name__} backend failed on a batch of {n_pairs} pairs "
            f"({type(exc).__name__}: {exc}){hint}"
        )
        return ScoringError(msg)

    def _score_windows(self, pairs: _Pairs, todo: list[int], deadline: float | None = None) -> None:
        """Score the pairs ``todo`` (longest first, in batches), timing each batch; fill ``pairs.scores``.

        With a ``deadline``, a batch predicted to end after it is not started (nor any after it).
        """
        if not todo:
            return
        lengths, specials = pairs.lengths, self.scorer.num_special_tokens
        order = sorted(todo, key=lambda p: -lengths[p])
        # Under a deadline, small batches let the check below stop close to it.
        cap = None if deadline is None else _BUDGET_BATCH_TOKENS
        batches = list(self._batches(order, lengths, 0, cap))
        # One batch at a time; a scorer that runs several at once gets them all together, or in
        # rounds of its `workers` under a deadline (a round predicted to end after it is not started).
        workers = self._workers()
        step = 1 if workers == 1 else workers if deadline is not None else len(batches)
        bar = self._progress_bar(len(todo), len(batches))
        try:
            for start in range(0, len(batches), step):
                group = batches[start : start + step]
                padded = sum(len(b) * (lengths[b[0]] + specials) for b in group)
                started = time.perf_counter()
                rate = self._throughput.cautious_seconds_per_token or 0.0
                if deadline is not None and started + padded * rate > deadline:
                    logger.debug(
                        "budget_ms: %d pairs left unscored; the measured throughput fell", sum(len(b) for b in group)
                    )
                    break
                texts = [[pairs.texts[p] for p in batch] for batch in group]
                for batch, scores in zip(group, self._run_batches(texts, workers), strict=True):
                    self._store(pairs, batch, scores)
                    if bar is not None:
                        bar.update(len(batch))
                # Side by side, batches overlap: the deadline needs wall time per padded token of the round.
                self._throughput.record(time.perf_counter() - started, padded)
        finally:
            if bar is not None:
                bar.close()

    def _workers(self) -> int:
        """How many batches the scorer runs at once (``workers`` with a ``score_batches`` method), else 1."""
        workers = getattr(self.scorer, "workers", 1)
        if not isinstance(workers, int) or workers < 2 or not callable(getattr(self.scorer, "score_batches", None)):
            return 1
        return workers

    def _run_batches(self, texts: list[list[tuple[str, str]]], workers: int) -> Iterator[list[float]]:
        """Each batch's scores, in order: ``score_pairs`` one by one, or the scorer's ``score_batches``."""
        results = self.scorer.score_batches(texts) if workers > 1 else None  # type: ignore[attr-defined]
        for batch in texts:
            try:
                scores: list[float] = self.scorer.score_pairs(batch) if results is None else next(results)
            except XRerankError:
                raise
            except Exception as exc:
                raise self._scoring_error(exc, len(batch)) from exc
            yield scores

    def _store(self, pairs: _Pairs, batch: list[int], scores: list[float]) -> None:
        """Check one batch's scores and keep them (and in the cache)."""
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
            pairs.scores[p] = float(s)
        if self._cache is not None and pairs.keys is not None:
            self._cache.put_many([(pairs.keys[p], float(s)) for p, s in zip(batch, scores, strict=True)])

    def _progress_bar(self, n_pairs: int, n_batches: int | None = None) -> Any:
        """A tqdm bar when ``show_progress`` asks for one (``None``: over 50 batches on a terminal)."""
        show = self.config.show_progress
        if show is None:
            show = (n_batches or 0) > 50 and sys.stderr.isatty()
        if not show:
            return None
        from tqdm.auto import tqdm

        return tqdm(total=n_pairs, desc="reranking", unit="pair")


@dataclass
class _Pairs:
    """The unique (query, window) pairs of one job: texts, tokens (query included), scores so far, cache keys."""

    texts: list[tuple[str, str]]
    lengths: list[int]
    scores: list[float | None]
    keys: list[bytes] | None


def _best(scores: list[float | None], ids: list[int]) -> float:
    """A document's score: its best window's."""
    return max(s for s in (scores[p] for p in ids) if s is not None)


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


def _unpickle_reranker(model: str | Scorer, options: dict[str, Any]) -> Reranker:
    return Reranker(model, **options)


def dump_with_recipe(data: dict[str, Any], reranker: Reranker | None, owner: str) -> dict[str, Any]:
    """An adapter's dump with its given ``reranker`` written as the ``model`` and ``reranker_options`` that rebuild it.

    ``data`` is the adapter's own dump (pydantic's); with a ``reranker=`` the adapter would
    otherwise write ``model: None``, which loads back as the default model. The options are the
    reranker's config less its defaults; loading the dump shares the loaded model.

    Raises:
        ConfigError: ``reranker`` scores with a ready-made ``Scorer``, which no model name rebuilds
            (``owner`` names the component in the message).
    """
    if reranker is None:
        return data
    if not reranker._from_name:
        msg = (
            f"cannot serialise this {owner}: its reranker scores with a ready-made {type(reranker.scorer).__name__}, "
            "which no model name rebuilds; build it with model=... (and reranker_options=...), or give it a "
            "Reranker built from a model name"
        )
        raise ConfigError(msg)
    if "model" in data:
        data["model"] = reranker.config.model
    if "reranker_options" in data:
        data["reranker_options"] = _options_off_default(reranker.config)
    return data


def _options_off_default(config: RerankerConfig) -> dict[str, Any]:
    """The fields of ``config`` other than ``model`` that differ from their defaults."""
    return {
        f.name: getattr(config, f.name)
        for f in dataclass_fields(config)
        if f.name != "model" and getattr(config, f.name) != f.default
    }
