"""The speed features: the ONNX backends, the score cache, budget_ms and the cascade.

ONNX tests export the tiny models for real (torch.onnx, onnxruntime's optimizer and
quantiser) into this session's cache folder (conftest) and run them with onnxruntime.
"""

from __future__ import annotations

import json
import logging
import math
import os
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import FakeScorer

from xrerank_core import ConfigError, MissingDependencyError, Reranker, RerankerConfig, ScoringError
from xrerank_core._backends._onnx import OnnxScorer, onnx_cache_root, onnx_installed
from xrerank_core._backends._torch import TorchScorer, cpu_has_matrix_units
from xrerank_core._engine import Ranking

needs_onnx = pytest.mark.skipif(not onnx_installed(), reason="onnxruntime and onnx are not installed")

QUERY = "what is the capital of france?"
DOCS = [
    "Berlin is the capital of Germany and has many museums.",
    "Paris is the capital and most populous city of France.",
    "The Eiffel Tower stands in Paris, on the Champ de Mars.",
    "Bananas are rich in potassium.",
    "France is a country in Western Europe; its capital is Paris.",
    "Madrid is the capital of Spain.",
    "Cross-encoders read the query and the document together.",
    "Lyon is the third-largest city of France.",
]


def _spearman(a: Sequence[float], b: Sequence[float]) -> float:
    def ranks(x: Sequence[float]) -> list[int]:
        order = sorted(range(len(x)), key=lambda i: x[i])
        r = [0] * len(x)
        for pos, i in enumerate(order):
            r[i] = pos
        return r

    ra, rb = ranks(a), ranks(b)
    n = len(a)
    return 1 - 6 * sum((x - y) ** 2 for x, y in zip(ra, rb, strict=True)) / (n * (n * n - 1))


# --------------------------------------------------------------------------- ONNX backend


@needs_onnx
@pytest.mark.parametrize("fixture", ["tiny_bert", "tiny_xlmr", "tiny_bert_2labels"])
def test_onnx_float32_scores_match_torch(fixture: str, request: pytest.FixtureRequest) -> None:
    path = request.getfixturevalue(fixture)
    torch_rr = Reranker(path, backend="torch")
    onnx_rr = Reranker(path, backend="onnx")
    assert isinstance(onnx_rr.scorer, OnnxScorer) and not onnx_rr.scorer.quantized
    assert onnx_rr.max_length == torch_rr.max_length
    assert onnx_rr.scorer.num_special_tokens == torch_rr.scorer.num_special_tokens
    long_doc = " ".join(DOCS * 6)  # longer than the tiny models' limit: split into windows
    texts = [*DOCS, long_doc]
    assert onnx_rr.score(QUERY, texts) == pytest.approx(torch_rr.score(QUERY, texts), abs=1e-4)
    # token spans come from the same fast tokenizer
    assert onnx_rr.scorer.token_offsets(texts) == torch_rr.scorer.token_offsets(texts)


@needs_onnx
def test_onnx_int8_ranks_like_float32(minilm_cross_encoder: str) -> None:
    fp32 = Reranker(minilm_cross_encoder, backend="onnx")
    int8 = Reranker(minilm_cross_encoder, backend="onnx-int8")
    assert isinstance(int8.scorer, OnnxScorer) and int8.scorer.quantized
    assert int8.scorer.path.stat().st_size < fp32.scorer.path.stat().st_size / 2  # int8 weights, bar a few matmuls
    a, b = fp32.score(QUERY, DOCS), int8.score(QUERY, DOCS)
    assert a != b  # quantised: not the same numbers
    assert _spearman(a, b) > 0.9
    assert max(abs(x - y) for x, y in zip(a, b, strict=True)) < 0.1 * (max(a) - min(a)) + 0.05


@needs_onnx
def test_auto_picks_onnx_float32_on_cpu(tiny_bert: str) -> None:
    rr = Reranker(tiny_bert, device="cpu")
    assert isinstance(rr.scorer, OnnxScorer) and not rr.scorer.quantized
    assert isinstance(Reranker(tiny_bert, device="cpu", dtype="bfloat16").scorer, TorchScorer)


def _cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    return {f for line in text.splitlines() if line.startswith("flags") for f in line.split(":", 1)[1].split()}


@pytest.mark.skipif(not Path("/proc/cpuinfo").exists(), reason="reads the CPU flags from /proc/cpuinfo (Linux)")
def test_matrix_unit_check_agrees_with_the_cpu_flags() -> None:
    flags = _cpu_flags()
    assert cpu_has_matrix_units("bfloat16") == bool({"amx_bf16", "avx512_bf16"} & flags)
    assert cpu_has_matrix_units("float32") is True


