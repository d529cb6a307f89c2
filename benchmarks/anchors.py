"""xrerank against the usual ways to rerank, on the same candidates and the same weights.

One process, one model folder, one candidate list per query. Systems:

* xrerank (``Reranker.rerank``; long documents split into windows, MaxP) and xrerank with
  ``long_documents="truncate"``;
* the seed's recipe: ``sentence_transformers.CrossEncoder(path).predict(pairs, batch_size=32)``;
* LangChain: ``CrossEncoderReranker`` + ``HuggingFaceCrossEncoder`` (langchain-community);
* LlamaIndex: ``SentenceTransformerRerank``;
* FlashRank: the same weights exported to ONNX and loaded from a local folder.

Every system scores all candidates of a query and keeps the top 10; systems are
interleaved per query (the order rotates) so drift hits all alike; one untimed warm-up
call each. Reports nDCG@10, time, pairs/s, per-query latency and the ratios to xrerank,
prints Markdown and writes it into ``--out`` (its section is replaced, the rest kept).

    .venv/bin/python benchmarks/anchors.py [--datasets dl19,scifact] [--queries N]
        [--scifact-queries N] [--candidates 100] [--model PATH] [--out benchmarks/RESULTS.md]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from _common import ROOT, SHARED_DATA, Data, Query, load_average, machine, minilm_cross_encoder, ndcg10, write_section

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

TOP_N = 10
BATCH_SIZE = 32
SECTION_START = "<!-- anchors.py:start -->"
SECTION_END = "<!-- anchors.py:end -->"
TRAINED_MODEL = ROOT / "xrerank_core" / "models" / "minilm-scifact"

# A system: make(texts) builds its input objects (untimed, fresh for every call, since some
# systems write into them); run(query, inputs) reranks and returns the top indices, best first.
Make = Callable[[list[str]], Any]
Run = Callable[[str, Any], list[int]]


def _same(texts: list[str]) -> list[str]:
    return texts


@dataclass
class Result:
    name: str
    note: str
    top: dict[str, list[int]] = field(default_factory=dict)
    seconds: list[float] = field(default_factory=list)


# --------------------------------------------------------------------------- data


def dl19(n_queries: int | None, k: int) -> Data:
    from xrerank_core.eval import load_dl19

    ds = load_dl19(SHARED_DATA / "trec-dl-2019-passage", "BM25")
    candidates = ds.candidates or {}
    judged = [q for q in candidates if q in ds.qrels]
    qids = judged[:n_queries]
    queries = [
        Query(q, ds.queries[q], [c.docid for c in candidates[q][:k]], [c.text for c in candidates[q][:k]]) for q in qids
    ]
    return queries, {q: ds.qrels[q] for q in qids}, f"BM25 top-{k} (RankLLM cached run)", len(judged)


def scifact(n_queries: int | None, k: int) -> Data:
    from xrerank_core.eval import build_chroma_collection, dense_candidates, load_scifact
    from xrerank_core.train import _collection_name  # the name `xrerank train` gives this corpus

    ds = load_scifact(SHARED_DATA / "scifact", "test")
    corpus = ds.corpus or {}
    judged = [q for q in ds.queries if q in ds.qrels]
    qids = judged[:n_queries]
    start = time.perf_counter()
    collection = build_chroma_collection(
        corpus, persist_dir=ROOT / "build" / "chroma", collection_name=_collection_name(corpus)
    )
    cands = dense_candidates(collection, {q: ds.queries[q] for q in qids}, k=k)
    print(f"scifact: dense first stage ready in {time.perf_counter() - start:.1f} s ({collection.name})")
    queries = [Query(q, ds.queries[q], [c.docid for c in cands[q]], [c.text for c in cands[q]]) for q in qids]
    first = f"dense top-{k} (packaged all-MiniLM-L6-v2, Chroma cosine)"
    return queries, {q: ds.qrels[q] for q in qids}, first, len(judged)


# --------------------------------------------------------------------------- systems


@dataclass
class System:
    name: str
    note: str
    run: Run | None  # None: could not be loaded (the note says why)
    make: Make = _same


def xrerank_run(rr: Any) -> Run:
    def run(query: str, texts: list[str]) -> list[int]:
        return [r.index for r in rr.rerank(query, texts, top_n=TOP_N)]

    return run


def seed_system(path: str, max_length: int) -> System:
    import torch
    from sentence_transformers import CrossEncoder

    model = CrossEncoder(path, device="cpu", max_length=max_length, model_kwargs={"dtype": torch.float32})

    def run(query: str, texts: list[str]) -> list[int]:
        scores = model.predict([(query, t) for t in texts], batch_size=BATCH_SIZE, show_progress_bar=False)
        return [int(i) for i in np.argsort(-np.asarray(scores).reshape(-1), kind="stable")[:TOP_N]]

    note = f"`CrossEncoder(path).predict(pairs, batch_size={BATCH_SIZE})`, then sort; reference for top-10 agreement"
    return System("seed recipe", note, run)


def langchain_system(path: str, max_length: int) -> System:
    import torch
    from langchain_classic.retrievers.document_compressors import CrossEncoderReranker

    with warnings.catch_warnings():  # "langchain-community is being sunset"; the class lives only there
        warnings.simplefilter("ignore", DeprecationWarning)
        from langchain_community.cross_encoders import HuggingFaceCrossEncoder
    from langchain_core.documents import Document

    options = {"device": "cpu", "max_length": max_length, "model_kwargs": {"dtype": torch.float32}}
    encoder = HuggingFaceCrossEncoder(model_name=path, model_kwargs=options)
    compressor = CrossEncoderReranker(model=encoder, top_n=TOP_N)

    def make(texts: list[str]) -> list[Document]:
        return [Document(page_content=t, metadata={"i": i}) for i, t in enumerate(texts)]

    def run(query: str, docs: list[Document]) -> list[int]:
        return [d.metadata["i"] for d in compressor.compress_documents(docs, query)]

    note = "`CrossEncoderReranker(model=HuggingFaceCrossEncoder(...))` (langchain-community): `predict`, batch 32"
    return System("LangChain", note, run, make)


def llamaindex_system(path: str, max_length: int) -> System:
    import torch
    from llama_index.core.postprocessor import SentenceTransformerRerank
    from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

    post = SentenceTransformerRerank(model=path, top_n=TOP_N, device="cpu")
    # It has no dtype or max_length option (it hard-codes 512): set both after loading.
    post._model.to(torch.float32)
    post._model.max_length = max_length

    def make(texts: list[str]) -> list[NodeWithScore]:  # it writes its scores into the nodes
        return [NodeWithScore(node=TextNode(text=t, id_=str(i)), score=1.0) for i, t in enumerate(texts)]

    def run(query: str, nodes: list[NodeWithScore]) -> list[int]:
        return [int(n.node.node_id) for n in post.postprocess_nodes(nodes, query_bundle=QueryBundle(query))]

    return System("LlamaIndex", "`SentenceTransformerRerank`: `predict`, batch 32", run, make)


def export_onnx(path: str, folder: Path) -> None:
    """Write ``path``'s weights as a FlashRank model folder (ONNX fp32 + tokenizer files)."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    model = AutoModelForSequenceClassification.from_pretrained(path, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(path)
    enc = tok([["a query", "a document"]], return_tensors="pt")
    names = ["input_ids", "attention_mask", "token_type_ids"]
    axes = {n: {0: "batch", 1: "tokens"} for n in names} | {"logits": {0: "batch"}}
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            tuple(enc[n] for n in names),
            str(folder / "model.onnx"),
            input_names=names,
            output_names=["logits"],
            dynamic_axes=axes,
            opset_version=17,
            dynamo=False,
        )
    model.config.to_json_file(folder / "config.json")
    tok.save_pretrained(folder)
    special = {k: v for k, v in tok.special_tokens_map.items() if isinstance(v, str)}
    (folder / "special_tokens_map.json").write_text(json.dumps(special), encoding="utf-8")


