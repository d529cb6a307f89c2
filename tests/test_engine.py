"""The engine's contract, on a deterministic fake scorer (mechanics) ."""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from typing import Any

import pytest
from conftest import FakeScorer

from xrerank_core import (
    ConfigError,
    InputError,
    InputTypeError,
    Ranked,
    Reranker,
    RerankerConfig,
    ScoringError,
    XRerankError,
)
from xrerank_core._text import split_windows, with_metadata

DOCS = [
    "the cat sat on the mat",  # 1 ("cat")
    "a dog and a cat play",  # 2 ("dog", "cat")
    "nothing relevant here",  # 0
    "dog",  # 1
]


def test_rerank_orders_by_score_and_keeps_input_order_on_ties(fake: FakeScorer) -> None:
    rr = Reranker(fake)
    ranked = rr.rerank("dog cat", DOCS)
    assert [r.index for r in ranked] == [1, 0, 3, 2]
    assert [r.score for r in ranked] == [2.0, 1.0, 1.0, 0.0]
    assert all(type(r.score) is float for r in ranked)
    assert [r.text for r in ranked] == [DOCS[1], DOCS[0], DOCS[3], DOCS[2]]


def test_score_is_in_input_order(fake: FakeScorer) -> None:
    assert Reranker(fake).score("dog cat", DOCS) == [1.0, 2.0, 0.0, 1.0]


def test_top_n_and_threshold(fake: FakeScorer) -> None:
    rr = Reranker(fake)
    assert [r.index for r in rr.rerank("dog cat", DOCS, top_n=2)] == [1, 0]
    assert [r.index for r in rr.rerank("dog cat", DOCS, score_threshold=1.0)] == [1, 0, 3]
    # threshold first, then the cut
    assert [r.index for r in rr.rerank("dog cat", DOCS, top_n=10, score_threshold=1.5)] == [1]
    assert rr.rerank("dog cat", DOCS, score_threshold=100) == []
    assert len(rr.rerank("dog cat", DOCS, top_n=100)) == 4


def test_threshold_applies_to_the_normalised_score(fake: FakeScorer) -> None:
    rr = Reranker(fake, normalize="sigmoid")
    scores = rr.score("dog cat", DOCS)
    assert scores == pytest.approx([1 / (1 + math.exp(-x)) for x in (1.0, 2.0, 0.0, 1.0)])
    assert all(0.0 < s < 1.0 for s in scores)
    assert [r.index for r in rr.rerank("dog cat", DOCS, score_threshold=0.8)] == [1]


def test_empty_input(fake: FakeScorer) -> None:
    rr = Reranker(fake)
    assert rr.rerank("q", []) == []
    assert rr.score("q", []) == []
    assert fake.batches == []


def test_identical_texts_are_scored_once_and_all_returned(fake: FakeScorer) -> None:
    rr = Reranker(fake)
    docs = ["dog", "cat", "dog", "dog", "cat"]
    ranked = rr.rerank("dog", docs)
    assert fake.pairs_scored == 2
    assert sorted(r.index for r in ranked) == [0, 1, 2, 3, 4]
    assert [r.index for r in ranked] == [0, 2, 3, 1, 4]


