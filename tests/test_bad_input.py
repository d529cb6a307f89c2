"""The README's "Bad input" table, row by row: each case gets a clear error or a documented result.

Each ``test_<row>`` below is one row of the table (the row's id with ``-`` written ``_``), run
against the engine and both adapters where the case applies. Every call that returns checks
the same promise: the output is exactly the inputs the documented top-n / threshold cut
keeps, best first, each unchanged, and the caller's objects are not modified.
``test_readme_table_matches_these_tests`` keeps the table and this module in step.
"""

from __future__ import annotations

import asyncio
import copy
import inspect
import math
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import FakeScorer
from langchain_core.documents import Document
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle, TextNode
from pydantic import ValidationError

from langchain_xrerank import XRerankCompressor
from llamaindex_xrerank import XRerankPostprocessor
from xrerank_core import ConfigError, InputError, InputTypeError, Reranker, ScoringError

README = Path(__file__).resolve().parents[1] / "README.md"


@dataclass(frozen=True)
class Hit:
    """One output item, the same for the three targets: its input position, text and score."""

    pos: int
    text: str
    score: float


class EngineTarget:
    name = "engine"

    def inputs(self, texts: list[Any]) -> list[Any]:
        return list(texts)

    def rank(self, rr: Reranker, query: Any, items: list[Any], top_n: int | None, threshold: float | None) -> list[Hit]:
        return [Hit(r.index, r.text, r.score) for r in rr.rerank(query, items, top_n=top_n, score_threshold=threshold)]

    def arank(self, rr: Reranker, query: Any, items: list[Any], top_n: int | None) -> list[Hit]:
        return [Hit(r.index, r.text, r.score) for r in asyncio.run(rr.arerank(query, items, top_n=top_n))]


class LangChainTarget:
    name = "langchain"

    def inputs(self, texts: list[Any], ids: list[str] | None = None) -> list[Document]:
        docs = []
        for i, t in enumerate(texts):
            meta = {"pos": i, "tags": ["x"], "nested": {"k": i}}
            doc_id = ids[i] if ids else f"id{i}"
            # model_construct: a Document whose page_content is not a string, as a loader bug would leave it.
            make = Document if isinstance(t, str) else Document.model_construct
            docs.append(make(page_content=t, id=doc_id, metadata=meta))
        return docs

    def rank(self, rr: Reranker, query: Any, items: list[Any], top_n: int | None, threshold: float | None) -> list[Hit]:
        comp = XRerankCompressor(reranker=rr, top_n=top_n, score_threshold=threshold)
        return self._hits(items, comp.compress_documents(items, query))

    def arank(self, rr: Reranker, query: Any, items: list[Any], top_n: int | None) -> list[Hit]:
        comp = XRerankCompressor(reranker=rr, top_n=top_n)
        return self._hits(items, asyncio.run(comp.acompress_documents(items, query)))

    @staticmethod
    def _hits(items: list[Document], out: Any) -> list[Hit]:
        hits = []
        for d in out:
            src = items[d.metadata["pos"]]
            assert d is not src and d.id == src.id
            assert {k: v for k, v in d.metadata.items() if k != "relevance_score"} == src.metadata
            hits.append(Hit(d.metadata["pos"], d.page_content, d.metadata["relevance_score"]))
        return hits


