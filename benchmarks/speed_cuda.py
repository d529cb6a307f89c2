"""The torch backend on a CUDA GPU: float16 and large batches against the seed's recipe on the same GPU.

DL19 BM25 top-100, the shipped model, ``long_documents="truncate"`` (pairs cut at max_length, as
the baseline does). Systems are interleaved per query (the order rotates) with one untimed
warm-up each; every query is reranked ``--repeats`` times per system; time is the reranking
call only (each returns host floats, so the GPU work is finished). Peak GPU memory is
``torch.cuda.max_memory_allocated`` over each system's calls. Throughput over many queries
at once (``Reranker.score_many``) is timed separately. Writes its section of ``--out``.

    python benchmarks/speed_cuda.py [--dl19-queries N] [--repeats R] [--out benchmarks/RESULTS.md]
"""

from __future__ import annotations

import argparse
import datetime as dt
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from _common import ROOT, write_section
from speed import MODEL, SEED_BATCH, Result, Run, dl19, seed_model, table

SECTION_START = "<!-- speed_cuda.py:start -->"
SECTION_END = "<!-- speed_cuda.py:end -->"


def seed_system(max_length: int) -> tuple[str, str, Run]:
    note = f"`CrossEncoder(path, device='cuda').predict(pairs, batch_size={SEED_BATCH})`, float32: the baseline"
    return "seed recipe on the GPU (baseline)", note, seed_model(max_length, "cuda")


def xrerank_system(name: str, note: str, **options: Any) -> tuple[str, str, Run, Any]:
    from xrerank_core import Reranker

    rr = Reranker(str(MODEL), backend="torch", device="cuda", long_documents="truncate", **options)

    def run(query: str, texts: list[str]) -> list[float]:
        return rr.score(query, texts)

    return name, note, run, rr


def bench(systems: list[tuple[str, str, Run]], queries: list[Any], repeats: int) -> tuple[list[Result], list[float]]:
    import torch

    results = [Result(name, note) for name, note, _ in systems]
    peaks = [0.0] * len(systems)
    for _, _, run in systems:
        run(queries[0].text, queries[0].texts)  # untimed warm-up (kernels, allocator)
    for rep in range(repeats):
        for n, q in enumerate(queries):
            k = (n + rep) % len(systems)
            for i in list(range(k, len(systems))) + list(range(k)):
                torch.cuda.reset_peak_memory_stats()
                start = time.perf_counter()
                scores = systems[i][2](q.text, q.texts)
                results[i].seconds.append(time.perf_counter() - start)
                peaks[i] = max(peaks[i], torch.cuda.max_memory_allocated() / 2**20)
                if rep == 0:
                    results[i].scores[q.qid] = scores
    return results, peaks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dl19-queries", type=int, default=None, help="first N judged DL19 queries (default: all 43)")
    parser.add_argument("--repeats", type=int, default=3, help="times each query is reranked per system")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "RESULTS.md")
    args = parser.parse_args()

    import torch

    from xrerank_core import Reranker

    if not torch.cuda.is_available():
        sys.exit("speed_cuda.py needs a CUDA device")
    started = dt.datetime.now(dt.UTC)
    max_length = Reranker(str(MODEL), backend="torch", device="cpu").max_length
    queries, qrels, first, n_judged = dl19(args.dl19_queries)
    xr = [
        xrerank_system("xrerank, defaults on CUDA", "float16, batches of up to 128 pairs (the defaults)"),
        xrerank_system("xrerank, float16, batch_size=32", "float16, the seed's batch size", batch_size=32),
        xrerank_system("xrerank, float16, batch_size=256", "float16, every query in one pass", batch_size=256),
        xrerank_system("xrerank, bfloat16", 'dtype="bfloat16", batches of up to 128', dtype="bfloat16"),
        xrerank_system("xrerank, float32", 'dtype="float32", batches of up to 128', dtype="float32"),
    ]
    systems = [seed_system(max_length)] + [(n, note, run) for n, note, run, _ in xr]
    print("DL19 ...", file=sys.stderr, flush=True)
    results, peaks = bench(systems, queries, args.repeats)
    rows = table(results, queries, qrels, True, first)
    memory = [f"| {r.name} | {peak:.0f} |" for r, peak in zip(results, peaks, strict=True)]

    # Throughput: all queries in one score_many call (the serving path batches requests this way).
    many = [(q.text, q.texts) for q in queries]
    throughput = []
    for name, _, _, rr in xr[:1] + xr[2:3]:
        rr.score_many(many[:2])
        start = time.perf_counter()
        rr.score_many(many)
        seconds = time.perf_counter() - start
        throughput.append(f"| {name} | {len(many) * 100 / seconds:.0f} | {seconds * 1000 / len(many):.1f} |")

    props = torch.cuda.get_device_properties(0)
    import sentence_transformers
    import transformers

    lines = [
        "## Speed on a CUDA GPU (torch backend)",
        "",
        f"- date: {started:%Y-%m-%d %H:%M} UTC; device: {props.name}, {props.total_memory / 2**30:.0f} GiB; "
        f"torch {torch.__version__}, transformers {transformers.__version__}, sentence-transformers "
        f"{sentence_transformers.__version__}",
        f"- command (from the repo root, on the GPU machine): "
        f"`{shlex.join(['python', 'benchmarks/speed_cuda.py', *sys.argv[1:]])}`",
        f"- model: `xrerank_core/models/minilm-scifact` (MiniLM-L6), max_length {max_length}, "
        '`long_documents="truncate"`, raw scores; every query reranked '
        f"{args.repeats} times per system, interleaved",
        "",
        f"### TREC DL 2019 passage: {len(queries)} of {n_judged} judged queries, {first}, one query per call",
        "",
        *rows,
        "",
        "Peak GPU memory of one 100-candidate call (`torch.cuda.max_memory_allocated`, weights included):",
        "",
        "| system | peak MiB |",
        "|---|---|",
        *memory,
        "",
        f"### Throughput: all {len(queries)} queries in one `score_many` call",
        "",
        "| system | pairs/s | ms per query |",
        "|---|---|---|",
        *throughput,
    ]
    text = "\n".join(lines)
    print(text)
    write_section(args.out, text, SECTION_START, SECTION_END)


if __name__ == "__main__":
    main()
