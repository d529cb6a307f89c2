"""The service on Ray Serve (a local Ray instance): two replicas, the same API, a replica killed mid-run."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

ray = pytest.importorskip("ray")
serve = pytest.importorskip("ray.serve")

import httpx  # noqa: E402
from langchain_core.documents import Document  # noqa: E402

from langchain_xrerank import XRerankCompressor  # noqa: E402
from xrerank_core import HttpScorer, Reranker  # noqa: E402
from xrerank_core.serve import ServerSettings, ray_deployment  # noqa: E402

QUERY = "what is the capital of France?"
TEXTS = [
    "Paris is the capital and largest city of France.",
    "Berlin is the capital of Germany.",
    "The Eiffel Tower stands in Paris. " * 40,
    "France borders Spain, Italy and Germany.",
    "Berlin is the capital of Germany.",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def ray_url(tiny_bert: str) -> Iterator[str]:
    port = _free_port()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        app = ray_deployment(
            tiny_bert,
            settings=ServerSettings(model_name="tiny-bert"),
            num_replicas=2,
            ray_actor_options={"num_cpus": 0.5},
        )
        serve.run(app, name="xrerank", route_prefix="/")
        yield f"http://127.0.0.1:{port}"
    finally:
        serve.shutdown()
        ray.shutdown()


def _replicas() -> list[str]:
    return sorted(
        a["name"] for a in ray.util.list_named_actors(all_namespaces=True) if a["name"].startswith("SERVE_REPLICA::")
    )


def test_two_replicas_serve_the_same_api(ray_url: str, tiny_bert: str) -> None:
    local = Reranker(tiny_bert)
    assert len(_replicas()) == 2
    for path in ("", "/rerank"):
        remote = Reranker(HttpScorer(ray_url + path))
        got, want = remote.rerank(QUERY, TEXTS), local.rerank(QUERY, TEXTS)
        assert [r.index for r in got] == [r.index for r in want]
        assert [r.score for r in got] == pytest.approx([r.score for r in want], abs=1e-5)
    docs = [Document(page_content=t, id=str(i)) for i, t in enumerate(TEXTS)]
    compressor = XRerankCompressor(model=ray_url, reranker_options={"backend": "http"}, top_n=3)
    assert [d.id for d in compressor.compress_documents(docs, QUERY)] == [str(r.index) for r in want[:3]]
    assert httpx.get(ray_url + "/health").json()["model"] == "tiny-bert"
    assert httpx.post(ray_url + "/v1/rerank", json={"query": "q", "documents": 3}).status_code == 422


def test_a_replica_killed_under_load_loses_no_request(ray_url: str, tiny_bert: str) -> None:
    local = Reranker(tiny_bert)
    expected = [r.index for r in local.rerank(QUERY, TEXTS)]
    results: list[list[int]] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def client() -> None:
        # The http backend retries connection errors and 502/503 answers.
        rr = Reranker(HttpScorer(ray_url, retries=10, backoff=0.2))
        while not stop.is_set():
            try:
                results.append([r.index for r in rr.rerank(QUERY, TEXTS)])
            except BaseException as exc:  # recorded: the assertion below reports it
                errors.append(exc)

    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(2.0)
    victim = _replicas()[0]
    ray.kill(ray.get_actor(victim, namespace="serve"), no_restart=True)
    time.sleep(4.0)
    stop.set()
    for t in threads:
        t.join(60)
    assert not errors, errors[:3]
    assert len(results) > 8
    assert all(r == expected for r in results)
    # Serve starts a new replica in place of the killed one.
    deadline = time.monotonic() + 60
    while (victim in _replicas() or len(_replicas()) < 2) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert victim not in _replicas()
    assert len(_replicas()) == 2


def test_readme_ray_snippet_runs(ray_url: str, tiny_bert: str) -> None:
    # Last in this module: the README's serve.run replaces the application above.
    from test_readme import _snippets

    code = _snippets("Serving")[1].replace('"xrerank/minilm-scifact"', repr(tiny_bert))
    exec(code, {})
    assert httpx.get(ray_url + "/health").json()["model"] == tiny_bert
    deadline = time.monotonic() + 60
    while len(_replicas()) != 2 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert len(_replicas()) == 2
    local = Reranker(tiny_bert)
    got = Reranker(ray_url).rerank(QUERY, TEXTS)
    assert [r.index for r in got] == [r.index for r in local.rerank(QUERY, TEXTS)]
