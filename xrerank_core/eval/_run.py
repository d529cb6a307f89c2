"""One evaluation: a first stage, a reranker on top of it, quality before and after, and cost.

:func:`run_eval` answers "how much does reranking buy, and what does it cost?" for one
dataset and one :class:`~xrerank_core.Reranker`:

* **Queries**: the judged queries (at least one judgment) sorted by id (numerically
  when every id is a number), optionally only the first ``queries`` of them, so a
  subset is the same on every run.
* **First stage**: ``"given"`` takes the dataset's own candidate lists (TREC DL 2019,
  NovelEval, WikiQA, a TREC run, RankLLM JSON); ``"dense"`` embeds the corpus into a
  Chroma collection with the packaged all-MiniLM-L6-v2 (persisted under
  ``chroma_dir`` and reused) and retrieves the top ``candidates`` per query. Each list
  is cut to its first ``candidates``.
* **Reranked run**: every candidate, ordered by the reranker's score (the score the
  ranking uses, fused with the first stage when the reranker's ``fusion`` is on). No
  candidate is dropped, so ``recall@candidates`` is the same before and after and
  measures the first stage's ceiling.
* **Metrics** (:func:`~xrerank_core.eval.evaluate_run`, ranx): by default nDCG, MRR,
  precision and recall at ``top_n`` (what an LLM would be given) plus recall at
  ``candidates``; with the defaults (10, 100) these are exactly
  :data:`~xrerank_core.eval.DEFAULT_METRICS`. The reranked run is compared with the
  first stage by :func:`~xrerank_core.eval.compare_runs` (paired t-test, wins/losses).
* **Relevance level** of the binary metrics (``rel_threshold``): when not given, ``2``
  if the judgments use a 4-level scale (some grade ``>= 3``, as TREC DL's 0-3, where 1
  means "related" and ``trec_eval -l 2`` is the convention), else ``1`` (binary
  judgments, and 0/1/2 scales such as NovelEval's where 1 is "partially relevant").
  nDCG always uses every grade.
* **Cost**: the wall-clock time of each :meth:`~xrerank_core.Reranker.rerank` call
  alone (tokenization, batching, the model; not the first stage, not the metrics),
  after one untimed warm-up call; p50 / p95 / mean over the queries. Pairs per second
  count (query, candidate) pairs. Tokens per second count the tokens the model reads:
  for each window the engine scores (a candidate, or each MaxP window of a long one,
  each distinct text once) its tokens plus the query's plus the special tokens, without
  padding; they are counted with the scorer's ``token_offsets`` outside the timed call
  (``None`` for a scorer that cannot tokenize). Peak RSS is ``ru_maxrss`` of the whole
  process since it started (model loading and data included), in MiB.
"""

from __future__ import annotations

import logging
import math
import re
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from xrerank_core._exceptions import ConfigError, InputError
from xrerank_core.eval._datasets import (
    Candidate,
    EvalDataset,
    _qid_key,
    finite_below,
    run_from_candidates,
    write_trec_run,
)
from xrerank_core.eval._metrics import EvalResult, MetricComparison, compare_runs, evaluate_run

if TYPE_CHECKING:
    import os

    from xrerank_core._engine import Reranker

__all__ = ["CostReport", "EvalReport", "FirstStage", "auto_rel_threshold", "default_metrics", "run_eval"]

logger = logging.getLogger(__name__)

FirstStage = Literal["auto", "given", "dense"]
"""Where candidates come from: the dataset's own lists, dense retrieval, or ``"auto"``
(the dataset's lists when it has them, else dense retrieval over its corpus)."""

_FIRST_STAGES = ("auto", "given", "dense")


