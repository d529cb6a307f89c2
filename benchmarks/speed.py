"""How fast xrerank reranks 100 candidates on this CPU, and what each speed-up costs in quality.

One process, one model folder, the same candidates for every system:

* the seed's recipe, the baseline: ``CrossEncoder(path).predict(pairs, batch_size=32)``,
  torch float32;
* xrerank with each backend: ``torch`` (unless ``--no-torch-row``), ``onnx`` (float32),
  ``onnx-int8``, and one cascade per ``--cascade K[:L]`` (``onnx-int8`` on all candidates,
  reading only their first L tokens when L is given; ``onnx`` float32, or the backend
  named after ``/``, on its best K).

Systems are interleaved per query (the order rotates), one untimed warm-up call each;
time is the reranking call only. Then, with the fastest backend: ``budget_ms`` (p95 latency
and the share of the full rerank's nDCG@10 gain kept, DL19), a repeated query with the
score cache on, and the peak RSS of one 100-candidate rerank in a fresh process per
backend. Writes its section of ``--out`` (between markers) and ``benchmarks/speed.png``.

    .venv/bin/python benchmarks/speed.py [--dl19-queries N] [--scifact-queries N]
        [--cascade K[:L][/BACKEND] ...] [--no-torch-row] [--chroma-dir DIR] [--out benchmarks/RESULTS.md]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from _common import ROOT, SHARED_DATA, Data, Query, load_average, machine, ndcg10, write_section

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

TOP_N = 10
SEED_BATCH = 32
SECTION_START = "<!-- speed.py:start -->"
SECTION_END = "<!-- speed.py:end -->"
BUDGET_START = "<!-- speed.py budget:start -->"
BUDGET_END = "<!-- speed.py budget:end -->"
MODEL = ROOT / "xrerank_core" / "models" / "minilm-scifact"
BUDGETS = (100, 250, 500)

Run = Callable[[str, list[str]], list[float]]  # query, texts -> a score per text (higher = better)


@dataclass
class Result:
    name: str
    note: str
    scores: dict[str, list[float]] = field(default_factory=dict)
    seconds: list[float] = field(default_factory=list)


def dl19(n: int | None) -> Data:
    from xrerank_core.eval import load_dl19

    ds = load_dl19(SHARED_DATA / "trec-dl-2019-passage", "BM25")
    cands = ds.candidates or {}
    judged = [q for q in cands if q in ds.qrels]
    qids = judged[:n]
    queries = [
        Query(q, ds.queries[q], [c.docid for c in cands[q][:100]], [c.text for c in cands[q][:100]]) for q in qids
    ]
    return queries, {q: ds.qrels[q] for q in qids}, "BM25 top-100 (RankLLM cached run)", len(judged)


def scifact(n: int | None, chroma_dir: Path) -> Data:
    from xrerank_core.eval import build_chroma_collection, dense_candidates, load_scifact
    from xrerank_core.train import _collection_name  # the name `xrerank train` gives this corpus

    ds = load_scifact(SHARED_DATA / "scifact", "test")
    corpus = ds.corpus or {}
    judged = [q for q in ds.queries if q in ds.qrels]
    qids = judged[:n]
    collection = build_chroma_collection(corpus, persist_dir=chroma_dir, collection_name=_collection_name(corpus))
    cands = dense_candidates(collection, {q: ds.queries[q] for q in qids}, k=100)
    queries = [Query(q, ds.queries[q], [c.docid for c in cands[q]], [c.text for c in cands[q]]) for q in qids]
    return (
        queries,
        {q: ds.qrels[q] for q in qids},
        "dense top-100 (packaged all-MiniLM-L6-v2, Chroma cosine)",
        len(judged),
    )


def to_run(queries: list[Query], scores: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    """Top 10 by score (ties: input order), as a run the metrics read."""
    run = {}
    for q in queries:
        s = scores[q.qid]
        order = sorted(range(len(s)), key=lambda i: (-s[i], i))[:TOP_N]
        run[q.qid] = {q.docids[i]: float(TOP_N - r) for r, i in enumerate(order)}
    return run


# --------------------------------------------------------------------------- systems


def seed_model(max_length: int, device: str = "cpu") -> Run:
    """The seed's recipe as a scorer: ``CrossEncoder(path).predict(pairs, batch_size=32)``, float32."""
    import torch
    from sentence_transformers import CrossEncoder

    model = CrossEncoder(str(MODEL), device=device, max_length=max_length, model_kwargs={"dtype": torch.float32})

    def run(query: str, texts: list[str]) -> list[float]:
        out = model.predict([(query, t) for t in texts], batch_size=SEED_BATCH, show_progress_bar=False)
        return [float(x) for x in np.asarray(out).reshape(-1)]

    return run


