"""The README's "Bad requests" table, row by row, against a real uvicorn server on loopback.

Each ``test_<row>`` is one row of the table (the row's id with ``-`` written ``_``): every bad
request gets a 4xx whose JSON body names the problem, never a 5xx; only a real fault of the
server (its model raising) is a 500, and still JSON. After every test the server must still
answer a good request with exactly the in-process reranker's result. Slow clients (raw sockets
that stall or trickle) and bad requests interleaved with good ones from many threads are
checked at the end. ``test_readme_table_matches_these_tests`` keeps the table and this module
in step.
"""

from __future__ import annotations

import inspect
import math
import re
import socket
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import FakeScorer, serving

from xrerank_core import Reranker
from xrerank_core.serve import ServerSettings, create_app

README = Path(__file__).resolve().parents[1] / "README.md"
READ_TIMEOUT = 2.0  # the server's --read-timeout here: stalled clients are cut off after it
MAX_DOCUMENTS = 8
MAX_BODY = 4000
QUERY = "what is the capital of France?"
DOCS = ["Paris is the capital of France.", "Berlin is the capital of Germany.", "France borders Spain."]


@pytest.fixture(scope="module")
def local(tiny_bert: str) -> Reranker:
    return Reranker(tiny_bert)


@pytest.fixture(scope="module")
def server(local: Reranker) -> Iterator[str]:
    settings = ServerSettings(max_documents=MAX_DOCUMENTS, max_body_bytes=MAX_BODY, read_timeout_s=READ_TIMEOUT)
    with serving(create_app(local, settings)) as url:
        yield url


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _good(url: str, local: Reranker, query: str = QUERY, docs: Sequence[str] = DOCS, timeout: float = 30) -> float:
    """Send a good request; check it equals the in-process reranker's answer; return its latency."""
    start = time.monotonic()
    r = httpx.post(url + "/v1/rerank", json={"query": query, "documents": list(docs)}, timeout=timeout)
    elapsed = time.monotonic() - start
    assert r.status_code == 200, r.text
    want = local.rerank(query, list(docs))
    got = r.json()["results"]
    assert [x["index"] for x in got] == [w.index for w in want]
    assert [x["relevance_score"] for x in got] == pytest.approx([_sigmoid(w.score) for w in want], abs=1e-5)
    return elapsed


@pytest.fixture(autouse=True)
def still_serving(request: pytest.FixtureRequest) -> Iterator[None]:
    """After every test here, the module's server still answers a good request correctly."""
    yield
    if "server" in request.fixturenames:
        _good(request.getfixturevalue("server"), request.getfixturevalue("local"))


def _refused(r: httpx.Response, status: int, error_type: str, *needles: str) -> dict[str, Any]:
    """The answer is ``status`` with a JSON error body of that type naming every needle."""
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"] == "application/json", r.headers
    body = r.json()
    assert set(body) == {"error", "error_type"}, body
    assert body["error_type"] == error_type, body
    for needle in needles:
        assert needle in body["error"], (needle, body)
    return body


def _post(url: str, path: str, payload: object, **kwargs: Any) -> httpx.Response:
    if isinstance(payload, bytes):
        headers = {"content-type": "application/json", **kwargs.pop("headers", {})}
        return httpx.post(url + path, content=payload, headers=headers, **kwargs)
    return httpx.post(url + path, json=payload, **kwargs)


# -- raw sockets -------------------------------------------------------------------------


def _connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=30)


def _head(path: str = "/v1/rerank", length: int | None = 200, extra: str = "") -> bytes:
    size = f"Content-Length: {length}\r\n" if length is not None else "Transfer-Encoding: chunked\r\n"
    return f"POST {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n{size}{extra}\r\n".encode()


