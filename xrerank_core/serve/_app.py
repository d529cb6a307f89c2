"""The FastAPI application behind ``xrerank serve`` (imported only with the ``serve`` extra)."""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, StrictStr
from starlette._utils import get_route_path
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from xrerank_core._engine import Reranker, _sigmoid
from xrerank_core._exceptions import ConfigError, InputError, ScoringError, XRerankError
from xrerank_core._version import __version__
from xrerank_core.serve._settings import ServerSettings

__all__ = ["BatchScorer", "build_app", "score_each"]

logger = logging.getLogger(__name__)

BatchScorer = Callable[[str, list[str]], Awaitable[list[float]]]
"""``async (query, documents) -> raw logits``, in input order."""

_ENDPOINTS = ("/v1/rerank", "/rerank", "/health", "/metrics", "/openapi.json", "/docs")


# -- request and answer bodies --------------------------------------------------------


def _encodable(text: str) -> str:
    """Refuse text that cannot be encoded as UTF-8 (a lone surrogate, sent as a JSON escape)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        msg = f"the text holds a character that is not valid Unicode at position {exc.start} (a lone surrogate)"
        raise ValueError(msg) from exc
    return text


def _whole_number(value: object) -> int:
    """An integer, or a float with no fraction (JSON Schema's ``integer``); never a bool or a string."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        msg = f"must be an integer, got {type(value).__name__}"
        raise ValueError(msg)
    if isinstance(value, float):
        if not value.is_integer():
            msg = f"must be an integer, got {value!r}"
            raise ValueError(msg)
        return int(value)
    return value


Text = Annotated[StrictStr, AfterValidator(_encodable)]
PositiveWholeNumber = Annotated[int, Field(ge=1), BeforeValidator(_whole_number)]


# A character that is not whitespace in Python's sense (``str.isspace``, what the engine's empty-query
# check uses): Unicode White_Space (``\s`` in pydantic's regex engine) plus the separators U+001C-U+001F.
_NOT_BLANK = r"[^\s\x1c-\x1f]"


class DocumentObject(BaseModel):
    """A document given as an object (Cohere v1 / Jina style)."""

    model_config = ConfigDict(extra="ignore")

    text: Text = Field(description="The document's text.")


class CohereRequest(BaseModel):
    """A Cohere / Jina compatible rerank request. Unknown fields (``max_chunks_per_doc``, ...) are ignored."""

    model_config = ConfigDict(extra="ignore")

    query: Text = Field(description="The search query (not empty).", pattern=_NOT_BLANK)
    documents: list[Text | DocumentObject] = Field(description="The documents: strings or {'text': ...} objects.")
    top_n: PositiveWholeNumber | None = Field(
        default=None, description="Return at most this many results (default: all)."
    )
    return_documents: StrictBool = Field(default=False, description="Include each document's text in its result.")
    model: StrictStr | None = Field(default=None, description="Accepted for compatibility; the server's model is used.")
    raw_scores: StrictBool = Field(
        default=False,
        description="xrerank extension: relevance_score is the model's raw logit instead of a probability in [0, 1].",
    )


class CohereResult(BaseModel):
    """One ranked document."""

    index: int = Field(description="Position of the document in the request.")
    relevance_score: float = Field(description="Probability of relevance in [0, 1] (the raw logit with raw_scores).")
    document: DocumentObject | None = Field(default=None, description="Present with return_documents=true.")


class CohereResponse(BaseModel):
    """A Cohere / Jina compatible rerank answer: results best first."""

    id: str
    model: str
    results: list[CohereResult]


class TeiRequest(BaseModel):
    """A text-embeddings-inference compatible rerank request. Unknown fields (``truncate``, ...) are ignored."""

    model_config = ConfigDict(extra="ignore")

    query: Text = Field(description="The search query (not empty).", pattern=_NOT_BLANK)
    texts: list[Text] = Field(description="The documents.")
    raw_scores: StrictBool = Field(default=False, description="Raw logits instead of probabilities in [0, 1].")
    return_text: StrictBool = Field(default=False, description="Include each text in its result.")


class TeiRank(BaseModel):
    """One ranked text."""

    index: int = Field(description="Position of the text in the request.")
    score: float = Field(description="Probability of relevance in [0, 1], or the raw logit with raw_scores.")
    text: str | None = Field(default=None, description="Present with return_text=true.")


class ErrorBody(BaseModel):
    """Every error answer."""

    error: str = Field(description="What was wrong and what to do.")
    error_type: str = Field(description="validation, too_large, unauthorized, busy, timeout, not_found, ...")


class Health(BaseModel):
    """The ``/health`` answer."""

    status: str
    model: str
    version: str


# -- helpers --------------------------------------------------------------------------


_ERROR_TYPES = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    408: "read_timeout",
    413: "too_large",
    415: "unsupported_media_type",
    422: "validation",
    500: "internal",
    503: "busy",
    504: "timeout",
}


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"error": message, "error_type": _ERROR_TYPES.get(status, "error")}
    return JSONResponse(body, status_code=status, headers=headers)