def test_bfloat16_on_cpu_ranks_like_float32(tiny_bert: str, caplog: pytest.LogCaptureFixture) -> None:
    fp32 = Reranker(tiny_bert, backend="torch", device="cpu")
    with caplog.at_level(logging.WARNING, logger="xrerank_core"):
        bf16 = Reranker(tiny_bert, backend="torch", device="cpu", dtype="bfloat16")
    weights = next(bf16.scorer._model.model.parameters())  # type: ignore[attr-defined]
    assert weights.dtype == torch.bfloat16
    warned = any("emulates" in r.getMessage() for r in caplog.records)
    assert warned == (cpu_has_matrix_units("bfloat16") is False)
    a, b = fp32.score(QUERY, DOCS), bf16.score(QUERY, DOCS)
    assert a != b  # bfloat16 keeps 8 bits of mantissa: not the same numbers
    assert max(abs(x - y) for x, y in zip(a, b, strict=True)) < 0.05 * (max(a) - min(a)) + 0.02


@needs_onnx
def test_export_is_reused_and_a_damaged_file_is_rebuilt(tiny_bert: str) -> None:
    first = OnnxScorer(tiny_bert)
    path = first.path
    assert path.parent.parent == onnx_cache_root()
    expected = first.score_pairs([(QUERY, d) for d in DOCS])
    stamp = path.stat().st_mtime_ns
    again = OnnxScorer(tiny_bert)
    assert again.path == path and path.stat().st_mtime_ns == stamp  # reused, not exported again
    path.write_bytes(b"not an onnx file")
    rebuilt = OnnxScorer(tiny_bert)
    assert rebuilt.path == path and path.stat().st_size > 1000
    assert rebuilt.score_pairs([(QUERY, d) for d in DOCS]) == pytest.approx(expected, abs=1e-6)


