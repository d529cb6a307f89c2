"""Loading real (tiny) cross-encoders from folders, and refusing what is not one."""

from __future__ import annotations

import json
import logging
import math
import shutil
from pathlib import Path

import pytest
import torch
from conftest import FakeScorer
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from xrerank_core import (
    DEFAULT_MODEL,
    ModelLoadError,
    ModelNotFoundError,
    NotACrossEncoderError,
    RemoteCodeRequiredError,
    Reranker,
    RerankerConfig,
    bundled_models,
)

QUERY = "what is the capital of france"
DOCS = [
    "Paris is the capital and largest city of France.",
    "Berlin is the capital of Germany.",
    "The cat sat on the mat.",
    "France borders Spain, Italy, Germany and Belgium.",
]


def reference_logits(folder: str, query: str, docs: list[str], max_length: int | None = None) -> list[float]:
    """The plain transformers computation, one pair at a time, no xrerank code involved.

    With ``max_length``, each pair is cut there as sentence-transformers cuts it (``longest_first``).
    """
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    out = []
    cut = {"truncation": "longest_first", "max_length": max_length} if max_length else {}
    with torch.inference_mode():
        for d in docs:
            logits = model(**tokenizer(query, d, return_tensors="pt", **cut)).logits[0]
            out.append(float(logits[0]) if logits.numel() == 1 else float(logits[1] - logits[0]))
    return out


def test_bert_scores_match_plain_transformers(tiny_bert: str) -> None:
    rr = Reranker(tiny_bert, device="cpu", batch_size=3)
    scores = rr.score(QUERY, DOCS)
    assert all(type(s) is float for s in scores)
    assert scores == pytest.approx(reference_logits(tiny_bert, QUERY, DOCS), abs=1e-4)
    assert len(set(scores)) == len(scores)  # not constant


def test_xlm_roberta_scores_match_plain_transformers(tiny_xlmr: str) -> None:
    rr = Reranker(tiny_xlmr, device="cpu")
    docs = [*DOCS, "Die Hauptstadt von Deutschland ist Berlin.", "東京は日本の首都です。"]
    assert rr.score(QUERY, docs) == pytest.approx(reference_logits(tiny_xlmr, QUERY, docs), abs=1e-4)
    assert rr.max_length == 128  # 130 positions minus RoBERTa's padding offset


def test_two_label_head_uses_the_positive_class(tiny_bert_2labels: str) -> None:
    scores = Reranker(tiny_bert_2labels, device="cpu").score(QUERY, DOCS)
    assert scores == pytest.approx(reference_logits(tiny_bert_2labels, QUERY, DOCS), abs=1e-4)
    assert len(set(scores)) == len(scores)


def test_three_label_head_is_refused(tiny_bert_3labels: str) -> None:
    with pytest.raises(NotACrossEncoderError, match="3-label"):
        Reranker(tiny_bert_3labels, device="cpu")


def test_instances_share_one_model(tiny_bert: str) -> None:
    a = Reranker(tiny_bert, device="cpu")
    b = Reranker(tiny_bert + "/", device="cpu", normalize="sigmoid")
    assert a.scorer is b.scorer
    assert Reranker(tiny_bert, device="cpu", allow_pickle=True).scorer is not a.scorer


def test_max_length_is_capped_at_the_models_positions(tiny_bert: str, caplog: pytest.LogCaptureFixture) -> None:
    assert Reranker(tiny_bert, device="cpu").max_length == 128
    with caplog.at_level(logging.WARNING):
        assert Reranker(tiny_bert, device="cpu", max_length=1024).max_length == 128
    assert "1024" in caplog.text
    assert Reranker(tiny_bert, device="cpu", max_length=64).max_length == 64