def seed_system(max_length: int) -> tuple[str, str, Run]:
    run = seed_model(max_length)
    note = f"`CrossEncoder(path).predict(pairs, batch_size={SEED_BATCH})`, torch float32: the baseline"
    return "seed recipe (baseline)", note, run


def xrerank_system(name: str, note: str, *, scorer: Any = None, **options: Any) -> tuple[str, str, Run, Any]:
    from xrerank_core import Reranker

    # Pairs cut at max_length, as the baseline's CrossEncoder.predict does.
    rr = Reranker(scorer if scorer is not None else str(MODEL), long_documents="truncate", **options)

    def run(query: str, texts: list[str]) -> list[float]:
        ranking = rr.rerank(query, texts)
        scores = [0.0] * len(texts)
        for rank, r in enumerate(ranking):
            scores[r.index] = float(len(texts) - rank)  # the ranking's order (cascade / -inf tails included)
        return scores

    return name, note, run, rr


def bench(systems: list[tuple[str, str, Run]], queries: list[Query]) -> list[Result]:
    results = [Result(name, note) for name, note, _ in systems]
    for _, _, run in systems:
        run(queries[0].text, queries[0].texts)  # untimed warm-up
    for n, q in enumerate(queries):
        k = n % len(systems)
        for i in list(range(k, len(systems))) + list(range(k)):
            start = time.perf_counter()
            scores = systems[i][2](q.text, q.texts)
            results[i].seconds.append(time.perf_counter() - start)
            results[i].scores[q.qid] = scores
        print(f"  query {n + 1}/{len(queries)}", file=sys.stderr, flush=True)
    return results


def table(
    results: list[Result], queries: list[Query], qrels: dict[str, dict[str, int]], trec_dl: bool, first: str
) -> list[str]:
    n_pairs = sum(len(q.texts) for q in queries)
    base = results[0]
    base_rate = n_pairs / sum(base.seconds)
    base_ndcg = ndcg10(qrels, to_run(queries, base.scores), trec_dl)
    first_run = {q.qid: {d: float(len(q.docids) - r) for r, d in enumerate(q.docids)} for q in queries}
    lines = [
        "| system | nDCG@10 | Δ nDCG@10 vs baseline | s total | pairs/s | pairs/s ratio to baseline "
        "| p50 ms/query | p95 ms/query | note |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| first stage: {first} | {ndcg10(qrels, first_run, trec_dl):.4f} | | | | | | | input order |",
    ]
    for r in results:
        total = sum(r.seconds)
        ms = np.asarray(r.seconds) * 1000
        nd = ndcg10(qrels, to_run(queries, r.scores), trec_dl)
        rate = n_pairs / total
        lines.append(
            f"| {r.name} | {nd:.4f} | {nd - base_ndcg:+.4f} | {total:.1f} | {rate:.1f} | {rate / base_rate:.2f} "
            f"| {np.percentile(ms, 50):.0f} | {np.percentile(ms, 95):.0f} | {r.note} |"
        )
    return lines


# --------------------------------------------------------------------------- budget, cache, memory


