"""xrerank_core: the cross-encoder reranking engine behind the LangChain and LlamaIndex adapters.

>>> from xrerank_core import Reranker
>>> rr = Reranker("cross-encoder/ms-marco-MiniLM-L-6-v2")  # doctest: +SKIP
>>> rr.rerank("query", ["doc one", "doc two"], top_n=1)  # doctest: +SKIP
"""

from __future__ import annotations

from xrerank_core._backends import Scorer
from xrerank_core._backends._http import HttpScorer
from xrerank_core._config import DEFAULT_MODEL, RerankerConfig
from xrerank_core._engine import Ranked, Ranking, Reranker
from xrerank_core._exceptions import (
    ConfigError,
    HTTPBackendError,
    InputError,
    InputTypeError,
    MissingDependencyError,
    ModelLoadError,
    ModelNotFoundError,
    NotACrossEncoderError,
    RemoteCodeRequiredError,
    ScoringError,
    XRerankError,
)
from xrerank_core._models import bundled_models
from xrerank_core._version import __version__

__all__ = [
    "DEFAULT_MODEL",
    "ConfigError",
    "HTTPBackendError",
    "HttpScorer",
    "InputError",
    "InputTypeError",
    "MissingDependencyError",
    "ModelLoadError",
    "ModelNotFoundError",
    "NotACrossEncoderError",
    "Ranked",
    "Ranking",
    "RemoteCodeRequiredError",
    "Reranker",
    "RerankerConfig",
    "Scorer",
    "ScoringError",
    "XRerankError",
    "__version__",
    "bundled_models",
]
