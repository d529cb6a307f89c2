"""The README's Python snippets run (HOUSE_STYLE 15), against real Chroma stores and a local model."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
TEXTS = ["Paris is the capital of France.", "Berlin is in Germany.", "The cat sat on the mat."]


def _snippets(section: str | None = None) -> list[str]:
    """The README's Python blocks: those of one ``## section``, or (``None``) of every other section.

    The "Serving" section's snippets need a running server; tests/test_serve*.py run them.
    """
    text = README.read_text(encoding="utf-8")
    parts = re.split(r"^## ", text, flags=re.MULTILINE)
    chosen = [p for p in parts if (p.split("\n", 1)[0].strip() == section) == (section is not None)]
    if section is None:
        chosen = [p for p in chosen if p.split("\n", 1)[0].strip() != "Serving"]
    return re.findall(r"```python\n(.*?)```", "## ".join(chosen), flags=re.DOTALL)


def test_readme_snippets_run(
    tiny_bert: str, minilm_path: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import chromadb
    from langchain_chroma import Chroma
    from langchain_core.documents import Document
    from langchain_huggingface import HuggingFaceEmbeddings
    from llama_index.core import VectorStoreIndex
    from llama_index.core.llms import MockLLM
    from llama_index.core.schema import TextNode
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding

    snippets = _snippets()
    assert len(snippets) == 4
    embeddings = HuggingFaceEmbeddings(model_name=minilm_path, encode_kwargs={"normalize_embeddings": True})
    chroma = Chroma(client=chromadb.EphemeralClient(), collection_name="readme", embedding_function=embeddings)
    chroma.add_documents([Document(page_content=t, id=str(i)) for i, t in enumerate(TEXTS)])
    index = VectorStoreIndex(
        [TextNode(text=t, id_=str(i)) for i, t in enumerate(TEXTS)],
        embed_model=HuggingFaceEmbedding(model_name=minilm_path, device="cpu"),
    )
    from llama_index.core import Settings

    # as_query_engine() needs an LLM; the README's user has their own.
    monkeypatch.setattr(Settings, "_llm", MockLLM())
    namespace: dict[str, Any] = {"texts": TEXTS, "chroma": chroma, "index": index}
    for code in snippets:
        # The hub is not reachable here: the README's hub id becomes a local folder of the same kind.
        exec(code.replace('"cross-encoder/ms-marco-MiniLM-L-6-v2"', repr(tiny_bert)), namespace)
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 4  # three results, then the Speed section's line
    assert out[-1].startswith(f"{len(TEXTS)} [")  # budget_ms=250 reranks all three here
    assert len(namespace["docs"]) == 3 and "relevance_score" in namespace["docs"][0].metadata
    response = namespace["engine"].query("what is the capital of France?")
    assert len(response.source_nodes) == 3
