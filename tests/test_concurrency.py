"""One shared ``Reranker`` on a real tiny model, hammered from threads and from asyncio.

Concurrent calls must give exactly what the same calls give one after another, never
deadlock (a watchdog fails the test, with every thread's stack, instead of hanging), and
``arerank`` must leave the event loop free to run other tasks.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any

import pytest
from conftest import FakeScorer
from langchain_core.documents import Document
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from langchain_xrerank import XRerankCompressor
from llamaindex_xrerank import XRerankPostprocessor
from xrerank_core import Ranked, Reranker, ScoringError

WATCHDOG_S = 240.0
QUERIES = [
    "what is the capital of france",
    "capital of germany",
    "who sat on the mat",
    "museums in berlin",
    "long documents are split into windows",
    "📚 right-to-left שלום",
    "dogs and cats",
    "nothing matches this at all",
]
DOCS = [
    "Paris is the capital and largest city of France.",
    "Berlin is the capital of Germany; it has many museums.",
    "The cat sat on the mat.",
    "A dog and a cat play in the garden.",
    " ".join(["Long documents are split into overlapping windows and scored by the best one."] * 6),
    "שלום עולם 📚",
]


def _call(i: int) -> tuple[str, list[str], int | None]:
    """The i-th call of the workload: queries, document subsets and top_n all vary."""
    query = QUERIES[i % len(QUERIES)]
    docs = DOCS[i % 3 :] + DOCS[: i % 3]
    return query, docs, (None, 2, 4)[i % 3]


def _stacks() -> str:
    frames = sys._current_frames()
    names = {t.ident: t.name for t in threading.enumerate()}
    return "\n".join(
        f"--- {names.get(ident, ident)}\n" + "".join(traceback.format_stack(frame)) for ident, frame in frames.items()
    )


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """One intra-op thread: on this shared 2-core machine torch's thread pool, oversubscribed by
    the concurrent callers and other jobs, makes each tiny forward pass tens of times slower.
    Correctness under concurrency does not depend on it."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def shared(tiny_bert: str) -> Reranker:
    # batch_size 4: each call is several forward passes, so calls interleave inside the model too.
    return Reranker(tiny_bert, device="cpu", batch_size=4, max_length=48, window_overlap=8)


def test_16_threads_x_100_calls_equal_sequential(shared: Reranker) -> None:
    n_threads, per_thread = 16, 100
    expected = {i: shared.rerank(*_call(i)) for i in range(n_threads * 3)}
    results: dict[tuple[int, int], list[Ranked]] = {}
    start = threading.Barrier(n_threads)

    def worker(t: int) -> None:
        start.wait()
        for k in range(per_thread):
            i = (t * 7 + k) % len(expected)
            results[(t, k)] = shared.rerank(*_call(i))

    with ThreadPoolExecutor(max_workers=n_threads, thread_name_prefix="rerank") as pool:
        futures = [pool.submit(worker, t) for t in range(n_threads)]
        done, pending = wait(futures, timeout=WATCHDOG_S)
        if pending:
            pytest.fail(f"deadlock or stall: {len(pending)} threads still running after {WATCHDOG_S} s\n{_stacks()}")
        for f in done:
            f.result()  # re-raise any worker's error
    assert len(results) == n_threads * per_thread
    for (t, k), got in results.items():
        assert got == expected[(t * 7 + k) % len(expected)], (t, k)