def flashrank_system(path: str, max_length: int) -> System:
    from flashrank import Ranker, RerankRequest
    from flashrank.Config import model_file_map  # the dict flashrank.Ranker reads

    # FlashRank's Ranker loads only names listed in its model_file_map, from
    # cache_dir/<name>/<file> (downloading the folder from its hub when missing):
    # register a local name for our ONNX export of the same weights.
    name = "xrerank-bench-local"
    cache = Path(tempfile.mkdtemp(prefix="xrerank-flashrank-"))
    export_onnx(path, cache / name)
    model_file_map[name] = "model.onnx"
    ranker = Ranker(model_name=name, cache_dir=str(cache), max_length=max_length, log_level="WARNING")
    shutil.rmtree(cache)  # the ONNX session holds the model in memory now

    def make(texts: list[str]) -> list[dict[str, Any]]:  # it sorts the passage list in place
        return [{"id": i, "text": t} for i, t in enumerate(texts)]

    def run(query: str, passages: list[dict[str, Any]]) -> list[int]:
        out = ranker.rerank(RerankRequest(query=query, passages=passages))
        return [int(p["id"]) for p in out[:TOP_N]]

    note = (
        "same weights exported to ONNX fp32, onnxruntime, all pairs in one batch; local model loaded by "
        "adding its name to `flashrank.Config.model_file_map` (no public option)"
    )
    return System("FlashRank", note, run, make)


