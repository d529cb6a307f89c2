"""The rerank service on Ray Serve: replicas, autoscaling and dynamic request batching.

Each replica loads the model once and serves the same HTTP API as ``xrerank serve``
(:func:`xrerank_core.serve.create_app`); requests that reach a replica together are scored
as one job (:meth:`~xrerank_core.Reranker.score_many`, through ``@serve.batch``); if one of them
breaks the job (NaN scores, a backend error), they are scored one by one so that only it fails,
as in ``xrerank serve``. Ray's proxy spreads requests over the replicas and, on a multi-node
cluster, over the machines.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from ray import serve
from ray.serve import Application

from xrerank_core._engine import Reranker
from xrerank_core.serve._app import score_each
from xrerank_core.serve._settings import ServerSettings

__all__ = ["XRerankReplica", "ray_deployment"]


@serve.ingress()
class XRerankReplica:
    """One replica: a loaded reranker behind the xrerank HTTP API."""

    def __init__(
        self,
        model: str,
        reranker_options: Mapping[str, Any],
        settings: ServerSettings,
        max_batch_size: int,
        batch_wait_timeout_s: float,
    ) -> None:
        """Load the model (once per replica) and set the batching window."""
        self.reranker = Reranker(model, **dict(reranker_options))
        self.settings = settings
        batcher: Any = self._score_batch  # @serve.batch adds these setters
        batcher.set_max_batch_size(max_batch_size)
        batcher.set_batch_wait_timeout_s(batch_wait_timeout_s)

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.005)
    async def _score_batch(self, requests: list[tuple[str, list[str]]]) -> list[list[float] | BaseException]:
        # One worker thread scores every request that arrived in this window; a request that fails
        # gets its own exception, in its place, and the others their scores.
        return await asyncio.to_thread(score_each, self.reranker, requests)

    async def _score(self, query: str, texts: list[str]) -> list[float]:
        result: list[float] | BaseException = await self._score_batch((query, texts))
        if isinstance(result, BaseException):  # @serve.batch hands each caller its item as it is: raise it here
            raise result
        return result

    def __serve_build_asgi_app__(self) -> Any:
        """The HTTP API, built once the replica's reranker is loaded."""
        from xrerank_core.serve import create_app

        return create_app(self.reranker, self.settings, batch_scorer=self._score)


def ray_deployment(
    model: str,
    *,
    reranker_options: Mapping[str, Any] | None = None,
    settings: ServerSettings | None = None,
    num_replicas: int | None = 1,
    autoscaling_config: Mapping[str, Any] | None = None,
    max_batch_size: int = 16,
    batch_wait_timeout_s: float = 0.005,
    max_ongoing_requests: int = 32,
    ray_actor_options: Mapping[str, Any] | None = None,
    name: str = "xrerank",
) -> Application:
    """The Ray Serve application serving ``model``; run it with ``serve.run(app, route_prefix="/")``.

    Args:
        model: What :class:`~xrerank_core.Reranker` loads (hub id, folder, bundled name);
            every node that hosts a replica must be able to load it.
        reranker_options: Options for each replica's ``Reranker`` (``device``, ``batch_size``,
            ``max_length``, ...); ``normalize`` must stay ``"none"``.
        settings: The HTTP API's limits and key (as ``xrerank serve``).
        num_replicas: Fixed number of replicas; ``None`` when ``autoscaling_config`` is given.
        autoscaling_config: Ray Serve autoscaling, e.g. ``{"min_replicas": 1, "max_replicas": 8,
            "target_ongoing_requests": 4}``.
        max_batch_size: Most requests a replica scores as one job.
        batch_wait_timeout_s: How long a replica waits for more requests to fill a batch.
        max_ongoing_requests: Requests one replica accepts at once (the rest queue at the proxy).
        ray_actor_options: Resources per replica, e.g. ``{"num_cpus": 2}`` or ``{"num_gpus": 1}``.
        name: The deployment's name.

    Returns:
        The bound application.
    """
    options: dict[str, Any] = {
        "name": name,
        "max_ongoing_requests": max_ongoing_requests,
        "ray_actor_options": dict(ray_actor_options or {"num_cpus": 1}),
    }
    if autoscaling_config is not None:
        options["autoscaling_config"] = dict(autoscaling_config)
    else:
        options["num_replicas"] = num_replicas
    deployment = serve.deployment(**options)(XRerankReplica)
    app: Application = deployment.bind(
        model,
        dict(reranker_options or {}),
        settings or ServerSettings(model_name=model),
        max_batch_size,
        batch_wait_timeout_s,
    )
    return app
