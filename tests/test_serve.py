"""The rerank service on loopback, driven through the http backend and both adapters.

Every server here is a real uvicorn server on 127.0.0.1; every model a real (tiny) cross-encoder,
except where a slow scorer is needed to reach a timeout.
"""

from __future__ import annotations

import asyncio
import json
import math
import socket
import threading
import time
from collections.abc import Iterator, Sequence

import httpx
import pytest
from conftest import FakeScorer, serving
from langchain_core.documents import Document
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from langchain_xrerank import XRerankCompressor
from llamaindex_xrerank import XRerankPostprocessor
from xrerank_core import ConfigError, HTTPBackendError, HttpScorer, InputError, Reranker
from xrerank_core.serve import ServerSettings, create_app

QUERY = "what is the capital of France?"
TEXTS = [
    "Paris is the capital and largest city of France.",
    "Berlin is the capital of Germany.",
    "The Eiffel Tower stands in Paris. " * 40,  # longer than the tiny model's 128 tokens: split on the server
    "France borders Spain, Italy and Germany.",
    "Berlin is the capital of Germany.",  # a duplicate
    "",
    "Café crème, 東京, and emoji 🙂 are plain UTF-8.",
]


@pytest.fixture(scope="module")
def local(tiny_bert: str) -> Reranker:
    return Reranker(tiny_bert)


@pytest.fixture(scope="module")
def server(local: Reranker) -> Iterator[str]:
    with serving(create_app(local, ServerSettings(model_name="tiny-bert", max_documents=50))) as url:
        yield url


def _same(remote: Sequence[object], expected: Sequence[object]) -> None:
    assert [r.index for r in remote] == [r.index for r in expected]  # type: ignore[attr-defined]
    assert [r.text for r in remote] == [r.text for r in expected]  # type: ignore[attr-defined]
    for a, b in zip(remote, expected, strict=True):
        assert a.score == pytest.approx(b.score, rel=1e-6, abs=1e-6)  # type: ignore[attr-defined]


@pytest.mark.parametrize("path", ["", "/v1/rerank", "/rerank"])
def test_http_backend_equals_in_process(server: str, local: Reranker, path: str) -> None:
    scorer = HttpScorer(server + path)
    assert scorer.protocol == ("tei" if path == "/rerank" else "cohere")
    remote = Reranker(scorer)
    _same(remote.rerank(QUERY, TEXTS), local.rerank(QUERY, TEXTS))
    _same(remote.rerank(QUERY, TEXTS, top_n=3), local.rerank(QUERY, TEXTS, top_n=3))
    assert remote.score(QUERY, TEXTS) == pytest.approx(local.score(QUERY, TEXTS), rel=1e-6, abs=1e-6)
    assert remote.rerank(QUERY, []) == []


@pytest.mark.parametrize("path", ["/", "/v1/rerank/", "/rerank/"])
def test_http_backend_takes_a_trailing_slash(server: str, local: Reranker, path: str) -> None:
    scorer = HttpScorer(server + path)
    assert scorer.protocol == ("tei" if path == "/rerank/" else "cohere")
    assert not scorer.endpoint.endswith("/")  # the server routes /v1/rerank, and answers 404 for /v1/rerank/
    _same(Reranker(scorer).rerank(QUERY, TEXTS), local.rerank(QUERY, TEXTS))


def test_http_backend_names_a_redirect_and_its_target() -> None:
    from starlette.applications import Starlette
    from starlette.responses import RedirectResponse
    from starlette.routing import Route

    async def moved(request: object) -> RedirectResponse:
        return RedirectResponse("https://rerank.example/v1/rerank", status_code=308)

    app = Starlette(routes=[Route("/v1/rerank", moved, methods=["POST"])])
    expected = r"HTTP 308, a redirect to https://rerank.example/v1/rerank"
    with serving(app) as url, pytest.raises(HTTPBackendError, match=expected) as exc:
        Reranker(HttpScorer(url, retries=0)).rerank(QUERY, TEXTS[:2])
    assert exc.value.status_code == 308


