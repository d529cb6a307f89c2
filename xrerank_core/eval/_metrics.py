"""Ranking metrics, computed with `ranx <https://github.com/AmenRa/ranx>`_.

Conventions (they match ``trec_eval``):

* ``ndcg@k`` is ranx ``ndcg``: linear gain (the grade itself) over a ``log2(rank + 1)``
  discount, i.e. trec_eval ``ndcg_cut.k``, the figure TREC DL and BEIR publish. (ranx
  ``ndcg_burges`` is the ``2**grade - 1`` variant; it is available as ``ndcg_burges@k``.)
  On TREC DL 2019 it gives BM25 0.5058, BM25+RM3 0.5216, SPLADE++ 0.7308.
* Unjudged documents are non-relevant.
* Binary metrics (``mrr``, ``precision``/``p``, ``recall``, ``map``, ``hit_rate``) count a
  document as relevant when its grade is ``>= rel_threshold`` (``1`` by default; TREC DL
  uses ``2``, like ``trec_eval -l 2``). ``ndcg`` always uses every grade ``>= 1`` as its
  gain, whatever ``rel_threshold`` is.
* Every query with at least one judgment is evaluated; a query missing from the run
  scores 0 (``trec_eval -c``). Run queries without judgments are ignored.
* Ties: documents with equal scores are ordered by ``tie_break``: ``"input_order"``
  (default) keeps the order of the run's inner mapping (a stable sort, so a reranker
  that ties keeps the first-stage order), ``"trec_eval"`` orders them by docid,
  descending, as trec_eval does. The order is made explicit before ranx sees the run,
  so results never depend on ranx's unstable sort or on string hashing.

ranx compiles its numba kernels on first use: about 10 s once per environment (the
machine code is cached in ranx's ``__pycache__``; later processes need about 0.5 s).
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from xrerank_core._exceptions import ConfigError, InputError, missing_dependency

__all__ = [
    "DEFAULT_METRICS",
    "EvalResult",
    "MetricComparison",
    "TieBreak",
    "compare_runs",
    "evaluate_run",
]

logger = logging.getLogger(__name__)

DEFAULT_METRICS: tuple[str, ...] = ("ndcg@10", "mrr@10", "precision@10", "recall@10", "recall@100")
"""Metrics :func:`evaluate_run` and :func:`compare_runs` compute by default."""

TieBreak = Literal["input_order", "trec_eval"]

_GRADED = frozenset({"ndcg", "ndcg_burges"})
_BINARY = frozenset({"mrr", "precision", "recall", "map", "hit_rate"})
_ALIASES = {"p": "precision"}
_NO_RESULTS = "\x00xrerank:no-results\x00"  # stands in for an empty ranking (ranx needs >= 1 row)
_TIE_TOLERANCE = 1e-12


@dataclass(frozen=True)
class EvalResult:
    """Scores of one run.

    Attributes:
        mean: ``{metric: mean over the evaluated queries}``.
        per_query: ``{qid: {metric: score}}``, qids sorted.
    """

    mean: dict[str, float]
    per_query: dict[str, dict[str, float]]

    @property
    def num_queries(self) -> int:
        """How many queries were evaluated."""
        return len(self.per_query)


@dataclass(frozen=True)
class MetricComparison:
    """One metric, baseline run against new run, over the same queries.

    Attributes:
        metric: The metric name.
        baseline: Mean of the baseline run.
        new: Mean of the new run.
        delta: ``new - baseline``.
        p_value: Two-sided paired Student t-test over the per-query scores
            (``scipy.stats.ttest_rel``); ``1.0`` when every query ties, ``0.0`` when
            every query changes by the same non-zero amount, ``nan`` with fewer than
            two queries.
        wins: Queries where the new run scores higher.
        losses: Queries where it scores lower.
        ties: Queries where both score the same (within 1e-12).
    """

    metric: str
    baseline: float
    new: float
    delta: float
    p_value: float
    wins: int
    losses: int
    ties: int


@dataclass(frozen=True)
class _Metric:
    name: str  # as the caller wrote it
    ranx_name: str


def _parse_metrics(metrics: Sequence[str] | str, rel_threshold: int) -> list[_Metric]:
    if isinstance(metrics, str):
        metrics = [metrics]
    if not metrics:
        msg = "metrics is empty; pass names like 'ndcg@10', 'mrr@10', 'recall@100'"
        raise ConfigError(msg)
    known = sorted(_GRADED | _BINARY | set(_ALIASES))
    parsed: list[_Metric] = []
    for name in metrics:
        if not isinstance(name, str):
            msg = f"metric names are strings, got {name!r}"
            raise ConfigError(msg)
        if "-l" in name:
            msg = f"metric {name!r}: set the relevance level with rel_threshold=..., not a '-l' suffix"
            raise ConfigError(msg)
        base, sep, cutoff = name.partition("@")
        base = _ALIASES.get(base.lower(), base.lower())
        if base not in _GRADED and base not in _BINARY:
            msg = f"unknown metric {name!r}; known: {known} (optionally with @k)"
            raise ConfigError(msg)
        if sep:
            if not cutoff.isdigit() or int(cutoff) < 1:
                msg = f"metric {name!r}: the cutoff after '@' must be a positive integer"
                raise ConfigError(msg)
            base = f"{base}@{int(cutoff)}"
        if base.split("@")[0] in _BINARY and rel_threshold != 1:
            base = f"{base}-l{rel_threshold}"
        parsed.append(_Metric(name=name, ranx_name=base))
    return parsed


def _check_options(rel_threshold: int, tie_break: str) -> None:
    if isinstance(rel_threshold, bool) or not isinstance(rel_threshold, int) or rel_threshold < 1:
        msg = f"rel_threshold must be an int >= 1, not {rel_threshold!r}"
        raise ConfigError(msg)
    if tie_break not in ("input_order", "trec_eval"):
        msg = f"tie_break must be 'input_order' or 'trec_eval', not {tie_break!r}"
        raise ConfigError(msg)


def _judged_queries(
    qrels: Mapping[str, Mapping[str, int]], rel_threshold: int, ignore_queries_without_relevant: bool
) -> list[str]:
    qids: list[str] = []
    for qid, judged in qrels.items():
        if not judged:
            continue
        for docid, grade in judged.items():
            if isinstance(grade, bool) or not isinstance(grade, int):
                msg = f"qrels[{qid!r}][{docid!r}] = {grade!r}: grades must be ints"
                raise InputError(msg)
        if ignore_queries_without_relevant and max(judged.values()) < rel_threshold:
            continue
        qids.append(qid)
    if not qids:
        msg = "no query to evaluate: the qrels hold no judged (or no relevant) query"
        raise InputError(msg)
    return sorted(qids)


def _ordered_ranking(qid: str, docs: Mapping[str, float], tie_break: TieBreak) -> dict[str, float]:
    """Return ``{docid: n - position}``: the run's order with ties resolved explicitly."""
    items: list[tuple[str, float]] = []
    for docid, score in docs.items():
        try:
            value = float(score)
        except (TypeError, ValueError):
            value = math.nan
        if not math.isfinite(value):
            msg = f"run[{qid!r}][{docid!r}] = {score!r}: scores must be finite numbers"
            raise InputError(msg)
        items.append((docid, value))
    if not items:
        return {_NO_RESULTS: 0.0}
    if tie_break == "trec_eval":
        items.sort(key=lambda item: item[0], reverse=True)
    items.sort(key=lambda item: -item[1])  # stable: equal scores keep the order above
    n = len(items)
    return {docid: float(n - i) for i, (docid, _) in enumerate(items)}


