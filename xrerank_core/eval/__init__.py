"""Evaluation for xrerank: datasets, first-stage candidates and ranking metrics.

* Datasets (:class:`EvalDataset`): loaders for BEIR folders, TREC files, RankLLM JSON
  and the copies under ``shared/data`` (SciFact, TREC DL 2019, NovelEval, WikiQA);
  standard library only.
* Metrics (:func:`evaluate_run`, :func:`compare_runs`): computed by ranx, matching
  trec_eval; needs ``pip install "xrerank[eval]"``.
* Dense first stage (:func:`build_chroma_collection`, :func:`dense_candidates`): Chroma
  plus a sentence-transformers embedder; needs ``pip install "xrerank[chroma]"``.
* One evaluation (:func:`run_eval` -> :class:`EvalReport`): first stage, reranker,
  quality before/after and cost; shown by :func:`render_table` (rich), :func:`write_json`
  and :func:`plot` (matplotlib). This is what ``xrerank eval`` runs.

Optional packages are imported only when a function needs them.
"""

from __future__ import annotations

from xrerank_core.eval._datasets import (
    DL19_FIRST_STAGES,
    Candidate,
    EvalDataset,
    Passage,
    candidates_from_run,
    load_beir,
    load_dataset,
    load_dl19,
    load_noveleval,
    load_rankllm,
    load_scifact,
    load_trec,
    load_wikiqa,
    read_qrels,
    read_topics,
    read_trec_run,
    run_from_candidates,
    write_trec_run,
)
from xrerank_core.eval._firststage import (
    DEFAULT_COLLECTION_NAME,
    PACKAGED_EMBEDDER,
    build_chroma_collection,
    dense_candidates,
)
from xrerank_core.eval._metrics import (
    DEFAULT_METRICS,
    EvalResult,
    MetricComparison,
    TieBreak,
    compare_runs,
    evaluate_run,
)
from xrerank_core.eval._report import plot, render_table, write_json
from xrerank_core.eval._run import (
    CostReport,
    EvalReport,
    FirstStage,
    auto_rel_threshold,
    default_metrics,
    run_eval,
)

__all__ = [
    "DEFAULT_COLLECTION_NAME",
    "DEFAULT_METRICS",
    "DL19_FIRST_STAGES",
    "PACKAGED_EMBEDDER",
    "Candidate",
    "CostReport",
    "EvalDataset",
    "EvalReport",
    "EvalResult",
    "FirstStage",
    "MetricComparison",
    "Passage",
    "TieBreak",
    "auto_rel_threshold",
    "build_chroma_collection",
    "candidates_from_run",
    "compare_runs",
    "default_metrics",
    "dense_candidates",
    "evaluate_run",
    "load_beir",
    "load_dataset",
    "load_dl19",
    "load_noveleval",
    "load_rankllm",
    "load_scifact",
    "load_trec",
    "load_wikiqa",
    "plot",
    "read_qrels",
    "read_topics",
    "read_trec_run",
    "render_table",
    "run_eval",
    "run_from_candidates",
    "write_json",
    "write_trec_run",
]