def _describe_validation(exc: RequestValidationError) -> str:
    parts: list[str] = []
    for err in exc.errors():
        loc = [x for x in err.get("loc", ()) if x != "body"]
        # A document may be a string or an object: pydantic reports both failed choices, under tags
        # like "function-after[...]" / "DocumentObject"; one message per document says it plainly.
        choices = [i for i, x in enumerate(loc) if isinstance(x, str) and ("[" in x or x[:1].isupper())]
        if choices:
            where = ".".join(str(x) for x in loc[: choices[0]])
            if err.get("type") == "value_error":  # a string, but not a valid one: say why
                message = f"{where}: {str(err.get('msg', '')).removeprefix('Value error, ')}"
            else:
                message = f'{where}: must be a string or an object with a string "text"'
            if not any(p.startswith(f"{where}: ") for p in parts):
                parts.append(message)
            continue
        where = ".".join(str(x) for x in loc) or "body"
        if err.get("type") == "json_invalid":
            parts.append(f"the body is not valid JSON ({err.get('ctx', {}).get('error', err.get('msg'))})")
        elif err.get("type") == "string_pattern_mismatch":
            parts.append(f"{where}: is empty (or only whitespace); there is nothing to rank against")
        elif err.get("type") == "missing" and where == "body":
            parts.append("the request has no JSON body; send Content-Type: application/json")
        else:
            parts.append(f"{where}: {err.get('msg')}")
    more = len(parts) - 5
    return "; ".join(parts[:5]) + (f"; and {more} more" if more > 0 else "")


_CLOSE = {"Connection": "close"}


