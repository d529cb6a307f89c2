"""Metrics via ranx: hand-computed tiny cases, tie handling, run comparison, and the
published TREC DL 2019 nDCG@10 of the three provided first stages.

The first ranx call in a fresh environment compiles its numba kernels (about 10 s,
cached afterwards in ranx's __pycache__).
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from xrerank_core import ConfigError, InputError
from xrerank_core.eval import (
    DEFAULT_METRICS,
    DL19_FIRST_STAGES,
    compare_runs,
    evaluate_run,
    load_dl19,
    load_trec,
)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
DL19 = DATA / "trec-dl-2019-passage"
needs_dl19 = pytest.mark.skipif(not DL19.is_dir(), reason=f"TREC DL 2019 data not found at {DL19}")

LOG2_3 = math.log2(3)  # 1.58496
LOG2_6 = math.log2(6)  # 2.58496

# One query, graded 0-3. Run order: d4 (grade 1), d3 (0), d1 (3), d5 (unjudged), d2 (2).
QRELS = {"q1": {"d1": 3, "d2": 2, "d3": 0, "d4": 1}}
RUN = {"q1": {"d4": 0.9, "d3": 0.8, "d1": 0.7, "d5": 0.6, "d2": 0.5}}


def test_hand_computed_graded_and_binary_metrics() -> None:
    res = evaluate_run(
        QRELS, RUN, ["ndcg@5", "ndcg@3", "ndcg_burges@5", "mrr@10", "p@5", "precision@2", "recall@3", "map@5"]
    )
    per = res.per_query["q1"]
    # nDCG@5, linear gain (trec_eval): DCG = 1/log2(2) + 0 + 3/log2(4) + 0 + 2/log2(6)
    #   = 1 + 1.5 + 0.77371 = 3.27371; IDCG = 3/1 + 2/log2(3) + 1/log2(4) = 3 + 1.26186 + 0.5 = 4.76186
    #   nDCG@5 = 0.68749
    assert per["ndcg@5"] == pytest.approx((1 + 3 / 2 + 2 / LOG2_6) / (3 + 2 / LOG2_3 + 1 / 2))
    assert per["ndcg@5"] == pytest.approx(0.68749, abs=1e-5)
    # nDCG@3: DCG = 1 + 0 + 1.5 = 2.5; IDCG@3 = 4.76186 -> 0.52500
    assert per["ndcg@3"] == pytest.approx(2.5 / (3 + 2 / LOG2_3 + 1 / 2))
    # Burges gain 2^g - 1: DCG = 1 + 7/2 + 3/log2(6) = 5.66056; IDCG = 7 + 3/log2(3) + 1/2 = 9.39279 -> 0.60265
    assert per["ndcg_burges@5"] == pytest.approx((1 + 7 / 2 + 3 / LOG2_6) / (7 + 3 / LOG2_3 + 1 / 2))
    assert per["ndcg_burges@5"] == pytest.approx(0.60265, abs=1e-5)
    # threshold 1: relevant = {d1, d2, d4}; first relevant at rank 1
    assert per["mrr@10"] == 1.0
    assert per["p@5"] == pytest.approx(3 / 5)
    assert per["precision@2"] == pytest.approx(1 / 2)
    assert per["recall@3"] == pytest.approx(2 / 3)  # d4, d1 of 3
    # AP@5 = (1/1 + 2/3 + 3/5) / 3 = 0.75556
    assert per["map@5"] == pytest.approx((1 + 2 / 3 + 3 / 5) / 3)
    assert res.mean == per
    assert res.num_queries == 1


def test_rel_threshold_applies_to_binary_metrics_only() -> None:
    res = evaluate_run(QRELS, RUN, ["ndcg@5", "mrr@10", "p@5", "recall@3", "map@5"], rel_threshold=2)
    per = res.per_query["q1"]
    # threshold 2: relevant = {d1, d2}; d1 at rank 3, d2 at rank 5
    assert per["mrr@10"] == pytest.approx(1 / 3)
    assert per["p@5"] == pytest.approx(2 / 5)
    assert per["recall@3"] == pytest.approx(1 / 2)
    assert per["map@5"] == pytest.approx((1 / 3 + 2 / 5) / 2)
    # nDCG still uses every grade as gain
    assert per["ndcg@5"] == pytest.approx(0.68749, abs=1e-5)


def test_missing_and_unjudged_queries() -> None:
    qrels = {**QRELS, "q2": {"x": 1}, "q3": {"y": 0}, "q4": {}}
    run = {**RUN, "q3": {"y": 1.0}, "q9": {"x": 1.0}, "q4": {"x": 2.0}}
    res = evaluate_run(qrels, run, ["ndcg@5", "mrr@10"])
    # q2 is judged but absent from the run -> 0; q3 has no relevant document -> 0;
    # q4 has no judgments and q9 is not in the qrels -> not evaluated
    assert list(res.per_query) == ["q1", "q2", "q3"]
    assert res.per_query["q2"] == {"ndcg@5": 0.0, "mrr@10": 0.0}
    assert res.per_query["q3"] == {"ndcg@5": 0.0, "mrr@10": 0.0}
    assert res.mean["ndcg@5"] == pytest.approx(0.68749 / 3, abs=1e-5)
    assert res.mean["mrr@10"] == pytest.approx(1 / 3)
    skipped = evaluate_run(qrels, run, ["mrr@10"], ignore_queries_without_relevant=True)
    assert list(skipped.per_query) == ["q1", "q2"]
    assert skipped.mean["mrr@10"] == pytest.approx(1 / 2)
    # an empty ranking scores 0 instead of failing
    assert evaluate_run(QRELS, {"q1": {}}, ["ndcg@10", "recall@10"]).mean == {"ndcg@10": 0.0, "recall@10": 0.0}


def test_ties_are_broken_deterministically() -> None:
    qrels = {"q": {"c": 1}}
    # all three tie; "input_order" keeps the mapping's order: a, b, c -> c at rank 3
    assert evaluate_run(qrels, {"q": {"a": 1.0, "b": 1.0, "c": 1.0}}, "mrr").mean["mrr"] == pytest.approx(1 / 3)
    assert evaluate_run(qrels, {"q": {"c": 1.0, "a": 1.0, "b": 1.0}}, "mrr").mean["mrr"] == 1.0
    # "trec_eval": ties by docid descending (c, b, a) whatever the mapping order
    for order in (("a", "b", "c"), ("b", "c", "a"), ("c", "a", "b")):
        run = {"q": dict.fromkeys(order, 1.0)}
        assert evaluate_run(qrels, run, "mrr", tie_break="trec_eval").mean["mrr"] == 1.0
    # only ties are reordered: a higher score still wins
    run = {"q": {"a": 1.0, "c": 0.5, "b": 1.0}}
    assert evaluate_run(qrels, run, "mrr", tie_break="trec_eval").mean["mrr"] == pytest.approx(1 / 3)
    # repeated calls agree
    many = {"q": {f"d{i}": 0.0 for i in range(50)} | {"c": 0.0}}
    first = evaluate_run(qrels, many, ["mrr", "ndcg@100"])
    assert all(evaluate_run(qrels, many, ["mrr", "ndcg@100"]) == first for _ in range(5))
    assert first.mean["mrr"] == pytest.approx(1 / 51)


def test_inputs_are_not_modified() -> None:
    qrels = {"q": {"a": 1, "b": 0}}
    run = {"q": {"b": 2.0, "a": 1.0}}
    evaluate_run(qrels, run)
    assert qrels == {"q": {"a": 1, "b": 0}}
    assert run == {"q": {"b": 2.0, "a": 1.0}}
    assert list(run["q"]) == ["b", "a"]


def test_default_metrics() -> None:
    assert DEFAULT_METRICS == ("ndcg@10", "mrr@10", "precision@10", "recall@10", "recall@100")
    assert list(evaluate_run(QRELS, RUN).mean) == list(DEFAULT_METRICS)


def test_compare_runs_hand_computed() -> None:
    qrels = {"q1": {"a": 1}, "q2": {"a": 1}, "q3": {"a": 1}}
    baseline = {"q1": {"b": 2.0, "c": 1.0}, "q2": {"b": 2.0, "a": 1.0}, "q3": {"a": 2.0, "b": 1.0}}
    new = {"q1": {"a": 2.0, "b": 1.0}, "q2": {"a": 2.0, "b": 1.0}, "q3": {"a": 2.0, "b": 1.0}}
    cmp = compare_runs(qrels, baseline, new, ["mrr@10", "recall@1"])
    mrr = cmp["mrr@10"]
    # per query RR: baseline (0, 1/2, 1), new (1, 1, 1); differences d = (1, 0.5, 0)
    assert mrr.baseline == pytest.approx(0.5)
    assert mrr.new == 1.0
    assert mrr.delta == pytest.approx(0.5)
    assert (mrr.wins, mrr.losses, mrr.ties) == (2, 0, 1)
    # paired t: mean(d) = 0.5, sd(d) = 0.5, t = 0.5 / (0.5 / sqrt(3)) = sqrt(3), df = 2;
    # for df = 2 the two-sided p is 1 - |t| / sqrt(t^2 + 2) = 1 - sqrt(3/5) = 0.225403
    assert mrr.p_value == pytest.approx(1 - math.sqrt(3 / 5))
    rec = cmp["recall@1"]
    assert rec.baseline == pytest.approx(1 / 3)
    assert rec.new == 1.0
    assert (rec.wins, rec.losses, rec.ties) == (2, 0, 1)
    same = compare_runs(qrels, new, new, "mrr@10")["mrr@10"]
    assert (same.delta, same.p_value, same.ties) == (0.0, 1.0, 3)
    # every query improves by the same amount: zero variance, p = 0
    shifted = compare_runs(
        {"q1": {"a": 1}, "q2": {"a": 1}},
        {"q1": {"b": 1.0}, "q2": {"b": 1.0}},
        {"q1": {"a": 1.0}, "q2": {"a": 1.0}},
        "mrr",
    )
    assert shifted["mrr"].p_value == 0.0
    single = compare_runs({"q1": {"a": 1}}, {"q1": {"b": 1.0}}, {"q1": {"a": 1.0}}, "mrr")
    assert math.isnan(single["mrr"].p_value)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"metrics": ["ndcg@10", "bleu@4"]}, "unknown metric 'bleu@4'"),
        ({"metrics": ["mrr@10-l2"]}, "rel_threshold"),
        ({"metrics": ["ndcg@0"]}, "positive integer"),
        ({"metrics": ["ndcg@ten"]}, "positive integer"),
        ({"metrics": []}, "metrics is empty"),
        ({"rel_threshold": 0}, "rel_threshold must be an int >= 1"),
        ({"rel_threshold": 1.5}, "rel_threshold must be an int >= 1"),
        ({"tie_break": "random"}, "tie_break must be"),
    ],
)
def test_bad_options(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        evaluate_run(QRELS, RUN, **kwargs)  # type: ignore[arg-type]


def test_bad_inputs() -> None:
    with pytest.raises(InputError, match="scores must be finite"):
        evaluate_run(QRELS, {"q1": {"d1": float("nan")}})
    with pytest.raises(InputError, match="grades must be ints"):
        evaluate_run({"q1": {"d1": 1.5}}, RUN)  # type: ignore[dict-item]
    with pytest.raises(InputError, match="no query to evaluate"):
        evaluate_run({"q1": {}}, RUN)
    with pytest.raises(InputError, match="no query to evaluate"):
        evaluate_run({"q1": {"d1": 0}}, RUN, ignore_queries_without_relevant=True)


# --------------------------------------------------------------------------- TREC DL 2019

PUBLISHED_NDCG10 = {"BM25": 0.5058, "BM25_RM3": 0.5216, "SPLADE_P_P_ENSEMBLE_DISTIL": 0.7308}


@needs_dl19
@pytest.mark.parametrize("first_stage", DL19_FIRST_STAGES)
def test_dl19_published_ndcg10(first_stage: str) -> None:
    ds = load_dl19(DL19, first_stage)
    res = evaluate_run(ds.qrels, ds.first_stage_run(), rel_threshold=2)
    assert res.num_queries == 43
    assert round(res.mean["ndcg@10"], 4) == PUBLISHED_NDCG10[first_stage]
    # the TREC run file of the same first stage, read with load_trec, gives the same numbers
    folder = DL19 / "rank_llm/retrieve_results" / first_stage
    trec = load_trec(
        DL19 / "anserini-tools/qrels/qrels.dl19-passage.txt",
        DL19 / "anserini-tools/topics/topics.dl19-passage.txt",
        folder / "trec_results_dl19.txt",
    )
    from_run_file = evaluate_run(trec.qrels, trec.first_stage_run(), rel_threshold=2, tie_break="trec_eval")
    assert from_run_file.mean == pytest.approx(res.mean)


@needs_dl19
def test_dl19_bm25_binary_metrics_at_grade_2() -> None:
    ds = load_dl19(DL19, "BM25")
    run = ds.first_stage_run()
    strict = evaluate_run(ds.qrels, run, rel_threshold=2).mean
    lenient = evaluate_run(ds.qrels, run, rel_threshold=1).mean
    # values computed with ranx (trec_eval conventions), pinned against regressions
    assert strict == pytest.approx(
        {"ndcg@10": 0.50583, "mrr@10": 0.70242, "precision@10": 0.41163, "recall@10": 0.17513, "recall@100": 0.49105},
        abs=1e-5,
    )
    assert lenient["ndcg@10"] == strict["ndcg@10"]
    assert lenient["precision@10"] > strict["precision@10"]
    # README: one query has no grade>=2 passage in the BM25 top-100
    recall = evaluate_run(ds.qrels, run, "recall@100", rel_threshold=2).per_query
    assert [q for q, s in recall.items() if s["recall@100"] == 0.0] == ["1121709"]


@needs_dl19
def test_dl19_compare_bm25_with_splade() -> None:
    bm25 = load_dl19(DL19, "BM25")
    splade = load_dl19(DL19, "SPLADE_P_P_ENSEMBLE_DISTIL")
    cmp = compare_runs(bm25.qrels, bm25.first_stage_run(), splade.first_stage_run(), rel_threshold=2)
    ndcg = cmp["ndcg@10"]
    assert round(ndcg.baseline, 4) == 0.5058
    assert round(ndcg.new, 4) == 0.7308
    assert ndcg.delta == pytest.approx(0.7308 - 0.5058, abs=1e-4)
    assert ndcg.wins + ndcg.losses + ndcg.ties == 43
    assert ndcg.wins > ndcg.losses
    assert ndcg.p_value < 1e-4
    assert list(cmp) == list(DEFAULT_METRICS)
