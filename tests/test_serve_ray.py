"""The service on Ray Serve (a local Ray instance): two replicas, the same API, a replica killed mid-run."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

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


@pytest.fixture(scope="module")
def nan_bert(tiny_bert: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The tiny model with a NaN embedding for the word "boom": a text holding it scores NaN, the others do not."""
    import torch
    from transformers import AutoTokenizer, BertForSequenceClassification

    folder = tmp_path_factory.mktemp("nan-bert")
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    model = BertForSequenceClassification.from_pretrained(tiny_bert)
    (boom,) = tokenizer("boom", add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        model.bert.embeddings.word_embeddings.weight[boom] = float("nan")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


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


def test_under_a_route_prefix_a_failing_request_fails_alone_in_its_batch(ray_url: str, nan_bert: str) -> None:
    app = ray_deployment(
        nan_bert,
        settings=ServerSettings(model_name="nan-bert", api_key="k"),
        num_replicas=1,
        ray_actor_options={"num_cpus": 0.5},
        max_batch_size=2,
        batch_wait_timeout_s=2.0,  # the two requests below wait for each other: one batch
        name="xrerank-prefixed",
    )
    serve.run(app, name="xrerank-prefixed", route_prefix="/prefixed")
    base, key = ray_url + "/prefixed", {"Authorization": "Bearer k"}
    try:
        # Ray keeps the prefix in the request's path (and sets root_path): the checks see /health, /v1/rerank.
        assert httpx.get(base + "/health").json()["model"] == "nan-bert"  # open without the key
        assert httpx.get(base + "/metrics").status_code == 401
        r = httpx.post(base + "/v1/rerank", content=b"hello", headers={**key, "Content-Type": "text/plain"})
        assert r.status_code == 415
        with ThreadPoolExecutor(2) as pool:
            calls = [
                pool.submit(
                    httpx.post, base + "/rerank", json={"query": "dog", "texts": texts}, headers=key, timeout=60
                )
                for texts in (["a dog", "a cat"], ["boom dog"])
            ]
            good, bad = (c.result() for c in calls)
        assert bad.status_code == 500
        assert "returned nan" in bad.json()["error"]
        assert good.status_code == 200
        local = Reranker(nan_bert)
        assert [x["index"] for x in good.json()] == [r.index for r in local.rerank("dog", ["a dog", "a cat"])]
        metrics = httpx.get(base + "/metrics", headers=key).text
        assert 'xrerank_requests_total{endpoint="/health",status="200"} 1.0' in metrics
        assert 'xrerank_requests_total{endpoint="/rerank",status="500"} 1.0' in metrics
        assert 'endpoint="other"' not in metrics
    finally:
        serve.delete("xrerank-prefixed")


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