def _ranx_scores(
    qrels: Mapping[str, Mapping[str, int]],
    run: Mapping[str, Mapping[str, float]],
    qids: list[str],
    metrics: list[_Metric],
    tie_break: TieBreak,
) -> dict[str, list[float]]:
    try:
        from numba.core.errors import NumbaTypeSafetyWarning
        from ranx import evaluate
    except ImportError as exc:
        error = missing_dependency("ranx", "eval", exc)
        raise error from exc
    # ranx pairs qrels and run by position, so both dicts must list qids in one order.
    ranx_qrels = {qid: {d: int(g) for d, g in qrels[qid].items()} for qid in qids}
    ranx_run = {qid: _ordered_ranking(qid, run.get(qid, {}), tie_break) for qid in qids}
    names = list(dict.fromkeys(m.ranx_name for m in metrics))
    # ranx 0.3.21 raises KeyError for a single metric with return_mean=False; ask for a
    # cheap extra one ("hits@1", not exposed here) so the result is always a dict.
    asked = names if len(names) > 1 else [*names, "hits@1"]
    with warnings.catch_warnings():
        # ranx casts hashed ids uint64 -> int64; harmless, but numba warns about it.
        warnings.simplefilter("ignore", NumbaTypeSafetyWarning)
        raw: Any = evaluate(ranx_qrels, ranx_run, asked, return_mean=False, save_results_in_run=False)
    return {name: [float(x) for x in raw[name]] for name in names}