def _until_closed(sock: socket.socket, limit: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and the seconds that took."""
    start = time.monotonic()
    sock.settimeout(limit)
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data, time.monotonic() - start
        data += chunk


def _json_answer(raw: bytes) -> tuple[int, dict[str, Any]]:
    import json

    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    assert b"content-type: application/json" in head.lower(), head
    return status, json.loads(body)


# -- the table's rows, in its order ---------------------------------------------------


def test_malformed_json(server: str) -> None:
    for payload in (b'{"query": "x", "documents": [', b"{'query': 'x'}", b"not json at all", b'{"query": "x",}'):
        _refused(_post(server, "/v1/rerank", payload), 422, "validation", "not valid JSON")
    _refused(_post(server, "/rerank", b'{"query": "x", "texts": ["a"'), 422, "validation", "not valid JSON")
    _refused(_post(server, "/v1/rerank", b""), 422, "validation", "no JSON body")


@pytest.mark.parametrize(
    ("path", "payload", "needle"),
    [
        ("/v1/rerank", {"query": 3, "documents": ["a"]}, "query: Input should be a valid string"),
        ("/v1/rerank", {"query": ["q"], "documents": ["a"]}, "query: Input should be a valid string"),
        ("/v1/rerank", {"query": "q", "documents": "a single string"}, "documents: Input should be a valid list"),
        ("/v1/rerank", {"query": "q", "documents": {"text": "a"}}, "documents: Input should be a valid list"),
        (
            "/v1/rerank",
            {"query": "q", "documents": ["a", 2]},
            'documents.1: must be a string or an object with a string "text"',
        ),
        ("/v1/rerank", {"query": "q", "documents": [None]}, "documents.0: must be a string or an object"),
        ("/v1/rerank", {"query": "q", "documents": [{"txt": "a"}]}, "documents.0: must be a string or an object"),
        ("/v1/rerank", {"query": "q", "documents": ["a"], "raw_scores": "true"}, "raw_scores"),
        ("/v1/rerank", {"query": "q", "documents": ["a"], "return_documents": "yes"}, "return_documents"),
        ("/rerank", {"query": "q", "texts": [1, 2]}, "texts.0"),
        ("/rerank", {"query": "q", "texts": ["a", None]}, "texts.1: Input should be a valid string"),
        ("/rerank", {"query": "q", "texts": "a"}, "texts: Input should be a valid list"),
        ("/rerank", {"query": "q", "texts": ["a"], "raw_scores": 1}, "raw_scores"),
    ],
)
def test_wrong_types(server: str, path: str, payload: object, needle: str) -> None:
    _refused(_post(server, path, payload), 422, "validation", needle)


def test_bad_top_n(server: str, local: Reranker) -> None:
    for top_n in ("3", -1, 0, 1.5, True, [2]):
        r = _post(server, "/v1/rerank", {"query": "q", "documents": ["a"], "top_n": top_n})
        _refused(r, 422, "validation", "top_n")
    # A whole float is a whole number (JSON Schema's integer).
    r = _post(server, "/v1/rerank", {"query": QUERY, "documents": DOCS, "top_n": 2.0})
    assert [x["index"] for x in r.json()["results"]] == [w.index for w in local.rerank(QUERY, DOCS, top_n=2)]


@pytest.mark.parametrize(
    ("path", "payload", "needle"),
    [
        ("/v1/rerank", {"documents": ["a"]}, "query: Field required"),
        ("/v1/rerank", {"query": "q"}, "documents: Field required"),
        ("/rerank", {"query": "q", "documents": ["a"]}, "texts: Field required"),  # Cohere's body sent to TEI
        ("/v1/rerank", {}, "query: Field required; documents: Field required"),
        ("/v1/rerank", [1, 2], "body: Input should be a valid dictionary"),
        ("/rerank", "q", "body: Input should be a valid dictionary"),
    ],
)
def test_missing_field(server: str, path: str, payload: object, needle: str) -> None:
    _refused(_post(server, path, payload), 422, "validation", needle)


@pytest.mark.parametrize("query", ["", "   ", "\n\t\u00a0\u3000"])
def test_empty_query(server: str, query: str) -> None:
    _refused(_post(server, "/v1/rerank", {"query": query, "documents": ["a"]}), 422, "validation", "query: is empty")
    _refused(_post(server, "/rerank", {"query": query, "texts": ["a"]}), 422, "validation", "query: is empty")
    _refused(_post(server, "/v1/rerank", {"query": query, "documents": []}), 422, "validation", "query: is empty")


def test_empty_documents(server: str) -> None:
    r = _post(server, "/v1/rerank", {"query": "q", "documents": []})
    assert r.status_code == 200, r.text
    assert r.json()["results"] == []
    r = _post(server, "/rerank", {"query": "q", "texts": []})
    assert (r.status_code, r.json()) == (200, [])


def test_lone_surrogate(server: str) -> None:
    _refused(_post(server, "/v1/rerank", b'{"query": "\\ud800", "documents": ["a"]}'), 422, "validation", "query")
    body = b'{"query": "q", "documents": ["fine", "bad \\udc80 text"]}'
    _refused(_post(server, "/v1/rerank", body), 422, "validation", "documents.1", "not valid Unicode")


def test_invalid_utf8(server: str) -> None:
    for body in (b'{"query": "caf\xe9", "documents": ["a"]}', b'{"query": "q", "documents": ["\xff\xfe"]}'):
        _refused(_post(server, "/v1/rerank", body), 400, "bad_request", "UTF-8")


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data", None]
)
def test_wrong_content_type(server: str, content_type: str | None) -> None:
    headers = {"content-type": content_type} if content_type else {}
    body = b'{"query": "q", "documents": ["a"]}'
    for path in ("/v1/rerank", "/rerank"):
        r = httpx.post(server + path, content=body, headers=headers)
        _refused(r, 415, "unsupported_media_type", "Content-Type: application/json", content_type or "no Content-Type")
    # JSON media types with parameters, in any case, are JSON.
    for ok in ("application/json; charset=utf-8", "Application/JSON", "application/vnd.api+json"):
        assert httpx.post(server + "/v1/rerank", content=body, headers={"content-type": ok}).status_code == 200


def test_oversized_body(server: str) -> None:
    big = {"query": "q", "documents": ["x" * (MAX_BODY + 10)]}
    _refused(_post(server, "/v1/rerank", big), 413, "too_large", f"larger than {MAX_BODY} bytes", "--max-body-bytes")

    def chunks() -> Iterator[bytes]:  # no Content-Length: the server counts as it reads
        yield b'{"query": "q", "texts": ["'
        for _ in range(20):
            yield b"y" * 500
        yield b'"]}'

    r = httpx.post(server + "/rerank", content=chunks(), headers={"content-type": "application/json"})
    _refused(r, 413, "too_large", f"larger than {MAX_BODY} bytes")
    # A Content-Length too large is refused before any of the body is read: the head alone gets the answer.
    with _connect(server) as sock:
        sock.sendall(_head(length=10**9))
        raw, _ = _until_closed(sock, 10)  # answered without waiting for the body, then closed
    status, body = _json_answer(raw)
    assert status == 413
    assert "--max-body-bytes" in body["error"]
    # Just under the limit is fine.
    under = {"query": "q", "documents": ["z" * (MAX_BODY - 100)]}
    assert _post(server, "/v1/rerank", under).status_code == 200


def test_too_many_documents(server: str) -> None:
    many = [f"document {i}" for i in range(MAX_DOCUMENTS + 1)]
    r = _post(server, "/v1/rerank", {"query": "q", "documents": many})
    _refused(r, 413, "too_large", f"{MAX_DOCUMENTS + 1} documents", f"at most {MAX_DOCUMENTS}", "split the request")
    _refused(_post(server, "/rerank", {"query": "q", "texts": many}), 413, "too_large", "texts")
    assert len(_post(server, "/v1/rerank", {"query": "q", "documents": many[:-1]}).json()["results"]) == MAX_DOCUMENTS


def test_unknown_route(server: str) -> None:
    for path in ("/", "/v2/rerank", "/rerank/", "/v1/rerank/extra"):
        _refused(httpx.post(server + path, json={"query": "q"}), 404, "not_found", f"nothing at {path}", "/v1/rerank")
    _refused(httpx.get(server + "/nope"), 404, "not_found", "nothing at /nope")


def test_wrong_method(server: str) -> None:
    for method, path in (("GET", "/v1/rerank"), ("PUT", "/rerank"), ("DELETE", "/v1/rerank"), ("POST", "/health")):
        r = httpx.request(method, server + path)
        allowed = "GET" if path == "/health" else "POST"
        _refused(r, 405, "method_not_allowed", f"{method} is not allowed on {path}", f"use {allowed}")


def test_wrong_api_key(local: Reranker) -> None:
    with serving(create_app(local, ServerSettings(api_key="s3cret", max_body_bytes=MAX_BODY))) as url:
        body = {"query": QUERY, "documents": DOCS}
        for headers in (
            {},
            {"authorization": "Bearer nope"},
            {"authorization": "s3cret"},
            {"authorization": "Basic s3cret"},
        ):
            r = httpx.post(url + "/v1/rerank", json=body, headers=headers)
            _refused(r, 401, "unauthorized", "Authorization: Bearer")
            assert r.headers["www-authenticate"] == "Bearer"
        # Checked before the body is read or judged: an oversized or broken body without the key is 401 too.
        r = httpx.post(url + "/rerank", content=b"x" * (MAX_BODY * 2), headers={"content-type": "text/plain"})
        _refused(r, 401, "unauthorized")
        ok = httpx.post(url + "/v1/rerank", json=body, headers={"authorization": "Bearer s3cret"})
        assert [x["index"] for x in ok.json()["results"]] == [w.index for w in local.rerank(QUERY, DOCS)]


def test_stalled_body(server: str) -> None:
    # Headers sent, then part of the body, then nothing: 408 after --read-timeout, and the connection closed.
    with _connect(server) as sock:
        sock.sendall(_head(length=200) + b'{"query": "q", "docu')
        raw, waited = _until_closed(sock, READ_TIMEOUT + 10)
    status, body = _json_answer(raw)
    assert status == 408
    assert body["error_type"] == "read_timeout"
    assert f"within {READ_TIMEOUT:g} s" in body["error"] and "--read-timeout" in body["error"]
    assert b"connection: close" in raw.lower()
    assert READ_TIMEOUT - 0.5 <= waited <= READ_TIMEOUT + 5


def test_trickled_body(server: str) -> None:
    # A byte every 0.2 s never stalls long, but the whole body must be in within --read-timeout.
    body = b'{"query": "q", "documents": ["' + b"a" * 100 + b'"]}'
    with _connect(server) as sock:
        sock.sendall(_head(length=len(body)))
        start = time.monotonic()
        sent = 0
        sock.settimeout(0.2)
        raw = b""
        while sent < len(body) and time.monotonic() - start < READ_TIMEOUT + 10:
            try:
                sock.sendall(body[sent : sent + 1])
            except OSError:  # the server has answered and closed
                break
            sent += 1
            try:
                chunk = sock.recv(65536)
                raw += chunk
                if not chunk or raw:
                    break
            except TimeoutError:
                pass
        if not raw.endswith(b"}"):
            raw += _until_closed(sock, 10)[0]
    assert sent < len(body)  # cut off before the end
    status, answer = _json_answer(raw)
    assert (status, answer["error_type"]) == (408, "read_timeout")
    # Chunked, trickled the same way.
    with _connect(server) as sock:
        sock.sendall(_head(length=None) + b'5\r\n{"que\r\n')
        time.sleep(0.5)
        sock.sendall(b'3\r\nry"\r\n')
        raw, _ = _until_closed(sock, READ_TIMEOUT + 10)
    assert _json_answer(raw)[0] == 408


def test_silent_connection(server: str) -> None:
    # A connection that never sends, and one that sends half a request head: closed after --read-timeout,
    # without an answer (there is no request to answer).
    with _connect(server) as silent, _connect(server) as half:
        half.sendall(b"POST /v1/rerank HTTP/1.1\r\nHost: te")
        for sock in (silent, half):
            raw, waited = _until_closed(sock, READ_TIMEOUT + 10)
            assert raw == b""
            assert waited <= READ_TIMEOUT + 5
    # A kept-alive connection that goes quiet after an answer is closed too.
    with _connect(server) as sock:
        body = b'{"query": "q", "documents": ["a"]}'
        sock.sendall(_head(length=len(body)) + body)
        raw, waited = _until_closed(sock, READ_TIMEOUT * 2 + 10)
    assert raw.startswith(b"HTTP/1.1 200")
    assert waited <= READ_TIMEOUT * 2 + 5


class FailingScorer(FakeScorer):
    """A scorer that raises (a model or hardware fault) on any text containing ``boom``."""

    def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        if any("boom" in text for _, text in pairs):
            raise RuntimeError("device lost")
        return super().score_pairs(pairs)


def test_server_fault(caplog: pytest.LogCaptureFixture) -> None:
    fake = Reranker(FailingScorer())
    with serving(create_app(fake, ServerSettings(max_concurrency=1))) as url:
        r = httpx.post(url + "/v1/rerank", json={"query": "q", "documents": ["a", "boom"]})
        _refused(r, 500, "internal", "RuntimeError: device lost", "server fault")
        r = httpx.post(url + "/rerank", json={"query": "q", "texts": ["boom"]})
        _refused(r, 500, "internal", "device lost")
        assert any("device lost" in rec.getMessage() for rec in caplog.records)  # logged for the operator
        # The server keeps serving, and a fault in one request of a batch fails that request alone.
        results: dict[str, httpx.Response] = {}

        def call(query: str, docs: list[str]) -> None:
            results[query] = httpx.post(url + "/v1/rerank", json={"query": query, "documents": docs}, timeout=30)

        threads = [
            threading.Thread(target=call, args=(f"q{i} a", ["q0 a", "boom"] if i == 3 else ["a b", "a"]))
            for i in range(6)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for query, r in results.items():
            if query == "q3 a":
                _refused(r, 500, "internal", "device lost")
            else:
                assert r.status_code == 200, r.text
                want = fake.rerank(query, ["a b", "a"])
                assert [x["index"] for x in r.json()["results"]] == [w.index for w in want]


# -- slow clients and many at once -------------------------------------------------------


def test_slow_clients_do_not_hold_up_others(server: str, local: Reranker) -> None:
    stalled = []
    for i in range(6):
        sock = _connect(server)
        if i % 3 == 0:
            sock.sendall(_head(length=500) + b'{"query": ')  # a stalled body
        elif i % 3 == 1:
            sock.sendall(b"POST /rerank HTTP/1.1\r\n")  # a stalled head
        stalled.append(sock)  # and the rest send nothing
    try:
        # While they hang, good requests are answered, correctly and promptly.
        for query in (QUERY, "Berlin Germany", "Spain"):
            assert _good(server, local, query, timeout=10) < 10
        # Every one of them is answered (408) or closed within --read-timeout and a margin.
        for i, sock in enumerate(stalled):
            raw, waited = _until_closed(sock, READ_TIMEOUT + 10)
            assert waited <= READ_TIMEOUT + 5
            if i % 3 == 0:
                assert _json_answer(raw)[0] == 408
            else:
                assert raw == b""
    finally:
        for sock in stalled:
            sock.close()


BAD_REQUESTS: list[tuple[str, object, int]] = [
    ("/v1/rerank", b'{"query": "x", "documents": [', 422),
    ("/v1/rerank", {"query": 3, "documents": ["a"]}, 422),
    ("/v1/rerank", {"query": "q", "documents": "abc"}, 422),
    ("/v1/rerank", {"query": "q", "documents": ["a"], "top_n": -1}, 422),
    ("/v1/rerank", {"query": "", "documents": ["a"]}, 422),
    ("/rerank", {"query": "q"}, 422),
    ("/v1/rerank", {"query": "q", "documents": ["x"] * (MAX_DOCUMENTS + 1)}, 413),
    ("/v1/rerank", {"query": "q", "documents": ["x" * MAX_BODY]}, 413),
    ("/v1/rerank", b'{"query": "\xff", "documents": ["a"]}', 400),
    ("/nowhere", {"query": "q"}, 404),
]


def test_bad_and_good_requests_interleaved(server: str, local: Reranker) -> None:
    queries = ["capital of France", "Germany", "Spain borders", "Paris", "Berlin capital", "France"]
    failures: list[str] = []
    lock = threading.Lock()

    def client(n: int) -> None:
        try:
            for k in range(len(BAD_REQUESTS)):
                path, payload, status = BAD_REQUESTS[(n + k) % len(BAD_REQUESTS)]
                r = _post(server, path, payload, timeout=30)
                if r.status_code != status or "error" not in r.json():
                    with lock:
                        failures.append(f"{path} {payload!r:.60}: {r.status_code} {r.text[:100]}")
                query = queries[(n + k) % len(queries)]
                docs = [*DOCS[k % 3 :], f"{query} and more, client {n}"]
                _good(server, local, query, docs)
        except AssertionError as exc:
            with lock:
                failures.append(repr(exc))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads)
    assert failures == []
    metrics = httpx.get(server + "/metrics").text
    assert not re.search(r'xrerank_requests_total\{endpoint="[^"]*",status="5\d\d"\} [1-9]', metrics)


# -- the table and this module stay in step -------------------------------------------

_NOT_ROWS = {
    "test_slow_clients_do_not_hold_up_others",
    "test_bad_and_good_requests_interleaved",
    "test_readme_table_matches_these_tests",
}


def _readme_rows() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text.split("### Bad requests", 1)[1].split("\n#", 1)[0]
    return re.findall(r"^\| `([a-z0-9-]+)` \|", section, flags=re.MULTILINE)


def test_readme_table_matches_these_tests() -> None:
    module = sys.modules[__name__]
    tests = [
        name
        for name, fn in inspect.getmembers(module, inspect.isfunction)
        if name.startswith("test_") and name not in _NOT_ROWS and fn.__module__ == __name__
    ]
    rows = _readme_rows()
    assert len(rows) == len(set(rows)) >= 17
    order = sorted(tests, key=lambda n: inspect.getsourcelines(getattr(module, n))[1])
    assert [f"test_{r.replace('-', '_')}" for r in rows] == order
