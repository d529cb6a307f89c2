"""The http backend: a remote reranking server scores the pairs.

Two wire protocols are spoken:

- ``"cohere"``: ``POST /v1/rerank`` with ``{"query", "documents", "top_n"}`` answered by
  ``{"results": [{"index", "relevance_score"}]}``: xrerank's own server, Cohere, Jina, Infinity
  and other Cohere-compatible services. xrerank's server and Infinity also accept
  ``"raw_scores": true`` and then answer raw logits; other services answer probabilities,
  which are turned back into logits (``log(p / (1 - p))``) so the engine's ``normalize``
  works the same for every backend (``raw_scores`` below).
- ``"tei"``: ``POST /rerank`` with ``{"query", "texts", "raw_scores": true}`` answered by
  ``[{"index", "score"}]``: Hugging Face text-embeddings-inference and xrerank's server.

The server handles long documents itself (the scorer cannot tokenize, so the engine sends
each document whole): xrerank's server splits them into windows (MaxP); a TEI server is asked
to truncate them (``"truncate": true``; without it, TEI answers 413 for a pair over its limit
unless it was started with ``--auto-truncate``), so it scores each document's beginning only.
"""

from __future__ import annotations

import datetime
import email.utils
import logging
import math
import os
import random
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit, urlunsplit

from xrerank_core._exceptions import ConfigError, HTTPBackendError, missing_dependency

if TYPE_CHECKING:
    import httpx

__all__ = ["API_KEY_ENV", "HttpScorer", "Protocol"]

logger = logging.getLogger(__name__)

Protocol = Literal["auto", "cohere", "tei"]

API_KEY_ENV = "XRERANK_API_KEY"
"""Environment variable read for the API key when none is passed."""

_PATHS = {"cohere": "/v1/rerank", "tei": "/rerank"}
# Answers worth another try (reranking is idempotent): overloaded (429, 503), a gateway or
# replica that went away (502; 500 is what Ray Serve's proxy answers when a replica dies mid-request).
_RETRY_STATUS = frozenset({429, 500, 502, 503})
# A probability this close to 0 or 1 becomes a finite logit (about +-36.7).
_P_EPS = 1e-16


def _logit(p: float) -> float:
    p = min(max(p, _P_EPS), 1.0 - _P_EPS)
    return math.log(p) - math.log1p(-p)


def _split_url(url: str, protocol: Protocol) -> tuple[str, Literal["cohere", "tei"]]:
    """The endpoint to post to and its protocol, from a server URL or a full endpoint URL."""
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        msg = f"the http backend needs a URL starting with http:// or https://, got {url!r}"
        raise ConfigError(msg)
    if protocol not in ("auto", "cohere", "tei"):
        msg = f"protocol must be 'auto', 'cohere' or 'tei', got {protocol!r}"
        raise ConfigError(msg)
    parts = urlsplit(url)
    if not parts.hostname:
        msg = f"no host in {url!r}; pass e.g. http://localhost:8000"
        raise ConfigError(msg)
    path = parts.path.rstrip("/")
    if path.endswith("/rerank"):
        found: Literal["cohere", "tei"] = "tei" if path == "/rerank" else "cohere"
        # Posted without a trailing slash: servers route /v1/rerank, not /v1/rerank/.
        endpoint = urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))
        return endpoint, found if protocol == "auto" else protocol
    # A server's base URL: append the protocol's path.
    chosen: Literal["cohere", "tei"] = "cohere" if protocol == "auto" else protocol
    full = urlunsplit((parts.scheme, parts.netloc, path + _PATHS[chosen], parts.query, ""))
    return full, chosen


