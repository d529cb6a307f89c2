"""Fusion of the cross-encoder's scores with the first stage's, per query.

A cross-encoder trained in one domain can be confidently wrong in another; the first
stage (dense or BM25) holds independent evidence. Fusing the two is cheap and robust:

* ``"zscore"``: standardise each list of scores within the query (mean 0, std 1), then
  ``w * z(cross-encoder) + (1 - w) * z(first stage)``. Scale-free, so a cosine
  similarity, a BM25 score and a logit mix fairly.
* ``"rrf"``: reciprocal ranks, ``w / (k + rank_ce) + (1 - w) / (k + rank_fs)`` (ranks from
  1; Cormack et al., SIGIR 2009, use k = 60). Needs only orders, not scores.

When the first stage gives no scores, its order is used: scores ``n, n-1, ..., 1``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

__all__ = ["Fusion", "fuse"]

Fusion = Literal["none", "zscore", "rrf"]


def _zscores(values: Sequence[float]) -> list[float]:
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / n)
    # Equal values leave a rounding residue of ~1e-17 in the mean (e.g. [0.1] * 3), which a
    # division would blow up to -1 for every one: they are equal, so their z-scores are 0.
    if max(values) == min(values) or std <= 1e-12 * max(1.0, max(abs(v) for v in values)):
        return [0.0] * n
    return [(v - mean) / std for v in values]


def _ranks(values: Sequence[float]) -> list[int]:
    """1-based ranks, best first; ties broken by position."""
    order = sorted(range(len(values)), key=lambda i: (-values[i], i))
    ranks = [0] * len(values)
    for r, i in enumerate(order, 1):
        ranks[i] = r
    return ranks


def input_order_scores(n: int) -> list[float]:
    """First-stage scores for ``n`` documents given best first: ``n, n - 1, ..., 1``."""
    return [float(n - i) for i in range(n)]


def fuse(
    model_scores: Sequence[float],
    first_stage: Sequence[float] | None,
    method: Fusion,
    weight: float,
    rrf_k: int = 60,
) -> list[float]:
    """Combine the cross-encoder's scores with the first stage's, for one query.

    Args:
        model_scores: The cross-encoder's scores, in input order.
        first_stage: The first stage's scores (higher is better), or ``None`` to use
            the input order as the first-stage ranking.
        method: ``"zscore"``, ``"rrf"`` or ``"none"`` (returns ``model_scores``).
        weight: The cross-encoder's share, in [0, 1].
        rrf_k: The constant of reciprocal-rank fusion.

    Returns:
        The fused scores, in input order.
    """
    if method == "none" or not model_scores:
        return list(model_scores)
    n = len(model_scores)
    first = list(first_stage) if first_stage is not None else input_order_scores(n)
    if method == "zscore":
        zm, zf = _zscores(model_scores), _zscores(first)
        return [weight * a + (1.0 - weight) * b for a, b in zip(zm, zf, strict=True)]
    rm, rf = _ranks(model_scores), _ranks(first)
    return [weight / (rrf_k + a) + (1.0 - weight) / (rrf_k + b) for a, b in zip(rm, rf, strict=True)]
