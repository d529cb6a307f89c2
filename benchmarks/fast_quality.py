"""Quality of the fast configurations on every test query (no timing): does the speed cost nDCG@10?

``speed.py`` times each configuration on a subset of SciFact (the seed's float32 recipe takes
about 2 s per query there); this script scores all 300 SciFact test claims (dense top-100)
and all 43 DL19 queries (BM25 top-100) with the seed's recipe and with each fast configuration,
and reports nDCG@10 with a paired randomisation test against the seed (10,000 permutations).
Same model, candidates and pair length (192 tokens, truncated) as ``speed.py``.

    .venv/bin/python benchmarks/fast_quality.py [--scifact-queries N] [--out benchmarks/RESULTS.md]
"""

from __future__ import annotations

import argparse
import datetime as dt
import shlex
import sys
from pathlib import Path
from typing import Any

import numpy as np
from _common import ROOT, write_section
from speed import MODEL, dl19, scifact, seed_model, to_run

SECTION_START = "<!-- fast_quality.py:start -->"
SECTION_END = "<!-- fast_quality.py:end -->"

CONFIGS: list[tuple[str, dict[str, Any]]] = [
    ('backend="torch", dtype="bfloat16"', {"backend": "torch", "dtype": "bfloat16"}),
    ('backend="onnx-int8"', {"backend": "onnx-int8"}),
    (
        'backend="onnx-int8", cascade_top_k=20, cascade_max_length=96',
        {"backend": "onnx-int8", "cascade_top_k": 20, "cascade_max_length": 96},
    ),
]


def per_query_ndcg(qrels: dict[str, dict[str, int]], run: dict[str, dict[str, float]], trec_dl: bool) -> np.ndarray:
    from xrerank_core.eval import evaluate_run

    result = evaluate_run(qrels, run, ["ndcg@10"], rel_threshold=2 if trec_dl else 1)
    return np.asarray([result.per_query[q]["ndcg@10"] for q in sorted(qrels)])


def paired_p(a: np.ndarray, b: np.ndarray, rounds: int = 10_000, seed: int = 0) -> float:
    """Two-sided paired randomisation test on the mean difference."""
    rng = np.random.default_rng(seed)
    diff = b - a
    observed = abs(diff.mean())
    signs = rng.choice([-1.0, 1.0], size=(rounds, len(diff)))
    return float(((np.abs((signs * diff).mean(axis=1)) >= observed - 1e-12).sum() + 1) / (rounds + 1))


def scores_of(system: Any, queries: list[Any]) -> dict[str, list[float]]:
    out = {}
    for n, q in enumerate(queries):
        out[q.qid] = system(q.text, q.texts)
        if (n + 1) % 25 == 0:
            print(f"  {n + 1}/{len(queries)}", file=sys.stderr, flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scifact-queries", type=int, default=None, help="first N SciFact test claims (all 300)")
    parser.add_argument("--chroma-dir", type=Path, default=ROOT / "build" / "chroma")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "RESULTS.md")
    args = parser.parse_args()

    from xrerank_core import Reranker

    started = dt.datetime.now(dt.UTC)
    max_length = Reranker(str(MODEL), backend="torch").max_length
    seed = seed_model(max_length)

    def ranked(rr: Reranker) -> Any:
        def run(query: str, texts: list[str]) -> list[float]:
            scores = [0.0] * len(texts)
            for rank, r in enumerate(rr.rerank(query, texts)):
                scores[r.index] = float(len(texts) - rank)
            return scores

        return run

    systems = [("seed recipe: `CrossEncoder.predict`, torch float32 (reference)", seed)]
    systems += [(name, ranked(Reranker(str(MODEL), long_documents="truncate", **o))) for name, o in CONFIGS]
    lines = [
        "## Quality of the fast configurations on every test query",
        "",
        f"- date: {started:%Y-%m-%d %H:%M} UTC; command (from the repo root): "
        f"`{shlex.join(['.venv/bin/python', 'benchmarks/fast_quality.py', *sys.argv[1:]])}`",
        "- model `xrerank_core/models/minilm-scifact`, pairs cut at 192 tokens, raw model scores (no fusion), "
        "top 10; p: paired randomisation test against the seed recipe (10,000 permutations, two-sided)",
        "",
    ]
    for label, (queries, qrels, first, _), trec_dl in (
        ("TREC DL 2019 passage", dl19(None), True),
        ("SciFact test", scifact(args.scifact_queries, args.chroma_dir), False),
    ):
        print(label, file=sys.stderr, flush=True)
        judged = {q.qid: qrels[q.qid] for q in queries}
        rows, base = [], None
        for name, system in systems:
            per = per_query_ndcg(judged, to_run(queries, scores_of(system, queries)), trec_dl)
            if base is None:
                base = per
                rows.append(f"| {name} | {per.mean():.4f} | | | |")
                continue
            d = per - base
            p = paired_p(base, per)
            moved = f"{(d > 0).sum()} / {(d < 0).sum()}"
            rows.append(f"| {name} | {per.mean():.4f} | {d.mean():+.4f} | {p:.3f} | {moved} |")
        lines += [
            f"### {label}: {len(queries)} queries, {first}",
            "",
            "| system | nDCG@10 | Δ vs seed | p | queries better / worse |",
            "|---|---|---|---|---|",
            *rows,
            "",
        ]
        write_section(args.out, "\n".join([*lines, "(run in progress)"]), SECTION_START, SECTION_END)
    text = "\n".join(lines)
    print(text)
    write_section(args.out, text, SECTION_START, SECTION_END)


if __name__ == "__main__":
    main()
