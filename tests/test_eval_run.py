"""``run_eval`` / ``xrerank eval``: quality before and after reranking, cost, table, JSON, plot.

Real data from ``shared/data`` (TREC DL 2019, SciFact, NovelEval) and the tiny random
cross-encoder from ``conftest.py``; the default tests use a few queries and short
candidate lists, except the first-stage-only runs, which need no model and use all 43
DL19 queries.
"""

from __future__ import annotations

import json
import logging
import math
import re
from pathlib import Path
from typing import Any

import pytest
from conftest import SHARED_DATA

from xrerank_core import ConfigError, InputError, Reranker
from xrerank_core._backends._onnx import onnx_installed
from xrerank_core.cli import main
from xrerank_core.eval import (
    DEFAULT_METRICS,
    DL19_FIRST_STAGES,
    Candidate,
    EvalDataset,
    EvalReport,
    auto_rel_threshold,
    candidates_from_run,
    default_metrics,
    evaluate_run,
    load_dl19,
    load_noveleval,
    load_scifact,
    plot,
    read_trec_run,
    render_table,
    run_eval,
    run_from_candidates,
    write_json,
    write_trec_run,
)

# backend="auto" runs onnxruntime (float32) on CPU when it is installed.
AUTO_BACKEND = "onnx" if onnx_installed() else "torch"

DL19 = SHARED_DATA / "trec-dl-2019-passage"
SCIFACT = SHARED_DATA / "scifact"
NOVELEVAL = SHARED_DATA / "noveleval-2306"
needs_dl19 = pytest.mark.skipif(not DL19.is_dir(), reason=f"TREC DL 2019 data not found at {DL19}")
needs_scifact = pytest.mark.skipif(not SCIFACT.is_dir(), reason=f"SciFact data not found at {SCIFACT}")
needs_noveleval = pytest.mark.skipif(not NOVELEVAL.is_dir(), reason=f"NovelEval data not found at {NOVELEVAL}")

PUBLISHED_NDCG10 = {"BM25": 0.5058, "BM25_RM3": 0.5216, "SPLADE_P_P_ENSEMBLE_DISTIL": 0.7308}


@pytest.fixture(scope="module")
def dl19() -> EvalDataset:
    if not DL19.is_dir():
        pytest.skip(f"TREC DL 2019 data not found at {DL19}")
    return load_dl19(DL19, "BM25")


@pytest.fixture(scope="module")
def reranker(tiny_bert: str) -> Reranker:
    return Reranker(tiny_bert, device="cpu")


@pytest.fixture(scope="module")
def report(dl19: EvalDataset, reranker: Reranker) -> EvalReport:
    """3 queries x 20 BM25 candidates, reranked by the tiny model."""
    return run_eval(dl19, reranker, queries=3, candidates=20)


def _first_qids(ds: EvalDataset, n: int) -> list[str]:
    return sorted(ds.qrels, key=int)[:n]


# --------------------------------------------------------------------------- run_eval


@needs_dl19
def test_first_stage_metrics_equal_evaluate_run_on_the_subset(report: EvalReport, dl19: EvalDataset) -> None:
    qids = _first_qids(dl19, 3)
    assert report.query_ids == tuple(qids)
    assert report.dataset == "trec-dl-2019-passage/BM25"
    assert dl19.candidates is not None
    expected = evaluate_run(
        {q: dl19.qrels[q] for q in qids},
        run_from_candidates({q: dl19.candidates[q][:20] for q in qids}),
        ["ndcg@10", "mrr@10", "precision@10", "recall@10", "recall@20"],
        rel_threshold=2,
    )
    for q in qids:
        assert report.first_stage.per_query[q] == pytest.approx(expected.per_query[q])
    assert report.first_stage.mean == pytest.approx(expected.mean)
    s = report.settings
    assert (s["first_stage"], s["candidates"], s["top_n"], s["queries"], s["num_queries"]) == ("given", 20, 10, 3, 3)
    assert s["rel_threshold"] == 2 and s["rel_threshold_auto"] is True
    assert s["metrics"] == list(default_metrics(10, 20)) == report.metrics