def test_long_documents_use_the_best_window(tiny_bert: str) -> None:
    rr = Reranker(tiny_bert, device="cpu", max_length=64, window_overlap=8)
    long_doc = " ".join(["The weather was mild and nothing happened."] * 40) + " Paris is the capital of France."
    (score,) = rr.score(QUERY, [long_doc])
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    assert len(tokenizer(QUERY, long_doc)["input_ids"]) > 64  # really too long for one pass
    # MaxP: the document's score is the best window's, each window scored by the plain model.
    seen: list[tuple[str, str]] = []
    original = rr.scorer.score_pairs

    def recording(pairs):  # type: ignore[no-untyped-def]
        seen.extend(pairs)
        return original(pairs)

    rr.scorer.score_pairs = recording  # type: ignore[method-assign]
    try:
        rr.score(QUERY, [long_doc])
    finally:
        del rr.scorer.score_pairs
    windows = [w for _, w in seen]
    assert len(windows) > 1
    assert all(len(tokenizer(QUERY, w)["input_ids"]) <= 64 for w in windows)
    assert all(w in long_doc for w in windows)
    assert windows[-1].endswith("Paris is the capital of France.") or any(w.endswith("France.") for w in windows)
    assert score == pytest.approx(max(reference_logits(tiny_bert, QUERY, windows)), abs=1e-4)
    # Truncating, the engine reads exactly what CrossEncoder.predict reads: the pair cut at 64 tokens.
    docs = [long_doc, "Paris. " * 23 + "x", "Paris is the capital of France."]  # one of them about 64 tokens
    expected = reference_logits(tiny_bert, QUERY, docs, max_length=64)
    for backend in ("torch", "onnx"):
        rr = Reranker(tiny_bert, backend=backend, device="cpu", max_length=64, long_documents="truncate")
        assert rr.score(QUERY, docs) == pytest.approx(expected, abs=1e-4)


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="no folder"):
        Reranker(str(tmp_path / "nope"))


def test_hub_id_offline_names_the_fixes() -> None:
    with pytest.raises(ModelNotFoundError) as info:
        Reranker(DEFAULT_MODEL)
    assert "local folder" in str(info.value)


def test_bi_encoder_folder_is_refused(minilm_path: str) -> None:
    with pytest.raises(NotACrossEncoderError, match="bi-encoder"):
        Reranker(minilm_path)


def test_tokenizer_without_model(tmp_path: Path, tiny_bert: str) -> None:
    for f in Path(tiny_bert).iterdir():
        if f.name.startswith("tokenizer"):
            shutil.copy(f, tmp_path / f.name)
    with pytest.raises(ModelLoadError, match="tokenizer but no model"):
        Reranker(str(tmp_path))


def test_corrupted_weights(tmp_path: Path, tiny_bert: str) -> None:
    folder = tmp_path / "broken"
    shutil.copytree(tiny_bert, folder)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(ModelLoadError, match="damaged"):
        Reranker(str(folder))


def test_pickle_weights_need_opt_in(tmp_path: Path, tiny_bert: str) -> None:
    folder = tmp_path / "pickled"
    folder.mkdir()
    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert)
    torch.save(model.state_dict(), folder / "pytorch_model.bin")
    for f in Path(tiny_bert).iterdir():
        if f.name.startswith("tokenizer") or f.name == "config.json":
            shutil.copy(f, folder / f.name)
    with pytest.raises(ModelLoadError, match="allow_pickle=True"):
        Reranker(str(folder))
    rr = Reranker(str(folder), allow_pickle=True, device="cpu")
    assert rr.score(QUERY, DOCS) == pytest.approx(reference_logits(tiny_bert, QUERY, DOCS), abs=1e-4)


REMOTE_CODE = '''
from transformers import BertForSequenceClassification

class ShiftedBert(BertForSequenceClassification):
    """A model with its own code: the logit plus 100."""

    def forward(self, *args, **kwargs):
        out = super().forward(*args, **kwargs)
        out.logits = out.logits + 100.0
        return out
'''