class LlamaIndexTarget:
    name = "llamaindex"

    def inputs(self, texts: list[Any], ids: list[str] | None = None) -> list[NodeWithScore]:
        nodes = []
        for i, t in enumerate(texts):
            meta = {"pos": i, "tags": ["x"], "nested": {"k": i}}
            node_id = ids[i] if ids else f"id{i}"
            make = TextNode if isinstance(t, str) else TextNode.model_construct
            nodes.append(NodeWithScore(node=make(text=t, id_=node_id, metadata=meta), score=1.0 - i / 100_000))
        return nodes

    def rank(self, rr: Reranker, query: Any, items: list[Any], top_n: int | None, threshold: float | None) -> list[Hit]:
        post = XRerankPostprocessor(reranker=rr, top_n=top_n, score_threshold=threshold)
        return self._hits(items, post.postprocess_nodes(items, QueryBundle(query_str=query)))

    def arank(self, rr: Reranker, query: Any, items: list[Any], top_n: int | None) -> list[Hit]:
        post = XRerankPostprocessor(reranker=rr, top_n=top_n)
        return self._hits(items, asyncio.run(post.apostprocess_nodes(items, QueryBundle(query_str=query))))

    @staticmethod
    def _hits(items: list[NodeWithScore], out: Any) -> list[Hit]:
        hits = []
        for n in out:
            src = items[n.node.metadata["pos"]]
            assert n is not src and n.node.node_id == src.node.node_id
            assert n.node.metadata == src.node.metadata
            hits.append(Hit(n.node.metadata["pos"], n.node.get_content(), n.score))
        return hits


ENGINE, LANGCHAIN, LLAMAINDEX = EngineTarget(), LangChainTarget(), LlamaIndexTarget()
TARGETS = [ENGINE, LANGCHAIN, LLAMAINDEX]
ADAPTERS = [LANGCHAIN, LLAMAINDEX]


@pytest.fixture(params=TARGETS, ids=lambda t: t.name)
def target(request: pytest.FixtureRequest) -> Any:
    return request.param


@pytest.fixture(params=ADAPTERS, ids=lambda t: t.name)
def adapter(request: pytest.FixtureRequest) -> Any:
    return request.param


@pytest.fixture
def fake() -> Reranker:
    return Reranker(FakeScorer(max_length=64))


@pytest.fixture(scope="module")
def real(tiny_bert: str) -> Reranker:
    """A real tiny BERT cross-encoder: its Rust tokenizer is what odd text has to get through."""
    return Reranker(tiny_bert, device="cpu")


def check(
    target: Any,
    rr: Reranker,
    query: str,
    texts: list[str],
    *,
    top_n: int | None = None,
    threshold: float | None = None,
    items: list[Any] | None = None,
) -> list[Hit]:
    """Rank through ``target`` and check that nothing was lost, altered or mutated; return the hits."""
    items = target.inputs(texts) if items is None else items
    before = copy.deepcopy(items)
    hits = target.rank(rr, query, items, top_n, threshold)
    assert items == before  # the caller's objects are untouched
    scores = rr.score(query, texts)
    assert all(type(s) is float and math.isfinite(s) for s in scores)
    keep = sorted(range(len(texts)), key=lambda i: (-scores[i], i))
    if threshold is not None:
        keep = [i for i in keep if scores[i] >= threshold]
    keep = keep[:top_n] if top_n is not None else keep
    assert [h.pos for h in hits] == keep  # exactly the documented cut, best first, ties in input order
    assert [h.score for h in hits] == [scores[i] for i in keep]
    assert all(h.text == texts[h.pos] for h in hits)  # every text unchanged
    return hits


# -- the table's rows, in its order ---------------------------------------------------


def test_empty_query(target: Any, fake: Reranker) -> None:
    with pytest.raises(InputError, match="query is empty"):
        target.rank(fake, "", target.inputs(["a", "b"]), None, None)
    with pytest.raises(InputError, match="query is empty"):  # even with nothing to rank
        target.rank(fake, "", target.inputs([]), None, None)


def test_whitespace_query(target: Any, fake: Reranker) -> None:
    for query in ("   ", "\n\t \r", "\u3000\u2003"):  # ASCII and Unicode spaces
        with pytest.raises(InputError, match="only whitespace"):
            target.rank(fake, query, target.inputs(["a", "b"]), None, None)


@pytest.mark.parametrize("query", [None, 3, b"dog", ["dog"]], ids=["None", "int", "bytes", "list"])
def test_non_string_query(target: Any, fake: Reranker, query: object) -> None:
    with pytest.raises(InputTypeError, match=f"query must be a string, got {type(query).__name__}"):
        target.rank(fake, query, target.inputs(["a", "b"]), None, None)
    if target is LLAMAINDEX:  # no query at all
        with pytest.raises(InputError, match="needs the query"):
            XRerankPostprocessor(reranker=fake).postprocess_nodes(target.inputs(["a"]))