def budget_curve(
    rr: Any, queries: list[Query], qrels: dict[str, dict[str, int]], full: Result, reference: Result | None = None
) -> tuple[list[str], list[dict[str, float]], float, float]:
    """budget_ms rows, the first stage's and the full rerank's nDCG@10; gain: ``reference``'s, else ``full``'s."""
    first_run = {q.qid: {d: float(len(q.docids) - r) for r, d in enumerate(q.docids)} for q in queries}
    first_ndcg = ndcg10(qrels, first_run, True)
    full_ndcg = ndcg10(qrels, to_run(queries, full.scores), True)
    ref_ndcg = full_ndcg if reference is None else ndcg10(qrels, to_run(queries, reference.scores), True)
    gain = ref_ndcg - first_ndcg
    rows = []
    for budget in BUDGETS:
        rr.rerank(queries[0].text, queries[0].texts, budget_ms=budget)  # untimed warm-up
        seconds, reranked, scores = [], [], {}
        for q in queries:
            start = time.perf_counter()
            ranking = rr.rerank(q.text, q.texts, budget_ms=budget)
            seconds.append(time.perf_counter() - start)
            reranked.append(ranking.reranked)
            s = [0.0] * len(q.texts)
            for rank, r in enumerate(ranking):
                s[r.index] = float(len(q.texts) - rank)
            scores[q.qid] = s
        nd = ndcg10(qrels, to_run(queries, scores), True)
        ms = np.asarray(seconds) * 1000
        rows.append(
            {
                "budget": budget,
                "p50": float(np.percentile(ms, 50)),
                "p95": float(np.percentile(ms, 95)),
                "max": float(ms.max()),
                "reranked_mean": float(np.mean(reranked)),
                "reranked_min": float(np.min(reranked)),
                "ndcg": nd,
                "share": (nd - first_ndcg) / gain if gain else float("nan"),
            }
        )
        print(f"  budget {budget} ms done", file=sys.stderr, flush=True)
    full_ms = np.asarray(full.seconds) * 1000
    lines = [
        "| budget_ms | p50 ms | p95 ms | max ms | candidates reranked (mean / min of 100) | nDCG@10 "
        "| share of the full rerank's nDCG@10 gain kept |",
        "|---|---|---|---|---|---|---|",
        f"| none (first stage only) | | | | 0 | {first_ndcg:.4f} | 0 % |",
    ]
    for row in rows:
        lines.append(
            f"| {row['budget']} | {row['p50']:.0f} | {row['p95']:.0f} | {row['max']:.0f} "
            f"| {row['reranked_mean']:.1f} / {row['reranked_min']:.0f} | {row['ndcg']:.4f} "
            f"| {100 * row['share']:.0f} % |"
        )
    lines.append(
        f"| no budget (all 100) | {np.percentile(full_ms, 50):.0f} | {np.percentile(full_ms, 95):.0f} "
        f"| {full_ms.max():.0f} | 100 / 100 | {full_ndcg:.4f} | {100 * (full_ndcg - first_ndcg) / gain:.0f} % |"
    )
    if reference is not None:
        ref_ms = np.asarray(reference.seconds) * 1000
        lines.append(
            f"| {reference.name}, all 100 (the gain's reference) | {np.percentile(ref_ms, 50):.0f} "
            f"| {np.percentile(ref_ms, 95):.0f} | {ref_ms.max():.0f} | 100 / 100 | {ref_ndcg:.4f} | 100 % |"
        )
    return lines, rows, first_ndcg, full_ndcg


def cache_check(backend: str, queries: list[Query]) -> list[str]:
    from xrerank_core import Reranker

    rr = Reranker(str(MODEL), backend=backend, cache_size=100_000)
    rr.rerank(queries[-1].text, queries[-1].texts)  # warm-up (a query not timed below)
    first, again = [], []
    for q in queries:
        start = time.perf_counter()
        rr.rerank(q.text, q.texts)
        first.append(time.perf_counter() - start)
        start = time.perf_counter()
        rr.rerank(q.text, q.texts)
        again.append(time.perf_counter() - start)
    ratio = sum(again) / sum(first)
    return [
        "| backend | queries | first call, mean ms | repeated call, mean ms | repeated / first |",
        "|---|---|---|---|---|",
        f"| {backend}, `cache_size=100_000` | {len(queries)} | {1000 * np.mean(first):.0f} "
        f"| {1000 * np.mean(again):.1f} | {100 * ratio:.2f} % |",
    ]


_RSS_CHILD = """
import json, sys, time
sys.path.insert(0, {bench!r})
from xrerank_core import Reranker
q, texts = json.load(open({data!r}))
rr = Reranker({model!r}, backend={backend!r}, long_documents={long!r})
start = time.perf_counter()
rr.rerank(q, texts)
elapsed = time.perf_counter() - start
# VmHWM (peak resident set) starts afresh at exec; getrusage's ru_maxrss would include the parent's.
hwm = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({{"rss_mb": int(hwm.split()[1]) / 1024, "seconds": elapsed}}))
"""


