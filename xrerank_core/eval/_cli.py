"""``xrerank eval``: quality before/after reranking, and its cost, on a dataset.

Registered by :func:`xrerank_core.cli.main` through :func:`add_eval_parser`. Building
the parser imports nothing heavy; ranx, rich, matplotlib, chromadb and torch load only
when the command runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xrerank_core._config import DEFAULT_MODEL
from xrerank_core._exceptions import ConfigError, InputError
from xrerank_core.eval._datasets import (
    DATA_DIR_ENV,
    DL19_FIRST_STAGES,
    EvalDataset,
    candidates_from_run,
    read_trec_run,
)

if TYPE_CHECKING:
    from xrerank_core.eval._run import FirstStage

__all__ = ["add_eval_parser"]

_DESCRIPTION = f"""\
Evaluate a first stage and a cross-encoder reranker on top of it: nDCG, MRR, precision
and recall before and after reranking (per query, averaged, with a paired t-test),
latency per query (p50 / p95), pairs and tokens per second, and peak memory. Prints a
table and writes report.json and report.png (quality against latency) to --output.

--dataset takes a folder or file (BEIR, TREC DL 2019, NovelEval, WikiQA, RankLLM JSON)
or a name (dl19, scifact, noveleval, wikiqa) looked up under --data-dir or
${DATA_DIR_ENV}. Datasets with candidate lists (TREC DL 2019, NovelEval, WikiQA) rerank
those; datasets with only a corpus (SciFact, BEIR) retrieve with the packaged
all-MiniLM-L6-v2 in a Chroma collection persisted under --chroma-dir. --run-file
reranks a TREC run of your own first stage instead; --save-run writes the first stage's
ranking, so a machine without it (a GPU box without Chroma) can rerank the same lists.
"""


def add_eval_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the ``eval`` command.

    Args:
        subparsers: The object ``ArgumentParser.add_subparsers()`` returned.
    """
    p = subparsers.add_parser(
        "eval",
        help="measure what reranking buys (quality) and costs (latency, memory) on a dataset",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    data = p.add_argument_group("data")
    data.add_argument("--dataset", required=True, metavar="PATH_OR_NAME", help="dataset folder, file or name")
    data.add_argument("--data-dir", default=None, help=f"where dataset names live (default: ${DATA_DIR_ENV})")
    data.add_argument("--split", default="test", help="split for BEIR / SciFact (default: test)")
    data.add_argument(
        "--first-stage",
        choices=["given", "dense", *DL19_FIRST_STAGES],
        default=None,
        help="'given': the dataset's candidates; 'dense': Chroma + all-MiniLM-L6-v2 over the corpus; "
        "for TREC DL 2019, which cached run (default: BM25). Default: given when the dataset has "
        "candidates, else dense",
    )
    data.add_argument(
        "--run-file",
        default=None,
        metavar="PATH",
        help="a TREC run to rerank (qid Q0 docid rank score tag; .gz allowed) in place of the first stage: "
        "yours, or one saved by --save-run or `xrerank train --save-run`; the dataset must have a corpus",
    )
    data.add_argument(
        "--save-run",
        default=None,
        metavar="PATH",
        help="write the first stage's ranking of the evaluated queries (top --candidates) to this TREC run, "
        "to rerank it later with --run-file where the first stage cannot run (e.g. a GPU box without Chroma)",
    )
    data.add_argument("--candidates", type=int, default=100, help="first-stage candidates per query (default: 100)")
    data.add_argument(
        "--top-n", type=int, default=10, help="cutoff of the metrics: what a pipeline keeps (default: 10)"
    )
    data.add_argument("--queries", type=int, default=None, metavar="N", help="only the first N judged queries")
    data.add_argument(
        "--rel-threshold",
        type=int,
        default=None,
        help="smallest grade binary metrics count as relevant (default: 2 on a 0-3 scale like TREC DL, else 1)",
    )
    data.add_argument(
        "--ignore-queries-without-relevant",
        action="store_true",
        help="skip queries with no relevant document (the usual WikiQA protocol)",
    )
    data.add_argument(
        "--chroma-dir", default=None, help="where the dense collection is kept (default: ./xrerank-eval/chroma)"
    )
    data.add_argument(
        "--collection-name",
        default=None,
        help="Chroma collection to build or reuse (default: xrerank-<dataset>); reuse one built by "
        "`xrerank train` to skip embedding the corpus again",
    )

    model = p.add_argument_group("reranker")
    model.add_argument(
        "--model", default=DEFAULT_MODEL, help=f"hub id, local folder or bundled name (default: {DEFAULT_MODEL})"
    )
    model.add_argument("--no-rerank", action="store_true", help="evaluate the first stage only")
    model.add_argument("--backend", default=None, help="scoring backend (default: auto)")
    model.add_argument("--device", default=None, help="cpu, cuda, cuda:N, mps (default: auto)")
    model.add_argument("--dtype", default=None, help="float32, float16, bfloat16 (default: auto)")
    model.add_argument("--max-length", type=int, default=None, help="tokens per pair (default: the model's, <= 512)")
    model.add_argument(
        "--batch-size", type=int, default=None, help="pairs per forward pass (default: 32 on CPU, 128 on CUDA)"
    )
    model.add_argument(
        "--long-documents",
        choices=["auto", "maxp", "truncate"],
        default=None,
        help="documents longer than max_length: best window (maxp) or first window (truncate); "
        "auto: what the model records, else maxp",
    )
    model.add_argument("--fusion", choices=["none", "zscore", "rrf"], default=None, help="fuse with first-stage scores")
    model.add_argument("--fusion-weight", type=float, default=None, help="the cross-encoder's share in the fusion")

    p.add_argument(
        "--output",
        default=None,
        metavar="DIR",
        help="folder for report.json and report.png (default: ./xrerank-eval/<dataset>-<model>)",
    )
    p.set_defaults(func=_run_eval)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "dataset"


def _with_run(dataset: EvalDataset, args: argparse.Namespace, stage: str | None) -> EvalDataset:
    """The dataset with the run's rankings as its candidates (every evaluated query must have one)."""
    from xrerank_core.eval._run import _select_queries, auto_rel_threshold

    run_file = args.run_file
    if stage is not None:
        msg = f"--run-file replaces the first stage; drop --first-stage {stage}"
        raise ConfigError(msg)
    if dataset.corpus is None:
        msg = f"--run-file needs a dataset with a corpus (the documents' texts); {dataset.name!r} has none"
        raise ConfigError(msg)
    run = read_trec_run(run_file)
    threshold = auto_rel_threshold(dataset.qrels) if args.rel_threshold is None else args.rel_threshold
    evaluated = _select_queries(dataset, args.queries, threshold, args.ignore_queries_without_relevant)
    missing = [q for q in evaluated if q not in run]
    if missing:
        msg = f"{run_file} has no ranking for {len(missing)} judged queries of {dataset.name!r}, e.g. {missing[:5]}"
        raise InputError(msg)
    candidates = candidates_from_run(run, dataset.corpus, queries=dataset.queries)
    return dataclasses.replace(dataset, candidates=candidates)


def _run_eval(args: argparse.Namespace) -> int:
    from rich.console import Console

    from xrerank_core.eval._datasets import load_dataset
    from xrerank_core.eval._report import model_label, plot, render_table, write_json
    from xrerank_core.eval._run import run_eval

    stage: str | None = args.first_stage
    dl19_stage = stage if stage in DL19_FIRST_STAGES else "BM25"
    dataset = load_dataset(args.dataset, split=args.split, first_stage=dl19_stage, data_dir=args.data_dir)
    if stage in DL19_FIRST_STAGES and not dataset.name.startswith("trec-dl-2019-passage/"):
        msg = f"--first-stage {stage} names a TREC DL 2019 run; for {dataset.name!r} use 'given' or 'dense'"
        raise ConfigError(msg)
    kind: FirstStage = "dense" if stage == "dense" else "auto" if stage is None else "given"
    if args.run_file is not None:
        dataset, kind = _with_run(dataset, args, stage), "given"

    reranker = None
    if not args.no_rerank:
        from xrerank_core._engine import Reranker

        names = ("backend", "device", "dtype", "max_length", "batch_size", "long_documents", "fusion", "fusion_weight")
        options: dict[str, Any] = {n: getattr(args, n) for n in names if getattr(args, n) is not None}
        reranker = Reranker(args.model, **options)

    chroma_dir = args.chroma_dir or str(Path("xrerank-eval") / "chroma")
    report = run_eval(
        dataset,
        reranker,
        candidates=args.candidates,
        top_n=args.top_n,
        queries=args.queries,
        first_stage=kind,
        chroma_dir=chroma_dir,
        collection_name=args.collection_name,
        rel_threshold=args.rel_threshold,
        ignore_queries_without_relevant=args.ignore_queries_without_relevant,
        save_run=args.save_run,
    )
    if args.run_file is not None:
        report.settings["run_file"] = str(args.run_file)
    output = Path(args.output or Path("xrerank-eval") / f"{_slug(dataset.name)}-{_slug(model_label(report.model))}")
    json_path = write_json(report, output / "report.json")
    png_path = plot([report], output / "report.png")

    console = Console(file=sys.stdout, width=None if sys.stdout.isatty() else 120)
    console.print(render_table(report))
    console.print(f"wrote {json_path} and {png_path}", highlight=False, soft_wrap=True)
    return 0
