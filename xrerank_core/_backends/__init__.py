"""Scorers: one module per way of computing a cross-encoder score.

The engine is written against :class:`Scorer` only; a backend implements it and
nothing else (no sorting, windowing, thresholds or top-n).
"""

from __future__ import annotations

from xrerank_core._backends._base import Scorer

__all__ = ["Scorer"]
