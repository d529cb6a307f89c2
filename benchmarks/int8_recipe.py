"""How far int8 scores sit from float32, by quantisation recipe and batch shape (DL19, every query).

For the shipped model, quantises the cached float32 ONNX export in several ways (onnxruntime's
``quantize_dynamic``, per-channel int8 weights), scores the 100 BM25 candidates of each DL19
query with each, and reports against the float32 export: nDCG@10 and its change, the mean
absolute score error and its standard deviation, and pairs/s (two single-threaded sessions side
by side, as the ``onnx`` backends run on CPU). It shows

* that the batch a pair shares moves int8 nDCG@10 by about +-0.01 on 43 queries (dynamic int8
  quantises activations with one scale per batch), which is why xrerank scores one pair per pass;
* which float32 matmuls buy back the most accuracy for the least speed.

    .venv/bin/python benchmarks/int8_recipe.py [--out benchmarks/RESULTS.md]
"""

from __future__ import annotations

import argparse
import datetime as dt
import queue
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import ROOT, write_section
from fast_quality import per_query_ndcg
from speed import MODEL, dl19, to_run

SECTION_START = "<!-- int8_recipe.py:start -->"
SECTION_END = "<!-- int8_recipe.py:end -->"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "RESULTS.md")
    args = parser.parse_args()

    import onnx
    import onnxruntime as ort
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from xrerank_core import Reranker
    from xrerank_core._backends._onnx import OnnxScorer, _float32_matmuls, ffn_output_matmuls

    started = dt.datetime.now(dt.UTC)
    fp32 = OnnxScorer(str(MODEL), workers=2)
    graph = onnx.load(str(fp32.path), load_external_data=False).graph
    ffn_out = ffn_output_matmuls(graph)
    recipes: list[tuple[str, list[str]]] = [
        ("every matmul int8 (xrerank's recipe 1)", []),
        ("FFN output of layer 0 float32", ffn_out[:1]),
        ("FFN outputs of layers 0-1 float32", ffn_out[:2]),
        ("FFN outputs of layers 0-2 float32 (recipe 2, the default)", _float32_matmuls(graph)),
        ("FFN outputs of layers 3-5 float32", ffn_out[3:]),
        ("every FFN output float32", ffn_out),
    ]
    queries, qrels, first, _ = dl19(None)
    judged = {q.qid: qrels[q.qid] for q in queries}
    n_pairs = sum(len(q.texts) for q in queries)
    ref_rr = Reranker(fp32, long_documents="truncate")
    ref = {q.qid: ref_rr.score(q.text, q.texts) for q in queries}
    base = per_query_ndcg(judged, to_run(queries, ref), True)
    spread = float(np.concatenate([ref[q] for q in ref]).std())

    def sessions(path: Path) -> Any:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        free: queue.SimpleQueue[Any] = queue.SimpleQueue()
        for _ in range(2):
            free.put(ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"]))
        return free

    rows = []
    tmp = Path(tempfile.mkdtemp(prefix="xrerank-int8-"))
    for n, (label, keep) in enumerate(recipes):
        path = tmp / f"variant-{n}.onnx"
        quantize_dynamic(
            str(fp32.path),
            str(path),
            per_channel=True,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=keep,
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
        scorer = OnnxScorer(str(MODEL), quantize=True, workers=2)
        scorer._free = sessions(path)  # the same scorer, its sessions on this variant
        for shape, options in (("1 pair per pass", {"batch_size": 1}), ("512-token batches", {"batch_size": 64})):
            rr = Reranker(scorer, long_documents="truncate", max_batch_tokens=512, **options)
            rr.score(queries[0].text, queries[0].texts)
            t0 = time.perf_counter()
            scores = {q.qid: rr.score(q.text, q.texts) for q in queries}
            rate = n_pairs / (time.perf_counter() - t0)
            per = per_query_ndcg(judged, to_run(queries, scores), True)
            err = np.concatenate([np.asarray(scores[q]) - np.asarray(ref[q]) for q in scores])
            rows.append(
                f"| {label} | {shape} | {per.mean():.4f} | {per.mean() - base.mean():+.4f} "
                f"| {np.abs(err).mean():.3f} | {err.std():.3f} | {rate:.0f} |"
            )
            print(rows[-1], file=sys.stderr, flush=True)
    lines = [
        "## int8 recipes and batch shapes against float32",
        "",
        f"- date: {started:%Y-%m-%d %H:%M} UTC; command (from the repo root): "
        f"`{shlex.join(['.venv/bin/python', 'benchmarks/int8_recipe.py', *sys.argv[1:]])}`",
        f"- model `xrerank_core/models/minilm-scifact`; TREC DL 2019, {len(queries)} queries, {first}, "
        f"{n_pairs:,} pairs cut at 192 tokens; reference: the float32 ONNX export, nDCG@10 {base.mean():.4f}, "
        f"score spread (sd over all pairs) {spread:.2f}; two single-threaded sessions side by side",
        "",
        "| int8 recipe | batches | nDCG@10 | Δ vs float32 | mean abs score error | error sd | pairs/s |",
        "|---|---|---|---|---|---|---|",
        *rows,
    ]
    text = "\n".join(lines)
    print(text)
    write_section(args.out, text, SECTION_START, SECTION_END)


if __name__ == "__main__":
    main()