def _retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Seconds a ``Retry-After`` header asks to wait: a number of seconds, or an HTTP date (RFC 9110)."""
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # an HTTP date is GMT
        when = when.replace(tzinfo=datetime.UTC)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class HttpScorer:
    """Scores pairs by calling a reranking server over HTTP.

    Each call of :meth:`score_pairs` is one HTTP request holding every document of the
    batch (the engine sends up to :attr:`batch_pairs` at once). Connection errors and
    answers 429 / 500 / 502 / 503 are retried with exponential backoff; any other bad answer
    raises :class:`~xrerank_core.HTTPBackendError` with the server's message.

    Example:
        >>> from xrerank_core import Reranker
        >>> rr = Reranker("http://localhost:8000", backend="http")  # doctest: +SKIP
        >>> rr = Reranker(HttpScorer("http://tei:8080", protocol="tei", api_key="..."))  # doctest: +SKIP
    """

    def __init__(
        self,
        url: str,
        *,
        protocol: Protocol = "auto",
        api_key: str | None = None,
        model: str | None = None,
        raw_scores: bool | None = None,
        timeout: float = 60.0,
        connect_timeout: float = 5.0,
        retries: int = 3,
        backoff: float = 0.25,
        batch_pairs: int | None = None,
        max_length: int = 1_000_000,
        headers: dict[str, str] | None = None,
        retry_statuses: frozenset[int] | set[int] = _RETRY_STATUS,
    ) -> None:
        """Set up the client (nothing is sent until the first request).

        Args:
            url: The server (``http://host:8000``: xrerank's ``/v1/rerank``) or a full endpoint
                URL: one ending in ``/v1/rerank`` (or any other ``.../rerank``) speaks the Cohere
                protocol, ``http://host:8080/rerank`` the TEI protocol.
            protocol: ``"cohere"``, ``"tei"``, or ``"auto"`` (from the URL's path).
            api_key: Sent as ``Authorization: Bearer <key>``. ``None`` reads ``$XRERANK_API_KEY``.
            model: The ``model`` field of Cohere-protocol requests (Cohere, Jina and Infinity
                need it; xrerank's server ignores it).
            raw_scores: Ask a Cohere-protocol server for raw logits (xrerank, Infinity). ``None``:
                yes, except on api.cohere.com and api.jina.ai, whose probabilities are turned
                back into logits. The TEI protocol always asks for raw scores.
            timeout: Seconds to wait for an answer (per attempt).
            connect_timeout: Seconds to wait for a connection (per attempt).
            retries: Further attempts after a connection error or a 429 / 500 / 502 / 503 answer
                (``retry_statuses``).
            backoff: Seconds before the first retry; doubled each time (with jitter).
            batch_pairs: Documents per request. ``None``: 32 for TEI (its default
                ``--max-client-batch-size``), else 1000.
            max_length: Reported to the engine; the server applies its own model's limit.
            headers: Extra headers for every request.
            retry_statuses: HTTP statuses that are retried.

        Raises:
            ConfigError: A bad URL or option.
            MissingDependencyError: httpx is not installed.
        """
        try:
            import httpx
        except ImportError as exc:
            package = "httpx"
            raise missing_dependency(package, "http", exc) from exc
        self.endpoint, self.protocol = _split_url(url, protocol)
        for name, value in (("timeout", timeout), ("connect_timeout", connect_timeout)):
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                msg = f"{name} must be a positive number of seconds, got {value!r}"
                raise ConfigError(msg)
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            msg = f"retries must be an integer >= 0, got {retries!r}"
            raise ConfigError(msg)
        if isinstance(backoff, bool) or not isinstance(backoff, int | float) or backoff < 0:
            msg = f"backoff must be a number of seconds >= 0, got {backoff!r}"
            raise ConfigError(msg)
        if batch_pairs is None:
            batch_pairs = 32 if self.protocol == "tei" else 1000
        if isinstance(batch_pairs, bool) or not isinstance(batch_pairs, int) or batch_pairs < 1:
            msg = f"batch_pairs must be a positive integer, got {batch_pairs!r}"
            raise ConfigError(msg)
        host = urlsplit(self.endpoint).hostname or ""
        if raw_scores is None:
            raw_scores = not host.endswith(("cohere.com", "cohere.ai", "jina.ai"))
        self.raw_scores = bool(raw_scores)
        self.name = self.endpoint
        self.model = model
        self.max_length = max_length
        self.num_special_tokens = 0
        self.batch_pairs = batch_pairs
        self.retries = retries
        self.retry_statuses = frozenset(retry_statuses)
        self.backoff = float(backoff)
        key = api_key if api_key is not None else os.environ.get(API_KEY_ENV)
        all_headers = {"Accept": "application/json", **(headers or {})}
        if key:
            all_headers["Authorization"] = f"Bearer {key}"
        self._client = httpx.Client(
            headers=all_headers,
            timeout=httpx.Timeout(timeout, connect=connect_timeout),
            follow_redirects=False,
        )

    def __repr__(self) -> str:
        """Show the endpoint and protocol (never the key)."""
        return f"HttpScorer({self.endpoint!r}, protocol={self.protocol!r})"

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def __del__(self) -> None:
        client = getattr(self, "_client", None)
        if client is not None:
            try:
                client.close()
            except Exception:  # nothing useful to do while the object goes away
                logger.debug("closing the HTTP client failed", exc_info=True)

    def token_offsets(self, texts: Sequence[str]) -> list[list[tuple[int, int]]] | None:
        """``None``: the server tokenizes, so the engine sends documents whole."""
        return None

    def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        """Raw relevance logits, one request per distinct query in the batch (the engine sends one).

        Raises:
            HTTPBackendError: The server could not be reached after the retries, or answered
                with an error or with something that is not a valid answer.
        """
        out: list[float] = [0.0] * len(pairs)
        groups: dict[str, list[int]] = {}
        for i, (query, _) in enumerate(pairs):
            groups.setdefault(query, []).append(i)
        for query, positions in groups.items():
            scores = self._rerank(query, [pairs[i][1] for i in positions])
            for i, s in zip(positions, scores, strict=True):
                out[i] = s
        return out

    # -- internals ----------------------------------------------------------------

    def _payload(self, query: str, texts: list[str]) -> dict[str, Any]:
        if self.protocol == "tei":
            return {"query": query, "texts": texts, "raw_scores": True, "return_text": False, "truncate": True}
        body: dict[str, Any] = {"query": query, "documents": texts, "top_n": len(texts), "return_documents": False}
        if self.model is not None:
            body["model"] = self.model
        if self.raw_scores:
            body["raw_scores"] = True
        return body

    def _rerank(self, query: str, texts: list[str]) -> list[float]:
        body = self._post(self._payload(query, texts))
        return self._parse(body, len(texts))

    def _post(self, payload: dict[str, Any]) -> Any:
        import httpx

        attempt = 0
        while True:
            try:
                response = self._client.post(self.endpoint, json=payload)
            except httpx.ReadTimeout as exc:
                # The server got the request and is still working: another try would add load.
                msg = (
                    f"{self.endpoint} did not answer within {self._client.timeout.read} s; raise the http "
                    "backend's timeout, send fewer documents per request, or add server replicas"
                )
                raise HTTPBackendError(msg) from exc
            except httpx.TransportError as exc:
                if attempt < self.retries:
                    attempt += 1
                    self._sleep(attempt, None, f"{type(exc).__name__}: {exc}")
                    continue
                msg = (
                    f"could not reach the rerank server at {self.endpoint} after {attempt + 1} attempt(s) "
                    f"({type(exc).__name__}: {exc}); check that it is running and the URL is right"
                )
                raise HTTPBackendError(msg) from exc
            if response.status_code in self.retry_statuses and attempt < self.retries:
                attempt += 1
                self._sleep(attempt, response.headers.get("retry-after"), f"HTTP {response.status_code}")
                continue
            return self._decode(response)

    def _sleep(self, attempt: int, retry_after: str | None, why: str) -> None:
        delay = self.backoff * 2 ** (attempt - 1) * (0.5 + random.random())  # jitter
        wait = _retry_after_seconds(retry_after)
        if wait is not None:
            delay = max(delay, min(wait, 30.0))
        logger.warning("%s from %s; retry %d of %d in %.2f s", why, self.endpoint, attempt, self.retries, delay)
        time.sleep(delay)

    def _decode(self, response: httpx.Response) -> Any:
        status = response.status_code
        try:
            body = response.json()
        except ValueError:
            body = None
        if 300 <= status < 400:
            target = response.headers.get("location")
            where = f" to {target}; pass that URL instead" if target else ""
            msg = (
                f"the rerank server at {self.endpoint} answered HTTP {status}, a redirect{where} "
                "(redirects are not followed)"
            )
            raise HTTPBackendError(msg, status_code=status)
        if status >= 400:
            detail = _error_message(body) or response.text[:300].strip() or response.reason_phrase
            hint = {
                401: "; pass api_key=... (or set $XRERANK_API_KEY)",
                403: "; the API key was refused",
                404: "; check the URL and the protocol ('cohere' for /v1/rerank, 'tei' for /rerank)",
                413: "; send fewer or shorter documents per request (batch_pairs=...)",
            }.get(status, "")
            if status in (400, 422) and self.protocol == "cohere" and self.raw_scores:
                hint = "; if the server does not know the raw_scores field, pass raw_scores=False"
            msg = f"the rerank server at {self.endpoint} answered HTTP {status}: {detail}{hint}"
            raise HTTPBackendError(msg, status_code=status)
        if body is None:
            msg = f"the rerank server at {self.endpoint} answered HTTP {status} with a body that is not JSON"
            raise HTTPBackendError(msg, status_code=status)
        return body

    def _parse(self, body: Any, n: int) -> list[float]:
        if self.protocol == "tei":
            items, key, raw = body, "score", True
        else:
            items = body.get("results") if isinstance(body, dict) else None
            key, raw = "relevance_score", self.raw_scores
        if not isinstance(items, list):
            want = "a JSON list" if self.protocol == "tei" else 'a JSON object with "results"'
            msg = f"the rerank server at {self.endpoint} answered {_show(body)}, not {want}; is the protocol right?"
            raise HTTPBackendError(msg)
        scores: list[float | None] = [None] * n
        for item in items:
            index = item.get("index") if isinstance(item, dict) else None
            score = item.get(key) if isinstance(item, dict) else None
            if (
                isinstance(index, bool)
                or not isinstance(index, int)
                or not 0 <= index < n
                or isinstance(score, bool)
                or not isinstance(score, int | float)
            ):
                msg = (
                    f"the rerank server at {self.endpoint} answered a result {_show(item)} "
                    f"without a valid index and {key}"
                )
                raise HTTPBackendError(msg)
            scores[index] = float(score)
        missing = [i for i, s in enumerate(scores) if s is None]
        if missing:
            msg = (
                f"the rerank server at {self.endpoint} scored {n - len(missing)} of {n} documents "
                f"(none for index {missing[0]}); it may cap top_n or the batch size: lower batch_pairs"
            )
            raise HTTPBackendError(msg)
        done = [s for s in scores if s is not None]
        return done if raw else [_logit(s) for s in done]


def _error_message(body: Any) -> str | None:
    """The message of an error body in any of the usual shapes."""
    if isinstance(body, dict):
        for key in ("error", "message", "detail"):
            value = body.get(key)
            if isinstance(value, str):
                return value
            if value is not None:
                return _show(value)
    return None


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 200 else text[:200] + "..."