@pytest.mark.parametrize("bad", [None, 3, b"bytes", {"text": "x"}], ids=["None", "int", "bytes", "dict"])
def test_non_string_document(target: Any, fake: Reranker, bad: object) -> None:
    with pytest.raises(InputTypeError, match=f"{type(bad).__name__}.*not a string"):
        target.rank(fake, "dog", target.inputs(["dog", bad, "cat"]), None, None)
    if target is ENGINE:
        with pytest.raises(InputTypeError, match="single string"):
            fake.rerank("dog", "a string, not a list")  # type: ignore[arg-type]
        with pytest.raises(InputTypeError, match="sequence of strings"):
            fake.rerank("dog", 42)  # type: ignore[arg-type]
    elif target is LANGCHAIN:  # an item that is not a Document at all
        with pytest.raises(InputTypeError, match=r"documents\[1\] is a str, not a langchain_core Document"):
            XRerankCompressor(reranker=fake).compress_documents([Document(page_content="a"), "b"], "dog")  # type: ignore[list-item]
    else:
        with pytest.raises(InputTypeError, match=r"nodes\[0\] is a TextNode, not a NodeWithScore"):
            XRerankPostprocessor(reranker=fake).postprocess_nodes([TextNode(text="a")], query_str="dog")  # type: ignore[list-item]


def test_none_page_content(adapter: Any, fake: Reranker) -> None:
    if adapter is LANGCHAIN:
        items = adapter.inputs(["dog", "cat"])
        items[1].page_content = None  # LangChain does not validate assignment
        # With metadata in the model's text too: None must not turn into the word "None".
        for comp in (XRerankCompressor(reranker=fake), XRerankCompressor(reranker=fake, metadata_keys=["tags"])):
            with pytest.raises(InputTypeError, match=r"documents\[1\] \(id 'id1'\).*NoneType, not a string"):
                comp.compress_documents(items, "dog")
    else:
        items = adapter.inputs(["dog", None])
        for mode in (MetadataMode.NONE, MetadataMode.EMBED, MetadataMode.ALL):
            post = XRerankPostprocessor(reranker=fake, metadata_mode=mode)
            with pytest.raises(InputTypeError, match=r"nodes\[1\] \(id 'id1'\).*NoneType, not a string"):
                post.postprocess_nodes(items, query_str="dog")


def test_empty_document(target: Any, real: Reranker) -> None:
    texts = ["", "Paris is the capital of France.", "   \n", "\u200b"]
    hits = check(target, real, "capital of France", texts)
    assert sorted(h.pos for h in hits) == [0, 1, 2, 3]
    # An empty document is scored like the query on its own, so these three tie.
    scores = real.score("capital of France", texts)
    assert scores[0] == pytest.approx(scores[2], abs=1e-5) == pytest.approx(scores[3], abs=1e-5)


def test_empty_list(target: Any) -> None:
    scorer = FakeScorer()
    rr = Reranker(scorer)
    assert target.rank(rr, "dog", target.inputs([]), None, None) == []
    assert target.rank(rr, "dog", target.inputs([]), 5, 0.5) == []
    assert target.arank(rr, "dog", target.inputs([]), None) == []
    assert scorer.batches == []  # the model is never called


def test_one_document(target: Any, real: Reranker) -> None:
    texts = ["Paris is the capital of France."]
    hits = check(target, real, "capital of France", texts)
    assert [h.pos for h in hits] == [0]
    assert check(target, real, "capital of France", texts, top_n=1) == hits
    assert target.arank(real, "capital of France", target.inputs(texts), 3) == hits