def peak_rss(backend: str, query: Query, long_documents: str, tmp: Path) -> dict[str, float]:
    data = tmp / "rss-input.json"
    data.write_text(json.dumps([query.text, query.texts]), encoding="utf-8")
    code = _RSS_CHILD.format(
        bench=str(ROOT / "benchmarks"), data=str(data), model=str(MODEL), backend=backend, long=long_documents
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def plot(rows: list[dict[str, float]], full_p95: float, full_ndcg: float, first_ndcg: float, out: Path) -> None:
    """nDCG@10 against p95 latency for each budget, with the first stage and the full rerank as references."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    xs = [r["p95"] for r in rows] + [full_p95]
    ys = [r["ndcg"] for r in rows] + [full_ndcg]
    ax.plot(xs, ys, marker="o", label="budget_ms (int8)")
    for r in rows:
        ax.annotate(f"{r['budget']:.0f} ms", (r["p95"], r["ndcg"]), textcoords="offset points", xytext=(5, -12))
    ax.annotate("all 100", (full_p95, full_ndcg), textcoords="offset points", xytext=(-40, 6))
    ax.axhline(first_ndcg, color="grey", linestyle="--", label="first stage (BM25)")
    ax.set_xscale("log")
    ax.set_xlabel("p95 latency per query (ms, log scale)")
    ax.set_ylabel("nDCG@10")
    ax.set_title("DL19 BM25 top-100: latency budget (onnx-int8)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def budget_only(args: argparse.Namespace, header: list[str], systems: list[tuple[str, str, Run]], int8: Any) -> None:
    queries, qrels, first, n_judged = dl19(args.dl19_queries)
    chosen = [s for s in systems if s[0].endswith(('"onnx"', '"onnx-int8"'))]
    results = bench(chosen, queries)
    reference = next(r for r in results if r.name.endswith('"onnx"'))
    full = next(r for r in results if r.name.endswith('"onnx-int8"'))
    curve, rows, first_ndcg, full_ndcg = budget_curve(int8, queries, qrels, full, reference)
    lines = [
        "## Latency budget: `rerank(..., budget_ms=...)`",
        "",
        *header[2:],
        "",
        f"### TREC DL 2019 passage: {len(queries)} of {n_judged} judged queries, {first}; backend `onnx-int8`",
        "",
        "The first stage's best candidates are reranked as far as the measured throughput predicts fits the "
        "budget (and no batch starts that is predicted to end after it); the rest keep BM25 order behind them. "
        "Share of the gain = (nDCG@10 - BM25) / (nDCG@10 of the float32 full rerank - BM25). Each budget: one "
        "untimed warm-up call, then every query once. The two full reranks were timed interleaved, as above.",
        "",
        *curve,
        "",
        f"![latency budget curve]({args.plot.name})",
        "",
        f"- load average at the end: {load_average(os.getloadavg())}",
    ]
    plot(rows, float(np.percentile(np.asarray(full.seconds) * 1000, 95)), full_ndcg, first_ndcg, args.plot)
    text = "\n".join(lines)
    print(text)
    write_section(args.out, text, BUDGET_START, BUDGET_END)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dl19-queries", type=int, default=None, help="first N judged DL19 queries (default: all 43)")
    parser.add_argument("--scifact-queries", type=int, default=20, help="first N judged SciFact test queries (0: skip)")
    parser.add_argument(
        "--cascade",
        action="append",
        metavar="K[:L][/BACKEND]",
        help="a cascade row: int8 on all (its first L tokens of each pair when given), then BACKEND (default onnx, "
        "float32) on the best K; repeatable (default: one, 30)",
    )
    parser.add_argument("--no-torch-row", action="store_true", help="leave out xrerank's torch backend (time)")
    parser.add_argument(
        "--no-one-session-rows",
        action="store_true",
        help="leave out the ONNX rows with one session on all cores (workers=1) instead of one per core",
    )
    parser.add_argument(
        "--budget-only",
        action="store_true",
        help="only the budget_ms curve (DL19), in its own section: onnx and onnx-int8 full reranks, then budgets",
    )
    parser.add_argument("--cache-queries", type=int, default=10)
    parser.add_argument("--chroma-dir", type=Path, default=ROOT / "build" / "chroma")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "RESULTS.md")
    parser.add_argument("--plot", type=Path, default=ROOT / "benchmarks" / "speed.png")
    args = parser.parse_args()

    import tempfile

    import onnxruntime
    import torch

    from xrerank_core import Reranker

    started = dt.datetime.now(dt.UTC)
    load_before = os.getloadavg()
    max_length = Reranker(str(MODEL), backend="torch").max_length
    seed = seed_system(max_length)
    xr = []
    if not args.no_torch_row:
        xr.append(
            xrerank_system('xrerank, backend="torch"', '`Reranker(path, backend="torch").rerank`', backend="torch")
        )
    xr += [
        xrerank_system(
            'xrerank, backend="torch", dtype="bfloat16"',
            "torch with bfloat16 weights: its matmuls run on the CPU's AMX units where it has them",
            backend="torch",
            dtype="bfloat16",
        ),
        xrerank_system(
            'xrerank, backend="onnx"', "onnxruntime float32, fused graph (what `auto` picks on CPU)", backend="onnx"
        ),
        xrerank_system(
            'xrerank, backend="onnx-int8"',
            "onnxruntime, dynamic int8 (per-channel weights), fused graph",
            backend="onnx-int8",
        ),
    ]
    if not args.no_one_session_rows:
        from xrerank_core._backends._onnx import OnnxScorer

        for backend in ("onnx", "onnx-int8"):
            one = OnnxScorer(str(MODEL), quantize=backend == "onnx-int8", workers=1)
            xr.append(
                xrerank_system(
                    f'xrerank, backend="{backend}", one session on all cores',
                    "`OnnxScorer(path, workers=1)`: one session splitting each batch over the cores "
                    f"(the default before; batches of {one.preferred_batch_tokens} tokens)",
                    scorer=one,
                )
            )
    for spec in args.cascade or ["30"]:
        spec, _, full = spec.partition("/")
        full = full or "onnx"
        k, _, length = spec.partition(":")
        short = int(length) if length else None
        reads = f"the first {short} tokens of each pair" if short else "every pair"
        precision = "int8" if full.endswith("int8") else "float32"
        xr.append(
            xrerank_system(
                f"xrerank, cascade (onnx-int8{f' on {short} tokens' if short else ''} → {full} on the best {k})",
                f"`cascade_top_k={k}, cascade_max_length={short}`{f', backend={full!r}' if full != 'onnx' else ''}: "
                f"int8 reads {reads} of all 100, {precision} rescores its best {k}",
                backend=full,
                cascade_top_k=int(k),
                cascade_backend="onnx-int8",
                cascade_max_length=short,
            )
        )
    systems = [seed] + [(n, note, run) for n, note, run, _ in xr]
    int8 = next(rr for n, _, _, rr in xr if n.endswith('"onnx-int8"'))
    lines = [
        "## Speed: backends, latency budget, cache, memory",
        "",
        f"- date: {started:%Y-%m-%d %H:%M} UTC; load average (1/5/15 min) at the start: {load_average(load_before)} "
        "on 2 cores (the ratios inside one table are what count: other jobs on the machine move absolute figures)",
        f"- machine: {machine()}, onnxruntime {onnxruntime.__version__}; torch threads {torch.get_num_threads()}, "
        "xrerank's ONNX rows: one single-threaded onnxruntime session per physical core, small batches side by side "
        "(unless the row says otherwise)",
        f"- command (from the repo root): `{shlex.join(['.venv/bin/python', 'benchmarks/speed.py', *sys.argv[1:]])}`",
        f"- model: `xrerank_core/models/minilm-scifact` (MiniLM-L6 cross-encoder), max_length {max_length}; "
        'every xrerank system runs `long_documents="truncate"` (pairs cut at max_length, as the baseline does); '
        "every score compared is the model's raw score (no fusion); top 10 kept, all 100 candidates scored",
        "- one process, same candidates and weights; systems interleaved per query (the order rotates), one untimed "
        "warm-up call each; time = the reranking call only",
        "",
    ]
    tmp = Path(tempfile.mkdtemp(prefix="xrerank-speed-"))
    if args.budget_only:
        budget_only(args, lines, systems, int8)
        return

    print("DL19 ...", file=sys.stderr, flush=True)
    queries, qrels, first, n_judged = dl19(args.dl19_queries)
    results = bench(systems, queries)
    lines += [
        f"### TREC DL 2019 passage: {len(queries)} of {n_judged} judged queries, {first}",
        "",
        *table(results, queries, qrels, True, first),
        "",
    ]
    int8_full = next(r for r in results if r.name.endswith('"onnx-int8"'))
    write_section(args.out, "\n".join([*lines, "(run in progress)"]), SECTION_START, SECTION_END)
    curve, rows, first_ndcg, full_ndcg = budget_curve(int8, queries, qrels, int8_full)
    lines += [
        "### Latency budget (`rerank(..., budget_ms=...)`), DL19, backend `onnx-int8`",
        "",
        "The first stage's best candidates are reranked as far as the measured throughput predicts fits the "
        "budget; the rest keep BM25 order behind them. The share of the gain is (nDCG@10 - BM25) / (full int8 "
        "rerank - BM25), the full rerank being the `onnx-int8` row above. Each budget: one untimed warm-up call, "
        "then every query once.",
        "",
        *curve,
        "",
        f"![latency budget curve]({args.plot.name})",
        "",
    ]
    plot(rows, float(np.percentile(np.asarray(int8_full.seconds) * 1000, 95)), full_ndcg, first_ndcg, args.plot)
    print("cache ...", file=sys.stderr, flush=True)
    lines += [
        "### Score cache: the same query twice, DL19",
        "",
        *cache_check("onnx-int8", queries[: args.cache_queries]),
        "",
    ]

    if args.scifact_queries:
        print("SciFact ...", file=sys.stderr, flush=True)
        sq, sqrels, sfirst, s_judged = scifact(args.scifact_queries, args.chroma_dir)
        write_section(args.out, "\n".join([*lines, "(run in progress)"]), SECTION_START, SECTION_END)
        sresults = bench(systems, sq)
        lines += [
            f"### SciFact test: the first {len(sq)} of {s_judged} judged queries (a subset, to bound the run "
            f"time), {sfirst}",
            "",
            *table(sresults, sq, sqrels, False, sfirst),
            "",
        ]

    print("memory ...", file=sys.stderr, flush=True)
    dl_long = max(queries, key=lambda q: sum(len(t) for t in q.texts))
    mem = ["| backend | long_documents | input | peak RSS (MB) | rerank s |", "|---|---|---|---|---|"]
    probes = [("torch", "truncate", dl_long, "DL19 query with the longest passages")]
    probes += [("onnx", "truncate", dl_long, "same"), ("onnx-int8", "truncate", dl_long, "same")]
    if args.scifact_queries:
        s_long = max(sq, key=lambda q: sum(len(t) for t in q.texts))
        chars = sum(len(t) for t in s_long.texts)
        probes.append(
            (
                "onnx-int8",
                "maxp",
                s_long,
                f"SciFact query with the longest abstracts ({chars:,} characters), every window scored",
            )
        )
    for backend, long, q, what in probes:
        r = peak_rss(backend, q, long, tmp)
        mem.append(f"| {backend} | {long} | {what} | {r['rss_mb']:.0f} | {r['seconds']:.1f} |")
    lines += [
        "### Peak RSS of one 100-candidate rerank, a fresh process per row",
        "",
        "Python started, `Reranker(path, backend=...)` loaded (the ONNX file already exported), one `rerank` of 100 "
        "candidates; peak RSS = the process's `VmHWM` (/proc/self/status).",
        "",
        *mem,
        "",
    ]
    lines.append(
        f"- load average at the end: {load_average(os.getloadavg())}; "
        f"run time {(dt.datetime.now(dt.UTC) - started).total_seconds() / 60:.0f} min"
    )
    text = "\n".join(lines)
    print(text)
    write_section(args.out, text, SECTION_START, SECTION_END)


if __name__ == "__main__":
    main()