@needs_onnx
def test_a_damaged_tokenizer_in_the_export_is_rebuilt(tiny_bert: str) -> None:
    first = OnnxScorer(tiny_bert)
    expected = first.score_pairs([(QUERY, d) for d in DOCS])
    tokenizer = first.path.parent / "tokenizer.json"
    good = tokenizer.read_bytes()
    tokenizer.write_bytes(good[: len(good) // 2])  # cut short: no longer parses
    rebuilt = OnnxScorer(tiny_bert)
    assert tokenizer.read_bytes() == good
    assert rebuilt.score_pairs([(QUERY, d) for d in DOCS]) == pytest.approx(expected, abs=1e-6)
    tokenizer.write_bytes(good.replace(b'"[UNK]"', b'"[UNX]"', 1))  # still parses, but not what was exported
    assert OnnxScorer(tiny_bert).score_pairs([(QUERY, d) for d in DOCS]) == pytest.approx(expected, abs=1e-6)
    assert tokenizer.read_bytes() == good


@needs_onnx
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_side_by_side_sessions_score_in_a_forked_child(tiny_bert: str) -> None:
    # gunicorn --preload with a warm-up call: the child inherits the parent's thread pool without its threads.
    rr = Reranker(tiny_bert, backend="onnx", workers=2, batch_size=1)
    expected = rr.score(QUERY, DOCS)  # several batches: the pool is created here, in the parent
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child)
        os.close(read)
        try:
            import signal

            signal.alarm(60)  # a hang ends the child instead of the test run
            os.write(write, json.dumps(rr.score(QUERY, DOCS)).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        got = pipe.read()
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status), "the child hung scoring (killed by its alarm)"
    assert got and json.loads(got) == pytest.approx(expected, abs=1e-6)


@needs_onnx
def test_side_by_side_workers_share_one_copy_of_the_weights(minilm_cross_encoder: str) -> None:
    OnnxScorer(minilm_cross_encoder)  # exported once, here, so the processes below only load it
    code = (
        "import sys, psutil; from xrerank_core._backends._onnx import OnnxScorer; p = psutil.Process(); "
        "before = p.memory_info().rss; s = OnnxScorer(sys.argv[1], workers=int(sys.argv[2])); "
        "list(s.score_batches([[('q', 'a document ' * 50)]] * 8)); "
        "print((p.memory_info().rss - before) / 2**20)"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    grown = {}
    for workers in (1, 4):
        out = subprocess.run(
            [sys.executable, "-c", code, minilm_cross_encoder, str(workers)],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        )
        grown[workers] = float(out.stdout.split()[-1])
    # The float32 graph is ~87 MiB: a session per worker added about that much per extra worker.
    assert grown[4] - grown[1] < 40, grown


@needs_onnx
def test_new_weights_get_a_new_export(tiny_bert: str, tmp_path: Path) -> None:
    import shutil

    from conftest import _save_bert

    copy = tmp_path / "copy"
    shutil.copytree(tiny_bert, copy)
    other = _save_bert(tmp_path / "other", seed=5)
    assert OnnxScorer(str(copy)).path == OnnxScorer(tiny_bert).path  # same files, same export
    assert OnnxScorer(str(other)).path != OnnxScorer(tiny_bert).path


@needs_onnx
def test_two_processes_export_once(tiny_xlmr: str, tmp_path: Path) -> None:
    code = (
        "import sys; from xrerank_core._backends._onnx import OnnxScorer; "
        "s = OnnxScorer(sys.argv[1]); print(s.path, s.path.stat().st_mtime_ns)"
    )
    env = {**os.environ, "XRERANK_CACHE": str(tmp_path), "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    procs = [
        subprocess.Popen([sys.executable, "-c", code, tiny_xlmr], env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=300)[0].split() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert outs[0] == outs[1]  # the same file, written once (the second waited on the lock and reused it)
    assert len(list((tmp_path / "onnx").glob("*/model.onnx"))) == 1


def test_missing_onnxruntime_names_the_extra(tiny_bert: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # what an absent package looks like to `import`
    with pytest.raises(MissingDependencyError, match=r'pip install "xrerank\[onnx\]"'):
        OnnxScorer(tiny_bert, quantize=True)


@needs_onnx
def test_onnx_backend_refuses_cuda_without_its_provider(tiny_bert: str) -> None:
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has the CUDA provider")
    with pytest.raises(ConfigError, match="onnxruntime-gpu"):
        OnnxScorer(tiny_bert, device="cuda")


@needs_onnx
def test_onnx_scorer_is_thread_safe(tiny_bert: str) -> None:
    rr = Reranker(tiny_bert, backend="onnx", batch_size=2)
    expected = rr.score(QUERY, DOCS)
    results: list[list[float]] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            results.append(rr.score(QUERY, DOCS))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 16
    assert all(r == pytest.approx(expected, abs=1e-6) for r in results)


@needs_onnx
def test_onnx_sessions_side_by_side_score_like_one_session(tiny_bert: str) -> None:
    from xrerank_core._backends._onnx import physical_cores

    default = OnnxScorer(tiny_bert)
    assert default.workers == physical_cores()  # one single-threaded session per core on CPU
    assert OnnxScorer(tiny_bert, threads=2).workers == max(1, physical_cores() // 2)
    texts = [*DOCS, " ".join(DOCS * 6)]
    for quantize in (False, True):
        one = Reranker(OnnxScorer(tiny_bert, quantize=quantize, workers=1), batch_size=2)
        two = Reranker(OnnxScorer(tiny_bert, quantize=quantize, workers=2), batch_size=2)
        assert one._workers() == 1 and two._workers() == 2
        # The same batches give the same numbers (int8 quantises activations per batch, so equal
        # batches matter), whichever session runs them and in whatever order they finish.
        assert two.score(QUERY, texts) == pytest.approx(one.score(QUERY, texts), abs=1e-6)
        jobs = [(QUERY, texts), ("capital of spain", DOCS)]
        for got, want in zip(two.score_many(jobs), one.score_many(jobs), strict=True):
            assert got == pytest.approx(want, abs=1e-6)
    for bad in ({"workers": 0}, {"threads": 0}):
        with pytest.raises(ConfigError, match="must be >= 1"):
            OnnxScorer(tiny_bert, **bad)


@needs_onnx
def test_workers_reach_the_onnx_sessions_through_the_config(tiny_bert: str) -> None:
    one = Reranker(tiny_bert, backend="onnx", workers=1)
    two = Reranker(tiny_bert, backend="onnx", workers=2)
    assert isinstance(one.scorer, OnnxScorer) and isinstance(two.scorer, OnnxScorer)
    assert (one.scorer.workers, two.scorer.workers) == (1, 2)  # not one shared scorer
    assert Reranker(tiny_bert, backend="onnx", workers=2).scorer is two.scorer
    assert two.score(QUERY, DOCS) == pytest.approx(one.score(QUERY, DOCS), abs=1e-6)
    cascade = Reranker(tiny_bert, backend="torch", cascade_top_k=2, cascade_backend="onnx-int8", workers=1)
    cheap = cascade._cascade
    assert cheap is not None
    assert isinstance(cheap.scorer, OnnxScorer) and cheap.scorer.workers == 1
    with pytest.raises(ConfigError, match="workers must be a positive integer"):
        Reranker(tiny_bert, backend="onnx", workers=0)
    with pytest.raises(ConfigError, match="backend='torch' has none"):
        Reranker(tiny_bert, backend="torch", workers=2)


@needs_onnx
def test_int8_keeps_early_ffn_outputs_in_float32_and_scores_each_pair_alone(minilm_cross_encoder: str) -> None:
    import onnx

    int8 = Reranker(minilm_cross_encoder, backend="onnx-int8")
    assert isinstance(int8.scorer, OnnxScorer)
    ops = [n.op_type for n in onnx.load(str(int8.scorer.path)).graph.node]
    layers = ops.count("QAttention")
    assert layers >= 1 and ops.count("MatMul") == (layers + 1) // 2  # float32 FFN outputs, first half
    assert ops.count("MatMulInteger") > 0
    if int8.scorer.workers > 1:
        # One pair per pass: a document's int8 score is the same alone or among others.
        together = int8.score(QUERY, DOCS)
        alone = [int8.score(QUERY, [d])[0] for d in DOCS]
        assert together == alone


class SideBySideScorer(FakeScorer):
    """A scorer that runs ``workers`` batches at once (the optional ``score_batches`` protocol)."""

    def __init__(self, workers: int, seconds: float = 0.05, fail_on: str | None = None) -> None:
        super().__init__(max_length=64)
        self.workers = workers
        self.seconds = seconds
        self.fail_on = fail_on
        self.running = self.most_at_once = 0
        self._count = threading.Lock()
        from concurrent.futures import ThreadPoolExecutor

        self._pool = ThreadPoolExecutor(workers)

    def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        with self._count:
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        try:
            time.sleep(self.seconds)
            if self.fail_on is not None and any(self.fail_on in d for _, d in pairs):
                raise RuntimeError("device lost")
            return super().score_pairs(pairs)
        finally:
            with self._count:
                self.running -= 1

    def score_batches(self, batches: Sequence[Sequence[tuple[str, str]]]) -> Any:
        return self._pool.map(self.score_pairs, batches)


def test_engine_runs_a_scorers_workers_side_by_side(fake: FakeScorer) -> None:
    scorer = SideBySideScorer(workers=3)
    docs = [f"{d} number {i}" for i, d in enumerate(DOCS * 3)]
    rr = Reranker(scorer, batch_size=2, cache_size=100)
    start = time.perf_counter()
    out = rr.score(QUERY, docs)
    elapsed = time.perf_counter() - start
    assert out == Reranker(fake, batch_size=2).score(QUERY, docs)  # same scores, in input order
    assert scorer.most_at_once == 3 and len(scorer.batches) == 12
    assert elapsed < 12 * scorer.seconds * 0.75  # 12 batches of 50 ms ran in rounds, not one by one
    assert rr.score(QUERY, docs) == out and len(scorer.batches) == 12  # then from the cache
    ranked = rr.rerank(QUERY, docs, top_n=5)
    assert [r.score for r in ranked] == sorted(out, reverse=True)[:5]


def test_side_by_side_errors_and_budget() -> None:
    bad = Reranker(SideBySideScorer(workers=2, seconds=0.0, fail_on="Madrid"), batch_size=2)
    with pytest.raises(ScoringError, match=r"SideBySideScorer backend failed on a batch of 2 pairs.*device lost"):
        bad.score(QUERY, DOCS)
    nan = SideBySideScorer(workers=2, seconds=0.0)
    nan.nan_on = "Bananas"
    with pytest.raises(ScoringError, match="returned nan"):
        Reranker(nan, batch_size=2).score(QUERY, DOCS)
    # A budget goes in rounds of `workers` batches and keeps the first stage's best, in order.
    scorer = SideBySideScorer(workers=2, seconds=0.02)
    rr = Reranker(scorer, batch_size=2)
    docs = [f"document {i} about the capital of france" for i in range(80)]
    rr.score("capital france", docs[:8])  # measures the throughput
    out = rr.rerank("capital france", docs, budget_ms=150)
    assert 0 < out.reranked < len(docs)
    assert sorted(r.index for r in out[: out.reranked]) == list(range(out.reranked))
    assert [r.index for r in out[out.reranked :]] == list(range(out.reranked, len(docs)))


# --------------------------------------------------------------------------- score cache


def test_cache_answers_a_repeated_query_without_scoring(fake: FakeScorer) -> None:
    rr = Reranker(fake, cache_size=100)
    first = rr.rerank("capital france", DOCS)
    n = fake.pairs_scored
    again = rr.rerank("capital france", DOCS)
    assert fake.pairs_scored == n  # nothing scored the second time
    assert again == first
    assert rr.cache is not None and rr.cache.hits == len(DOCS)
    rr.rerank("capital spain", DOCS)  # another query: scored
    assert fake.pairs_scored == 2 * n


def test_cache_is_bounded_and_drops_the_least_recently_used(fake: FakeScorer) -> None:
    rr = Reranker(fake, cache_size=3)
    rr.score("q", ["a", "b", "c"])
    rr.score("q", ["a"])  # a is now the most recent
    rr.score("q", ["d"])  # evicts b
    assert rr.cache is not None and len(rr.cache) == 3
    before = fake.pairs_scored
    rr.score("q", ["a", "c", "d"])
    assert fake.pairs_scored == before
    rr.score("q", ["b"])
    assert fake.pairs_scored == before + 1


def test_cache_is_off_by_default_and_validated(fake: FakeScorer) -> None:
    rr = Reranker(fake)
    rr.score("q", ["a"])
    rr.score("q", ["a"])
    assert rr.cache is None and fake.pairs_scored == 2
    for bad in (-1, 1.5, True):
        with pytest.raises(ConfigError, match="cache_size"):
            RerankerConfig(cache_size=bad)  # type: ignore[arg-type]


def test_cache_under_16_threads(fake: FakeScorer) -> None:
    rr = Reranker(fake, cache_size=50)
    queries = [f"capital {w}" for w in ("france", "spain", "germany", "paris")]
    expected = {q: Reranker(FakeScorer()).score(q, DOCS) for q in queries}
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for k in range(20):
                q = queries[(i + k) % len(queries)]
                assert rr.score(q, DOCS) == expected[q]
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert rr.cache is not None and len(rr.cache) <= 50 and rr.cache.hits > 0


# --------------------------------------------------------------------------- budget_ms


class SlowScorer(FakeScorer):
    """The fake scorer, taking a fixed time per token of each pair (padding included)."""

    def __init__(self, seconds_per_token: float) -> None:
        super().__init__(max_length=64)
        self.seconds_per_token = seconds_per_token

    def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        tokens = max(len(self.token_offsets([q])[0]) + len(self.token_offsets([d])[0]) + 3 for q, d in pairs)
        time.sleep(self.seconds_per_token * tokens * len(pairs))
        return super().score_pairs(pairs)


def test_rerank_returns_a_ranking_that_is_a_list(fake: FakeScorer) -> None:
    out = Reranker(fake).rerank("capital france", DOCS, top_n=3)
    assert isinstance(out, list) and isinstance(out, Ranking)
    assert out.reranked == len(DOCS) and len(out) == 3
    assert out == list(out)
    assert Reranker(fake).rerank("q", []).reranked == 0


def test_budget_scores_the_first_candidates_and_keeps_the_rest_in_order() -> None:
    scorer = SlowScorer(seconds_per_token=0.0005)  # ~12 ms per document of ~20 tokens
    rr = Reranker(scorer, batch_size=4)
    docs = [f"document {i} about the capital of france and other things" for i in range(60)]
    rr.score("capital france", docs[:8])  # measures the throughput
    start = time.perf_counter()
    out = rr.rerank("capital france", docs, budget_ms=150)
    elapsed = time.perf_counter() - start
    assert 0 < out.reranked < len(docs)
    assert elapsed < 0.150 * 1.5  # within the budget, allowing a loaded CI machine some slack
    assert len(out) == len(docs)
    scored, rest = out[: out.reranked], out[out.reranked :]
    assert sorted(r.index for r in scored) == list(range(out.reranked))  # the first stage's best
    assert [r.index for r in rest] == list(range(out.reranked, len(docs)))  # then first-stage order
    assert all(r.score == -math.inf for r in rest)
    assert all(math.isfinite(r.score) for r in scored)


def test_budget_large_enough_reranks_everything(fake: FakeScorer) -> None:
    rr = Reranker(fake)
    out = rr.rerank("capital france", DOCS, budget_ms=60_000)
    assert out.reranked == len(DOCS)
    assert out == rr.rerank("capital france", DOCS)


def test_budget_calibrates_on_its_first_call_and_counts_cached_scores_as_free() -> None:
    scorer = SlowScorer(seconds_per_token=0.002)
    rr = Reranker(scorer, cache_size=1000, batch_size=4)
    docs = [f"passage {i} on the capital of france" for i in range(40)]
    first = rr.rerank("capital france", docs, budget_ms=50)
    assert first.reranked >= 1  # the first call scores a few documents to measure the throughput
    rr.score("capital france", docs)  # now every pair is cached
    assert rr.rerank("capital france", docs, budget_ms=50).reranked == len(docs)


def test_budget_keeps_every_cached_document_when_planning_used_the_budget(tiny_bert: str) -> None:
    rr = Reranker(tiny_bert, backend="torch", cache_size=10_000)
    docs = [f"passage {i} on the capital of france and more words here" for i in range(200)]
    expected = rr.score(QUERY, docs)  # every pair is cached now
    out = rr.rerank(QUERY, docs, budget_ms=0.01)  # less than tokenising 200 documents takes
    assert out.reranked == len(docs)
    assert {r.index: r.score for r in out} == pytest.approx(dict(enumerate(expected)))


def test_budget_sigmoid_threshold_and_validation(fake: FakeScorer) -> None:
    scorer = SlowScorer(seconds_per_token=0.001)
    rr = Reranker(scorer, normalize="sigmoid", batch_size=2)
    docs = [f"capital france text {i}" for i in range(30)]
    rr.score("capital france", docs[:4])
    out = rr.rerank("capital france", docs, budget_ms=40)
    assert out.reranked < len(docs) and all(r.score == 0.0 for r in out[out.reranked :])
    kept = rr.rerank("capital france", docs, budget_ms=40, score_threshold=0.5)
    assert all(r.score >= 0.5 for r in kept)
    for bad in (0, -5, math.inf, "100", True):
        with pytest.raises(ConfigError, match="budget_ms"):
            Reranker(fake).rerank("q", ["a"], budget_ms=bad)  # type: ignore[arg-type]


async def _arerank(rr: Reranker, docs: list[str]) -> Ranking:
    return await rr.arerank("capital france", docs, budget_ms=60_000)


def test_arerank_takes_a_budget(fake: FakeScorer) -> None:
    import asyncio

    out = asyncio.run(_arerank(Reranker(fake), DOCS))
    assert out.reranked == len(DOCS) and [r.index for r in out] == [
        r.index for r in Reranker(fake).rerank("capital france", DOCS)
    ]


# --------------------------------------------------------------------------- cascade


@needs_onnx
def test_cascade_rescores_the_cheap_scorers_best_k(tiny_bert: str) -> None:
    rr = Reranker(tiny_bert, backend="onnx", cascade_top_k=3, cascade_backend="onnx-int8")
    cheap = Reranker(tiny_bert, backend="onnx-int8")
    full = Reranker(tiny_bert, backend="onnx")
    out = rr.rerank(QUERY, DOCS)
    assert out.reranked == 3 and len(out) == len(DOCS)
    cheap_scores = cheap.score(QUERY, DOCS)
    best3 = sorted(range(len(DOCS)), key=lambda i: (-cheap_scores[i], i))[:3]
    assert {r.index for r in out[:3]} == set(best3)
    full_scores = full.score(QUERY, DOCS)
    for r in out[:3]:
        assert r.score == pytest.approx(full_scores[r.index], abs=1e-5)
    rest = out[3:]
    assert [r.index for r in rest] == sorted(set(range(len(DOCS))) - set(best3), key=lambda i: (-cheap_scores[i], i))
    assert all(r.score == -math.inf for r in rest)
    assert [r.model_score for r in rest] == pytest.approx([cheap_scores[r.index] for r in rest])
    assert all(r.scored for r in out[:3]) and not any(r.scored for r in rest)
    roomy = rr.rerank(QUERY, DOCS, budget_ms=60_000)  # a budget that fits: the same ranking
    assert roomy.reranked == 3 and [r.index for r in roomy] == [r.index for r in out]
    assert [r.score for r in roomy] == pytest.approx([r.score for r in out])


def test_cascade_with_a_budget_scores_the_cheap_scorers_best_first(tiny_bert: str) -> None:
    full = SlowScorer(seconds_per_token=0.01)  # ~150 ms per document: the expensive model
    rr = Reranker(full, batch_size=2, cascade_top_k=12, cascade_model=tiny_bert, cascade_backend="torch")
    docs = [f"passage {i} on the capital of france, {'and more ' * (i % 5)}" for i in range(30)]
    whole = rr.rerank("capital france", docs)  # warms the cheap model, measures the full one
    assert whole.reranked == 12 and len(whole) == len(docs)
    out = rr.rerank("capital france", docs, budget_ms=1500)  # the cheap pass takes a small part of it
    assert 0 < out.reranked < 12
    cheap = Reranker(tiny_bert, backend="torch").score("capital france", docs)
    best = sorted(range(len(docs)), key=lambda i: (-cheap[i], i))
    scored, rest = out[: out.reranked], out[out.reranked :]
    assert {r.index for r in scored} == set(best[: out.reranked])  # the cheap scorer's best, best first
    assert [r.index for r in rest] == best[out.reranked :]  # then the cheap scorer's order
    assert all(r.scored for r in scored) and not any(r.scored for r in rest)
    assert [r.model_score for r in rest] == pytest.approx([cheap[r.index] for r in rest], abs=1e-5)


# --------------------------------------------------------------------------- budget_ms in the adapters


def _budget_reranker() -> tuple[Reranker, list[str]]:
    rr = Reranker(SlowScorer(seconds_per_token=0.0005), batch_size=4)
    docs = [f"document {i} about the capital of france and other things" for i in range(60)]
    rr.score("capital france", docs[:8])
    return rr, docs


def test_langchain_compressor_takes_a_budget() -> None:
    from langchain_core.documents import Document

    from langchain_xrerank import XRerankCompressor

    rr, texts = _budget_reranker()
    docs = [Document(page_content=t, metadata={"n": i}) for i, t in enumerate(texts)]
    out = XRerankCompressor(reranker=rr, top_n=None, budget_ms=150).compress_documents(docs, "capital france")
    scores = [d.metadata["relevance_score"] for d in out]
    k = sum(s is not None for s in scores)
    assert 0 < k < len(docs) and len(out) == len(docs)
    assert all(isinstance(s, float) for s in scores[:k]) and all(s is None for s in scores[k:])
    assert sorted(d.metadata["n"] for d in out[:k]) == list(range(k))  # the first stage's best
    assert [d.metadata["n"] for d in out[k:]] == list(range(k, len(docs)))  # then in input order
    assert all("relevance_score" not in d.metadata for d in docs)  # the input is untouched
    with pytest.raises(ValueError, match="budget_ms"):
        XRerankCompressor(reranker=rr, budget_ms=0)


def test_llamaindex_postprocessor_takes_a_budget() -> None:
    import asyncio

    from llama_index.core.schema import NodeWithScore, TextNode

    from llamaindex_xrerank import XRerankPostprocessor

    rr, texts = _budget_reranker()
    nodes = [NodeWithScore(node=TextNode(text=t, id_=str(i)), score=1.0 - i / 100) for i, t in enumerate(texts)]
    post = XRerankPostprocessor(reranker=rr, top_n=None, budget_ms=150)
    for out in (
        post.postprocess_nodes(nodes, query_str="capital france"),
        asyncio.run(post.apostprocess_nodes(nodes, query_str="capital france")),
    ):
        k = sum(n.score is not None for n in out)
        assert 0 < k < len(nodes) and len(out) == len(nodes)
        assert all(n.score is None for n in out[k:])
        assert sorted(int(n.node.node_id) for n in out[:k]) == list(range(k))
        assert [int(n.node.node_id) for n in out[k:]] == list(range(k, len(nodes)))
    assert all(n.score is not None for n in nodes)
    with pytest.raises(ValueError, match="budget_ms"):
        XRerankPostprocessor(reranker=rr, budget_ms=-1)


def test_cascade_max_length_reads_the_first_tokens_only(tiny_bert: str) -> None:
    docs = [f"{d} " + "filler words follow here " * 40 for d in DOCS]  # long: several windows each
    rr = Reranker(tiny_bert, backend="torch", cascade_top_k=3, cascade_backend="torch", cascade_max_length=24)
    cheap = rr._cascade
    assert cheap is not None and cheap.max_length == 24 and cheap.long_documents == "truncate"
    short = Reranker(tiny_bert, backend="torch", max_length=24, long_documents="truncate").score(QUERY, docs)
    out = rr.rerank(QUERY, docs)
    best3 = sorted(range(len(docs)), key=lambda i: (-short[i], i))[:3]
    assert out.reranked == 3 and {r.index for r in out[:3]} == set(best3)
    assert [r.model_score for r in out[3:]] == pytest.approx([short[r.index] for r in out[3:]], abs=1e-5)
    full = Reranker(tiny_bert, backend="torch").score(QUERY, docs)  # the full model: every window (MaxP)
    assert [r.score for r in out[:3]] == pytest.approx([full[r.index] for r in out[:3]], abs=1e-5)


def test_cascade_on_one_scorer_keeps_the_cheap_score_of_a_document_it_read_whole(
    tiny_bert: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    long_docs = [f"{d} " + "filler words follow here " * 40 for d in DOCS[:3]]
    docs = [*DOCS, *long_docs]  # the short ones fit in 40 tokens with the query, the long ones do not
    rr = Reranker(tiny_bert, backend="torch", cascade_top_k=len(docs), cascade_backend="torch", cascade_max_length=40)
    assert rr.count_tokens(QUERY, DOCS) is not None and max(len(d.split()) for d in DOCS) < 15
    assert rr._cascade is not None and rr._cascade.scorer is rr.scorer  # one model, one backend: shared
    seen: list[str] = []
    score_pairs = rr.scorer.score_pairs

    def counting(pairs: Any) -> list[float]:
        seen.extend(d for _, d in pairs)
        return score_pairs(pairs)

    monkeypatch.setattr(rr.scorer, "score_pairs", counting)
    out = rr.rerank(QUERY, docs)
    assert out.reranked == len(docs) and all(r.scored for r in out)
    # The cheap pass read every document (the long ones cut); the full pass only the long ones' windows.
    full_reads = seen[len(docs) :]
    assert len(seen) > len(docs) and full_reads and all(any(w in d for d in long_docs) for w in full_reads)
    assert not any(w in DOCS for w in full_reads)
    monkeypatch.undo()
    full = Reranker(tiny_bert, backend="torch").score(QUERY, docs)  # every document, the full model
    assert {r.index: r.score for r in out} == pytest.approx(dict(enumerate(full)), abs=1e-5)


def test_cascade_as_long_as_the_full_model_rescores_what_the_full_model_splits(tiny_bert: str) -> None:
    rr = Reranker(
        tiny_bert, backend="torch", max_length=48, cascade_top_k=3, cascade_backend="torch", cascade_max_length=48
    )
    assert rr._cascade is not None and rr._cascade.scorer is rr.scorer
    q_tokens = len(rr.scorer.token_offsets([QUERY])[0])
    room = 48 - rr.scorer.num_special_tokens - q_tokens  # one pair holds this many document tokens
    doc = " ".join(["paris"] * room)  # fits one pair whole, but not one MaxP window (a few tokens shorter)
    assert len(rr.scorer.token_offsets([doc])[0]) == room
    docs = [doc, DOCS[0], DOCS[1]]
    full = Reranker(tiny_bert, backend="torch", max_length=48).score(QUERY, docs)
    whole = rr.scorer.score_pairs([(QUERY, doc)])[0]  # what the cheap pass reads: the uncut pair
    assert abs(whole - full[0]) > 1e-6  # the tiny model's scores are close together, but not this close
    out = rr.rerank(QUERY, docs)
    assert {r.index: r.score for r in out} == pytest.approx(dict(enumerate(full)), abs=1e-7, rel=0)


@pytest.mark.parametrize("max_length", [16, 18, 20, 24])
def test_a_short_max_length_keeps_query_and_window_within_it(
    tiny_bert: str, max_length: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    rr = Reranker(tiny_bert, backend="torch", max_length=max_length)
    query = "what is the capital city of the french republic and where is it"
    doc = "Paris is the capital and most populous city of France, on the Seine. " * 3
    seen: list[tuple[str, str]] = []
    score_pairs = rr.scorer.score_pairs

    def recording(pairs: Any) -> list[float]:
        seen.extend(pairs)
        return score_pairs(pairs)

    monkeypatch.setattr(rr.scorer, "score_pairs", recording)  # the scorer is shared: undone after the test
    rr.score(query, [doc])
    offsets = rr.scorer.token_offsets
    longest = max(len(offsets([q])[0]) + len(offsets([d])[0]) + rr.scorer.num_special_tokens for q, d in seen)
    assert longest <= max_length  # nothing left for the tokenizer to cut from the query or the window


def test_cascade_options_are_validated(fake: FakeScorer) -> None:
    for bad in (8, 0, 2.5, True):
        with pytest.raises(ConfigError, match="cascade_max_length"):
            RerankerConfig(cascade_max_length=bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="cascade_top_k"):
        RerankerConfig(cascade_top_k=0)
    with pytest.raises(ConfigError, match="cascade_backend"):
        RerankerConfig(cascade_backend="tensorflow")
    with pytest.raises(ConfigError, match="cascade_model"):
        Reranker(fake, cascade_top_k=5)  # a ready Scorer has no name to load a cheaper version of


def test_cascade_with_a_cheaper_model(tiny_bert: str, tiny_xlmr: str) -> None:
    rr = Reranker(tiny_bert, backend="torch", cascade_top_k=2, cascade_model=tiny_xlmr, cascade_backend="torch")
    out = rr.rerank(QUERY, DOCS, top_n=4)
    assert out.reranked == 2 and len(out) == 4
    cheap = Reranker(tiny_xlmr, backend="torch").score(QUERY, DOCS)
    best2 = sorted(range(len(DOCS)), key=lambda i: (-cheap[i], i))[:2]
    assert {r.index for r in out[:2]} == set(best2)