def test_http_backend_by_name_and_options(server: str, local: Reranker, tiny_bert: str) -> None:
    by_url = Reranker(server)  # backend "auto" recognises a URL
    _same(by_url.rerank(QUERY, TEXTS), local.rerank(QUERY, TEXTS))
    assert Reranker(server, backend="http").scorer is by_url.scorer  # one client per URL
    sig_remote = Reranker(server, backend="http", normalize="sigmoid")
    sig_local = Reranker(tiny_bert, normalize="sigmoid")
    _same(sig_remote.rerank(QUERY, TEXTS, score_threshold=0.5), sig_local.rerank(QUERY, TEXTS, score_threshold=0.5))
    fused_remote = Reranker(server, backend="http", fusion="rrf")
    fused_local = Reranker(tiny_bert, fusion="rrf")
    _same(fused_remote.rerank(QUERY, TEXTS), fused_local.rerank(QUERY, TEXTS))


def test_http_backend_one_request_per_rerank(server: str, local: Reranker) -> None:
    before = _metric(server, 'xrerank_requests_total{endpoint="/v1/rerank",status="200"}')
    Reranker(HttpScorer(server)).rerank(QUERY, TEXTS * 10)  # 70 documents, 7 distinct
    after = _metric(server, 'xrerank_requests_total{endpoint="/v1/rerank",status="200"}')
    assert after - before == 1
    # TEI's own servers take 32 texts per request by default: the client splits.
    tei = HttpScorer(server + "/rerank")
    assert tei.batch_pairs == 32
    many = [f"document number {i} about Paris" for i in range(70)]
    before = _metric(server, 'xrerank_requests_total{endpoint="/rerank",status="200"}')
    _same(Reranker(tei).rerank(QUERY, many), local.rerank(QUERY, many))
    assert _metric(server, 'xrerank_requests_total{endpoint="/rerank",status="200"}') - before == 3


def test_probabilities_from_a_cohere_style_server_become_logits(server: str, local: Reranker) -> None:
    # raw_scores=False is what the client does for api.cohere.com: it reads probabilities back to logits.
    remote = Reranker(HttpScorer(server, raw_scores=False))
    got, want = remote.rerank(QUERY, TEXTS), local.rerank(QUERY, TEXTS)
    assert [r.index for r in got] == [r.index for r in want]
    assert [r.score for r in got] == pytest.approx([r.score for r in want], abs=1e-6)


def test_langchain_and_llamaindex_through_the_server(server: str, local: Reranker) -> None:
    docs = [Document(page_content=t, id=f"d{i}", metadata={"n": i}) for i, t in enumerate(TEXTS)]
    remote_lc = XRerankCompressor(model=server, reranker_options={"backend": "http"}, top_n=4)
    local_lc = XRerankCompressor(reranker=local, top_n=4)
    got, want = remote_lc.compress_documents(docs, QUERY), local_lc.compress_documents(docs, QUERY)
    assert [d.id for d in got] == [d.id for d in want]
    assert [d.metadata["relevance_score"] for d in got] == pytest.approx(
        [d.metadata["relevance_score"] for d in want], abs=1e-6
    )
    got_async = asyncio.run(remote_lc.acompress_documents(docs, QUERY))
    assert [d.id for d in got_async] == [d.id for d in want]

    nodes = [NodeWithScore(node=TextNode(text=t, id_=f"n{i}"), score=1.0 - i / 10) for i, t in enumerate(TEXTS)]
    remote_li = XRerankPostprocessor(model=server + "/rerank", reranker_options={"backend": "http"}, top_n=4)
    local_li = XRerankPostprocessor(reranker=local, top_n=4)
    bundle = QueryBundle(QUERY)
    got_nodes = remote_li.postprocess_nodes(nodes, bundle)
    want_nodes = local_li.postprocess_nodes(nodes, bundle)
    assert [n.node.node_id for n in got_nodes] == [n.node.node_id for n in want_nodes]
    assert [n.score for n in got_nodes] == pytest.approx([n.score for n in want_nodes], abs=1e-6)


def test_cohere_endpoint(server: str, local: Reranker) -> None:
    logits = local.score(QUERY, TEXTS)
    body = {"query": QUERY, "documents": [{"text": t} for t in TEXTS], "top_n": 3, "return_documents": True}
    r = httpx.post(server + "/v1/rerank", json={**body, "model": "anything", "max_chunks_per_doc": 10})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["model"] == "tiny-bert"
    assert isinstance(out["id"], str)
    expected = [x.index for x in local.rerank(QUERY, TEXTS, top_n=3)]
    assert [x["index"] for x in out["results"]] == expected
    for x in out["results"]:
        assert x["relevance_score"] == pytest.approx(1 / (1 + math.exp(-logits[x["index"]])), abs=1e-9)
        assert x["document"] == {"text": TEXTS[x["index"]]}
    plain = httpx.post(server + "/v1/rerank", json={"query": QUERY, "documents": TEXTS}).json()
    assert len(plain["results"]) == len(TEXTS)
    assert all("document" not in x and 0 < x["relevance_score"] < 1 for x in plain["results"])