@pytest.mark.parametrize(
    ("query", "error"),
    [("", InputError), ("   \n\t", InputError), (None, InputTypeError), (3, InputTypeError), (b"q", InputTypeError)],
)
def test_bad_query(fake: FakeScorer, query: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        Reranker(fake).rerank(query, ["a"])  # type: ignore[arg-type]


def test_bad_documents(fake: FakeScorer) -> None:
    rr = Reranker(fake)
    with pytest.raises(InputTypeError, match="document 1 is a NoneType"):
        rr.rerank("q", ["a", None])  # type: ignore[list-item]
    with pytest.raises(InputTypeError, match="single string"):
        rr.rerank("q", "just one string")
    with pytest.raises(InputTypeError):
        rr.rerank("q", 42)  # type: ignore[arg-type]


@pytest.mark.parametrize("top_n", [0, -1, True, 2.5, "3"])
def test_bad_top_n(fake: FakeScorer, top_n: object) -> None:
    with pytest.raises(ConfigError, match="top_n"):
        Reranker(fake).rerank("q", ["a"], top_n=top_n)  # type: ignore[arg-type]


@pytest.mark.parametrize("threshold", [float("nan"), float("inf"), "0.5"])
def test_bad_threshold(fake: FakeScorer, threshold: object) -> None:
    with pytest.raises(ConfigError, match="score_threshold"):
        Reranker(fake).rerank("q", ["a"], score_threshold=threshold)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "options",
    [
        {"batch_size": 0},
        {"batch_size": -3},
        {"max_length": 4},
        {"normalize": "softmax"},
        {"long_documents": "chunk"},
        {"device": "tpu"},
        {"backend": "tensorflow"},
        {"window_overlap": -1},
        {"batchsize": 8},
    ],
)
def test_bad_options(fake: FakeScorer, options: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        Reranker(fake, **options)


def test_errors_share_one_base() -> None:
    for cls in (ConfigError, InputError, InputTypeError, ScoringError):
        assert issubclass(cls, XRerankError)
    assert issubclass(ConfigError, ValueError)
    assert issubclass(InputTypeError, TypeError)


def test_config_is_frozen() -> None:
    config = RerankerConfig()
    with pytest.raises(AttributeError):
        config.batch_size = 3  # type: ignore[misc]


def test_nan_scores_raise(fake: FakeScorer) -> None:
    rr = Reranker(FakeScorer(nan_on="poison"))
    with pytest.raises(ScoringError, match="nan"):
        rr.rerank("q", ["fine", "poison pill"])


# -- long documents ---------------------------------------------------------------


def test_split_windows_cover_the_document_with_overlap() -> None:
    text = " ".join(f"w{i}" for i in range(25))
    offsets = FakeScorer().token_offsets([text])[0]
    windows = split_windows(text, offsets, budget=10, overlap=3)
    # 25 tokens, 10 per window, >= 3 shared: 4 windows starting at 0, 5, 10, 15
    assert [n for _, n in windows] == [10, 10, 10, 10]
    assert windows[0][0] == " ".join(f"w{i}" for i in range(10))
    assert windows[1][0] == " ".join(f"w{i}" for i in range(5, 15))
    assert windows[-1][0].endswith("w24")  # the last window is full and ends at the end
    assert all(w in text for w, _ in windows)
    assert split_windows(text, offsets, budget=10, overlap=3, truncate=True) == [(windows[0][0], 10)]
    assert split_windows("short text", [(0, 5), (6, 10)], budget=10, overlap=3) == [("short text", 2)]


def test_long_document_maxp_finds_the_answer_at_the_end() -> None:
    fake = FakeScorer(max_length=32)
    filler = " ".join(["filler"] * 200)
    docs = [filler + " needle", "needle haystack"]
    maxp = Reranker(fake).score("needle", docs)
    assert maxp == [1.0, 1.0]
    assert len(fake.batches) >= 1 and fake.pairs_scored > 2  # the long one became several windows
    cut = Reranker(FakeScorer(max_length=32), long_documents="truncate").score("needle", docs)
    assert cut == [0.0, 1.0]


def test_every_window_fits_the_model(fake: FakeScorer) -> None:
    scorer = FakeScorer(max_length=40)
    rr = Reranker(scorer)
    query = "what is the answer"
    rr.score(query, [" ".join(f"word{i}" for i in range(500))])
    for batch in scorer.batches:
        for q, w in batch:
            n = len(scorer.token_offsets([q])[0]) + len(scorer.token_offsets([w])[0]) + scorer.num_special_tokens
            assert n <= scorer.max_length


def test_long_query_is_cut_with_a_warning(fake: FakeScorer, caplog: pytest.LogCaptureFixture) -> None:
    scorer = FakeScorer(max_length=32)
    with caplog.at_level(logging.WARNING):
        Reranker(scorer).score(" ".join(["q"] * 100), ["q doc"])
    assert "only its first 16" in caplog.text
    sent_query = scorer.batches[0][0][0]
    assert len(scorer.token_offsets([sent_query])[0]) == 16


def test_max_length_is_capped_at_the_model_limit(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        rr = Reranker(FakeScorer(max_length=64), max_length=4096)
    assert rr.max_length == 64
    assert "4096" in caplog.text


# -- batching ---------------------------------------------------------------------


def test_batches_are_sorted_by_length_and_respect_the_limits() -> None:
    scorer = FakeScorer(max_length=512)
    docs = [" ".join(["w"] * n) + f" id{n}" for n in (3, 50, 7, 30, 1, 12, 40, 2)]
    Reranker(scorer, batch_size=3).score("q", docs)
    sizes = [len(b) for b in scorer.batches]
    assert sizes == [3, 3, 2]
    lengths = [len(w.split()) for b in scorer.batches for _, w in b]
    assert lengths == sorted(lengths, reverse=True)

    scorer = FakeScorer(max_length=512)
    Reranker(scorer, batch_size=32, max_batch_tokens=120).score("q", docs)
    for batch in scorer.batches:
        longest = max(len(scorer.token_offsets([w])[0]) for _, w in batch) + 1 + scorer.num_special_tokens
        assert len(batch) == 1 or len(batch) * longest <= 120


# -- concurrency ------------------------------------------------------------------


def test_threads_get_the_results_of_sequential_calls(fake: FakeScorer) -> None:
    rr = Reranker(fake)
    queries = [f"dog cat {i}" for i in range(8)]
    expected = {q: rr.rerank(q, DOCS) for q in queries}
    results: dict[str, list[list[Ranked]]] = {q: [] for q in queries}

    def work(q: str) -> None:
        for _ in range(20):
            results[q].append(rr.rerank(q, DOCS))

    threads = [threading.Thread(target=work, args=(q,)) for q in queries]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert all(not t.is_alive() for t in threads)
    for q in queries:
        assert results[q] == [expected[q]] * 20


class SlowScorer(FakeScorer):
    def score_pairs(self, pairs):  # type: ignore[no-untyped-def]
        time.sleep(0.3)
        return super().score_pairs(pairs)


def test_arerank_equals_rerank_and_does_not_block_the_loop() -> None:
    rr = Reranker(SlowScorer())

    async def main() -> tuple[list[Ranked], int]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        task = asyncio.create_task(ticker())
        result = await rr.arerank("dog cat", DOCS, top_n=3)
        task.cancel()
        return result, ticks

    result, ticks = asyncio.run(main())
    assert result == rr.rerank("dog cat", DOCS, top_n=3)
    assert ticks >= 10  # the loop kept running during the 0.3 s of scoring


def test_with_metadata() -> None:
    assert with_metadata("body", {"title": "T", "x": 1}, ["title", "missing"]) == "title: T\nbody"
    assert with_metadata("body", {}, ["title"]) == "body"


def test_numpy_numbers_are_accepted_for_top_n_and_threshold(fake: FakeScorer) -> None:
    import numpy as np

    rr = Reranker(fake)
    assert rr.rerank("dog cat", DOCS, top_n=np.int64(2)) == rr.rerank("dog cat", DOCS, top_n=2)
    assert rr.rerank("dog cat", DOCS, score_threshold=np.float32(1.5)) == rr.rerank(
        "dog cat", DOCS, score_threshold=1.5
    )
    with pytest.raises(ConfigError, match="top_n"):
        rr.rerank("dog cat", DOCS, top_n=np.int64(0))
    with pytest.raises(ConfigError, match="score_threshold"):
        rr.rerank("dog cat", DOCS, score_threshold=np.float64("nan"))


@pytest.mark.parametrize("long_documents", ["maxp", "truncate"])
def test_count_tokens_counts_what_the_model_reads(long_documents: str) -> None:
    fake = FakeScorer(max_length=16)
    rr = Reranker(fake, long_documents=long_documents, window_overlap=2, batch_size=1000)
    texts = ["a b c", " ".join(f"w{i}" for i in range(40)), "a b c", ""]  # a duplicate, a long one, an empty one
    counted = rr.count_tokens("q r", texts)
    rr.score("q r", texts)
    fed = sum(len(fake.token_offsets([q])[0]) + len(fake.token_offsets([d])[0]) + 3 for b in fake.batches for q, d in b)
    assert counted == fed
    assert (counted > 16 * 3) == (long_documents == "maxp")  # MaxP reads the long text's every window
    with pytest.raises(InputError):
        rr.count_tokens("", texts)


def test_numpy_numbers_are_accepted_for_first_stage_scores_and_budget(fake: FakeScorer) -> None:
    import numpy as np

    rr = Reranker(fake, fusion="zscore")
    floats = [0.9, 0.5, 0.7, 0.1]
    want = rr.rerank("dog cat", DOCS, first_stage_scores=floats)
    for dtype in (np.float32, np.float64):
        got = rr.rerank("dog cat", DOCS, first_stage_scores=np.array(floats, dtype=dtype))
        assert [r.index for r in got] == [r.index for r in want]
        assert [r.score for r in got] == pytest.approx([r.score for r in want], abs=1e-6)
    ranks = rr.rerank("dog cat", DOCS, first_stage_scores=np.array([4, 3, 2, 1], dtype=np.int64))
    assert ranks == rr.rerank("dog cat", DOCS, first_stage_scores=[4, 3, 2, 1])
    assert rr.rerank("dog cat", DOCS, budget_ms=np.float32(10_000)).reranked == len(DOCS)
    with pytest.raises(InputError, match=r"first_stage_scores\[1\] is np\.float32\(nan\), not a finite number"):
        rr.rerank("dog cat", DOCS, first_stage_scores=np.array([1, np.nan, 2, 3], dtype=np.float32))
    with pytest.raises(InputError, match="not a finite number"):
        rr.rerank("dog cat", DOCS, first_stage_scores=[True, 1.0, 2.0, 3.0])
    with pytest.raises(ConfigError, match="budget_ms"):
        rr.rerank("dog cat", DOCS, budget_ms=np.float64("inf"))


def test_max_query_tokens_above_half_of_max_length_is_honoured(caplog: pytest.LogCaptureFixture) -> None:
    fake = FakeScorer(max_length=64)
    query = " ".join(f"w{i}" for i in range(40))  # 40 tokens: more than half of 64
    with caplog.at_level(logging.WARNING):
        rr = Reranker(fake, max_query_tokens=40)
        assert rr.score(query, ["w39 appears here"]) == [1.0]  # the query's last word counts
    assert "max_query_tokens" not in caplog.text
    assert fake.batches[0][0][0] == query
    # Room for the document is kept: 64 - 3 special tokens - 12 leaves a query at most 49 tokens,
    # and a larger value is capped there, with a warning when the reranker is built.
    long_query = " ".join(f"w{i}" for i in range(80))
    with caplog.at_level(logging.WARNING):
        capped = Reranker(fake, max_query_tokens=60)
    assert "max_query_tokens=60 leaves no room" in caplog.text and "using 49" in caplog.text
    fake.batches.clear()
    capped.score(long_query, [" ".join(["doc"] * 100)])
    for q, w in fake.batches[0]:
        assert len(fake.token_offsets([q])[0]) == 49
        assert len(fake.token_offsets([q])[0]) + len(fake.token_offsets([w])[0]) + 3 <= 64
    # Without max_query_tokens a query keeps half of max_length, as before.
    fake.batches.clear()
    Reranker(fake).score(query, ["doc"])
    assert len(fake.token_offsets([fake.batches[0][0][0]])[0]) == 32


def test_cache_keys_of_different_pairs_never_collide() -> None:
    cached, plain = Reranker(FakeScorer(), cache_size=100), Reranker(FakeScorer())
    cache = cached.cache
    assert cache is not None
    # Without a length before each field, these two pairs hash the same bytes.
    assert cache.key("sky\0tsky", "blue") != cache.key("sky", "sky\0tblue")
    assert cache.key("ab", "c") != cache.key("a", "bc")
    for query, text in [("sky", "sky\0tblue"), ("sky\0tsky", "blue"), ("ab", "c"), ("a", "bc")]:
        assert cached.score(query, [text]) == plain.score(query, [text])


class TruncatingFake(FakeScorer):
    """A fake that says it cuts pairs at its own ``max_length`` (as the torch and ONNX backends do)."""

    truncates_pairs = True


def test_truncate_below_the_scorers_limit_cuts_at_the_rerankers_max_length() -> None:
    scorer = TruncatingFake(max_length=128)
    long_doc = " ".join(f"d{i}" for i in range(300))
    query = "q r s"
    Reranker(scorer, max_length=32, long_documents="truncate").score(query, [long_doc, "short doc"])
    sizes = sorted(
        len(scorer.token_offsets([q])[0]) + len(scorer.token_offsets([w])[0]) + 3 for q, w in scorer.batches[0]
    )
    assert sizes == [3 + 2 + 3, 32]  # cut at exactly 32 tokens: the scorer, cutting at 128, would not
    # At the scorer's own limit, it gets a few tokens more and cuts at the exact token itself.
    scorer.batches.clear()
    Reranker(scorer, long_documents="truncate").score(query, [long_doc])
    ((_, window),) = scorer.batches[0]
    assert len(scorer.token_offsets([window])[0]) > 128 - 3 - 3
    # A query longer than half the pair (max_query_tokens) is kept whole: the document is cut to fit.
    scorer.batches.clear()
    long_query = " ".join(f"q{i}" for i in range(80))
    Reranker(scorer, long_documents="truncate", max_query_tokens=80).score(long_query, [long_doc])
    ((q, window),) = scorer.batches[0]
    assert (len(scorer.token_offsets([q])[0]), len(scorer.token_offsets([window])[0])) == (80, 128 - 3 - 80)


def test_a_numpy_fusion_weight_is_accepted_and_kept_as_a_float(fake: FakeScorer) -> None:
    import numpy as np

    rr = Reranker(fake, fusion="zscore", fusion_weight=np.float32(0.75))
    assert type(rr.config.fusion_weight) is float and rr.config.fusion_weight == 0.75
    with pytest.raises(ConfigError, match="fusion_weight must be None or a number in \\[0, 1\\]"):
        Reranker(fake, fusion="zscore", fusion_weight=np.float64(1.5))


def test_cli_rerank_ranks_the_non_blank_lines_of_a_file(
    tiny_bert: str, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from xrerank_core.cli import main

    lines = ["Paris is the capital of France.", "", "Bananas are yellow.", "France borders Spain."]
    path = tmp_path / "docs.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    query = "capital of France"
    assert main(["rerank", "--model", tiny_bert, "--device", "cpu", "--query", query, "--top-n", "2", str(path)]) == 0
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    docs = [x for x in lines if x]
    want = Reranker(tiny_bert, device="cpu").rerank(query, docs, top_n=2)
    assert [(p["index"], p["text"]) for p in printed] == [(r.index, r.text) for r in want]
    assert [p["score"] for p in printed] == pytest.approx([r.score for r in want])


def test_cli_rerank_refuses_a_file_that_is_not_utf8(
    tiny_bert: str, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from xrerank_core.cli import main

    path = tmp_path / "latin1.txt"
    path.write_bytes("Café au lait in Paris\n".encode("latin-1"))
    assert main(["rerank", "--model", tiny_bert, "--device", "cpu", "--query", "coffee", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("xrerank: error:") and "not UTF-8" in err and "Traceback" not in err


@pytest.mark.parametrize("port", ["99999", "-1", "http"])
def test_cli_serve_refuses_a_port_out_of_range(port: str, capsys: pytest.CaptureFixture[str]) -> None:
    from xrerank_core.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["serve", "--model", "any", "--port", port])
    assert exc.value.code == 2
    assert "0 to 65535" in capsys.readouterr().err