@needs_dl19
def test_reranked_run_is_every_candidate_in_rerank_order(
    report: EvalReport, dl19: EvalDataset, reranker: Reranker
) -> None:
    assert dl19.candidates is not None
    assert report.model == reranker.config.model
    assert (report.backend, report.device) == (AUTO_BACKEND, "cpu")
    qids = list(report.query_ids)
    manual = {}
    for q in qids:
        cands = dl19.candidates[q][:20]
        ranked = reranker.rerank(dl19.queries[q], [c.text for c in cands])
        manual[q] = {cands[r.index].docid: r.score for r in ranked}
    expected = evaluate_run({q: dl19.qrels[q] for q in qids}, manual, report.metrics, rel_threshold=2)
    assert report.reranked is not None
    for q in qids:
        assert report.reranked.per_query[q] == pytest.approx(expected.per_query[q])
    # nothing is dropped: recall at the candidate depth cannot change
    assert report.comparison is not None
    recall = report.comparison["recall@20"]
    assert (recall.delta, recall.ties, recall.p_value) == (0.0, 3, 1.0)
    ndcg = report.comparison["ndcg@10"]
    assert ndcg.wins + ndcg.losses + ndcg.ties == 3
    assert ndcg.delta == pytest.approx(report.reranked.mean["ndcg@10"] - report.first_stage.mean["ndcg@10"])


@needs_dl19
def test_fusion_report_also_ranks_by_the_model_alone(dl19: EvalDataset, tiny_bert: str, report: EvalReport) -> None:
    assert report.model_alone is None and report.model_alone_comparison is None  # fusion off
    fused = run_eval(
        dl19, Reranker(tiny_bert, device="cpu", fusion="zscore", fusion_weight=0.5), queries=3, candidates=20
    )
    assert fused.model_alone is not None and fused.model_alone_comparison is not None and fused.reranked is not None
    # one scoring pass gives both: the model-alone part equals a run without fusion
    assert report.reranked is not None
    for q in report.query_ids:
        assert fused.model_alone.per_query[q] == pytest.approx(report.reranked.per_query[q])
    assert fused.settings["fusion"] == "zscore" and fused.settings["fusion_weight"] == 0.5
    assert fused.reranked.per_query != fused.model_alone.per_query
    table = render_table(fused)
    labels = list(table.columns[0].cells)
    assert "nDCG@10" in labels and "nDCG@10 (model alone)" in labels
    assert json.loads(json.dumps(fused.to_dict()))["model_alone_comparison"]["ndcg@10"]["wins"] >= 0


@needs_dl19
def test_cost(report: EvalReport, reranker: Reranker) -> None:
    cost = report.cost
    assert cost is not None
    assert (cost.queries, cost.pairs) == (3, 60)
    assert set(cost.per_query_latency) == set(report.query_ids)
    assert all(t > 0 for t in cost.per_query_latency.values())
    assert 0 < cost.latency_p50 <= cost.latency_p95 <= max(cost.per_query_latency.values())
    assert cost.rerank_seconds == pytest.approx(sum(cost.per_query_latency.values()))
    assert cost.pairs_per_second == pytest.approx(60 / cost.rerank_seconds)
    # every pair costs at least the special tokens plus one query and one document token
    assert cost.tokens is not None and cost.tokens >= 60 * (reranker.scorer.num_special_tokens + 2)
    assert cost.tokens_per_second == pytest.approx(cost.tokens / cost.rerank_seconds)
    assert report.peak_rss_mib is not None and report.peak_rss_mib > 50
    assert report.wall_seconds >= cost.rerank_seconds


