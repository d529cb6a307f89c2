"""The engine's configuration: one frozen dataclass, validated when it is built."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Literal

from xrerank_core._exceptions import ConfigError
from xrerank_core._fusion import Fusion

__all__ = ["DEFAULT_MODEL", "LongDocuments", "Normalize", "RerankerConfig"]

DEFAULT_MODEL = "cross-encoder/ms-marco-MiniLM-L-6-v2"
"""The model a :class:`~xrerank_core.Reranker` loads when none is named."""

Normalize = Literal["none", "sigmoid"]
LongDocuments = Literal["auto", "maxp", "truncate"]

_BACKENDS = ("auto", "torch", "onnx", "onnx-int8", "http")
_DTYPES = ("auto", "float32", "float16", "bfloat16")
_DEVICES_PREFIXES = ("auto", "cpu", "cuda", "mps")


def _positive_int(name: str, value: object, *, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        msg = f"{name} must be a positive integer, got {value!r}"
        raise ConfigError(msg)


@dataclass(frozen=True)
class RerankerConfig:
    """How a :class:`~xrerank_core.Reranker` loads its model and scores documents.

    Attributes:
        model: A Hugging Face hub id, a local folder, or the short name of a model
            that ships with xrerank.
        backend: ``"torch"`` (sentence-transformers), ``"onnx"`` (onnxruntime, float32: the
            same scores as torch), ``"onnx-int8"`` (onnxruntime, int8 weights: fastest on CPU,
            scores move slightly), ``"http"`` (``model`` is the URL of a rerank server; see
            :class:`~xrerank_core.HttpScorer`) or ``"auto"``: ``"http"`` when ``model`` is an
            ``http://`` or ``https://`` URL, else ``"onnx"`` on CPU when onnxruntime and onnx are
            installed, else ``"torch"`` (never int8, which changes scores).
        device: ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"`` or ``"auto"``.
        dtype: Weights' precision: ``"auto"`` (float32 on CPU and MPS, float16 on CUDA),
            ``"float32"``, ``"float16"`` or ``"bfloat16"``. On a CPU with AMX, ``"bfloat16"``
            with ``backend="torch"`` is the fastest CPU path (scores move slightly); on a CPU
            without it, bfloat16 is emulated and slower than float32.
        max_length: Tokens per (query, document) pair. ``None`` uses the model's own
            limit (at most 512); a larger value is capped at the model's limit.
        batch_size: Most pairs per forward pass. ``None`` (the default): the backend's
            choice, 32 on CPU and 128 with torch on CUDA, where larger batches fill the device;
            1 with ``"onnx-int8"``, whose dynamic quantisation would otherwise make a pair's
            score depend on the pairs batched with it.
        max_batch_tokens: Optional cap on the tokens in one forward pass, so memory stays
            flat whatever the document lengths; ``None`` caps by ``batch_size`` only.
        normalize: ``"none"`` returns the model's raw logit; ``"sigmoid"`` maps it to (0, 1).
        long_documents: ``"maxp"`` splits a document longer than ``max_length`` into
            overlapping windows and keeps the best window's score; ``"truncate"`` scores
            only its beginning; ``"auto"`` uses what the model records in its
            ``xrerank.json`` (how it was trained and selected), else ``"maxp"``.
        window_overlap: Tokens shared by consecutive windows (``"maxp"``).
        max_query_tokens: Longest query, in tokens; a longer query is cut (with a logged
            warning). ``None`` allows half of ``max_length``. A larger value is honoured up to
            what leaves the document 12 tokens of the pair (``max_length`` less the special
            tokens and 12); beyond that it is capped there, with a warning when the
            :class:`~xrerank_core.Reranker` is built.
        trust_remote_code: Allow models that ship their own Python code (e.g. Jina).
        allow_pickle: Allow pickle weight files (``pytorch_model.bin``); by default only
            safetensors load, because unpickling runs arbitrary code.
        show_progress: Progress bar on long jobs; ``None`` shows it only on a terminal.
        fusion: Combine the cross-encoder's score with the first stage's: ``"none"``,
            ``"zscore"`` (per-query standardised scores) or ``"rrf"`` (reciprocal ranks).
            See :mod:`xrerank_core._fusion`.
        fusion_weight: The cross-encoder's share in the fusion, in [0, 1]. ``None`` uses
            the weight recorded with the model (``xrerank.json``, chosen on a dev split),
            else 0.5.
        rrf_k: The constant of reciprocal-rank fusion.
        cache_size: Keep the scores of this many (query, text) pairs in a least-recently-used
            cache, so a repeated query costs almost nothing; ``0`` (the default) turns it off.
        cascade_top_k: Turn the cascade on: a cheaper scorer (``cascade_backend`` /
            ``cascade_model``) scores every candidate, then this model rescores the cheaper
            scorer's best ``cascade_top_k``. ``None`` (the default): no cascade.
        cascade_backend: The cheaper scorer's backend (default ``"onnx-int8"``).
        cascade_model: The cheaper scorer's model (e.g. one with fewer layers); ``None``
            uses this model.
        cascade_max_length: Tokens the cheaper scorer reads of each (query, document)
            pair: the first window only, cut there (no MaxP), so its pass costs about this
            share of a full one. ``None`` (the default): the same windows as this model.
        workers: ONNX backends on CPU: batches scored side by side, one thread each, by one
            shared onnxruntime session (one copy of the weights). ``None`` (the default): one
            per physical core. With several
            processes on one machine (gunicorn workers, Ray replicas), give each
            ``cores // processes`` so they do not oversubscribe the cores. Other backends
            ignore it (naming ``backend="torch"`` or ``"http"`` with it is an error).
    """

    model: str = DEFAULT_MODEL
    backend: str = "auto"
    device: str = "auto"
    dtype: str = "auto"
    max_length: int | None = None
    batch_size: int | None = None
    max_batch_tokens: int | None = None
    normalize: Normalize = "none"
    long_documents: LongDocuments = "auto"
    window_overlap: int = 64
    max_query_tokens: int | None = None
    trust_remote_code: bool = False
    allow_pickle: bool = False
    show_progress: bool | None = None
    fusion: Fusion = "none"
    fusion_weight: float | None = None
    rrf_k: int = 60
    cache_size: int = 0
    cascade_top_k: int | None = None
    cascade_backend: str = "onnx-int8"
    cascade_model: str | None = None
    cascade_max_length: int | None = None
    workers: int | None = None

    def __post_init__(self) -> None:
        """Validate every field; raise :class:`ConfigError` naming the bad one."""
        if not isinstance(self.model, str) or not self.model.strip():
            msg = f"model must be a hub id, a folder or a short name, got {self.model!r}"
            raise ConfigError(msg)
        if self.backend not in _BACKENDS:
            msg = f"backend must be one of {', '.join(_BACKENDS)}; got {self.backend!r}"
            raise ConfigError(msg)
        if not isinstance(self.device, str) or not self.device.startswith(_DEVICES_PREFIXES):
            msg = f"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'; got {self.device!r}"
            raise ConfigError(msg)
        if self.dtype not in _DTYPES:
            msg = f"dtype must be one of {', '.join(_DTYPES)}; got {self.dtype!r}"
            raise ConfigError(msg)
        _positive_int("batch_size", self.batch_size, allow_none=True)
        _positive_int("max_length", self.max_length, allow_none=True)
        _positive_int("max_batch_tokens", self.max_batch_tokens, allow_none=True)
        _positive_int("max_query_tokens", self.max_query_tokens, allow_none=True)
        if isinstance(self.window_overlap, bool) or not isinstance(self.window_overlap, int) or self.window_overlap < 0:
            msg = f"window_overlap must be an integer >= 0, got {self.window_overlap!r}"
            raise ConfigError(msg)
        if self.normalize not in ("none", "sigmoid"):
            msg = f"normalize must be 'none' or 'sigmoid', got {self.normalize!r}"
            raise ConfigError(msg)
        if self.long_documents not in ("auto", "maxp", "truncate"):
            msg = f"long_documents must be 'auto', 'maxp' or 'truncate', got {self.long_documents!r}"
            raise ConfigError(msg)
        if self.fusion not in ("none", "zscore", "rrf"):
            msg = f"fusion must be 'none', 'zscore' or 'rrf', got {self.fusion!r}"
            raise ConfigError(msg)
        if self.fusion_weight is not None and (
            isinstance(self.fusion_weight, bool)
            or not isinstance(self.fusion_weight, numbers.Real)
            or not 0.0 <= float(self.fusion_weight) <= 1.0
        ):
            msg = f"fusion_weight must be None or a number in [0, 1], got {self.fusion_weight!r}"
            raise ConfigError(msg)
        if self.fusion_weight is not None:  # a plain float (NumPy's too), so the config stays JSON-serialisable
            object.__setattr__(self, "fusion_weight", float(self.fusion_weight))
        _positive_int("rrf_k", self.rrf_k)
        if isinstance(self.cache_size, bool) or not isinstance(self.cache_size, int) or self.cache_size < 0:
            msg = f"cache_size must be an integer >= 0 (0 turns the cache off), got {self.cache_size!r}"
            raise ConfigError(msg)
        _positive_int("cascade_top_k", self.cascade_top_k, allow_none=True)
        _positive_int("workers", self.workers, allow_none=True)
        onnx_cascade = self.cascade_top_k is not None and self.cascade_backend.startswith("onnx")
        if self.workers is not None and self.backend in ("torch", "http") and not onnx_cascade:
            msg = (
                f"workers sets how many onnxruntime sessions run side by side; backend={self.backend!r} has none. "
                "Use backend='onnx' or 'onnx-int8', or leave workers unset (torch: threads via torch.set_num_threads)"
            )
            raise ConfigError(msg)
        if self.cascade_backend not in _BACKENDS:
            msg = f"cascade_backend must be one of {', '.join(_BACKENDS)}; got {self.cascade_backend!r}"
            raise ConfigError(msg)
        cascade_model = self.cascade_model
        if cascade_model is not None and (not isinstance(cascade_model, str) or not cascade_model.strip()):
            msg = f"cascade_model must be None or a hub id, folder or short name, got {self.cascade_model!r}"
            raise ConfigError(msg)
        _positive_int("cascade_max_length", self.cascade_max_length, allow_none=True)
        for name in ("max_length", "cascade_max_length"):
            value = getattr(self, name)
            if value is not None and value < 16:
                msg = f"{name} must be at least 16 tokens, got {value}"
                raise ConfigError(msg)


def validate_top_n(top_n: object) -> int | None:
    """Check ``top_n`` (``None`` or an integer >= 1) and return it."""
    if top_n is None:
        return None
    # numbers.Integral: NumPy integers (from a config or a sweep) are integers too.
    if isinstance(top_n, bool) or not isinstance(top_n, numbers.Integral):
        msg = f"top_n must be None or an integer >= 1, got {top_n!r}"
        raise ConfigError(msg)
    top_n = int(top_n)
    if top_n < 1:
        msg = f"top_n must be >= 1 (or None to keep every document), got {top_n}"
        raise ConfigError(msg)
    return top_n


def validate_budget(budget_ms: object) -> float | None:
    """Check ``budget_ms`` (``None`` or a positive finite number of milliseconds) and return it."""
    if budget_ms is None:
        return None
    # numbers.Real: NumPy numbers (from a config or a sweep) are numbers too.
    if (
        isinstance(budget_ms, bool)
        or not isinstance(budget_ms, numbers.Real)
        or not math.isfinite(float(budget_ms))
        or budget_ms <= 0
    ):
        msg = f"budget_ms must be None or a positive number of milliseconds, got {budget_ms!r}"
        raise ConfigError(msg)
    return float(budget_ms)


def validate_threshold(threshold: object) -> float | None:
    """Check ``score_threshold`` (``None`` or a finite number) and return it as a float."""
    if threshold is None:
        return None
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real) or not math.isfinite(threshold):
        msg = f"score_threshold must be None or a finite number, got {threshold!r}"
        raise ConfigError(msg)
    return float(threshold)