# --------------------------------------------------------------------------- the run


def build_systems(path: str) -> tuple[list[System], int]:
    """Every system, loaded; one that fails to load gets a row saying why."""
    from xrerank_core import Reranker

    options: dict[str, Any] = {"device": "cpu", "max_length": 512, "batch_size": BATCH_SIZE, "fusion": "none"}
    rr = Reranker(path, **options)
    truncate = Reranker(path, **options, long_documents="truncate")
    limit = rr.max_length
    systems = [
        System("xrerank", "`Reranker.rerank`; long documents split into windows (MaxP)", xrerank_run(rr)),
        System(
            'xrerank, long_documents="truncate"',
            "same scorer; the pair cut at max_length, where CrossEncoder.predict cuts it",
            xrerank_run(truncate),
        ),
    ]
    loaders: list[tuple[str, Callable[[str, int], System]]] = [
        ("seed recipe", seed_system),
        ("LangChain", langchain_system),
        ("LlamaIndex", llamaindex_system),
        ("FlashRank", flashrank_system),
    ]
    for name, load in loaders:
        try:
            systems.append(load(path, limit))
        except Exception as exc:  # a row that says why, rather than no row
            reason = f"not run: {type(exc).__name__}: {exc}".replace("|", "/").replace("\n", " ")
            print(f"{name}: {reason}", file=sys.stderr)
            systems.append(System(name, reason, None))
    return systems, limit