def test_remote_code_needs_explicit_trust(tmp_path: Path, tiny_bert: str) -> None:
    folder = tmp_path / "custom"
    shutil.copytree(tiny_bert, folder)
    (folder / "modeling_shifted.py").write_text(REMOTE_CODE)
    config = json.loads((folder / "config.json").read_text())
    config["architectures"] = ["ShiftedBert"]
    config["auto_map"] = {"AutoModelForSequenceClassification": "modeling_shifted.ShiftedBert"}
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(RemoteCodeRequiredError, match="trust_remote_code=True"):
        Reranker(str(folder))
    config["architectures"] = ["ShiftedBertForSequenceClassification"]
    (folder / "config.json").write_text(json.dumps(config))
    scores = Reranker(str(folder), trust_remote_code=True, device="cpu").score(QUERY, DOCS)
    assert scores == pytest.approx([x + 100.0 for x in reference_logits(tiny_bert, QUERY, DOCS)], abs=1e-3)


def test_half_precision_files_load_as_float32_on_cpu(tmp_path: Path, tiny_bert: str) -> None:
    folder = tmp_path / "half"
    AutoModelForSequenceClassification.from_pretrained(tiny_bert).half().save_pretrained(folder)
    for f in Path(tiny_bert).iterdir():
        if f.name.startswith("tokenizer"):
            shutil.copy(f, folder / f.name)
    rr = Reranker(str(folder), device="cpu", backend="torch")
    assert rr.scorer._model.model.dtype == torch.float32  # type: ignore[attr-defined]
    assert rr.score(QUERY, DOCS) == pytest.approx(reference_logits(tiny_bert, QUERY, DOCS), abs=2e-2)


def test_long_documents_auto_follows_the_model_record(tiny_bert: str, tmp_path: Path) -> None:
    import json
    import shutil

    assert Reranker(tiny_bert, device="cpu").long_documents == "maxp"  # nothing recorded
    folder = tmp_path / "recorded"
    shutil.copytree(tiny_bert, folder)
    (folder / "xrerank.json").write_text(json.dumps({"long_documents": "truncate", "fusion_weight": 0.25}))
    rr = Reranker(str(folder), device="cpu", max_length=64)
    assert rr.long_documents == "truncate" and rr.fusion_weight == 0.25
    long_doc = " ".join(["The weather was mild and nothing happened."] * 40)
    assert rr.score(QUERY, [long_doc]) == Reranker(
        tiny_bert, device="cpu", max_length=64, long_documents="truncate"
    ).score(QUERY, [long_doc])
    # An explicit choice wins over the record; a bad record is ignored.
    assert Reranker(str(folder), device="cpu", long_documents="maxp").long_documents == "maxp"
    (folder / "xrerank.json").write_text(json.dumps({"long_documents": "sideways"}))
    assert Reranker(str(folder), device="cpu").long_documents == "maxp"


# -- more broken folders: each refused before it can score, with the fix in the message ---------


def _copy(src: str, dst: Path, skip: tuple[str, ...] = ()) -> Path:
    shutil.copytree(src, dst, ignore=lambda _d, names: [n for n in names if n.startswith(skip)])
    return dst


def test_model_without_its_tokenizer(tmp_path: Path, tiny_bert: str) -> None:
    # transformers would build a tokenizer with an empty vocabulary and score every text alike.
    folder = _copy(tiny_bert, tmp_path / "no-tokenizer", skip=("tokenizer", "vocab", "special_tokens"))
    with pytest.raises(ModelLoadError, match=r"no tokenizer.*tokenizer\.save_pretrained\(folder\)"):
        Reranker(str(folder), device="cpu")


def test_folder_without_weights(tmp_path: Path, tiny_bert: str) -> None:
    folder = _copy(tiny_bert, tmp_path / "no-weights", skip=("model.safetensors",))
    with pytest.raises(ModelLoadError, match=r"no weights.*save_pretrained"):
        Reranker(str(folder), device="cpu")