def test_tei_endpoint(server: str, local: Reranker) -> None:
    logits = local.score(QUERY, TEXTS)
    r = httpx.post(server + "/rerank", json={"query": QUERY, "texts": TEXTS, "raw_scores": True, "return_text": True})
    assert r.status_code == 200, r.text
    out = r.json()
    assert [x["index"] for x in out] == [x.index for x in local.rerank(QUERY, TEXTS)]
    for x in out:
        assert x["score"] == pytest.approx(logits[x["index"]], rel=1e-6, abs=1e-6)
        assert x["text"] == TEXTS[x["index"]]
    out = httpx.post(server + "/rerank", json={"query": QUERY, "texts": TEXTS, "truncate": True}).json()
    assert all(set(x) == {"index", "score"} and 0 < x["score"] < 1 for x in out)


def _metric(server: str, line_start: str) -> float:
    text = httpx.get(server + "/metrics").text
    for line in text.splitlines():
        if line.startswith(line_start + " "):
            return float(line.split()[-1])
    return 0.0


def test_health_and_metrics(server: str) -> None:
    assert httpx.get(server + "/health").json()["status"] == "ok"
    before = _metric(server, 'xrerank_requests_total{endpoint="/rerank",status="422"}')
    httpx.post(server + "/rerank", json={"query": 1, "texts": []})
    r = httpx.get(server + "/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    assert _metric(server, 'xrerank_requests_total{endpoint="/rerank",status="422"}') == before + 1
    assert 'xrerank_request_duration_seconds_bucket{endpoint="/rerank",le="0.005"}' in r.text
    assert "xrerank_documents_total" in r.text


def test_too_many_documents_and_too_large_bodies(tiny_bert: str, local: Reranker) -> None:
    settings = ServerSettings(max_documents=5, max_body_bytes=2000)
    with serving(create_app(local, settings)) as url:
        r = httpx.post(url + "/v1/rerank", json={"query": "q", "documents": ["a"] * 6})
        assert r.status_code == 413
        assert "at most 5" in r.json()["error"]
        r = httpx.post(url + "/rerank", json={"query": "q", "texts": ["a"] * 6})
        assert r.status_code == 413
        big = {"query": "q", "documents": ["x" * 3000]}
        r = httpx.post(url + "/v1/rerank", json=big)
        assert r.status_code == 413
        assert "larger than 2000 bytes" in r.json()["error"]

        def chunks() -> Iterator[bytes]:  # no Content-Length: the server counts as it reads
            yield b'{"query": "q", "documents": ["'
            for _ in range(10):
                yield b"y" * 500
            yield b'"]}'

        r = httpx.post(url + "/v1/rerank", content=chunks(), headers={"content-type": "application/json"})
        assert r.status_code == 413, r.text
        assert httpx.post(url + "/v1/rerank", json={"query": "q", "documents": ["a"] * 5}).status_code == 200
        # The client explains what to do about it.
        with pytest.raises(HTTPBackendError, match=r"HTTP 413.*at most 5.*batch_pairs") as info:
            Reranker(url, backend="http").rerank("q", [f"doc {i}" for i in range(6)])
        assert info.value.status_code == 413
        assert Reranker(HttpScorer(url, batch_pairs=5)).score("q", [f"doc {i}" for i in range(6)]) == pytest.approx(
            local.score("q", [f"doc {i}" for i in range(6)]), abs=1e-6
        )


def test_api_key(local: Reranker, monkeypatch: pytest.MonkeyPatch) -> None:
    with serving(create_app(local, ServerSettings(api_key="s3cret"))) as url:
        assert httpx.get(url + "/health").status_code == 200
        r = httpx.post(url + "/v1/rerank", json={"query": "q", "documents": ["a"]})
        assert r.status_code == 401
        assert "Authorization: Bearer" in r.json()["error"]
        assert r.headers["www-authenticate"] == "Bearer"
        wrong = {"authorization": "Bearer nope"}
        assert httpx.post(url + "/rerank", json={"query": "q", "texts": ["a"]}, headers=wrong).status_code == 401
        assert httpx.get(url + "/metrics").status_code == 401
        with pytest.raises(HTTPBackendError, match=r"HTTP 401.*api_key"):
            Reranker(HttpScorer(url, api_key="nope")).score("q", ["a"])
        assert Reranker(HttpScorer(url, api_key="s3cret")).score("q", ["a"]) == pytest.approx(
            local.score("q", ["a"]), abs=1e-6
        )
        monkeypatch.setenv("XRERANK_API_KEY", "s3cret")
        assert len(Reranker(HttpScorer(url + "/rerank")).rerank("q", ["a", "b"])) == 2
        spec = httpx.get(url + "/openapi.json").json()
        assert "HTTPBearer" in spec["components"]["securitySchemes"]


def test_behind_a_route_prefix_the_checks_see_the_apps_own_paths() -> None:
    # A proxy that mounts the app under a prefix (Ray Serve's route_prefix, uvicorn --root-path) keeps
    # the prefix in scope["path"] and sets scope["root_path"]: /health stays open, 415 and metrics still apply.
    from starlette.testclient import TestClient

    app = create_app(Reranker(FakeScorer()), ServerSettings(api_key="k"))
    key = {"authorization": "Bearer k"}
    with TestClient(app, base_url="http://testserver/xrerank", root_path="/xrerank") as client:
        assert client.get("/health").status_code == 200
        assert client.get("/metrics").status_code == 401
        r = client.post("/v1/rerank", content=b"hello", headers={**key, "content-type": "text/plain"})
        assert r.status_code == 415
        assert r.json()["error_type"] == "unsupported_media_type"
        assert client.post("/rerank", json={"query": "dog", "texts": ["a dog"]}, headers=key).status_code == 200
        metrics = client.get("/metrics", headers=key).text
    assert 'xrerank_requests_total{endpoint="/health",status="200"} 1.0' in metrics
    assert 'xrerank_requests_total{endpoint="/v1/rerank",status="415"} 1.0' in metrics
    assert 'xrerank_requests_total{endpoint="/rerank",status="200"} 1.0' in metrics
    assert 'endpoint="other"' not in metrics


class SlowScorer(FakeScorer):
    def __init__(self, delay: float, nan_on: str | None = None) -> None:
        super().__init__(name="slow", nan_on=nan_on)
        self.delay = delay
        self.busy = threading.Event()

    def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        self.busy.set()
        time.sleep(self.delay)
        return super().score_pairs(pairs)


def test_timeouts_are_504_and_a_full_queue_is_503() -> None:
    slow = Reranker(SlowScorer(1.0))
    with serving(create_app(slow, ServerSettings(timeout_s=0.3, max_concurrency=1))) as url:
        results: list[httpx.Response] = []

        def call() -> None:
            results.append(httpx.post(url + "/v1/rerank", json={"query": "q", "documents": ["q a"]}, timeout=10))

        threads = [threading.Thread(target=call) for _ in range(2)]
        for t in threads:
            t.start()
            time.sleep(0.05)
        for t in threads:
            t.join()
        codes = sorted(r.status_code for r in results)
        assert codes == [503, 504], [r.text for r in results]
        by_code = {r.status_code: r.json() for r in results}
        assert "longer than 0.3 s" in by_code[504]["error"]
        assert "busy" in by_code[503]["error"]
        time.sleep(1.0)  # the abandoned work finishes and frees its slot
        with pytest.raises(HTTPBackendError, match="HTTP 504"):
            Reranker(HttpScorer(url, retries=0)).score("q", ["q a"])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_connection_errors_are_retried_then_reported(local: Reranker) -> None:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    start = time.monotonic()
    with pytest.raises(HTTPBackendError, match=r"could not reach .* after 3 attempt\(s\).*running") as info:
        Reranker(HttpScorer(url, retries=2, backoff=0.05)).score("q", ["a"])
    assert info.value.status_code is None
    assert time.monotonic() - start >= 0.05  # it waited before retrying

    # A server that comes up while the client is retrying is reached.
    app = create_app(local, ServerSettings())
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    starter = threading.Timer(0.5, server.run)
    starter.start()
    try:
        scores = Reranker(HttpScorer(url, retries=8, backoff=0.2)).score(QUERY, TEXTS)
        assert scores == pytest.approx(local.score(QUERY, TEXTS), abs=1e-6)
    finally:
        server.should_exit = True
        starter.join(10)


def test_bad_answers_raise_a_clear_error(server: str) -> None:
    with pytest.raises(HTTPBackendError, match="HTTP 422: documents: Field required"):
        Reranker(HttpScorer(server + "/v1/rerank", protocol="tei")).score("q", ["a"])
    with pytest.raises(HTTPBackendError, match=r"HTTP 404.*check the URL"):
        Reranker(HttpScorer(server + "/v2/nothing/rerank")).score("q", ["a"])
    # The engine's own checks run before anything is sent.
    with pytest.raises(InputError):
        Reranker(HttpScorer(server)).score("", ["a"])


def test_wrong_answers_are_refused() -> None:
    from fastapi import FastAPI
    from fastapi.responses import PlainTextResponse

    app = FastAPI()

    @app.post("/v1/rerank")  # a Cohere-style server that keeps only the top 1 whatever top_n says
    async def top_one(body: dict) -> dict:  # type: ignore[type-arg]
        return {"results": [{"index": 0, "relevance_score": 0.9}]}

    @app.post("/rerank")  # an object where TEI answers a list
    async def wrong_shape(body: dict) -> dict:  # type: ignore[type-arg]
        return {"scores": [0.1]}

    @app.post("/bad/rerank")  # an index out of range
    async def bad_index(body: dict) -> dict:  # type: ignore[type-arg]
        return {"results": [{"index": 5, "relevance_score": 0.1}]}

    @app.post("/text/rerank", response_class=PlainTextResponse)  # not JSON at all
    async def text(body: dict) -> str:  # type: ignore[type-arg]
        return "ok"

    with serving(app) as url:
        with pytest.raises(HTTPBackendError, match="HTTP 200 with a body that is not JSON"):
            Reranker(url + "/text/rerank").score("q", ["a"])
        with pytest.raises(HTTPBackendError, match="scored 1 of 2 documents"):
            Reranker(url).score("q", ["a", "b"])
        with pytest.raises(HTTPBackendError, match="not a JSON list; is the protocol right"):
            Reranker(url + "/rerank").score("q", ["a"])
        with pytest.raises(HTTPBackendError, match="without a valid index"):
            Reranker(url + "/bad/rerank").score("q", ["a"])


def test_a_tei_server_is_asked_to_truncate_long_documents() -> None:
    """TEI refuses (413) a pair over its token limit unless the request says truncate: true."""
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse

    app = FastAPI()

    @app.post("/rerank")  # TEI's validation, as its answer documents it
    async def tei(body: dict) -> JSONResponse:  # type: ignore[type-arg]
        if not body.get("truncate") and any(len(t.split()) > 50 for t in body["texts"]):
            return JSONResponse({"error": "Input validation error", "error_type": "Validation"}, status_code=413)
        return JSONResponse([{"index": i, "score": float(-len(t))} for i, t in enumerate(body["texts"])])

    with serving(app) as url:
        scores = Reranker(url + "/rerank").score("q", ["short", "word " * 400])
    assert scores == [-5.0, -2000.0]


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"url": "localhost:8000"}, "http:// or https://"),
        ({"url": "http://"}, "no host"),
        ({"url": "http://h", "protocol": "grpc"}, "protocol"),
        ({"url": "http://h", "timeout": 0}, "timeout"),
        ({"url": "http://h", "retries": -1}, "retries"),
        ({"url": "http://h", "batch_pairs": 0}, "batch_pairs"),
    ],
)
def test_bad_client_options(kwargs: dict, needle: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ConfigError, match=needle):
        HttpScorer(**kwargs)


