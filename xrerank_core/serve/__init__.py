"""The rerank HTTP service: ``xrerank serve`` and its Ray Serve deployment.

Needs the ``serve`` extra (FastAPI, uvicorn, prometheus-client); the Ray Serve
deployment also needs the ``ray`` extra. Nothing here is imported by
``import xrerank_core``.

Endpoints (see :func:`create_app`):

- ``POST /v1/rerank``: Cohere / Jina compatible (``query``, ``documents``, ``top_n``,
  ``return_documents``) -> ``{"results": [{"index", "relevance_score", "document"?}]}``.
- ``POST /rerank``: text-embeddings-inference (TEI) compatible (``query``, ``texts``,
  ``raw_scores``, ``return_text``) -> ``[{"index", "score", "text"?}]``.
- ``GET /health``, ``GET /metrics`` (Prometheus), ``GET /openapi.json``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from xrerank_core._exceptions import missing_dependency
from xrerank_core.serve._settings import ServerSettings

if TYPE_CHECKING:
    from fastapi import FastAPI

    from xrerank_core._engine import Reranker
    from xrerank_core.serve._app import BatchScorer

__all__ = ["ServerSettings", "create_app", "ray_deployment", "run_server"]


def create_app(
    reranker: Reranker, settings: ServerSettings | None = None, *, batch_scorer: BatchScorer | None = None
) -> FastAPI:
    """Build the FastAPI application that serves ``reranker``.

    Args:
        reranker: The loaded reranker (its ``normalize`` must be ``"none"``: the API
            chooses raw or sigmoid scores per request).
        settings: Limits, API key and the model name to report.
        batch_scorer: An async function scoring one request's documents, used instead of
            the built-in worker threads (the Ray Serve deployment passes its batched one).

    Raises:
        MissingDependencyError: FastAPI or prometheus-client is not installed.
    """
    try:
        from xrerank_core.serve._app import build_app
    except ImportError as exc:
        raise missing_dependency(exc.name or "fastapi", "serve", exc) from exc
    return build_app(reranker, settings or ServerSettings(), batch_scorer=batch_scorer)


def run_server(reranker: Reranker, settings: ServerSettings, *, host: str, port: int, log_level: str = "info") -> None:
    """Serve ``reranker`` with uvicorn until interrupted."""
    app = create_app(reranker, settings)
    try:
        import uvicorn

        from xrerank_core.serve._protocol import http_protocol
    except ImportError as exc:
        package = "uvicorn"
        raise missing_dependency(package, "serve", exc) from exc
    uvicorn.run(app, host=host, port=port, log_level=log_level, http=http_protocol(settings.read_timeout_s))


def ray_deployment(*args: Any, **kwargs: Any) -> Any:
    """Build the Ray Serve application; see :func:`xrerank_core.serve._ray.ray_deployment`."""
    try:
        from xrerank_core.serve._ray import ray_deployment as build
    except ImportError as exc:
        raise missing_dependency(exc.name or "ray", "ray", exc) from exc
    return build(*args, **kwargs)
