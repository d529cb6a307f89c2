"""Fuzz (hypothesis) of the text preparation: ``split_windows`` and the engine's windows and query cut.

Whatever the text (odd Unicode, control characters, right-to-left, emoji, zero-width and
combining marks, characters that Unicode normalisation expands), every window is an exact
substring of its document, the windows cover every token of it in order, each (query, window)
pair fits the model once the real tokenizer reads it again, and a cut query is a prefix of
the query. Bounded example counts in the default run; ``-m slow`` runs many more.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xrerank_core import Reranker
from xrerank_core._text import split_windows

QUICK = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
QUICK_MODEL = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
SLOW = settings(max_examples=20000, deadline=None, suppress_health_check=list(HealthCheck))
SLOW_MODEL = settings(max_examples=5000, deadline=None, suppress_health_check=list(HealthCheck))
END_TO_END = settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))

PIECES = [
    "Paris",
    "capital",
    "unaffable",  # WordPiece splits it
    "the",
    " ",
    "  ",
    "\n",
    "\t",
    ".",
    ",",
    "שלום",
    "مرحبا",
    "\u202e",  # right-to-left override
    "\u200f",  # right-to-left mark
    "\u200b",  # zero-width space
    "\u200d",  # zero-width joiner
    "\ufeff",  # BOM
    "e\u0301",  # e + combining acute
    "👨‍👩‍👧‍👦",
    "🇫🇷",
    "👍🏽",
    "\x00",
    "\x1b[31m",
    "\x7f",
    "\u0085",
    "\u2028",
    "ﷺ",  # NFKC expands it to 18 characters
    "ﬃ",  # ligature
    "㍿",
    "𝕏",
    "東京は日本の首都です",
    "x" * 40,
]
weird_text = st.one_of(
    st.text(alphabet=st.characters(codec="utf-8"), max_size=300),  # anything but surrogates
    st.lists(st.sampled_from(PIECES), max_size=200).map("".join),
    st.lists(st.sampled_from(PIECES), max_size=200).map(" ".join),
)


@st.composite
def text_and_spans(draw: st.DrawFn) -> tuple[str, list[tuple[int, int]]]:
    """A text and increasing, non-overlapping token spans in it (gaps allowed, as a tokenizer leaves)."""
    text = draw(weird_text)
    cuts = sorted(draw(st.sets(st.integers(0, len(text)), max_size=min(len(text) + 1, 150))))
    pairs = itertools.pairwise(cuts)
    spans = [(a, b) for a, b in pairs if draw(st.integers(0, 3)) > 0]  # a quarter dropped: gaps between tokens
    return text, spans


def _place(text: str, spans: Sequence[tuple[int, int]], window: str, lo: int) -> list[tuple[int, int]]:
    """Every token range [s, e) with s <= lo whose characters are exactly ``window``."""
    end_index = {b: i for i, (_, b) in enumerate(spans)}
    out = []
    for s in range(min(lo, len(spans) - 1) + 1):
        e = end_index.get(spans[s][0] + len(window))
        if e is not None and e >= s and text[spans[s][0] : spans[e][1]] == window:
            out.append((s, e + 1))
    return out


def check_windows(text: str, spans: Sequence[tuple[int, int]], budget: int, overlap: int) -> None:
    windows = split_windows(text, spans, budget, overlap)
    n = len(spans)
    if n <= budget:
        assert windows == [(text, n)]  # fits: the document itself, untouched
        return
    assert all(k == budget for _, k in windows)
    # Windows are exact substrings, in order, each `budget` tokens, and together cover every token.
    covered = 0  # tokens [0, covered) are in some window so far
    for w, k in windows:
        assert w in text
        ranges = [(s, e) for s, e in _place(text, spans, w, covered) if e - s == k]
        assert ranges, f"window {w!r} is not {k} whole tokens continuing the cover"
        covered = max(e for _, e in ranges)
    assert covered == n  # nothing lost: the last token is in a window
    assert len(windows) <= n  # no blow-up
    assert split_windows(text, spans, budget, overlap, truncate=True) == [
        (text[spans[0][0] : spans[budget - 1][1]], budget)
    ]


def _given_windows(config: settings) -> Callable[..., None]:
    @config
    @given(ts=text_and_spans(), budget=st.integers(1, 40), overlap=st.integers(0, 60))
    def run(ts: tuple[str, list[tuple[int, int]]], budget: int, overlap: int) -> None:
        check_windows(*ts, budget, overlap)

    return run


def test_split_windows_fuzz() -> None:
    _given_windows(QUICK)()


@pytest.mark.slow
def test_split_windows_fuzz_long() -> None:
    _given_windows(SLOW)()


def test_split_windows_examples() -> None:
    # The shapes the generator reaches only by luck.
    text = "a b c d e"
    spans = [(0, 1), (2, 3), (4, 5), (6, 7), (8, 9)]
    check_windows(text, spans, 1, 0)
    check_windows(text, spans, 2, 5)  # overlap capped at budget // 2
    check_windows(text, spans, 4, 3)
    check_windows("", [], 3, 1)
    check_windows("aaaa", [(0, 1), (1, 2), (2, 3), (3, 4)], 2, 1)  # repeated text


# -- the engine's preparation, with real tokenizers ------------------------------------


def check_engine(rr: Reranker, tokenizer: Any, query: str, docs: list[str]) -> None:
    cut, q_tokens = rr._prepare_query(query)
    assert query.startswith(cut)
    assert q_tokens <= rr.max_length // 2
    windows, _, per_doc = rr._windows(q_tokens, docs)
    offsets = rr.scorer.token_offsets(docs)
    assert offsets is not None and len(per_doc) == len(docs)
    for doc, spans, ids in zip(docs, offsets, per_doc, strict=True):
        mine = [windows[w] for w in ids]
        if len(ids) == 1 and mine[0] == doc:
            pass  # fits whole (or truncate): the document itself
        else:
            covered = 0
            for w in mine:
                assert w in doc
                ranges = _place(doc, spans, w, covered)
                assert ranges, f"window {w!r} is not whole tokens continuing the cover of {doc!r}"
                covered = max(e for _, e in ranges)
            assert covered == len(spans)
    for w in windows:
        # The real constraint: the pair, as the model's tokenizer builds it, fits the model.
        n = len(tokenizer(cut, w, truncation=False)["input_ids"])
        assert n <= rr.max_length, (cut, w, n)


@pytest.fixture(scope="module", params=["tiny_bert", "tiny_xlmr"])
def prepared(request: pytest.FixtureRequest) -> tuple[Reranker, Any]:
    from transformers import AutoTokenizer

    folder = request.getfixturevalue(request.param)
    rr = Reranker(folder, device="cpu", max_length=32, window_overlap=6)
    return rr, AutoTokenizer.from_pretrained(folder)


def _given_engine(config: settings, prepared: tuple[Reranker, Any]) -> Callable[..., None]:
    rr, tokenizer = prepared

    @config
    @given(query=weird_text.filter(lambda q: q.strip() != ""), docs=st.lists(weird_text, min_size=1, max_size=4))
    def run(query: str, docs: list[str]) -> None:
        check_engine(rr, tokenizer, query, docs)

    return run


def test_engine_text_preparation_fuzz(prepared: tuple[Reranker, Any]) -> None:
    _given_engine(QUICK_MODEL, prepared)()


@pytest.mark.slow
def test_engine_text_preparation_fuzz_long(prepared: tuple[Reranker, Any]) -> None:
    _given_engine(SLOW_MODEL, prepared)()


def test_engine_text_preparation_examples(prepared: tuple[Reranker, Any]) -> None:
    rr, tokenizer = prepared
    long_doc = " ".join(PIECES) * 8
    check_engine(rr, tokenizer, "ﷺ 👨‍👩‍👧‍👦 שלום " * 20, [long_doc, "\x00" * 500, "ﷺ" * 300, ""])
    _, q_tokens = rr._prepare_query("query")
    _, _, per_doc = rr._windows(q_tokens, [long_doc, " ".join(["ﷺ"] * 300)])
    assert all(len(ids) > 5 for ids in per_doc)  # these really were split


def test_engine_scores_weird_text_end_to_end(prepared: tuple[Reranker, Any]) -> None:
    rr, _ = prepared

    @END_TO_END
    @given(query=weird_text.filter(lambda q: q.strip() != ""), docs=st.lists(weird_text, max_size=4))
    def run(query: str, docs: list[str]) -> None:
        ranked = rr.rerank(query, docs)
        assert sorted(r.index for r in ranked) == list(range(len(docs)))
        assert all(r.text is docs[r.index] for r in ranked)

    run()