@dataclass(frozen=True)
class CostReport:
    """What reranking cost, measured around each ``rerank`` call.

    Attributes:
        queries: Queries timed (those with at least one candidate).
        pairs: (query, candidate) pairs reranked.
        tokens: Tokens the model read (see the module docstring); ``None`` when the
            scorer cannot tokenize.
        rerank_seconds: Total time inside the timed ``rerank`` calls.
        latency_p50: Median seconds per query.
        latency_p95: 95th percentile of seconds per query (linear interpolation).
        latency_mean: Mean seconds per query.
        pairs_per_second: ``pairs / rerank_seconds``.
        tokens_per_second: ``tokens / rerank_seconds``, or ``None``.
        per_query_latency: ``{qid: seconds}``.
    """

    queries: int
    pairs: int
    tokens: int | None
    rerank_seconds: float
    latency_p50: float
    latency_p95: float
    latency_mean: float
    pairs_per_second: float
    tokens_per_second: float | None
    per_query_latency: dict[str, float]


@dataclass(frozen=True)
class EvalReport:
    """The result of :func:`run_eval`.

    Attributes:
        dataset: The dataset's name, e.g. ``"trec-dl-2019-passage/BM25"``.
        model: The reranker's model, or ``None`` when only the first stage was evaluated.
        backend: ``"torch"``, ``"onnx"`` or ``"onnx-int8"`` (or the scorer's class name for a
            custom scorer); ``None`` without a reranker.
        device: The device the model runs on; ``None`` without a reranker.
        settings: Everything else that shapes the numbers: ``first_stage``,
            ``candidates``, ``top_n``, ``queries`` (as asked), ``metrics``,
            ``rel_threshold``, and the reranker's ``max_length``, ``batch_size``,
            ``fusion``, ``fusion_weight``, ...
        query_ids: The evaluated queries, in order.
        first_stage: Metrics of the first-stage run (mean and per query).
        reranked: Metrics of the reranked run, or ``None``.
        comparison: ``{metric: MetricComparison}``, first stage as the baseline, or ``None``.
        cost: Latency and throughput of reranking, or ``None``.
        first_stage_seconds: Time to get the candidates (for ``"dense"``: building or
            reusing the collection, then retrieval; ~0 for ``"given"``).
        peak_rss_mib: Peak resident memory of the whole process so far, in MiB
            (``None`` where the ``resource`` module is missing, e.g. on Windows).
        wall_seconds: Time :func:`run_eval` took in all.
        model_alone: With fusion on, the metrics of ranking by the cross-encoder's own
            score (from the same scoring pass), else ``None``.
        model_alone_comparison: ``{metric: MetricComparison}`` of ``model_alone``
            against the first stage, else ``None``.
    """

    dataset: str
    model: str | None
    backend: str | None
    device: str | None
    settings: dict[str, Any]
    query_ids: tuple[str, ...]
    first_stage: EvalResult
    reranked: EvalResult | None
    comparison: dict[str, MetricComparison] | None
    cost: CostReport | None
    first_stage_seconds: float
    peak_rss_mib: float | None
    wall_seconds: float
    model_alone: EvalResult | None = None
    model_alone_comparison: dict[str, MetricComparison] | None = None

    @property
    def metrics(self) -> list[str]:
        """The metric names, in order."""
        return list(self.first_stage.mean)

    def to_dict(self) -> dict[str, Any]:
        """The report as plain JSON types (NaN and infinities become ``None``)."""
        out: dict[str, Any] = {
            "dataset": self.dataset,
            "model": self.model,
            "backend": self.backend,
            "device": self.device,
            "settings": dict(self.settings),
            "query_ids": list(self.query_ids),
            "first_stage": {"mean": self.first_stage.mean, "per_query": self.first_stage.per_query},
            "reranked": (
                None if self.reranked is None else {"mean": self.reranked.mean, "per_query": self.reranked.per_query}
            ),
            "comparison": (
                None if self.comparison is None else {name: asdict(c) for name, c in self.comparison.items()}
            ),
            "cost": None if self.cost is None else asdict(self.cost),
            "first_stage_seconds": self.first_stage_seconds,
            "peak_rss_mib": self.peak_rss_mib,
            "wall_seconds": self.wall_seconds,
            "model_alone": (
                None
                if self.model_alone is None
                else {"mean": self.model_alone.mean, "per_query": self.model_alone.per_query}
            ),
            "model_alone_comparison": (
                None
                if self.model_alone_comparison is None
                else {name: asdict(c) for name, c in self.model_alone_comparison.items()}
            ),
        }
        cleaned: dict[str, Any] = _json_safe(out)
        return cleaned