@pytest.mark.parametrize("content", [b"", b"\x00" * 64, bytes(range(256)) * 40], ids=["empty", "zeros", "garbage"])
def test_unreadable_weights(tmp_path: Path, tiny_bert: str, content: bytes) -> None:
    folder = _copy(tiny_bert, tmp_path / "bad")
    (folder / "model.safetensors").write_bytes(content)
    with pytest.raises(ModelLoadError, match="damaged or incomplete: download or save the model again"):
        Reranker(str(folder), device="cpu")


@pytest.mark.parametrize("kind", ["BertModel", "BertForMaskedLM", "BertModel, no architectures"])
def test_encoder_without_a_classification_head_is_refused(tmp_path: Path, tiny_bert: str, kind: str) -> None:
    from transformers import AutoConfig, BertForMaskedLM, BertModel

    folder = _copy(tiny_bert, tmp_path / "encoder", skip=("model.safetensors", "config.json"))
    model_class = BertForMaskedLM if kind == "BertForMaskedLM" else BertModel
    model_class(AutoConfig.from_pretrained(tiny_bert)).save_pretrained(folder)
    if "no architectures" in kind:  # nothing in config.json says what it is: the weights do
        config = json.loads((folder / "config.json").read_text())
        del config["architectures"]
        (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(NotACrossEncoderError, match=r"not a cross-encoder.*xrerank train"):
        Reranker(str(folder), device="cpu")


class _Booby:
    """Unpickling this creates a file: proof that a pickle was loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.marker), "w"))


def test_pickle_weights_are_never_unpickled_without_opt_in(tmp_path: Path, tiny_bert: str) -> None:
    import pickle

    marker = tmp_path / "pickle-was-loaded"
    both = _copy(tiny_bert, tmp_path / "both")
    (both / "pytorch_model.bin").write_bytes(pickle.dumps({"w": _Booby(marker)}))
    # Next to safetensors, the pickle file is ignored: the safetensors weights are the ones used.
    assert Reranker(str(both), device="cpu").score(QUERY, DOCS) == pytest.approx(
        reference_logits(tiny_bert, QUERY, DOCS), abs=1e-4
    )
    only = _copy(str(both), tmp_path / "only-pickle", skip=("model.safetensors",))
    with pytest.raises(ModelLoadError, match="allow_pickle=True"):
        Reranker(str(only), device="cpu")
    assert not marker.exists()


# -- options that reach the model: the config's model, "~" folders, cascades, truncation ------


def test_config_model_is_the_model_loaded(tiny_bert: str) -> None:
    config = RerankerConfig(model=tiny_bert, backend="torch", device="cpu", normalize="sigmoid")
    rr = Reranker(config=config)
    direct = Reranker(tiny_bert, backend="torch", device="cpu", normalize="sigmoid")
    assert rr.config.model == tiny_bert and rr.scorer is direct.scorer
    assert rr.score(QUERY, DOCS) == direct.score(QUERY, DOCS)
    # An explicit model still wins over the config's; the options too.
    fake = FakeScorer()
    other = Reranker(fake, config=config, normalize="none")
    assert other.scorer is fake and other.config.model == "fake" and other.config.normalize == "none"


def test_model_folder_under_home_reads_its_record(
    tiny_bert: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    folder = tmp_path / "recorded"
    shutil.copytree(tiny_bert, folder)
    (folder / "xrerank.json").write_text(json.dumps({"long_documents": "truncate", "fusion_weight": 0.25}))
    rr = Reranker("~/recorded", backend="torch", device="cpu")
    assert rr.scorer is Reranker(str(folder), backend="torch", device="cpu").scorer
    assert (rr.long_documents, rr.fusion_weight) == ("truncate", 0.25)


@pytest.mark.parametrize("fusion", ["rrf", "zscore"])
def test_cascade_fusion_without_first_stage_scores_uses_the_input_order(tiny_bert: str, fusion: str) -> None:
    docs = [
        f"document number {i} about {w} and Paris"
        for i, w in enumerate(
            ["cats", "the capital", "rivers", "france wine", "trains", "museums", "weather", "cheese"]
        )
    ]
    n = len(docs)
    rr = Reranker(
        tiny_bert,
        backend="torch",
        device="cpu",
        cascade_top_k=5,
        cascade_backend="torch",
        fusion=fusion,
        fusion_weight=0.5,
    )
    implicit = rr.rerank(QUERY, docs)
    explicit = rr.rerank(QUERY, docs, first_stage_scores=[float(n - i) for i in range(n)])
    assert implicit.reranked == explicit.reranked == 5
    assert [r.index for r in implicit] == [r.index for r in explicit]
    assert [r.score for r in implicit] == pytest.approx([r.score for r in explicit], abs=1e-9)


def test_truncate_below_the_models_limit_scores_like_cross_encoder_predict() -> None:
    from sentence_transformers import CrossEncoder

    folder = str(bundled_models()["xrerank/minilm-scifact"])
    query = "Aspirin inhibits the production of PGE2."
    docs = [
        "Aspirin blocks cyclooxygenase, the enzyme that makes prostaglandins. " * 3
        + "In this trial aspirin strongly reduced PGE2 levels in every patient group we studied.",
        "The Eiffel Tower is in Paris. " * 6 + "Aspirin reduces PGE2.",
        "Aspirin reduces PGE2.",
    ]
    rr = Reranker(folder, backend="torch", device="cpu", max_length=64, long_documents="truncate")
    assert rr.scorer.max_length > 64  # the model would read more: the engine has to cut at 64
    model = CrossEncoder(
        folder, max_length=64, activation_fn=torch.nn.Identity(), device="cpu", model_kwargs={"dtype": torch.float32}
    )
    expected = [float(s) for s in model.predict([(query, d) for d in docs])]
    assert rr.score(query, docs) == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize("model_type", ["xlm-roberta", "camembert"])
def test_roberta_style_positions_and_a_tokenizer_without_a_limit_cut_pairs_that_fit(
    tiny_xlmr: str, tmp_path: Path, model_type: str
) -> None:
    """Position ids after the padding index (XLM-R, CamemBERT, ...) leave 128 of 130 rows; pairs are cut there."""
    folder = tmp_path / model_type
    shutil.copytree(tiny_xlmr, folder)
    config = json.loads((folder / "config.json").read_text())
    config["model_type"] = model_type
    config["architectures"] = [
        "CamembertForSequenceClassification" if model_type == "camembert" else config["architectures"][0]
    ]
    (folder / "config.json").write_text(json.dumps(config))
    tok_config = json.loads((folder / "tokenizer_config.json").read_text())
    tok_config.pop("model_max_length", None)  # a tokenizer that records no limit
    (folder / "tokenizer_config.json").write_text(json.dumps(tok_config))

    rr = Reranker(str(folder), backend="torch", device="cpu", long_documents="truncate")
    assert rr.scorer.max_length == 128
    long_doc = "Paris is the capital of France. " * 60
    ranked = rr.rerank("capital of France", [long_doc, "Berlin"])
    assert len(ranked) == 2 and all(math.isfinite(r.score) for r in ranked)


def test_a_torch_fallback_of_auto_is_never_handed_to_an_explicit_onnx_request(
    tiny_bert: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An ONNX export that fails (fault injected: tiny models export fine) makes "auto" use torch;
    a later backend="onnx" must get the export's error, not that cached torch scorer."""
    from xrerank_core._backends import _onnx
    from xrerank_core._exceptions import ModelLoadError

    def export_fails(self: object, *args: object, **kwargs: object) -> None:
        raise ModelLoadError("could not export the model to ONNX")

    model = str(shutil.copytree(tiny_bert, tmp_path / "model"))  # a folder no other test's scorer is cached for
    monkeypatch.setattr(_onnx.OnnxScorer, "__init__", export_fails)
    auto = Reranker(model, device="cpu")
    assert type(auto.scorer).__name__ == "TorchScorer"
    assert Reranker(model, device="cpu").scorer is auto.scorer  # "auto" users share it
    with pytest.raises(ModelLoadError, match="could not export"):
        Reranker(model, backend="onnx", device="cpu")