def long_documents(path: str, queries: list[Query], limit: int) -> tuple[int, int]:
    """How many (query, document) pairs are longer than ``limit`` tokens."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    n = long = 0
    for q in queries:
        lengths = [len(ids) for ids in tok([q.text] * len(q.texts), q.texts, truncation=False)["input_ids"]]
        n += len(lengths)
        long += sum(x > limit for x in lengths)
    return long, n


def bench(systems: list[System], queries: list[Query]) -> list[Result]:
    results = [Result(s.name, s.note) for s in systems]
    live = [(i, s.run, s.make) for i, s in enumerate(systems) if s.run is not None]
    for _, run, make in live:  # one untimed warm-up call each
        run(queries[0].text, make(queries[0].texts))
    for n, q in enumerate(queries):
        for i, run, make in live[n % len(live) :] + live[: n % len(live)]:  # the order rotates per query
            inputs = make(q.texts)
            start = time.perf_counter()
            top = run(q.text, inputs)
            results[i].seconds.append(time.perf_counter() - start)
            results[i].top[q.qid] = top
        print(f"  query {n + 1}/{len(queries)}", file=sys.stderr, flush=True)
    return results


def table(
    results: list[Result], queries: list[Query], qrels: dict[str, dict[str, int]], trec_dl: bool, first: str
) -> list[str]:
    docids = {q.qid: q.docids for q in queries}
    n_pairs = sum(len(q.texts) for q in queries)
    first_run = {q.qid: {d: float(len(q.docids) - r) for r, d in enumerate(q.docids)} for q in queries}
    base = next(r for r in results if r.name == "xrerank")
    base_total = sum(base.seconds)
    seed = next((r for r in results if r.name == "seed recipe" and r.seconds), None)
    lines = [
        "| system | nDCG@10 | s total | pairs/s | p50 ms/query | p95 ms/query | time ratio to xrerank "
        "| pairs/s ratio to xrerank | note |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| first stage: {first} | {ndcg10(qrels, first_run, trec_dl):.4f} | | | | | | | input order |",
    ]
    for r in results:
        if not r.seconds:
            lines.append(f"| {r.name} | | | | | | | | {r.note} |")
            continue
        run: dict[str, dict[str, float]] = {}
        for qid, top in r.top.items():
            scores: dict[str, float] = {}
            for rank, i in enumerate(top):
                scores.setdefault(docids[qid][i], float(TOP_N - rank))
            run[qid] = scores
        total = sum(r.seconds)
        ms = np.asarray(r.seconds) * 1000
        note = r.note
        if seed is not None and r is not seed:
            same = sum(r.top[q] == seed.top[q] for q in seed.top)
            note += f"; top-10 = seed recipe's on {same}/{len(seed.top)} queries"
        lines.append(
            f"| {r.name} | {ndcg10(qrels, run, trec_dl):.4f} | {total:.1f} | {n_pairs / total:.0f} "
            f"| {np.percentile(ms, 50):.0f} | {np.percentile(ms, 95):.0f} | {total / base_total:.2f} "
            f"| {base_total / total:.2f} | {note} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="cross-encoder folder (default: the trained minilm-scifact, else MiniLM-L6)")
    parser.add_argument("--datasets", default="dl19,scifact")
    parser.add_argument("--queries", type=int, default=None, help="first N queries of each dataset (default: all)")
    parser.add_argument("--scifact-queries", type=int, default=None, help="override --queries for SciFact")
    parser.add_argument("--candidates", type=int, default=100)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "RESULTS.md")
    args = parser.parse_args()
    wall = time.perf_counter()
    load_start = os.getloadavg()
    loaders = {"dl19": dl19, "scifact": scifact}
    datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    unknown = sorted(set(datasets) - set(loaders))
    if unknown or not datasets:
        parser.error(f"--datasets: choose from {', '.join(loaders)} (got {args.datasets!r})")

    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()

    if args.model:
        path, model_note = args.model, f"`{args.model}`"
    elif TRAINED_MODEL.is_dir():
        path, model_note = str(TRAINED_MODEL), "`xrerank_core/models/minilm-scifact` (xrerank's trained MiniLM-L6)"
    else:
        path = minilm_cross_encoder()
        model_note = (
            "MiniLM-L6 cross-encoder built from the packaged all-MiniLM-L6-v2 weights with an untrained, "
            "seeded head (`_common.minilm_cross_encoder()`): speed is that of ms-marco-MiniLM-L-6-v2, "
            "nDCG@10 only checks that the systems agree"
        )

    data = {}
    for d in datasets:
        n = args.scifact_queries if d == "scifact" and args.scifact_queries is not None else args.queries
        data[d] = loaders[d](n, args.candidates)

    import torch

    systems, limit = build_systems(path)
    started = dt.datetime.now(dt.UTC)
    argv0 = Path(sys.argv[0]).resolve()
    script = argv0.relative_to(ROOT) if argv0.is_relative_to(ROOT) else argv0
    command = shlex.join([".venv/bin/python", str(script), *sys.argv[1:]])
    out = [
        "## Anchors: xrerank against the usual rerankers",
        "",
        f"- date: {started:%Y-%m-%d %H:%M} UTC",
        f"- machine: {machine()}; torch threads {torch.get_num_threads()}, onnxruntime default threads",
        f"- command (from the repo root): `{command}`",
        f'- model: {model_note}; float32 for every system (xrerank\'s `dtype="auto"` on CPU; the anchors '
        "are given `dtype=float32`, since `CrossEncoder(path)` keeps the dtype stored in the folder); "
        f"max_length {limit} tokens for every system (the model's limit, at most 512); batch {BATCH_SIZE} "
        "(FlashRank: one batch per query); top 10 kept, all candidates scored; no score fusion",
        "- one process, same candidates, same weights; systems interleaved per query (order rotates), "
        "one untimed warm-up call each; time = the reranking call only (inputs built beforehand)",
        "- pairs/s counts (query, document) pairs; xrerank with MaxP scores more windows than that "
        "for documents longer than max_length",
        "",
    ]
    for d, (queries, qrels, first, available) in data.items():
        print(f"{d}: {len(queries)} queries x {args.candidates} candidates", file=sys.stderr)
        long, n = long_documents(path, queries, limit)
        results = bench(systems, queries)
        title = "TREC DL 2019 passage" if d == "dl19" else "SciFact test"
        subset = (
            f"all {available} judged queries"
            if len(queries) == available
            else f"the first {len(queries)} of {available} judged queries (a subset, to bound the run time)"
        )
        out += [
            f"### {title}: {subset}; {first}",
            "",
            f"{long} of {n} (query, document) pairs are longer than {limit} tokens "
            "(xrerank splits them into windows; the others truncate).",
            "",
            *table(results, queries, qrels, d == "dl19", first),
            "",
        ]
        if d == "dl19":
            out += ["nDCG@10: trec_eval `ndcg_cut.10`, graded qrels (0-3), unjudged = non-relevant.", ""]
    load_end = os.getloadavg()
    out.append(
        f"Whole run, loading included: {(time.perf_counter() - wall) / 60:.1f} min. Load average (1/5/15 min) "
        f"at the start {load_average(load_start)}, at the end {load_average(load_end)}: "
        f"above {os.cpu_count()} means other "
        "processes shared the CPU, which slows every system alike (they are interleaved) but adds noise."
    )
    text = "\n".join(out)
    print(text)
    write_section(args.out, text, SECTION_START, SECTION_END)
    print(f"written to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