def test_serving_options_are_checked(local: Reranker, tiny_bert: str) -> None:
    with pytest.raises(ConfigError, match="max_documents"):
        ServerSettings(max_documents=0)
    with pytest.raises(ConfigError, match="timeout_s"):
        ServerSettings(timeout_s=-1)
    with pytest.raises(ConfigError, match="normalize='none'"):
        create_app(Reranker(tiny_bert, normalize="sigmoid"))
    with pytest.raises(ConfigError, match="without cascade_top_k"):
        create_app(Reranker(tiny_bert, cascade_top_k=5, cascade_backend="torch"))


def test_cli_serve_runs_a_working_server(tiny_bert: str, local: Reranker) -> None:
    import subprocess
    import sys

    port = _free_port()
    cmd = [sys.executable, "-m", "xrerank_core.cli", "serve", "--model", tiny_bert, "--port", str(port)]
    cmd += ["--read-timeout", "2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(url + "/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(proc.stdout.read() if proc.stdout else "no output")
            time.sleep(0.2)
        out = httpx.post(url + "/rerank", json={"query": QUERY, "texts": TEXTS, "raw_scores": True}).json()
        assert [x["index"] for x in out] == [r.index for r in local.rerank(QUERY, TEXTS)]
        spec = httpx.get(url + "/openapi.json").json()
        assert {"/v1/rerank", "/rerank", "/health", "/metrics"} <= set(spec["paths"])
        assert json.dumps(spec)  # serialisable
        # --read-timeout reaches the server's protocol: a connection that sends nothing is closed.
        with socket.create_connection(("127.0.0.1", port), timeout=15) as silent:
            start = time.monotonic()
            assert silent.recv(100) == b""
            assert time.monotonic() - start < 10
    finally:
        proc.terminate()
        proc.wait(10)


def test_requests_that_wait_together_are_scored_together() -> None:
    slow = SlowScorer(1.0, nan_on="poison")
    rr = Reranker(slow)
    docs = ["q a", "b q q", "c"]

    def burst(url: str, queries: Sequence[str] = ("q", "a b", "\x1c", "c q", "b")) -> list[httpx.Response]:
        out: list[httpx.Response] = []
        lock = threading.Lock()

        def call(query: str) -> None:
            body = {"query": query, "documents": [*docs, query] if "poison" in query else docs, "raw_scores": True}
            r = httpx.post(url + "/v1/rerank", json=body, timeout=30)
            with lock:
                out.append(r)

        slow.busy.clear()
        first = threading.Thread(target=call, args=("q",))  # occupies the only worker
        first.start()
        assert slow.busy.wait(20)
        rest = [threading.Thread(target=call, args=(q,)) for q in queries]
        for t in rest:
            t.start()
        for t in [first, *rest]:
            t.join()
        return out

    with serving(create_app(rr, ServerSettings(max_concurrency=1, max_batch_requests=16))) as url:
        responses = burst(url)
    assert len(slow.batches) == 2  # the first request alone, then the five that waited, in one forward pass
    by_status = sorted(r.status_code for r in responses)
    assert by_status == [200, 200, 200, 200, 200, 422]  # the bad query fails alone
    bad = next(r for r in responses if r.status_code == 422)
    assert "is empty (or only whitespace)" in bad.json()["error"]
    for r in responses:
        if r.status_code == 200:
            got = {x["index"]: x["relevance_score"] for x in r.json()["results"]}
            assert len(got) == 3
    slow.batches.clear()
    with serving(create_app(rr, ServerSettings(max_concurrency=1, max_batch_requests=1))) as url:
        responses = burst(url)
    assert sorted(r.status_code for r in responses) == [200, 200, 200, 200, 200, 422]
    assert len(slow.batches) == 5  # one per request (the bad one never reaches the model)
    # A request whose document makes the model fail (NaN) fails alone; the batch is rescored one by one.
    slow.batches.clear()
    with serving(create_app(rr, ServerSettings(max_concurrency=1))) as url:
        responses = burst(url, ("q", "poison q", "c q"))
    assert sorted(r.status_code for r in responses) == [200, 200, 200, 500]
    failed = next(r for r in responses if r.status_code == 500).json()
    assert failed["error_type"] == "internal"
    assert "returned nan" in failed["error"]


def test_readme_http_backend_snippet_runs(server: str, local: Reranker, capsys: pytest.CaptureFixture[str]) -> None:
    from test_readme import _snippets

    snippets = _snippets("Serving")
    assert len(snippets) == 2  # the http backend here; Ray Serve in test_serve_ray.py
    code = snippets[0].replace('"http://localhost:8000', f'"{server}')
    namespace: dict[str, object] = {"texts": TEXTS}
    exec(code, namespace)
    printed = capsys.readouterr().out.strip()
    want = [(r.index, round(r.score, 3)) for r in local.rerank("capital of France", TEXTS, top_n=2)]
    assert printed == str(want)
    assert namespace["tei"].rerank("capital of France", TEXTS)[0].index == want[0][0]  # type: ignore[attr-defined]


def test_retry_after_is_read_as_seconds_or_as_an_http_date() -> None:
    from xrerank_core._backends._http import _retry_after_seconds

    now = 1_764_000_000.0  # 2025-11-24 16:00:00 GMT
    assert _retry_after_seconds("3") == 3.0
    assert _retry_after_seconds("Mon, 24 Nov 2025 16:00:07 GMT", now=now) == pytest.approx(7.0)
    assert _retry_after_seconds("Mon, 24 Nov 2025 15:59:00 GMT", now=now) == 0.0  # already past
    assert _retry_after_seconds("soon") is None
    assert _retry_after_seconds(None) is None
