"""Reranker.score_many: several requests scored as one job (what dynamic batching in a server uses)."""

from __future__ import annotations

import pytest
from conftest import FakeScorer

from xrerank_core import InputError, Reranker

REQUESTS = [
    ("dog cat", ["the cat sat on the mat", "a dog and a cat play", "nothing relevant here"]),
    ("red fish", ["one fish two fish red fish blue fish", "the cat sat on the mat", "red " * 200]),
    ("dog cat", ["dog"]),
    ("empty", []),
]


def test_equals_one_request_at_a_time_with_shared_batches() -> None:
    fake = FakeScorer()
    rr = Reranker(fake, batch_size=4)
    together = rr.score_many(REQUESTS)
    batches_together = len(fake.batches)
    fake.batches.clear()
    apart = [rr.score(q, t) for q, t in REQUESTS]
    assert together == apart
    assert together[3] == []
    assert batches_together < len(fake.batches)  # pairs of different requests share forward passes
    # The long document was split into windows in both cases (MaxP), and each pair scored once.
    assert fake.pairs_scored > 0


def test_real_model_and_sigmoid(tiny_bert: str) -> None:
    for normalize in ("none", "sigmoid"):
        rr = Reranker(tiny_bert, normalize=normalize)
        together = rr.score_many(REQUESTS)
        for (q, t), got in zip(REQUESTS, together, strict=True):
            assert got == pytest.approx(rr.score(q, t), abs=1e-5)


def test_bad_input_is_refused() -> None:
    rr = Reranker(FakeScorer())
    with pytest.raises(InputError):
        rr.score_many([("dog", ["a"]), ("  ", ["b"])])
    assert rr.score_many([]) == []


def test_onnx_int8_with_one_worker_scores_each_pair_alone(tiny_bert: str) -> None:
    pytest.importorskip("onnxruntime")
    query = "what is the capital of france?"
    first = "Paris is the capital of France."
    others = [
        "Berlin is the capital of Germany and has many museums and a very long history of trade.",
        "Cross-encoders read the query and the document together, token by token, in one pass!",
        "x " * 60,
    ]
    rr = Reranker(tiny_bert, backend="onnx-int8", device="cpu", workers=1)
    # int8 quantises a pass's activations over its whole batch: one pair per pass, so a score
    # does not depend on the pairs it is scored with.
    alone = rr.score(query, [first])[0]
    assert rr.score(query, [first, *others])[0] == alone
    assert rr.score_many([(query, [first]), ("another query entirely", others)])[0][0] == alone