@needs_dl19
def test_first_stage_only(dl19: EvalDataset) -> None:
    rep = run_eval(dl19, None, queries=5)
    assert (rep.model, rep.backend, rep.reranked, rep.comparison, rep.cost) == (None, None, None, None, None)
    assert rep.metrics == list(DEFAULT_METRICS)
    qids = _first_qids(dl19, 5)
    expected = evaluate_run({q: dl19.qrels[q] for q in qids}, dl19.first_stage_run(), rel_threshold=2)
    assert rep.first_stage.mean == pytest.approx(expected.mean)
    assert len(render_table(rep).columns) == 2
    assert json.loads(json.dumps(rep.to_dict()))["reranked"] is None


@needs_dl19
def test_json_table_and_plot(report: EvalReport, dl19: EvalDataset, tmp_path: Path) -> None:
    path = write_json(report, tmp_path / "out" / "report.json")
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["dataset"] == report.dataset
    assert data["query_ids"] == list(report.query_ids)
    assert data["first_stage"]["mean"] == pytest.approx(report.first_stage.mean)
    assert data["comparison"]["ndcg@10"]["wins"] == report.comparison["ndcg@10"].wins  # type: ignore[index]
    assert data["cost"]["latency_p50"] > 0 and data["settings"]["rel_threshold"] == 2

    table = render_table(report)
    assert [c.header for c in table.columns] == ["metric", "first stage", "reranked", "delta", "p", "W/L/T"]

    import matplotlib.image

    first_only = run_eval(dl19, None, queries=3, candidates=20)
    png = plot([first_only, report], tmp_path / "plots" / "quality.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    height, width, _ = matplotlib.image.imread(png).shape
    assert width > 400 and height > 300
    with pytest.raises(ConfigError, match="at least one report"):
        plot([], tmp_path / "empty.png")
    with pytest.raises(ConfigError, match="no report has the metric"):
        plot([report], tmp_path / "x.png", metric="map@100")


def test_json_writes_nan_as_null(tmp_path: Path) -> None:
    from xrerank_core.eval import EvalResult

    rep = EvalReport(
        dataset="d",
        model=None,
        backend=None,
        device=None,
        settings={"x": math.nan},
        query_ids=("q",),
        first_stage=EvalResult(mean={"ndcg@10": 0.5}, per_query={"q": {"ndcg@10": 0.5}}),
        reranked=None,
        comparison=None,
        cost=None,
        first_stage_seconds=0.0,
        peak_rss_mib=None,
        wall_seconds=math.inf,
    )
    data = json.loads(write_json(rep, tmp_path / "r.json").read_text(encoding="utf-8"))
    assert data["settings"]["x"] is None and data["wall_seconds"] is None


def test_rel_threshold_rule() -> None:
    assert auto_rel_threshold({"q": {"a": 0, "b": 3}}) == 2  # TREC DL 0-3
    assert auto_rel_threshold({"q": {"a": 0, "b": 2}}) == 1  # NovelEval 0/1/2: 1 = partially relevant
    assert auto_rel_threshold({"q": {"a": 1}}) == 1
    assert default_metrics() == DEFAULT_METRICS
    assert default_metrics(10, 10) == ("ndcg@10", "mrr@10", "precision@10", "recall@10")


@needs_dl19
def test_errors(dl19: EvalDataset) -> None:
    with pytest.raises(ConfigError, match="no corpus"):
        run_eval(dl19, None, first_stage="dense")
    with pytest.raises(ConfigError, match="first_stage must be one of"):
        run_eval(dl19, None, first_stage="bm25")  # type: ignore[arg-type]
    for bad in ({"candidates": 0}, {"top_n": True}, {"queries": 0}, {"rel_threshold": 0}):
        with pytest.raises(ConfigError, match="must be an int >= 1"):
            run_eval(dl19, None, **bad)  # type: ignore[arg-type]
    no_judgments = EvalDataset(name="none", queries={"q": "x"}, qrels={}, candidates={"q": []})
    with pytest.raises(InputError, match="no judged query"):
        run_eval(no_judgments, None)
    corpus_only = EvalDataset(name="c", queries={"q": "x"}, qrels={"q": {"d": 1}})
    with pytest.raises(InputError, match="neither candidates nor a corpus"):
        run_eval(corpus_only, None)


# --------------------------------------------------------------------------- dense first stage


@needs_scifact
def test_dense_first_stage_persisted_and_reused(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    full = load_scifact(SCIFACT, "test")
    assert full.corpus is not None
    qids = sorted(full.qrels, key=int)[:4]
    relevant = sorted({d for q in qids for d in full.qrels[q]})
    others = [d for d in sorted(full.corpus) if d not in relevant][:40]
    small = EvalDataset(
        name="scifact/test",
        queries={q: full.queries[q] for q in qids},
        qrels={q: full.qrels[q] for q in qids},
        corpus={d: full.corpus[d] for d in relevant + others},
    )
    chroma = tmp_path / "chroma"
    caplog.set_level(logging.INFO, logger="xrerank_core.eval._firststage")
    rep = run_eval(small, None, candidates=10, chroma_dir=chroma)
    assert rep.settings["first_stage"] == "dense"
    assert rep.settings["collection"] == "xrerank-scifact"
    assert rep.settings["rel_threshold"] == 1
    assert "embedding" in caplog.text and chroma.is_dir()
    assert rep.first_stage.mean["recall@10"] > 0.5  # MiniLM finds most relevant abstracts among 45
    caplog.clear()
    again = run_eval(small, None, candidates=10, chroma_dir=chroma)
    assert "reusing it" in caplog.text and "embedding" not in caplog.text
    assert again.first_stage.per_query == rep.first_stage.per_query


# --------------------------------------------------------------------------- the CLI


def _ndcg10_printed(out: str) -> float:
    match = re.search(r"nDCG@10\s*\S\s*([0-9.]+)", out)
    assert match, out
    return float(match.group(1))


@needs_dl19
@pytest.mark.parametrize("first_stage", DL19_FIRST_STAGES)
def test_cli_dl19_first_stages_print_published_ndcg10(
    first_stage: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XRERANK_DATA_DIR", str(SHARED_DATA))
    out_dir = tmp_path / "out"
    argv = ["eval", "--dataset", "dl19", "--first-stage", first_stage, "--no-rerank", "--output", str(out_dir)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert _ndcg10_printed(out) == PUBLISHED_NDCG10[first_stage]
    assert "43 queries" in out
    data = json.loads((out_dir / "report.json").read_text(encoding="utf-8"))
    assert round(data["first_stage"]["mean"]["ndcg@10"], 4) == PUBLISHED_NDCG10[first_stage]
    assert len(data["query_ids"]) == 43 and data["model"] is None
    assert (out_dir / "report.png").read_bytes()[:4] == b"\x89PNG"


@needs_dl19
def test_cli_rerank_end_to_end(tiny_bert: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_dir = tmp_path / "run"
    argv = [
        "eval",
        "--dataset",
        str(DL19),
        "--model",
        tiny_bert,
        "--device",
        "cpu",
        "--batch-size",
        "8",
        "--max-length",
        "96",
        "--queries",
        "2",
        "--candidates",
        "10",
        "--output",
        str(out_dir),
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "reranked" in out and "latency p50 / p95" in out and "tokens / s" in out
    data = json.loads((out_dir / "report.json").read_text(encoding="utf-8"))
    assert data["model"] == tiny_bert and data["backend"] == AUTO_BACKEND
    assert (data["settings"]["batch_size"], data["settings"]["max_length"]) == (8, 96)
    assert data["settings"]["metrics"] == ["ndcg@10", "mrr@10", "precision@10", "recall@10"]
    assert data["cost"]["pairs"] == 20 and data["cost"]["latency_p95"] >= data["cost"]["latency_p50"] > 0
    assert (out_dir / "report.png").is_file()


@needs_noveleval
def test_cli_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    argv = ["eval", "--dataset", str(NOVELEVAL), "--first-stage", "BM25", "--no-rerank", "--output", str(tmp_path)]
    assert main(argv) == 2
    assert "names a TREC DL 2019 run" in capsys.readouterr().err
    assert main(["eval", "--dataset", str(tmp_path / "missing"), "--no-rerank"]) == 2
    assert "neither an existing path nor a known dataset name" in capsys.readouterr().err


@needs_noveleval
def test_cli_reranks_a_run_file_and_saves_the_first_stage(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--run-file replaces the first stage with a TREC run; --save-run writes the lists that were reranked."""
    ds = load_noveleval(NOVELEVAL)
    assert ds.candidates is not None
    # our own first stage: each query's given list, reversed (its last passage scores highest)
    mine = {q: [Candidate(c.docid, c.text, float(i)) for i, c in enumerate(cs)] for q, cs in ds.candidates.items()}
    write_trec_run(tmp_path / "mine.run.gz", mine)
    base = ["eval", "--dataset", str(NOVELEVAL), "--candidates", "10", "--no-rerank"]
    argv = [*base, "--run-file", str(tmp_path / "mine.run.gz"), "--save-run", str(tmp_path / "saved.txt")]
    assert main([*argv, "--output", str(tmp_path / "out")]) == 0
    data = json.loads((tmp_path / "out" / "report.json").read_text(encoding="utf-8"))
    assert data["settings"]["run_file"] == str(tmp_path / "mine.run.gz") and data["settings"]["first_stage"] == "given"
    qids = data["query_ids"]
    top10 = {q: [c.docid for c in reversed(mine[q])][:10] for q in qids}
    expected = evaluate_run({q: ds.qrels[q] for q in qids}, {q: {d: -i for i, d in enumerate(top10[q])} for q in qids})
    assert data["first_stage"]["mean"]["ndcg@10"] == pytest.approx(expected.mean["ndcg@10"])
    assert main([*base, "--output", str(tmp_path / "given")]) == 0
    as_given = json.loads((tmp_path / "given" / "report.json").read_text(encoding="utf-8"))
    assert as_given["first_stage"]["mean"]["ndcg@10"] != pytest.approx(expected.mean["ndcg@10"])
    saved = read_trec_run(tmp_path / "saved.txt")
    assert {q: [d for d, _, _ in hits] for q, hits in saved.items()} == top10

    # a run of another corpus, a run that misses judged queries, a run with --first-stage: refused
    foreign = {q: [Candidate("no-such-doc", "", 1.0)] for q in mine}
    write_trec_run(tmp_path / "foreign.txt", foreign)
    write_trec_run(tmp_path / "short.txt", {qids[0]: mine[qids[0]]})
    capsys.readouterr()
    assert main([*base, "--run-file", str(tmp_path / "foreign.txt")]) == 2
    assert "that the corpus lacks" in capsys.readouterr().err
    assert main([*base, "--run-file", str(tmp_path / "short.txt")]) == 2
    assert f"no ranking for {len(qids) - 1} judged queries" in capsys.readouterr().err
    # ... unless only the queries it ranks are evaluated
    assert main([*base, "--run-file", str(tmp_path / "short.txt"), "--queries", "1", "--output", str(tmp_path)]) == 0
    assert main([*base, "--run-file", str(tmp_path / "mine.run.gz"), "--first-stage", "given"]) == 2
    assert "--run-file replaces the first stage" in capsys.readouterr().err


def test_candidates_from_run_keeps_the_given_queries_and_checks_only_their_documents() -> None:
    from xrerank_core.eval import Passage

    corpus = {"d1": Passage("T", "one"), "d2": Passage("", "two")}
    run = {"q1": [("d2", 1, 3.0), ("d1", 2, 2.0)], "q2": [("elsewhere", 1, 1.0)]}
    with pytest.raises(InputError, match=r"1 document\(s\) that the corpus lacks, e.g. \['elsewhere'\]"):
        candidates_from_run(run, corpus)
    kept = candidates_from_run(run, corpus, queries={"q1", "q3"})
    assert kept == {"q1": [Candidate("d2", corpus["d2"].full_text, 3.0), Candidate("d1", corpus["d1"].full_text, 2.0)]}
    assert candidates_from_run(run, corpus, strict=False) == {**kept, "q2": []}


def test_given_candidates_missing_for_a_query_are_an_empty_ranking_and_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ds = EvalDataset(
        name="two",
        queries={"1": "alpha", "2": "beta"},
        qrels={"1": {"d1": 1}, "2": {"d2": 1}},
        candidates={"1": [Candidate("d1", "alpha text", 1.0), Candidate("d3", "other", 0.5)]},
    )
    caplog.set_level(logging.WARNING, logger="xrerank_core.eval._run")
    rep = run_eval(ds, None, candidates=10)
    assert "1 of the 2 evaluated queries have no first-stage candidates" in caplog.text
    per_query = rep.first_stage.per_query
    assert (per_query["1"]["ndcg@10"], per_query["2"]["ndcg@10"]) == (pytest.approx(1.0), 0.0)


@needs_noveleval
def test_noveleval_grades_keep_threshold_1() -> None:
    ds = load_noveleval(NOVELEVAL)
    rep = run_eval(ds, None, candidates=20)
    assert rep.settings["rel_threshold"] == 1 and rep.first_stage.num_queries == 21


@needs_noveleval
@pytest.mark.slow
def test_cli_noveleval_dense_with_minilm(
    minilm_cross_encoder: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The whole path: dense retrieval over NovelEval's 420 passages, then a MiniLM cross-encoder."""
    out_dir = tmp_path / "out"
    argv = [
        "eval",
        "--dataset",
        str(NOVELEVAL),
        "--first-stage",
        "dense",
        "--model",
        minilm_cross_encoder,
        "--device",
        "cpu",
        "--candidates",
        "20",
        "--chroma-dir",
        str(tmp_path / "chroma"),
        "--save-run",
        str(tmp_path / "dense.run"),
        "--output",
        str(out_dir),
    ]
    assert main(argv) == 0
    data = json.loads((out_dir / "report.json").read_text(encoding="utf-8"))
    assert data["settings"]["first_stage"] == "dense" and len(data["query_ids"]) == 21
    assert data["cost"]["pairs"] == 21 * 20
    # the saved dense lists, reranked elsewhere with --run-file, give the same first stage
    saved = read_trec_run(tmp_path / "dense.run")
    assert sorted(saved) == sorted(data["query_ids"]) and {len(h) for h in saved.values()} == {20}
    again = ["eval", "--dataset", str(NOVELEVAL), "--run-file", str(tmp_path / "dense.run"), "--candidates", "20"]
    assert main([*again, "--no-rerank", "--output", str(tmp_path / "again")]) == 0
    replay = json.loads((tmp_path / "again" / "report.json").read_text(encoding="utf-8"))
    assert replay["first_stage"]["mean"] == pytest.approx(data["first_stage"]["mean"], abs=1e-6)
    assert data["comparison"]["recall@20"]["delta"] == 0.0
    assert (tmp_path / "chroma").is_dir()


def _fruit_eval_set() -> EvalDataset:
    fruit = ["apple", "banana", "cherry", "grape", "lemon", "mango", "orange", "peach"]
    return EvalDataset(
        name="fruit",
        queries={"1": "apple pie", "2": "mango juice", "3": "lemon tart"},
        qrels={"1": {"d0": 1}, "2": {"d5": 1}, "3": {"d4": 2, "d3": 1}},
        candidates={
            q: [Candidate(f"d{i}", f"{w} and a few words on {w}", float(8 - i)) for i, w in enumerate(fruit)]
            for q in ("1", "2", "3")
        },
    )


def test_a_cascade_reranker_is_evaluated_in_its_own_order(tiny_bert: str) -> None:
    """A cascade leaves its unrescored tail at -inf; the run keeps them last, in the reranker's order."""
    ds = _fruit_eval_set()
    rr = Reranker(tiny_bert, backend="torch", cascade_top_k=3, cascade_backend="torch", cascade_max_length=16)
    rep = run_eval(ds, rr, candidates=8, metrics=["ndcg@10"], show_progress=False)
    assert rep.reranked is not None
    for qid in ds.queries:
        texts = [c.text for c in ds.candidates[qid]]  # type: ignore[index]
        order = [ds.candidates[qid][r.index].docid for r in rr.rerank(ds.queries[qid], texts)]  # type: ignore[index]
        expected = evaluate_run({qid: ds.qrels[qid]}, {qid: {d: -i for i, d in enumerate(order)}}, ["ndcg@10"])
        assert rep.reranked.per_query[qid]["ndcg@10"] == pytest.approx(expected.mean["ndcg@10"])


def test_a_cascade_with_fusion_reports_the_model_alone_in_the_cascades_own_order(
    tiny_bert: str, tmp_path: Path
) -> None:
    """The "model alone" rows of a fused cascade equal the same cascade without fusion.

    The tail the full model never rescored carries the cheap model's scores, on another scale
    (here 3 higher): ranked by them, it would come before the full model's best.
    """
    import torch
    from conftest import _save_bert
    from transformers import BertForSequenceClassification

    cheap = _save_bert(tmp_path / "cheap", seed=1)
    model = BertForSequenceClassification.from_pretrained(cheap)
    with torch.no_grad():
        model.classifier.bias += 3.0
    model.save_pretrained(cheap)
    ds = _fruit_eval_set()
    options = {"backend": "torch", "cascade_top_k": 3, "cascade_model": str(cheap), "cascade_backend": "torch"}
    plain = run_eval(ds, Reranker(tiny_bert, **options), candidates=8, metrics=["mrr@10"], show_progress=False)
    fused = Reranker(tiny_bert, fusion="zscore", fusion_weight=0.5, **options)
    rep = run_eval(ds, fused, candidates=8, metrics=["mrr@10"], show_progress=False)
    assert plain.reranked is not None and rep.model_alone is not None
    assert rep.model_alone.per_query == plain.reranked.per_query


def test_the_warm_up_call_cannot_fill_the_score_cache_for_the_timed_calls(fake: Any) -> None:
    ds = _fruit_eval_set()
    rr = Reranker(fake, cache_size=1000)
    rep = run_eval(ds, rr, candidates=8, metrics=["ndcg@10"], show_progress=False)
    assert rep.cost is not None and rep.cost.pairs == 24
    assert fake.pairs_scored == 8 + 24  # the warm-up's 8 pairs, then every timed pair by the model


def test_the_table_shows_a_model_name_with_brackets_as_written(fake: Any) -> None:
    rep = run_eval(_fruit_eval_set(), Reranker(fake), candidates=8, metrics=["ndcg@10"], show_progress=False)
    import dataclasses

    rep = dataclasses.replace(rep, model="models/ckpt[v2]")
    from rich.console import Console

    console = Console(width=200, record=True)
    console.print(render_table(rep))
    assert "ckpt[v2]" in console.export_text()


def test_the_table_title_gives_the_depth_reranked_when_the_lists_are_shorter(fake: Any) -> None:
    rep = run_eval(_fruit_eval_set(), Reranker(fake), candidates=100, metrics=["ndcg@10"], show_progress=False)
    assert rep.settings["deepest_list"] == 8
    assert "given top-8 (of 100 asked)" in str(render_table(rep).title)
    rep = run_eval(_fruit_eval_set(), Reranker(fake), candidates=5, metrics=["ndcg@10"], show_progress=False)
    assert "given top-5 ->" in str(render_table(rep).title)