def test_200_concurrent_async_calls_equal_sequential_and_keep_the_loop_free(shared: Reranker) -> None:
    n = 200
    compressor = XRerankCompressor(reranker=shared, top_n=None)
    postprocessor = XRerankPostprocessor(reranker=shared, top_n=None)
    expected = [shared.rerank(*_call(i)) for i in range(n)]

    async def one(i: int) -> list[tuple[int, float]]:
        query, docs, top_n = _call(i)
        if i % 3 == 1:  # through LangChain
            out: Any = await compressor.acompress_documents(
                [Document(page_content=d, id=str(j)) for j, d in enumerate(docs)], query
            )
            return [(int(d.id), d.metadata["relevance_score"]) for d in out][:top_n]
        if i % 3 == 2:  # through LlamaIndex
            nodes = [NodeWithScore(node=TextNode(text=d, id_=str(j))) for j, d in enumerate(docs)]
            out = await postprocessor.apostprocess_nodes(nodes, QueryBundle(query))
            return [(int(x.node.node_id), x.score) for x in out][:top_n]
        return [(r.index, r.score) for r in await shared.arerank(query, docs, top_n=top_n)]

    async def main() -> tuple[list[list[tuple[int, float]]], float, int, float]:
        gaps: list[float] = []
        stop = asyncio.Event()

        async def ticker() -> None:
            last = time.perf_counter()
            while not stop.is_set():
                await asyncio.sleep(0.005)
                now = time.perf_counter()
                gaps.append(now - last)
                last = now

        tick = asyncio.create_task(ticker())
        t0 = time.perf_counter()
        try:
            got = await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(n))), timeout=WATCHDOG_S)
        except TimeoutError:
            pytest.fail(f"deadlock or stall: 200 async calls not done after {WATCHDOG_S} s\n{_stacks()}")
        elapsed = time.perf_counter() - t0
        stop.set()
        await tick
        return got, max(gaps), len(gaps), elapsed

    got, max_gap, ticks, elapsed = asyncio.run(main())
    for i, result in enumerate(got):
        assert result == [(r.index, r.score) for r in expected[i]], i
    # The loop kept turning: a 5 ms ticker never waited long, and ticked through the whole run.
    measured = f"200 async calls: {elapsed:.2f} s, {ticks} ticks, longest loop stall {max_gap * 1000:.0f} ms"
    logging.getLogger(__name__).info(measured)
    assert max_gap < 0.5, measured
    assert ticks >= elapsed / 0.05, measured


# -- faults: one caller's failure or cancellation is that caller's alone ---------------------


class FlakyScorer(FakeScorer):
    """Raises on any batch holding the word "boom", after a short pause (so calls overlap)."""

    def score_pairs(self, pairs):  # type: ignore[no-untyped-def]
        time.sleep(0.002)
        if any("boom" in text for _, text in pairs):
            raise RuntimeError("backend failure")
        return super().score_pairs(pairs)


def test_a_failing_call_does_not_disturb_the_others() -> None:
    rr = Reranker(FlakyScorer(), batch_size=1)
    good, bad = ["dog", "cat", "dog cat"], ["dog", "boom", "cat"]
    expected = rr.rerank("dog cat", good)

    def call(i: int) -> list[Ranked] | str:
        try:
            return rr.rerank("dog cat", bad if i % 4 == 0 else good)
        except ScoringError as exc:  # the backend's own error, chained
            return str(exc.__cause__)

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(call, range(200), timeout=WATCHDOG_S))
    assert all(r == "backend failure" for i, r in enumerate(results) if i % 4 == 0)
    assert all(r == expected for i, r in enumerate(results) if i % 4)
    assert rr.rerank("dog cat", good) == expected  # and it keeps working


def test_cancelled_async_calls_leave_the_reranker_working() -> None:
    rr = Reranker(FlakyScorer(), batch_size=1)
    docs = ["dog", "cat", "dog cat", "fish"]
    expected = rr.rerank("dog cat", docs)

    async def main() -> list[list[Ranked]]:
        tasks = [asyncio.create_task(rr.arerank("dog cat", docs)) for _ in range(40)]
        await asyncio.sleep(0.01)
        for t in tasks[::2]:
            t.cancel()
        done = await asyncio.wait_for(asyncio.gather(*tasks[1::2]), timeout=WATCHDOG_S)
        assert all(t.cancelled() or t.done() for t in tasks[::2])
        return [*done, await asyncio.wait_for(rr.arerank("dog cat", docs), timeout=WATCHDOG_S)]

    assert asyncio.run(main()) == [expected] * 21


def test_16_threads_loading_one_model_at_once_share_one_load(tiny_bert: str, tmp_path: Any) -> None:
    import shutil

    folder = shutil.copytree(tiny_bert, tmp_path / "fresh")  # not loaded by any other test
    start = threading.Barrier(16)

    def load(_: int) -> Reranker:
        start.wait()
        return Reranker(str(folder), device="cpu")

    with ThreadPoolExecutor(max_workers=16) as pool:
        rerankers = list(pool.map(load, range(16), timeout=WATCHDOG_S))
    assert len({id(r.scorer) for r in rerankers}) == 1
    assert rerankers[0].score("capital of france", DOCS) == rerankers[-1].score("capital of france", DOCS)