class _BodyLimit:
    """Answer 413 to a body larger than the limit (declared or not), 408 to one that comes too slowly.

    The body must be whole within ``read_timeout_s`` of the request's start, however it trickles
    in: a client that stalls or drips its body gets 408 and its connection is closed, instead of
    holding the request open for ever.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, read_timeout_s: float) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.read_timeout_s = read_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            try:
                too_big = int(declared) > self.max_bytes
            except ValueError:
                await _error(400, "the Content-Length header is not a number", _CLOSE)(scope, receive, send)
                return
            if too_big:  # answered before reading the body; the connection is closed, not drained
                await _error(413, self._message(), _CLOSE)(scope, receive, send)
                return
        received = 0
        whole = False
        deadline = time.monotonic() + self.read_timeout_s

        async def limited() -> Message:
            nonlocal received, whole
            if whole:  # the body is in: what follows is the disconnect message, whenever it comes
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), max(deadline - time.monotonic(), 0.0))
            except TimeoutError:
                msg = (
                    f"the request body did not arrive within {self.read_timeout_s:g} s (--read-timeout); "
                    "send the whole body at once"
                )
                raise HTTPException(408, msg, headers=_CLOSE) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise HTTPException(413, self._message(), headers=_CLOSE)
                whole = not message.get("more_body", False)
            else:
                whole = True
            return message

        await self.app(scope, limited, send)

    def _message(self) -> str:
        return (
            f"the request body is larger than {self.max_bytes} bytes (--max-body-bytes); send fewer or "
            "shorter documents per request"
        )


class _JsonOnly:
    """Answer 415, naming the header to send, to a rerank request whose body is not declared JSON."""

    _PATHS = frozenset({"/v1/rerank", "/rerank"})

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("method") == "POST" and get_route_path(scope) in self._PATHS:
            given = dict(scope.get("headers") or []).get(b"content-type", b"").decode("latin-1")
            media = given.split(";", 1)[0].strip().lower()
            if media != "application/json" and not media.endswith("+json"):
                what = f"Content-Type {given!r}" if given else "no Content-Type"
                message = f"the request has {what}; send a JSON body with Content-Type: application/json"
                await _error(415, message)(scope, receive, send)
                return
        await self.app(scope, receive, send)


_BEARER = HTTPBearer(auto_error=False, description="The server's API key (xrerank serve --api-key).")


async def _documented_key(_: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)]) -> None:
    """Put the bearer scheme in the OpenAPI spec; :class:`_ApiKey` checks the key before the body is read."""


class _ApiKey:
    """Refuse, before reading the body, a request without the right ``Authorization: Bearer`` key."""

    _OPEN = frozenset({"/health", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})

    def __init__(self, app: ASGIApp, key: str) -> None:
        self.app = app
        self.key = key.encode("utf-8")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or get_route_path(scope) in self._OPEN:
            await self.app(scope, receive, send)
            return
        header = dict(scope.get("headers") or []).get(b"authorization", b"")
        scheme, _, given = header.partition(b" ")
        if scheme.lower() != b"bearer" or not hmac.compare_digest(given.strip(), self.key):
            message = "missing or wrong API key; send the header Authorization: Bearer <key>"
            await _error(401, message, headers={"WWW-Authenticate": "Bearer"})(scope, receive, send)
            return
        await self.app(scope, receive, send)


class _Metrics:
    """Prometheus metrics of one app, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "xrerank_requests", "HTTP requests answered.", ["endpoint", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "xrerank_request_duration_seconds",
            "Time from request to answer.",
            ["endpoint"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
            registry=self.registry,
        )
        self.documents = Counter("xrerank_documents", "Documents scored.", ["endpoint"], registry=self.registry)
        self.in_flight = Gauge("xrerank_requests_in_flight", "Requests being answered.", registry=self.registry)


class _Instrument:
    """Count every request and time it, by endpoint (unknown paths count as ``other``)."""

    def __init__(self, app: ASGIApp, metrics: _Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = get_route_path(scope)
        endpoint = path if path in _ENDPOINTS else "other"
        status = 500
        start = time.perf_counter()

        async def recording(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, recording)
        finally:
            self.metrics.in_flight.dec()
            self.metrics.requests.labels(endpoint, str(status)).inc()
            self.metrics.latency.labels(endpoint).observe(time.perf_counter() - start)


@dataclass
class _Job:
    """One request waiting for (or in) a scoring batch."""

    query: str
    texts: list[str]
    future: asyncio.Future[list[float]]
    started: bool = False


class _Scoring:
    """Scores requests in worker threads, batching those that wait together, within the timeout.

    ``max_concurrency`` workers each take every request waiting in the queue (at most
    ``max_batch_requests``) and score them as one job (:meth:`Reranker.score_many`), so under
    load requests share forward passes. A request still queued when its timeout ends is answered
    503; one being scored, 504 (its batch still finishes, for the others in it).
    """

    def __init__(self, reranker: Reranker, settings: ServerSettings, batch_scorer: BatchScorer | None) -> None:
        self.reranker = reranker
        self.settings = settings
        self.batch_scorer = batch_scorer
        self._executor: ThreadPoolExecutor | None = None
        self._queue: asyncio.Queue[_Job] | None = None
        self._workers: list[asyncio.Task[None]] = []

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._executor = ThreadPoolExecutor(self.settings.max_concurrency, thread_name_prefix="xrerank-serve")
        self._queue = asyncio.Queue()
        self._workers = [loop.create_task(self._work()) for _ in range(self.settings.max_concurrency)]

    def stop(self) -> None:
        for task in self._workers:
            task.cancel()
        self._workers = []
        self._queue = None
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while self._queue is not None and self._executor is not None:
            queue, executor = self._queue, self._executor
            jobs = [await queue.get()]
            while len(jobs) < self.settings.max_batch_requests and not queue.empty():
                jobs.append(queue.get_nowait())
            live = [job for job in jobs if not job.future.done()]  # done: the client stopped waiting
            if not live:
                continue
            for job in live:
                job.started = True
            try:
                items = [(j.query, j.texts) for j in live]
                results = await loop.run_in_executor(executor, score_each, self.reranker, items)
            except Exception as exc:  # a failure that is not the input's: every request in the batch gets it
                results = [_logged(exc)] * len(live)
            for job, result in zip(live, results, strict=True):
                if job.future.done():
                    continue
                if isinstance(result, BaseException):
                    job.future.set_exception(result)
                else:
                    job.future.set_result(result)

    async def score(self, query: str, texts: list[str]) -> list[float]:
        if not texts:
            # Still checks the query, like the engine does.
            return self.reranker.score(query, texts)
        timeout = self.settings.timeout_s
        if self.batch_scorer is not None:
            try:
                return await asyncio.wait_for(self.batch_scorer(query, texts), timeout)
            except TimeoutError as exc:
                raise HTTPException(504, self._timeout_message()) from exc
        if self._queue is None:
            self.start()
        queue = self._queue
        if queue is None:
            msg = "the server's scoring workers are not running"
            raise HTTPException(503, msg)
        job = _Job(query, texts, asyncio.get_running_loop().create_future())
        queue.put_nowait(job)
        try:
            return await asyncio.wait_for(asyncio.shield(job.future), timeout)
        except TimeoutError as exc:
            if job.started:
                raise HTTPException(504, self._timeout_message()) from exc
            job.future.cancel()
            msg = (
                f"the server is busy: the request waited {timeout:g} s without a free scorer; retry later, "
                "or add replicas / raise --max-concurrency"
            )
            raise HTTPException(503, msg, headers={"Retry-After": "1"}) from exc
        except asyncio.CancelledError:
            if not job.started:
                job.future.cancel()
            raise

    def _timeout_message(self) -> str:
        return (
            f"scoring took longer than {self.settings.timeout_s:g} s (--timeout); send fewer documents per "
            "request or raise the timeout"
        )


def score_each(reranker: Reranker, items: list[tuple[str, list[str]]]) -> list[list[float] | BaseException]:
    """Score requests as one job; a request that fails gets its exception in its place, the others their scores.

    A request whose query is refused gets the :class:`InputError` (answered 422). If the job fails
    (NaN scores, a backend error), the requests are scored again one by one, so only the one that
    breaks the model fails (answered 500, logged with its traceback).
    """
    out: list[list[float] | BaseException] = []
    valid: list[int] = []
    for i, (query, _) in enumerate(items):
        try:
            reranker.score(query, [])  # checks the query alone
        except XRerankError as exc:
            out.append(exc)
            continue
        out.append([])
        valid.append(i)
    try:
        for i, scores in zip(valid, reranker.score_many([items[i] for i in valid]), strict=True):
            out[i] = scores
    except Exception as exc:  # a model failure: answered 500 to its request alone
        if len(valid) == 1:
            out[valid[0]] = _logged(exc)
            return out
        # Something in one request broke the job (NaN scores, a scorer error...): one by one, so only it fails.
        for i in valid:
            try:
                out[i] = reranker.score(*items[i])
            except Exception as exc:
                out[i] = _logged(exc)
    return out


def _logged(exc: BaseException) -> BaseException:
    """Log a scoring failure that is not the request's fault (with its traceback); return it as an XRerankError.

    An :class:`InputError` is the request's (answered 422) and is returned as it is; any other
    exception from the model is a :class:`ScoringError` (answered 500 with a JSON message).
    """
    if isinstance(exc, InputError):
        return exc
    logger.error("scoring failed: %s: %s", type(exc).__name__, exc, exc_info=exc)
    # The engine wraps a backend's own exception in a ScoringError; name that one to the client.
    cause = exc.__cause__ if isinstance(exc, ScoringError) else None
    if isinstance(exc, XRerankError) and (cause is None or isinstance(cause, XRerankError)):
        return exc
    original = cause if isinstance(cause, BaseException) else exc
    failed = ScoringError(
        f"the model failed on this request ({type(original).__name__}: {original}); this is a server fault, not "
        "the request's: retry, and tell the server's operator if it persists (the server log has the traceback)"
    )
    failed.__cause__ = exc
    return failed


def _order(scores: list[float], top_n: int | None) -> list[int]:
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    return order if top_n is None else order[:top_n]


# -- the app ----------------------------------------------------------------------------


def build_app(reranker: Reranker, settings: ServerSettings, *, batch_scorer: BatchScorer | None = None) -> FastAPI:
    """The application; see :func:`xrerank_core.serve.create_app`."""
    if reranker.config.normalize != "none":
        msg = "serve a reranker with normalize='none'; each request chooses raw or sigmoid scores"
        raise ConfigError(msg)
    if reranker.config.fusion != "none":
        msg = "serve a reranker with fusion='none'; a request carries no first-stage scores"
        raise ConfigError(msg)
    if reranker.config.cascade_top_k is not None:
        # the server scores every document with the model (score_many): a cascade would load a second model for nothing
        msg = "serve a reranker without cascade_top_k; the server scores every document of a request with the model"
        raise ConfigError(msg)
    scoring = _Scoring(reranker, settings, batch_scorer)
    metrics = _Metrics()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        scoring.start()
        try:
            yield
        finally:
            scoring.stop()

    errors: dict[int | str, dict[str, Any]] = {
        400: {"model": ErrorBody, "description": "The body could not be read (not UTF-8, or a bad Content-Length)."},
        408: {"model": ErrorBody, "description": "The body did not arrive within --read-timeout."},
        413: {"model": ErrorBody, "description": "Too many documents, or the body is too large."},
        415: {"model": ErrorBody, "description": "The body is not declared JSON: send Content-Type: application/json."},
        422: {"model": ErrorBody, "description": "The body is not valid JSON or not a valid request."},
        500: {"model": ErrorBody, "description": "The model failed (e.g. NaN scores)."},
        503: {"model": ErrorBody, "description": "No scorer became free within the timeout; retry."},
        504: {"model": ErrorBody, "description": "Scoring took longer than the timeout."},
    }
    dependencies: list[Any] = []
    if settings.api_key is not None:
        errors[401] = {"model": ErrorBody, "description": "Missing or wrong API key."}
        dependencies.append(Depends(_documented_key))

    app = FastAPI(
        title="xrerank",
        version=__version__,
        summary="Cross-encoder reranking: Cohere / Jina compatible /v1/rerank and TEI compatible /rerank.",
        lifespan=lifespan,
        redirect_slashes=False,  # "/rerank/" is a 404 that lists the endpoints, not a redirect a POST may not survive
    )

    @app.exception_handler(RequestValidationError)
    async def on_validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(422, _describe_validation(exc))

    @app.exception_handler(HTTPException)
    async def on_http(request: Request, exc: HTTPException) -> JSONResponse:
        detail = str(exc.detail)
        if exc.status_code == 400 and detail == "There was an error parsing the body":
            detail = "the body could not be parsed (is it UTF-8?); send UTF-8 JSON with Content-Type: application/json"
        elif exc.status_code == 404 and detail == "Not Found":
            detail = (
                f"there is nothing at {request.url.path}; the endpoints are POST /v1/rerank, POST /rerank, "
                "GET /health, GET /metrics, GET /openapi.json"
            )
        elif exc.status_code == 405 and detail == "Method Not Allowed":
            allowed = (exc.headers or {}).get("Allow", "another method")
            detail = f"{request.method} is not allowed on {request.url.path}; use {allowed}"
        return _error(exc.status_code, detail, headers=dict(exc.headers or {}))

    @app.exception_handler(InputError)
    async def on_input(_: Request, exc: InputError) -> JSONResponse:
        return _error(422, str(exc))

    @app.exception_handler(ScoringError)
    async def on_scoring(_: Request, exc: ScoringError) -> JSONResponse:
        return _error(500, str(exc))

    @app.exception_handler(XRerankError)
    async def on_xrerank(_: Request, exc: XRerankError) -> JSONResponse:
        return _error(422 if isinstance(exc, ConfigError) else 500, str(exc))

    @app.exception_handler(Exception)
    async def on_fault(_: Request, exc: Exception) -> JSONResponse:
        # A fault of the server or its model, never of the request: JSON like every other answer.
        # (The traceback is in the server's log: scoring failures are logged where they happen,
        # anything else by uvicorn.)
        message = (
            f"the server failed while answering ({type(exc).__name__}); this is not the request's fault: "
            "retry, and tell the server's operator if it persists (the server log has the traceback)"
        )
        return _error(500, message)

    def check_count(n: int, what: str) -> None:
        if n > settings.max_documents:
            msg = (
                f"{n} {what} in one request; this server takes at most {settings.max_documents} "
                "(--max-documents): split the request"
            )
            raise HTTPException(413, msg)

    @app.post(
        "/v1/rerank",
        response_model=CohereResponse,
        response_model_exclude_none=True,
        responses=errors,
        dependencies=dependencies,
        summary="Rerank documents (Cohere / Jina compatible)",
        tags=["rerank"],
    )
    async def rerank_cohere(body: CohereRequest) -> dict[str, Any]:
        texts = [d if isinstance(d, str) else d.text for d in body.documents]
        check_count(len(texts), "documents")
        raw = await scoring.score(body.query, texts)
        metrics.documents.labels("/v1/rerank").inc(len(texts))
        results = []
        for i in _order(raw, body.top_n):
            result: dict[str, Any] = {
                "index": i,
                "relevance_score": raw[i] if body.raw_scores else _sigmoid(raw[i]),
            }
            if body.return_documents:
                result["document"] = {"text": texts[i]}
            results.append(result)
        return {"id": str(uuid.uuid4()), "model": settings.model_name, "results": results}

    @app.post(
        "/rerank",
        response_model=list[TeiRank],
        response_model_exclude_none=True,
        responses=errors,
        dependencies=dependencies,
        summary="Rerank texts (text-embeddings-inference compatible)",
        tags=["rerank"],
    )
    async def rerank_tei(body: TeiRequest) -> list[dict[str, Any]]:
        check_count(len(body.texts), "texts")
        raw = await scoring.score(body.query, body.texts)
        metrics.documents.labels("/rerank").inc(len(body.texts))
        out = []
        for i in _order(raw, None):
            item: dict[str, Any] = {"index": i, "score": raw[i] if body.raw_scores else _sigmoid(raw[i])}
            if body.return_text:
                item["text"] = body.texts[i]
            out.append(item)
        return out

    @app.get("/health", response_model=Health, summary="Liveness: the model is loaded", tags=["ops"])
    async def health() -> dict[str, str]:
        return {"status": "ok", "model": settings.model_name, "version": __version__}

    @app.get(
        "/metrics",
        response_class=Response,
        dependencies=dependencies,
        responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format."}},
        summary="Prometheus metrics: requests by endpoint and status, latency histogram",
        tags=["ops"],
    )
    async def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    def openapi() -> dict[str, Any]:
        # The document limit is a setting of this server: it goes in the spec here.
        if app.openapi_schema is None:
            spec = get_openapi(title=app.title, version=app.version, summary=app.summary, routes=app.routes)
            components = spec.get("components", {}).get("schemas", {})
            for model, field in (("CohereRequest", "documents"), ("TeiRequest", "texts")):
                prop = components.get(model, {}).get("properties", {}).get(field)
                if isinstance(prop, dict):
                    prop["maxItems"] = settings.max_documents
                    prop["description"] += f" At most {settings.max_documents} (413 beyond)."
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.add_middleware(_JsonOnly)
    app.add_middleware(_BodyLimit, max_bytes=settings.max_body_bytes, read_timeout_s=settings.read_timeout_s)
    if settings.api_key is not None:
        app.add_middleware(_ApiKey, key=settings.api_key)
    app.add_middleware(_Instrument, metrics=metrics)
    app.state.settings = settings
    app.state.reranker = reranker
    return app
