"""The cross-encoder that ships with xrerank loads by name with no network, and ranks sensibly."""

from __future__ import annotations

import json

import pytest

from xrerank_core import DEFAULT_MODEL, ModelNotFoundError, Reranker, bundled_models

NAME = "xrerank/minilm-scifact"


def test_it_is_bundled_small_and_documented() -> None:
    folder = bundled_models()[NAME]
    weights = folder / "model.safetensors"
    assert weights.stat().st_size < 50 * 2**20
    card = (folder / "README.md").read_text(encoding="utf-8")
    assert "SciFact" in card and "xrerank train" in card and "not" in card.lower()
    recorded = json.loads((folder / "xrerank.json").read_text())
    assert 0.0 <= recorded["fusion_weight"] <= 1.0


def test_loads_offline_by_name_and_prefers_the_relevant_abstract() -> None:
    rr = Reranker(NAME, device="cpu", backend="torch")  # the weights are stored in float16
    assert rr.scorer._model.model.dtype.is_floating_point  # type: ignore[attr-defined]
    claim = "Aspirin inhibits the production of PGE2."
    texts = [
        "Arterial stiffness in the elderly: a population study of blood pressure and pulse wave velocity.",
        "Aspirin and prostaglandin E2: aspirin irreversibly acetylates cyclooxygenase, reducing the "
        "synthesis of prostaglandins including PGE2 in platelets and endothelial cells.",
        "Soil microbes in arctic tundra respond to warming with changes in carbon cycling.",
    ]
    ranked = rr.rerank(claim, texts)
    assert ranked[0].index == 1
    assert ranked[0].score > ranked[1].score + 1.0
    recorded = json.loads((bundled_models()[NAME] / "xrerank.json").read_text())
    assert rr.fusion_weight == recorded["fusion_weight"]
    assert rr.long_documents == recorded.get("long_documents", "maxp")


def test_the_default_hub_model_offline_points_to_the_bundled_one() -> None:
    with pytest.raises(ModelNotFoundError) as info:
        Reranker(DEFAULT_MODEL)
    assert NAME in str(info.value) and "local folder" in str(info.value)
