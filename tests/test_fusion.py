"""Fusion of the cross-encoder's score with the first stage's."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
from conftest import FakeScorer
from langchain_core.documents import Document
from llama_index.core.schema import NodeWithScore, TextNode

from langchain_xrerank import XRerankCompressor
from llamaindex_xrerank import XRerankPostprocessor
from xrerank_core import ConfigError, InputError, Reranker
from xrerank_core._fusion import fuse


def test_zscore_by_hand() -> None:
    # model [3, 1, 2] -> mean 2, std sqrt(2/3): z = [1.2247, -1.2247, 0]
    # first [0, 2, 1] -> z = [-1.2247, 1.2247, 0]
    z = math.sqrt(1.5)
    assert fuse([3, 1, 2], [0, 2, 1], "zscore", 0.75) == pytest.approx([0.75 * z - 0.25 * z, -0.75 * z + 0.25 * z, 0.0])
    assert fuse([1, 1], [5, 3], "zscore", 0.5) == pytest.approx([0.5, -0.5])  # constant model: first stage decides


def test_rrf_by_hand() -> None:
    # model ranks [1, 3, 2], first-stage ranks (input order) [1, 2, 3], k = 60
    out = fuse([3.0, 1.0, 2.0], None, "rrf", 0.5, rrf_k=60)
    assert out == pytest.approx([0.5 / 61 + 0.5 / 61, 0.5 / 63 + 0.5 / 62, 0.5 / 62 + 0.5 / 63])


def test_none_and_empty() -> None:
    assert fuse([1.0, 2.0], [3.0, 4.0], "none", 0.5) == [1.0, 2.0]
    assert fuse([], None, "zscore", 0.5) == []


def test_engine_fusion_changes_the_order_and_keeps_model_scores() -> None:
    texts = ["dog", "dog cat", "cat"]  # model: 1, 2, 1 for "dog cat"
    plain = Reranker(FakeScorer()).rerank("dog cat", texts)
    assert [r.index for r in plain] == [1, 0, 2]
    fused = Reranker(FakeScorer(), fusion="zscore", fusion_weight=0.3).rerank(
        "dog cat", texts, first_stage_scores=[0.1, 0.2, 0.9]
    )
    assert [r.index for r in fused] == [2, 1, 0]
    assert {r.index: r.model_score for r in fused} == {0: 1.0, 1: 2.0, 2: 1.0}
    # weight 1 is the model alone; weight 0 is the first stage alone
    only_model = Reranker(FakeScorer(), fusion="zscore", fusion_weight=1.0)
    assert [r.index for r in only_model.rerank("dog cat", texts, first_stage_scores=[0.1, 0.2, 0.9])] == [1, 0, 2]
    only_first = Reranker(FakeScorer(), fusion="rrf", fusion_weight=0.0)
    assert [r.index for r in only_first.rerank("dog cat", texts)] == [0, 1, 2]


def test_bad_fusion_settings() -> None:
    with pytest.raises(ConfigError):
        Reranker(FakeScorer(), fusion="max")
    with pytest.raises(ConfigError):
        Reranker(FakeScorer(), fusion="zscore", fusion_weight=1.5)
    rr = Reranker(FakeScorer(), fusion="zscore")
    with pytest.raises(InputError, match="2 values for 3"):
        rr.rerank("q", ["a", "b", "c"], first_stage_scores=[1.0, 2.0])
    with pytest.raises(InputError, match="finite"):
        rr.rerank("q", ["a", "b"], first_stage_scores=[1.0, float("nan")])


def test_weight_recorded_with_the_model(tmp_path: Path, tiny_bert: str) -> None:
    folder = tmp_path / "m"
    shutil.copytree(tiny_bert, folder)
    (folder / "xrerank.json").write_text(json.dumps({"fusion_weight": 0.2}))
    assert Reranker(str(folder), device="cpu", fusion="zscore").fusion_weight == 0.2
    assert Reranker(str(folder), device="cpu", fusion="zscore", fusion_weight=0.9).fusion_weight == 0.9
    assert Reranker(tiny_bert, device="cpu").fusion_weight == 0.5


def test_adapters_pass_the_first_stage_scores() -> None:
    rr = Reranker(FakeScorer(), fusion="zscore", fusion_weight=0.3)
    texts, first = ["dog", "dog cat", "cat"], [0.1, 0.2, 0.9]
    docs = [Document(page_content=t, metadata={"fs": s}) for t, s in zip(texts, first, strict=True)]
    out = XRerankCompressor(reranker=rr, first_stage_score_key="fs").compress_documents(docs, "dog cat")
    assert [d.page_content for d in out] == ["cat", "dog cat", "dog"]
    nodes = [NodeWithScore(node=TextNode(text=t), score=s) for t, s in zip(texts, first, strict=True)]
    out_nodes = XRerankPostprocessor(reranker=rr).postprocess_nodes(nodes, query_str="dog cat")
    assert [n.node.get_content() for n in out_nodes] == ["cat", "dog cat", "dog"]
    # without scores the input order is the first stage
    no_scores = XRerankCompressor(reranker=rr).compress_documents(docs, "dog cat")
    assert [d.page_content for d in no_scores] == [r.text for r in rr.rerank("dog cat", texts)]


@pytest.mark.parametrize("value", [0.1, 1.0, -7.3, 1e-9, 123456.789])
def test_equal_scores_have_zscores_of_zero(value: float) -> None:
    # [0.1] * 3 has a mean of 0.10000000000000002: a rounding residue, not a spread.
    assert fuse([value] * 3, [3.0, 2.0, 1.0], "zscore", 0.5) == pytest.approx(
        fuse([5.0] * 3, [3.0, 2.0, 1.0], "zscore", 0.5)
    )
