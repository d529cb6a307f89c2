"""Show an :class:`~xrerank_core.eval.EvalReport`: a rich table, a JSON file, a PNG plot.

rich and matplotlib are imported only by the functions that need them (both come with
``pip install "xrerank[eval]"``). The plot is drawn on a bare matplotlib ``Figure``
(Agg canvas), so it never touches pyplot's global state or the user's backend.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from xrerank_core._exceptions import ConfigError, missing_dependency
from xrerank_core.eval._run import EvalReport

if TYPE_CHECKING:
    from rich.table import Table

__all__ = ["model_label", "plot", "render_table", "write_json"]

logger = logging.getLogger(__name__)

_PRETTY = {"ndcg": "nDCG", "ndcg_burges": "nDCG(burges)", "mrr": "MRR", "precision": "P", "p": "P"}


def model_label(model: str | None) -> str:
    """A short label for a model: the last part of a hub id or folder (``"first-stage"`` for ``None``)."""
    if model is None:
        return "first-stage"
    return Path(model.rstrip("/\\")).name or model


def _pretty_metric(name: str) -> str:
    base, sep, cutoff = name.partition("@")
    label = _PRETTY.get(base.lower(), base[:1].upper() + base[1:])
    return f"{label}{sep}{cutoff}"


def _num(value: float | None, digits: int = 4) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:.{digits}f}"


def _ms(seconds: float) -> str:
    return _num(seconds * 1000, 1)  # "-" when no query was timed


def _p_value(p: float) -> str:
    if not math.isfinite(p):
        return "-"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _count(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:,.0f}"


def render_table(report: EvalReport) -> Table:
    """Build a rich table: each metric before and after reranking, then the cost.

    Args:
        report: The report.

    Returns:
        A ``rich.table.Table``; print it with ``rich.console.Console().print(table)``.

    Raises:
        MissingDependencyError: If rich is not installed.
    """
    try:
        from rich.table import Table
    except ImportError as exc:
        error = missing_dependency("rich", "eval", exc)
        raise error from exc
    s = report.settings
    depth = s.get("candidates")
    if isinstance(s.get("deepest_list"), int) and isinstance(depth, int) and s["deepest_list"] < depth:
        depth = f"{s['deepest_list']} (of {depth} asked)"
    from rich.markup import escape

    title = (
        f"{report.dataset}: {s.get('first_stage')} top-{depth}"
        + (f" -> {model_label(report.model)} ({report.backend}, {report.device})" if report.model else "")
        + (
            f", {s['fusion']} fusion, weight {s.get('fusion_weight')}"
            if report.model and s.get("fusion") not in (None, "none")
            else ""
        )
        + f", {len(report.query_ids)} queries"
    )
    title = escape(title)  # a folder named model[v2] is a name, not rich markup
    reranked = report.reranked
    table = Table(title=title, title_justify="left", min_width=min(len(title), 110))
    table.add_column("metric", no_wrap=True)
    table.add_column("first stage", justify="right")
    if reranked is not None:
        for name in ("reranked", "delta", "p", "W/L/T"):
            table.add_column(name, justify="right", no_wrap=True)
    blocks = [(report.reranked, report.comparison, "")]
    if report.model_alone is not None and report.model_alone_comparison is not None:
        blocks.append((report.model_alone, report.model_alone_comparison, " (model alone)"))
    for b, (after, comparison, suffix) in enumerate(blocks):
        if b:
            table.add_section()
        for name in report.metrics:
            before = report.first_stage.mean[name]
            if after is None or comparison is None:
                table.add_row(_pretty_metric(name), _num(before))
                continue
            cmp = comparison[name]
            significant = math.isfinite(cmp.p_value) and cmp.p_value < 0.05
            style = ("green" if cmp.delta > 0 else "red") if significant else ""
            table.add_row(
                _pretty_metric(name) + suffix,
                _num(before),
                _num(after.mean[name]),
                f"[{style}]{cmp.delta:+.4f}[/]" if style else f"{cmp.delta:+.4f}",
                _p_value(cmp.p_value),
                f"{cmp.wins}/{cmp.losses}/{cmp.ties}",
            )
    table.add_section()
    cost = report.cost
    rows: list[tuple[str, str]] = []
    if cost is not None:
        rows += [
            ("latency p50 / p95", f"{_ms(cost.latency_p50)} / {_ms(cost.latency_p95)} ms"),
            ("pairs / s", _count(cost.pairs_per_second)),
            ("tokens / s", _count(cost.tokens_per_second)),
        ]
    rss = "-" if report.peak_rss_mib is None else f"{report.peak_rss_mib:,.0f} MiB"
    rows += [
        ("peak RSS (process)", rss),
        ("first stage time", f"{report.first_stage_seconds:.2f} s"),
        ("wall time", f"{report.wall_seconds:.2f} s"),
    ]
    for label, value in rows:
        if reranked is None:
            table.add_row(label, value)
        else:
            table.add_row(label, "", value, "", "", "")
    return table


def write_json(report: EvalReport, path: str | os.PathLike[str]) -> Path:
    """Write the report as JSON (strict: NaN is written as ``null``).

    Args:
        report: The report.
        path: The file; its folder is created.

    Returns:
        The path written.
    """
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(report.to_dict(), indent=2, ensure_ascii=False, allow_nan=False)
    out.write_text(text + "\n", encoding="utf-8")
    return out


def plot(reports: Sequence[EvalReport], path: str | os.PathLike[str], metric: str | None = None) -> Path:
    """Plot quality against reranking latency, one point per first stage and per reranker run.

    The x axis is the p50 latency of the rerank call (ms per query; a first stage
    sits at 0, with its own cost not included), with a whisker to p95; the y axis is
    ``metric``. Each reranker point is joined to its first stage by a line.

    Args:
        reports: One or more reports (e.g. several models on one dataset).
        path: The PNG file; its folder is created.
        metric: The metric on the y axis; default the first metric of the first
            report (``ndcg@10`` with the default settings).

    Returns:
        The path written.

    Raises:
        ConfigError: If ``reports`` is empty or no report has ``metric``.
        MissingDependencyError: If matplotlib is not installed.
    """
    if not reports:
        msg = "plot needs at least one report"
        raise ConfigError(msg)
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        error = missing_dependency("matplotlib", "eval", exc)
        raise error from exc
    name = metric or reports[0].metrics[0]
    usable = [r for r in reports if name in r.first_stage.mean]
    if not usable:
        msg = f"no report has the metric {name!r}"
        raise ConfigError(msg)
    if len(usable) < len(reports):
        logger.warning("%d report(s) without %s are left out of the plot", len(reports) - len(usable), name)

    fig = Figure(figsize=(7.0, 4.5), dpi=120)
    ax = fig.add_subplot()
    seen: set[tuple[str, str, int]] = set()
    for r in usable:
        base_y = r.first_stage.mean[name]
        key = (r.dataset, str(r.settings.get("first_stage")), len(r.query_ids))
        if key not in seen:
            seen.add(key)
            ax.scatter([0.0], [base_y], marker="o", color="gray", zorder=3)
            ax.annotate(
                f"{r.dataset} (first stage)",
                (0.0, base_y),
                textcoords="offset points",
                xytext=(6, -12),
                fontsize=8,
            )
        if r.reranked is None or r.cost is None:
            continue
        x = r.cost.latency_p50 * 1000
        y = r.reranked.mean[name]
        p95 = r.cost.latency_p95 * 1000
        ax.plot([0.0, x], [base_y, y], color="lightgray", linewidth=1, zorder=1)
        ax.errorbar([x], [y], xerr=[[0.0], [max(p95 - x, 0.0)]], fmt="s", capsize=3, zorder=3)
        ax.annotate(model_label(r.model), (x, y), textcoords="offset points", xytext=(6, 6), fontsize=8)
    ax.set_xlabel("rerank latency, p50 (whisker: p95), ms per query")
    ax.set_ylabel(_pretty_metric(name))
    ax.set_title(f"{_pretty_metric(name)} against reranking latency")
    ax.margins(x=0.15, y=0.1)  # room for the labels
    ax.set_xlim(left=-0.05 * max(ax.get_xlim()[1], 1.0))
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png")
    return out