def evaluate_run(
    qrels: Mapping[str, Mapping[str, int]],
    run: Mapping[str, Mapping[str, float]],
    metrics: Sequence[str] | str = DEFAULT_METRICS,
    *,
    rel_threshold: int = 1,
    tie_break: TieBreak = "input_order",
    ignore_queries_without_relevant: bool = False,
) -> EvalResult:
    """Score a run against judgments.

    Args:
        qrels: ``{qid: {docid: grade}}``; grades are ints, ``<= 0`` = not relevant.
        run: ``{qid: {docid: score}}``, higher is better. Not modified.
        metrics: Names like ``"ndcg@10"``, ``"mrr@10"``, ``"precision@10"`` (or
            ``"p@10"``), ``"recall@100"``, ``"map@100"``, ``"hit_rate@10"``,
            ``"ndcg_burges@10"``; without ``@k`` the whole ranking counts.
        rel_threshold: Smallest grade a binary metric counts as relevant (TREC DL: 2).
        tie_break: How equal scores are ordered (see the module docstring).
        ignore_queries_without_relevant: Skip queries with no document graded
            ``>= rel_threshold`` (the usual WikiQA protocol) instead of scoring them 0.

    Returns:
        Mean and per-query scores, keyed by the metric names as given.

    Raises:
        ConfigError: If a metric name or an option is invalid.
        InputError: If no query can be evaluated, a grade is not an int or a score is
            not a finite number.
        MissingDependencyError: If ranx is not installed.
    """
    _check_options(rel_threshold, tie_break)
    parsed = _parse_metrics(metrics, rel_threshold)
    qids = _judged_queries(qrels, rel_threshold, ignore_queries_without_relevant)
    unjudged = sum(1 for q in run if q not in qrels)
    if unjudged:
        logger.debug("%d run queries have no judgments and are ignored", unjudged)
    missing = sum(1 for q in qids if q not in run)
    if missing:
        logger.warning("%d judged queries are missing from the run and score 0", missing)
    scores = _ranx_scores(qrels, run, qids, parsed, tie_break)
    per_query = {qid: {m.name: scores[m.ranx_name][i] for m in parsed} for i, qid in enumerate(qids)}
    mean = {m.name: math.fsum(scores[m.ranx_name]) / len(qids) for m in parsed}
    return EvalResult(mean=mean, per_query=per_query)


def compare_runs(
    qrels: Mapping[str, Mapping[str, int]],
    baseline_run: Mapping[str, Mapping[str, float]],
    new_run: Mapping[str, Mapping[str, float]],
    metrics: Sequence[str] | str = DEFAULT_METRICS,
    *,
    rel_threshold: int = 1,
    tie_break: TieBreak = "input_order",
    ignore_queries_without_relevant: bool = False,
) -> dict[str, MetricComparison]:
    """Compare two runs query by query (e.g. first stage vs reranked).

    Both runs are scored on the same judged queries with :func:`evaluate_run`; the
    p-value is a two-sided paired Student t-test (``scipy.stats.ttest_rel``, the test
    ranx's ``compare(stat_test="student")`` runs).

    Args:
        qrels: ``{qid: {docid: grade}}``.
        baseline_run: The reference run.
        new_run: The run being tested.
        metrics: As in :func:`evaluate_run`.
        rel_threshold: As in :func:`evaluate_run`.
        tie_break: As in :func:`evaluate_run`.
        ignore_queries_without_relevant: As in :func:`evaluate_run`.

    Returns:
        ``{metric: MetricComparison}`` in the order of ``metrics``.

    Raises:
        ConfigError: If a metric name or an option is invalid.
        InputError: As in :func:`evaluate_run`.
        MissingDependencyError: If ranx or scipy is not installed.
    """
    try:
        from scipy.stats import ttest_rel
    except ImportError as exc:
        error = missing_dependency("scipy", "eval", exc)
        raise error from exc
    options: dict[str, Any] = {
        "rel_threshold": rel_threshold,
        "tie_break": tie_break,
        "ignore_queries_without_relevant": ignore_queries_without_relevant,
    }
    before = evaluate_run(qrels, baseline_run, metrics, **options)
    after = evaluate_run(qrels, new_run, metrics, **options)
    qids = list(before.per_query)
    out: dict[str, MetricComparison] = {}
    for name in before.mean:
        base = [before.per_query[q][name] for q in qids]
        new = [after.per_query[q][name] for q in qids]
        diffs = [n - b for b, n in zip(base, new, strict=True)]
        wins = sum(1 for d in diffs if d > _TIE_TOLERANCE)
        losses = sum(1 for d in diffs if d < -_TIE_TOLERANCE)
        if len(qids) < 2:
            p_value = math.nan
        elif wins == losses == 0:
            p_value = 1.0
        elif max(diffs) - min(diffs) <= _TIE_TOLERANCE:
            p_value = 0.0  # every query moved by the same amount: zero variance, t is infinite
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # near-constant differences
                p_value = float(ttest_rel(new, base).pvalue)
        out[name] = MetricComparison(
            metric=name,
            baseline=before.mean[name],
            new=after.mean[name],
            delta=after.mean[name] - before.mean[name],
            p_value=p_value,
            wins=wins,
            losses=losses,
            ties=len(qids) - wins - losses,
        )
    return out