def test_ten_thousand_documents(target: Any) -> None:
    scorer = FakeScorer()
    rr = Reranker(scorer, batch_size=256)
    texts = [f"doc {i} " + " ".join(["dog"] * (i % 7) + ["cat"] * (i % 3)) for i in range(10_000)]
    hits = check(target, rr, "dog cat", texts)
    assert sorted(h.pos for h in hits) == list(range(10_000))
    top = check(target, rr, "dog cat", texts, top_n=10)
    assert top == hits[:10]


def test_one_megabyte_document(target: Any, real: Reranker) -> None:
    sentence = "The weather was mild and nothing at all happened that day. "
    big = (sentence * (1_000_000 // len(sentence) + 1))[:1_000_000]
    assert len(big.encode("utf-8")) == 1_000_000
    hits = check(target, real, "capital of France", [big, "Paris is the capital of France."])
    assert {h.pos for h in hits} == {0, 1}
    assert next(h.text for h in hits if h.pos == 0) == big
    # MaxP reads all of it: a word at the very end is found (the fake scorer counts query words).
    fake = Reranker(FakeScorer(max_length=256))
    found = check(target, fake, "needle", [big[:-7] + " needle", big])
    assert [(h.pos, h.score) for h in found] == [(0, 1.0), (1, 0.0)]


def test_invalid_utf8(target: Any, real: Reranker) -> None:
    raw = "café, naïve".encode("latin-1")  # not UTF-8
    smuggled = raw.decode("utf-8", errors="surrogateescape")  # a str holding lone surrogates
    with pytest.raises(InputError, match=r"document 1 holds '\\udce9' at character 3.*errors='replace'"):
        target.rank(real, "coffee", target.inputs(["fine", smuggled]), None, None)
    with pytest.raises(InputError, match="the query holds"):
        target.rank(real, "coffee " + smuggled, target.inputs(["fine"]), None, None)
    if target is ENGINE:
        with pytest.raises(InputTypeError, match="bytes, not a string"):
            real.rerank("coffee", ["fine", raw])  # type: ignore[list-item]
    # The fix the message names works, and the result is then the documented one.
    cleaned = smuggled.encode("utf-8", "replace").decode("utf-8")
    hits = check(target, real, "coffee", ["fine", cleaned, raw.decode("utf-8", errors="replace")])
    assert len(hits) == 3


CONTROL = "a\x00b\x01\x07\x08c\x1b[31mred\x1b[0m\x7f\x85\u2028\u2029\ufeff\ufffe end"


def test_control_characters(target: Any, real: Reranker, tiny_xlmr: str) -> None:
    texts = [CONTROL, "\x00\x01\x02\x03", "Paris is the capital of France.\x00", CONTROL * 60]
    hits = check(target, real, "capital\x00 of France\x07", texts)
    assert {h.text for h in hits} == set(texts)
    if target is ENGINE:  # the same through a SentencePiece-style (XLM-R) tokenizer
        check(target, Reranker(tiny_xlmr, device="cpu"), "capital of France", texts)


EMOJI = "🙂 👍🏽 👨‍👩‍👧‍👦 🇫🇷 ❤️ 🏳️‍🌈 𝕏 🤖"


def test_emoji(target: Any, real: Reranker, tiny_xlmr: str) -> None:
    texts = [EMOJI, f"Paris {EMOJI} is the capital of France.", EMOJI * 80]  # the last one is split into windows
    hits = check(target, real, "capital of France 🇫🇷", texts)
    assert {h.text for h in hits} == set(texts)
    if target is ENGINE:
        check(target, Reranker(tiny_xlmr, device="cpu"), "capital of France 🇫🇷", texts)


RTL = "שלום עולם! مرحبا بالعالم. \u202eabc\u202c \u200fעברית\u200e and English \u2067مرحبا\u2069"


def test_right_to_left(target: Any, real: Reranker, tiny_xlmr: str) -> None:
    texts = [RTL, "הבירה של צרפת היא פריז.", "عاصمة فرنسا هي باريس.", RTL * 40]
    hits = check(target, real, "מהי בירת צרפת?", texts)
    assert {h.text for h in hits} == set(texts)
    if target is ENGINE:
        check(target, Reranker(tiny_xlmr, device="cpu"), "ما هي عاصمة فرنسا؟", texts)


def test_duplicate_documents(target: Any) -> None:
    scorer = FakeScorer()
    rr = Reranker(scorer)
    texts = ["dog", "cat", "dog", "a dog and a cat", "dog"]
    hits = target.rank(rr, "dog cat", target.inputs(texts), None, None)
    assert scorer.pairs_scored == 3  # identical texts are scored once ...
    assert [h.pos for h in hits] == [3, 0, 1, 2, 4]  # ... and all returned, ties in input order
    assert [h.score for h in hits] == [2.0, 1.0, 1.0, 1.0, 1.0]
    check(target, rr, "dog cat", texts, top_n=3)


def test_duplicate_ids(adapter: Any, fake: Reranker) -> None:
    texts = ["dog", "cat", "a dog and a cat", "dog"]
    items = adapter.inputs(texts, ids=["same", "same", "other", "same"])
    hits = check(adapter, fake, "dog cat", texts, items=items)
    assert [h.pos for h in hits] == [2, 0, 1, 3]  # every item kept, each with its own metadata (checked in _hits)


def test_top_n_larger_than_input(target: Any, fake: Reranker) -> None:
    texts = ["dog", "cat", "a dog and a cat"]
    hits = check(target, fake, "dog cat", texts, top_n=1000)
    assert [h.pos for h in hits] == [2, 0, 1]
    assert check(target, fake, "dog cat", texts, top_n=3) == hits


@pytest.mark.parametrize("top_n", [0, -1, -100])
def test_top_n_zero_or_negative(target: Any, fake: Reranker, top_n: int) -> None:
    if target is ENGINE:
        with pytest.raises(ConfigError, match=r"top_n must be >= 1 \(or None to keep every document\)"):
            fake.rerank("dog", ["dog"], top_n=top_n)
        return
    # The adapters refuse it when they are built, before any document is seen.
    with pytest.raises(ValidationError, match=r"top_n must be >= 1 \(or None to keep every document\)"):
        target.rank(fake, "dog", target.inputs(["dog"]), top_n, None)


def test_threshold_above_every_score(target: Any, real: Reranker) -> None:
    texts = ["Paris is the capital of France.", "Berlin is the capital of Germany.", ""]
    best = max(real.score("capital of France", texts))
    assert target.rank(real, "capital of France", target.inputs(texts), None, best + 1.0) == []
    assert target.rank(real, "capital of France", target.inputs(texts), 2, 1e9) == []
    hits = check(target, real, "capital of France", texts, threshold=best)  # the threshold is inclusive
    assert [h.score for h in hits] == [best]


@pytest.fixture(scope="module", params=["nan", "inf", "-inf"])
def broken_model(request: pytest.FixtureRequest, tiny_bert: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The tiny cross-encoder with its classifier bias set to NaN / +inf / -inf (damaged weights)."""
    import torch
    from transformers import AutoModelForSequenceClassification

    folder = tmp_path_factory.mktemp(f"broken-{request.param}")
    shutil.copytree(tiny_bert, folder, dirs_exist_ok=True)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert)
    with torch.no_grad():
        model.classifier.bias.fill_(float(request.param))
    model.save_pretrained(folder)
    return str(folder)


def test_nan_or_inf_from_model(target: Any, broken_model: str) -> None:
    rr = Reranker(broken_model, device="cpu")
    with pytest.raises(ScoringError, match=r"the model returned (nan|inf|-inf).*weights may be damaged.*float32"):
        target.rank(rr, "capital of France", target.inputs(["Paris is the capital.", "Berlin."]), None, None)
    # One bad score fails the whole call: no partial result with a document silently missing.
    rr = Reranker(FakeScorer(nan_on="poison"))
    with pytest.raises(ScoringError, match="nan"):
        target.rank(rr, "dog", target.inputs(["dog", "poison dog", "cat"]), 1, None)


class _FailingScorer(FakeScorer):
    def score_pairs(self, pairs: Any) -> list[float]:
        msg = "CUDA out of memory. Tried to allocate 2.00 GiB"
        raise RuntimeError(msg)


def test_backend_failure(target: Any, tiny_bert: str) -> None:
    texts = ["Paris is the capital.", "Berlin."]
    with pytest.raises(ScoringError, match=r"_FailingScorer backend failed on a batch of 2 pairs") as info:
        target.rank(Reranker(_FailingScorer()), "capital", target.inputs(texts), None, None)
    assert "RuntimeError: CUDA out of memory" in str(info.value) and "lower batch_size" in str(info.value)
    assert isinstance(info.value.__cause__, RuntimeError)
    # The real torch backend, failing inside the model's forward pass (a hook raising torch's own OOM).
    import torch

    rr = Reranker(tiny_bert, backend="torch", device="cpu")

    def oom(*_: Any) -> None:
        msg = "CUDA out of memory (injected)"
        raise torch.cuda.OutOfMemoryError(msg)

    handle = rr.scorer._model[0].register_forward_pre_hook(oom)  # type: ignore[attr-defined]
    try:
        with pytest.raises(ScoringError, match=r"TorchScorer backend failed.*OutOfMemoryError.*lower batch_size"):
            target.rank(rr, "capital", target.inputs(texts), None, None)
    finally:
        handle.remove()
    assert len(target.rank(rr, "capital", target.inputs(texts), None, None)) == 2  # usable again afterwards


def test_non_finite_first_stage_score(target: Any) -> None:
    texts = ["dog", "cat", "dog cat"]
    bad = [float("nan"), float("-inf"), 1.0]
    plain, fused = Reranker(FakeScorer()), Reranker(FakeScorer(), fusion="zscore")
    if target is ENGINE:  # the caller passed them: an error either way
        for rr in (plain, fused):
            with pytest.raises(InputError, match=r"first_stage_scores\[0\] is nan, not a finite number"):
                rr.rerank("dog cat", texts, first_stage_scores=bad)
        return
    items = target.inputs(texts)
    if target is LANGCHAIN:
        for d, s in zip(items, bad, strict=True):
            d.metadata["fs"] = s
    else:
        items = [NodeWithScore(node=n.node, score=s) for n, s in zip(items, bad, strict=True)]

    def run(rr: Reranker) -> list[int]:
        if target is LANGCHAIN:
            comp = XRerankCompressor(reranker=rr, top_n=None, first_stage_score_key="fs")
            return [d.metadata["pos"] for d in comp.compress_documents(items, "dog cat")]
        post = XRerankPostprocessor(reranker=rr, top_n=None)
        return [n.node.metadata["pos"] for n in post.postprocess_nodes(items, query_str="dog cat")]

    before = copy.deepcopy(items)
    assert run(plain) == [2, 0, 1]  # fusion off: the retriever's scores are not used
    with pytest.raises(InputError, match="not a finite number"):
        run(fused)
    assert items == before


# -- the table and this module stay in step -------------------------------------------


def _readme_rows() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text.split("### Bad input", 1)[1].split("\n#", 1)[0]
    return re.findall(r"^\| `([a-z0-9-]+)` \|", section, flags=re.MULTILINE)


def test_readme_table_matches_these_tests() -> None:
    rows = _readme_rows()
    module = sys.modules[__name__]
    tests = [
        name
        for name, fn in inspect.getmembers(module, inspect.isfunction)
        if name.startswith("test_") and name != "test_readme_table_matches_these_tests"
    ]
    assert len(rows) == len(set(rows)) >= 21
    assert sorted(f"test_{r.replace('-', '_')}" for r in rows) == sorted(tests)
    # and in the same order as the table
    order = sorted(tests, key=lambda n: inspect.getsourcelines(getattr(module, n))[1])
    assert [f"test_{r.replace('-', '_')}" for r in rows] == order