def _json_safe(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


# --------------------------------------------------------------------------- helpers


def default_metrics(top_n: int = 10, candidates: int = 100) -> tuple[str, ...]:
    """The metrics :func:`run_eval` computes by default.

    Args:
        top_n: Cutoff of the precision-oriented metrics (what an LLM would be given).
        candidates: Cutoff of the recall ceiling.

    Returns:
        ``(ndcg@top_n, mrr@top_n, precision@top_n, recall@top_n, recall@candidates)``,
        without duplicates; :data:`~xrerank_core.eval.DEFAULT_METRICS` for ``(10, 100)``.
    """
    names = [f"ndcg@{top_n}", f"mrr@{top_n}", f"precision@{top_n}", f"recall@{top_n}", f"recall@{candidates}"]
    return tuple(dict.fromkeys(names))


def auto_rel_threshold(qrels: Mapping[str, Mapping[str, int]]) -> int:
    """Choose the relevance level of the binary metrics from the judgments' scale.

    Args:
        qrels: ``{qid: {docid: grade}}``.

    Returns:
        ``2`` when some grade is ``>= 3`` (a 4-level scale such as TREC DL's 0-3,
        evaluated with ``trec_eval -l 2``), else ``1``.
    """
    top = max((g for judged in qrels.values() for g in judged.values()), default=0)
    return 2 if top >= 3 else 1


def _positive_int(name: str, value: object, *, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        msg = f"{name} must be an int >= 1, not {value!r}"
        raise ConfigError(msg)


def _percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile with linear interpolation (numpy's default)."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    pos = (len(ordered) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def peak_rss_mib() -> float | None:
    """Peak resident set size of this process since it started, in MiB (``None`` on Windows)."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    unit = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
    return float(peak * unit) / 2**20


def collection_name_for(dataset_name: str) -> str:
    """A Chroma collection name for a dataset's corpus: ``xrerank-`` + the name before ``/``.

    Splits of one dataset (``scifact/test``, ``scifact/train``) share one corpus, so
    they share one collection.
    """
    base = re.sub(r"[^a-zA-Z0-9._-]+", "-", dataset_name.split("/")[0]).strip("-._") or "corpus"
    return f"xrerank-{base}"[:200]


def _select_queries(
    dataset: EvalDataset, queries: int | None, rel_threshold: int, ignore_queries_without_relevant: bool
) -> list[str]:
    judged = [q for q, j in dataset.qrels.items() if j]
    if ignore_queries_without_relevant:
        judged = [q for q in judged if max(dataset.qrels[q].values()) >= rel_threshold]
    if not judged:
        msg = (
            f"dataset {dataset.name!r} has no judged query"
            + (f" with a document graded >= {rel_threshold}" if ignore_queries_without_relevant else "")
            + "; evaluation needs relevance judgments (qrels)"
        )
        raise InputError(msg)
    ordered = sorted(judged, key=_qid_key)
    return ordered if queries is None else ordered[:queries]


def _resolve_first_stage(dataset: EvalDataset, first_stage: str) -> Literal["given", "dense"]:
    if first_stage not in _FIRST_STAGES:
        msg = f"first_stage must be one of {', '.join(_FIRST_STAGES)}, not {first_stage!r}"
        raise ConfigError(msg)
    if first_stage == "auto":
        if dataset.candidates is not None:
            return "given"
        if dataset.corpus is not None:
            return "dense"
        msg = f"dataset {dataset.name!r} has neither candidates nor a corpus; there is nothing to rerank"
        raise InputError(msg)
    if first_stage == "given" and dataset.candidates is None:
        hint = "; use first_stage='dense' to retrieve from its corpus" if dataset.corpus is not None else ""
        msg = f"dataset {dataset.name!r} has no first-stage candidates{hint}"
        raise ConfigError(msg)
    if first_stage == "dense" and dataset.corpus is None:
        msg = f"dataset {dataset.name!r} has no corpus to retrieve from; use its given candidates (first_stage='given')"
        raise ConfigError(msg)
    return "given" if first_stage == "given" else "dense"


def _dense(
    dataset: EvalDataset,
    qids: Sequence[str],
    candidates: int,
    chroma_dir: str | os.PathLike[str] | None,
    collection_name: str,
    show_progress: bool | None,
) -> dict[str, list[Candidate]]:
    from xrerank_core.eval._firststage import build_chroma_collection, dense_candidates

    if dataset.corpus is None:  # checked by _resolve_first_stage; keeps mypy informed
        msg = f"dataset {dataset.name!r} has no corpus"
        raise ConfigError(msg)
    collection = build_chroma_collection(
        dataset.corpus, chroma_dir, collection_name=collection_name, show_progress=show_progress
    )
    return dense_candidates(collection, {q: dataset.queries[q] for q in qids}, k=candidates)


def _describe_reranker(reranker: Reranker) -> tuple[str, str, dict[str, Any]]:
    from xrerank_core._backends._torch import TorchScorer

    scorer = reranker.scorer
    if isinstance(scorer, TorchScorer):
        backend = "torch"
    elif type(scorer).__name__ == "OnnxScorer":
        backend = "onnx-int8" if getattr(scorer, "quantized", False) else "onnx"
    else:
        backend = type(scorer).__name__
    device = str(getattr(scorer, "device", reranker.config.device))
    c = reranker.config
    options: dict[str, Any] = {
        "max_length": reranker.max_length,
        "batch_size": c.batch_size,
        "max_batch_tokens": c.max_batch_tokens,
        "dtype": c.dtype,
        "normalize": c.normalize,
        "long_documents": reranker.long_documents,
        "fusion": c.fusion,
        "fusion_weight": reranker.fusion_weight if c.fusion != "none" else None,
        "rrf_k": c.rrf_k if c.fusion == "rrf" else None,
    }
    return backend, device, options


def _rerank_all(
    reranker: Reranker,
    dataset: EvalDataset,
    cands: Mapping[str, Sequence[Candidate]],
    *,
    warmup: bool,
    show_progress: bool,
) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]], CostReport]:
    """The reranked run, the run ranked by the model's own score alone, and the cost."""
    from tqdm.auto import tqdm

    run: dict[str, dict[str, float]] = {}
    alone: dict[str, dict[str, float]] = {}
    latency: dict[str, float] = {}
    pairs = 0
    tokens: int | None = 0
    todo = [q for q in cands if cands[q]]
    if warmup and todo:
        # another query than any timed one, so a score cache cannot serve the first timed call
        first = cands[todo[0]]
        query = f"warm-up: {dataset.queries[todo[0]]}"
        reranker.rerank(query, [c.text for c in first], first_stage_scores=[c.score for c in first])
    for qid in tqdm(todo, desc="reranking", unit="query", disable=not show_progress):
        query = dataset.queries[qid]
        texts = [c.text for c in cands[qid]]
        scores = [c.score for c in cands[qid]]
        started = time.perf_counter()
        ranked = reranker.rerank(query, texts, first_stage_scores=scores)
        latency[qid] = time.perf_counter() - started
        pairs += len(texts)
        if tokens is not None:
            n = reranker.count_tokens(query, texts)
            tokens = None if n is None else tokens + n
        ordered: dict[str, float] = {}
        by_model: dict[str, float] = {}
        for r in ranked:
            ordered.setdefault(cands[qid][r.index].docid, float(r.score))
            # A cascade's tail, which the full model never scored, carries the cheaper model's
            # scores (another scale): last, in the reranker's order, as in the fused run.
            by_model.setdefault(cands[qid][r.index].docid, float(r.model_score) if r.scored else -math.inf)
        run[qid] = _finite(ordered)
        alone[qid] = _finite(by_model)
    for qid in cands:
        run.setdefault(qid, {})
        alone.setdefault(qid, {})
    total = math.fsum(latency.values())
    values = list(latency.values())
    cost = CostReport(
        queries=len(latency),
        pairs=pairs,
        tokens=tokens,
        rerank_seconds=total,
        latency_p50=_percentile(values, 50),
        latency_p95=_percentile(values, 95),
        latency_mean=total / len(values) if values else math.nan,
        pairs_per_second=pairs / total if total > 0 else math.nan,
        tokens_per_second=None if tokens is None else (tokens / total if total > 0 else math.nan),
        per_query_latency=latency,
    )
    return run, alone, cost


def _finite(run: dict[str, float]) -> dict[str, float]:
    """``run`` with non-finite scores (a cascade's unscored tail: ``-inf``) just below the lowest finite one.

    The dict is in the reranker's order, which breaks the resulting ties, so the ranking is unchanged.
    """
    return dict(zip(run, finite_below(list(run.values())), strict=True))


# --------------------------------------------------------------------------- the API


def run_eval(
    dataset: EvalDataset,
    reranker: Reranker | None,
    *,
    candidates: int = 100,
    top_n: int = 10,
    queries: int | None = None,
    first_stage: FirstStage = "auto",
    chroma_dir: str | os.PathLike[str] | None = None,
    collection_name: str | None = None,
    metrics: Sequence[str] | None = None,
    rel_threshold: int | None = None,
    ignore_queries_without_relevant: bool = False,
    warmup: bool = True,
    show_progress: bool | None = None,
    save_run: str | os.PathLike[str] | None = None,
) -> EvalReport:
    """Evaluate a first stage and a reranker on top of it: quality before/after, and cost.

    See the module docstring for how queries are chosen, what the reranked run holds,
    the default metrics and relevance level, and what the cost figures measure.

    Args:
        dataset: Queries, judgments and candidates and/or a corpus.
        reranker: The reranker to evaluate; ``None`` evaluates the first stage only.
        candidates: First-stage candidates per query (each list is cut to this many).
        top_n: The cutoff of the default metrics (what a pipeline keeps).
        queries: Evaluate only the first ``queries`` judged queries (sorted by id).
        first_stage: ``"given"`` (the dataset's candidates), ``"dense"`` (Chroma with
            the packaged all-MiniLM-L6-v2 over the corpus) or ``"auto"``.
        chroma_dir: Folder the dense collection is persisted in (and reused from);
            ``None`` keeps it in memory.
        collection_name: The Chroma collection; default ``xrerank-<dataset>``.
        metrics: Metric names; default :func:`default_metrics` of ``top_n`` and
            ``candidates``.
        rel_threshold: Smallest grade the binary metrics count as relevant; default
            :func:`auto_rel_threshold`.
        ignore_queries_without_relevant: Skip queries with no document graded
            ``>= rel_threshold`` (the usual WikiQA protocol).
        warmup: Rerank the first query once, untimed, before timing.
        show_progress: Progress bars on stderr; ``None`` = only when stderr is a terminal.
        save_run: Write the first stage's ranking of the evaluated queries (top
            ``candidates``) to this TREC run file (``.gz`` compresses), e.g. to evaluate
            again where the dense first stage cannot run (a GPU box without Chroma):
            load the dataset, give it these candidates (:func:`candidates_from_run`)
            and use ``first_stage="given"`` (``xrerank eval --run-file``).

    Returns:
        The :class:`EvalReport`.

    Raises:
        ConfigError: An option is invalid, or the dataset lacks what ``first_stage``
            needs.
        InputError: The dataset has no judged query.
        MissingDependencyError: ranx / scipy (or, for ``"dense"``, chromadb and
            sentence-transformers) are missing: ``pip install "xrerank[eval]"``.
    """
    started = time.perf_counter()
    _positive_int("candidates", candidates)
    _positive_int("top_n", top_n)
    _positive_int("queries", queries, allow_none=True)
    if rel_threshold is not None:
        _positive_int("rel_threshold", rel_threshold)
    kind = _resolve_first_stage(dataset, first_stage)
    threshold = auto_rel_threshold(dataset.qrels) if rel_threshold is None else rel_threshold
    names = list(default_metrics(top_n, candidates) if metrics is None else metrics)
    show = sys.stderr.isatty() if show_progress is None else show_progress
    qids = _select_queries(dataset, queries, threshold, ignore_queries_without_relevant)
    logger.info("evaluating %s: %d queries, first stage %s, %d candidates", dataset.name, len(qids), kind, candidates)

    settings: dict[str, Any] = {
        "first_stage": kind,
        "candidates": candidates,
        "top_n": top_n,
        "queries": queries,
        "num_queries": len(qids),
        "metrics": names,
        "rel_threshold": threshold,
        "rel_threshold_auto": rel_threshold is None,
        "ignore_queries_without_relevant": ignore_queries_without_relevant,
        "warmup": warmup,
    }

    fs_started = time.perf_counter()
    cands: dict[str, list[Candidate]]
    if kind == "given":
        given = dataset.candidates or {}
        cands = {q: list(given.get(q, []))[:candidates] for q in qids}
        empty = [q for q in qids if not cands[q]]
        if empty:
            logger.warning(
                "%d of the %d evaluated queries have no first-stage candidates (scored as empty rankings), e.g. %s",
                len(empty),
                len(qids),
                empty[:5],
            )
    else:
        name = collection_name or collection_name_for(dataset.name)
        settings["chroma_dir"] = None if chroma_dir is None else str(Path(chroma_dir))
        settings["collection"] = name
        settings["embedder"] = "all-MiniLM-L6-v2 (packaged)"
        cands = _dense(dataset, qids, candidates, chroma_dir, name, show_progress)
    first_stage_seconds = time.perf_counter() - fs_started
    # the longest list actually reranked: a given first stage may hold fewer than `candidates` (NovelEval: 20)
    settings["deepest_list"] = max((len(c) for c in cands.values()), default=0)
    if save_run is not None:
        write_trec_run(save_run, cands, tag=f"xrerank-{kind}")

    qrels = {q: dataset.qrels[q] for q in qids}
    options: dict[str, Any] = {
        "rel_threshold": threshold,
        "ignore_queries_without_relevant": ignore_queries_without_relevant,
    }
    first_run = run_from_candidates(cands)
    first = evaluate_run(qrels, first_run, names, **options)

    model = backend = device = None
    reranked = comparison = cost = model_alone = alone_comparison = None
    if reranker is not None:
        backend, device, reranker_options = _describe_reranker(reranker)
        model = reranker.config.model
        settings.update(reranker_options)
        new_run, alone_run, cost = _rerank_all(reranker, dataset, cands, warmup=warmup, show_progress=show)
        reranked = evaluate_run(qrels, new_run, names, **options)
        comparison = compare_runs(qrels, first_run, new_run, names, **options)
        if reranker.config.fusion != "none":
            model_alone = evaluate_run(qrels, alone_run, names, **options)
            alone_comparison = compare_runs(qrels, first_run, alone_run, names, **options)
        logger.info(
            "%s: %s %.4f -> %.4f; p50 %.1f ms/query",
            dataset.name,
            names[0],
            first.mean[names[0]],
            reranked.mean[names[0]],
            cost.latency_p50 * 1000,
        )
    return EvalReport(
        dataset=dataset.name,
        model=model,
        backend=backend,
        device=device,
        settings=settings,
        query_ids=tuple(qids),
        first_stage=first,
        reranked=reranked,
        comparison=comparison,
        cost=cost,
        first_stage_seconds=first_stage_seconds,
        peak_rss_mib=peak_rss_mib(),
        wall_seconds=time.perf_counter() - started,
        model_alone=model_alone,
        model_alone_comparison=alone_comparison,
    )
