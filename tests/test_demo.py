"""The two demo chatbots, end to end on a slice of the shipped SciFact abstracts."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from xrerank_demo import SAMPLE_QUESTIONS
from xrerank_demo.langchain_app import main as langchain_main
from xrerank_demo.llamaindex_app import main as llamaindex_main


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("demo-store")


def _ask(main: object, capsys: pytest.CaptureFixture[str], *args: str) -> dict:  # type: ignore[type-arg]
    assert main(list(args)) == 0  # type: ignore[operator]
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


@pytest.mark.parametrize("app", [langchain_main, llamaindex_main], ids=["langchain", "llamaindex"])
def test_answers_with_ten_ranked_sources(
    app: object, store: Path, minilm_cross_encoder: str, capsys: pytest.CaptureFixture[str]
) -> None:
    common = ["--question", SAMPLE_QUESTIONS[0], "--limit", "150", "--store", str(store), "--json"]
    out = _ask(app, capsys, *common, "--model", minilm_cross_encoder, "--k", "30")
    sources = out["sources"]
    assert len(sources) == 10
    scores = [s["score"] for s in sources]
    assert scores == sorted(scores, reverse=True)
    assert len({s["doc_id"] for s in sources}) == 10
    assert all(1 <= s["first_stage_rank"] <= 30 for s in sources)
    assert all(s["title"] for s in sources)
    assert set(out["seconds"]) == {"retrieval", "reranking", "generation"}
    assert out["seconds"]["reranking"] > 0
    assert out["generator"] == "extractive" and out["answer"].startswith('"')

    plain = _ask(app, capsys, *common, "--no-rerank")
    assert [s["first_stage_rank"] for s in plain["sources"]] == list(range(1, 11))
    assert set(plain["seconds"]) == {"retrieval", "reranking", "generation"}
    assert plain["seconds"]["reranking"] == 0
    assert plain["seconds"]["retrieval"] > 0  # the first stage is timed without the reranker too


def test_the_data_readme_names_files_that_exist() -> None:
    root = Path(__file__).resolve().parents[1]
    readme = (root / "xrerank_demo" / "data" / "README.md").read_text(encoding="utf-8")
    named = re.findall(r"`(xrerank_demo/[^`]+\.py)`", readme)
    assert named
    for path in named:
        assert (root / path).is_file(), path
    # The sample questions are where it says.
    assert "SAMPLE_QUESTIONS" in readme
    assert "SAMPLE_QUESTIONS = " in (root / "xrerank_demo" / "_common.py").read_text(encoding="utf-8")


def test_both_frameworks_agree(store: Path, minilm_cross_encoder: str, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--question", SAMPLE_QUESTIONS[1], "--limit", "150", "--store", str(store), "--json", "--k", "30"]
    lc = _ask(langchain_main, capsys, *args, "--model", minilm_cross_encoder)
    li = _ask(llamaindex_main, capsys, *args, "--model", minilm_cross_encoder)
    assert [s["doc_id"] for s in lc["sources"]] == [s["doc_id"] for s in li["sources"]]
    assert [s["score"] for s in lc["sources"]] == pytest.approx([s["score"] for s in li["sources"]], abs=1e-5)


def test_without_the_reranker_both_frameworks_show_the_cosine_similarity(
    store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--question", SAMPLE_QUESTIONS[1], "--limit", "150", "--store", str(store), "--json", "--no-rerank"]
    lc = _ask(langchain_main, capsys, *args)
    li = _ask(llamaindex_main, capsys, *args)
    assert [s["doc_id"] for s in lc["sources"]] == [s["doc_id"] for s in li["sources"]]
    assert [s["score"] for s in lc["sources"]] == pytest.approx([s["score"] for s in li["sources"]], abs=1e-5)


def test_a_source_is_its_abstract_without_the_title(
    store: Path, minilm_cross_encoder: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from xrerank_demo._common import load_corpus

    corpus = load_corpus(150)
    args = ["--question", SAMPLE_QUESTIONS[0], "--limit", "150", "--store", str(store), "--json", "--k", "20"]
    for app in (langchain_main, llamaindex_main):
        out = _ask(app, capsys, *args, "--model", minilm_cross_encoder, "--top-n", "3")
        for source in out["sources"]:
            passage = corpus[source["doc_id"]]
            assert source["title"] == passage.title and source["text"] == passage.text
        assert not any(source["title"] in out["answer"] for source in out["sources"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--question", "  "], "--question is empty"),
        (["--k", "0"], "--k: must be a whole number of at least 1"),
        (["--top-n", "-2"], "--top-n: must be a whole number of at least 1"),
        (["--limit", "0"], "--limit: must be a whole number of at least 1"),
    ],
)
def test_bad_options_are_refused_before_anything_loads(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        langchain_main(args)
    assert exc.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("llm_class", "kwargs", "message"),
    [
        ("json:JSONDecoder", "{not json", "XRERANK_LLM_KWARGS is not valid JSON"),
        ("json:JSONDecoder", "[1, 2]", "must be a JSON object"),
        ("no_such_module_here:Chat", "{}", "does not name an importable class"),
        ("json:JSONDecoder", '{"no_such_argument": 1}', "could not build json:JSONDecoder"),
    ],
)
def test_a_bad_llm_setting_is_named_before_the_store_is_built(
    llm_class: str, kwargs: str, message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XRERANK_LLM_CLASS", llm_class)
    monkeypatch.setenv("XRERANK_LLM_KWARGS", kwargs)
    empty = tmp_path / "store"
    for app in (langchain_main, llamaindex_main):
        with pytest.raises(SystemExit, match=message):
            app(["--question", "anything", "--store", str(empty), "--limit", "5"])
    assert not empty.exists()  # failed before the store was touched


def test_xrerank_demo_help_shows_its_own_command(capsys: pytest.CaptureFixture[str]) -> None:
    from xrerank_core.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["demo", "--framework", "llamaindex", "--help"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.startswith("usage: xrerank demo --framework llamaindex [-h]")
