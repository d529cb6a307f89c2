"""Screen trained models on the training dev split: nDCG@10 alone and fused, dense top-20 and top-100.

Re-creates the dev split of ``xrerank train``'s default recipe (100 SciFact train claims held out,
seed 42), retrieves each claim's dense top-100 once (the Chroma store the training used) and
scores every model folder through the engine (``long_documents="maxp"``), then prints nDCG@10 of
the model alone and fused with the best z-score weight at two depths. A quick way to compare runs
and weight averages before spending a test evaluation on one; ``bfloat16`` is about 2.5x faster
than float32 on a CPU with AMX and ranks within 0.005 nDCG@10 of it (RESULTS.md, "Quality of the
fast configurations"). Never touches the test claims.

    .venv/bin/python benchmarks/dev_screen.py [--dtype bfloat16] MODEL [MODEL ...]
"""

from __future__ import annotations

import argparse
import json
import random
import time

from _common import ROOT, SHARED_DATA


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="model folders or bundled names")
    parser.add_argument("--dtype", default="bfloat16", help="torch dtype for scoring (float32 for final numbers)")
    parser.add_argument("--chroma-dir", default=str(ROOT / "build" / "chroma"))
    args = parser.parse_args()

    from xrerank_core import Reranker
    from xrerank_core.eval import evaluate_run, load_dataset
    from xrerank_core.train import TrainConfig, _dev_split, _engine_run, _first_stage, choose_fusion_weight

    config = TrainConfig(
        base="-", data=str(SHARED_DATA / "scifact"), output="-", chroma_dir=args.chroma_dir, device="cpu"
    )
    ds = load_dataset(config.data, split=config.split)
    dev_q, _ = _dev_split(config, ds, random.Random(config.seed))
    queries = {q: ds.queries[q] for q in dev_q}
    qrels = {q: ds.qrels[q] for q in dev_q}
    assert ds.corpus is not None
    pool = {q: c[:100] for q, c in _first_stage(config, ds.corpus, queries).items()}
    print(f"{len(dev_q)} dev claims; {args.dtype}; nDCG@10 alone / fused (best z-score weight)")
    for model in args.models:
        start = time.perf_counter()
        reranker = Reranker(model, backend="torch", dtype=args.dtype, long_documents="maxp", show_progress=False)
        run = _engine_run(reranker, queries, pool)
        row = {}
        for depth in (20, 100):
            cut = {q: c[:depth] for q, c in pool.items()}
            cut_run = {q: {c.docid: run[q][c.docid] for c in cut[q]} for q in cut}
            alone = float(evaluate_run(qrels, cut_run, "ndcg@10").mean["ndcg@10"])
            weight, table = choose_fusion_weight(cut_run, cut, qrels)
            row[f"top-{depth}"] = {"alone": round(alone, 4), "fused": round(table[weight], 4), "weight": weight}
        print(f"{model}: {json.dumps(row)} ({time.perf_counter() - start:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
