"""The torch backend: a sentence-transformers ``CrossEncoder``."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xrerank_core._exceptions import (
    ModelLoadError,
    ModelNotFoundError,
    NotACrossEncoderError,
    RemoteCodeRequiredError,
    missing_dependency,
)

if TYPE_CHECKING:
    from sentence_transformers import CrossEncoder

__all__ = ["TorchScorer", "cpu_has_matrix_units", "resolve_device"]

logger = logging.getLogger(__name__)


def _hub_hint() -> str:
    from xrerank_core._models import bundled_models

    shipped = ", ".join(repr(n) for n in bundled_models())
    ships = f"the cross-encoder that ships with xrerank ({shipped})" if shipped else "a bundled model"
    return (
        "If this machine cannot reach the Hugging Face hub, pass the path of a local folder that holds "
        f"the model, or use {ships}, which loads with no network."
    )


def resolve_device(device: str) -> str:
    """Turn ``"auto"`` into ``"cuda"``, ``"mps"`` or ``"cpu"``; leave anything else as it is."""
    if device != "auto":
        return device
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def _read_config(folder: Path) -> dict[str, Any] | None:
    path = folder / "config.json"
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        msg = f"{path} is not valid JSON ({exc}); the model folder is damaged"
        raise ModelLoadError(msg) from exc
    return data if isinstance(data, dict) else None


# Files one of which every saved tokenizer has (fast, WordPiece, BPE, SentencePiece, tiktoken).
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.*", "merges.txt", "*.model", "*.tiktoken")


def _check_folder(folder: Path, *, trust_remote_code: bool, allow_pickle: bool) -> None:
    """Refuse, before loading, a local folder that cannot be a usable cross-encoder."""
    config = _read_config(folder)
    if config is None:
        if any(folder.glob("tokenizer*")) or (folder / "vocab.txt").exists():
            msg = (
                f"{folder} holds a tokenizer but no model (no config.json); "
                "point to the folder where the model was saved"
            )
        else:
            msg = f"{folder} holds no model (no config.json); pass the folder a model was saved to"
        raise ModelLoadError(msg)
    if config.get("auto_map") and not trust_remote_code:
        msg = (
            f"{folder} ships its own Python code (config.json 'auto_map'); read it, then load with "
            "trust_remote_code=True if you trust it"
        )
        raise RemoteCodeRequiredError(msg)
    architectures = config.get("architectures") or []
    if architectures and not any(str(a).endswith("ForSequenceClassification") for a in architectures):
        kind = "a sentence-embedding (bi-encoder) model" if (folder / "modules.json").exists() else "a model"
        msg = (
            f"{folder} holds {kind} with architecture {architectures[0]}, not a cross-encoder "
            "(…ForSequenceClassification); its scores would be random. Fine-tune it into a "
            "cross-encoder first (`xrerank train --base ...`) or pass a cross-encoder"
        )
        raise NotACrossEncoderError(msg)
    has_safetensors = any(folder.glob("*.safetensors"))
    has_pickle = any(folder.glob("pytorch_model*.bin"))
    if not has_safetensors and not has_pickle:
        msg = (
            f"{folder} has a config.json but no weights (model.safetensors); save the whole model there "
            "(model.save_pretrained(folder)) or pass the folder that holds its weights"
        )
        raise ModelLoadError(msg)
    if not any(any(folder.glob(pattern)) for pattern in _TOKENIZER_FILES):
        # transformers would build a tokenizer with an empty vocabulary: every word one unknown token.
        msg = (
            f"{folder} holds a model but no tokenizer (no tokenizer.json, vocab or sentencepiece file); save the "
            "tokenizer the model was trained with next to its weights (tokenizer.save_pretrained(folder))"
        )
        raise ModelLoadError(msg)
    if not has_safetensors and has_pickle and not allow_pickle:
        msg = (
            f"{folder} has only pickle weights (pytorch_model.bin), which can run arbitrary code when "
            "loaded; convert them to safetensors, or pass allow_pickle=True if you trust the files"
        )
        raise ModelLoadError(msg)


def _model_limit(model: CrossEncoder) -> int:
    """The most tokens one pair may have: the position table and the tokenizer's limit."""
    config = model.model.config if model.model is not None else None
    limits = [int(model.max_seq_length)] if model.max_seq_length else []
    positions = getattr(config, "max_position_embeddings", None)
    if isinstance(positions, int) and positions > 0:
        # RoBERTa-style position ids (XLM-R, CamemBERT, MPNet, ...) start after the padding index,
        # which their position table declares; BERT's table has none.
        table = getattr(
            getattr(getattr(model.model, "base_model", None), "embeddings", None), "position_embeddings", None
        )
        padding = getattr(table, "padding_idx", None)
        if isinstance(padding, int) and padding >= 0:
            positions -= padding + 1
        elif "roberta" in str(getattr(config, "model_type", "")):
            positions -= int(getattr(config, "pad_token_id", 1) or 1) + 1
        limits.append(positions)
    reasonable = [x for x in limits if 0 < x < 1_000_000]
    return min(reasonable) if reasonable else 512


def cpu_has_matrix_units(dtype: str) -> bool | None:
    """Whether this CPU multiplies ``dtype`` matrices in hardware (``None``: torch cannot tell).

    bfloat16 needs AMX or AVX-512 BF16 (Intel Sapphire Rapids and later, AMD Zen 4 and later);
    float16 needs AMX-FP16. Without them the reduced precision is emulated, usually more
    slowly than float32 itself.
    """
    import torch

    checks = {
        "bfloat16": ("_is_amx_tile_supported", "_is_avx512_bf16_supported"),
        "float16": ("_is_amx_fp16_supported",),
    }.get(dtype)
    if checks is None:
        return True
    found = [getattr(torch.cpu, name, None) for name in checks]
    if not any(callable(f) for f in found):
        return None
    return any(bool(f()) for f in found if callable(f))


class TorchScorer:
    """Scores pairs with a sentence-transformers ``CrossEncoder`` under ``torch.inference_mode``.

    One instance is shared by every :class:`~xrerank_core.Reranker` that names the same
    model, backend and device (see :func:`xrerank_core._models.get_scorer`).
    """

    def __init__(
        self,
        model: str,
        *,
        device: str = "auto",
        dtype: str = "float32",
        trust_remote_code: bool = False,
        allow_pickle: bool = False,
        local_files_only: bool = False,
    ) -> None:
        """Load the model.

        Args:
            model: A hub id or a local folder.
            device: ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"`` or ``"auto"``.
            dtype: ``"float32"``, ``"float16"`` or ``"bfloat16"``, whatever the file holds.
            trust_remote_code: Allow the model's own Python code to run.
            allow_pickle: Allow ``pytorch_model.bin`` weights.
            local_files_only: Never contact the hub.

        Raises:
            ModelNotFoundError: No such folder, or the hub could not serve the id.
            NotACrossEncoderError: The model is not a sequence classifier.
            RemoteCodeRequiredError: The model needs ``trust_remote_code=True``.
            ModelLoadError: Anything else that stopped loading.
        """
        try:
            from sentence_transformers import CrossEncoder
        except ImportError as exc:
            package = "sentence-transformers"
            raise missing_dependency(package, None, exc) from exc
        import torch

        self.name = model
        self.device = resolve_device(device)
        folder = Path(model).expanduser()
        if folder.is_dir():
            _check_folder(folder, trust_remote_code=trust_remote_code, allow_pickle=allow_pickle)
        elif _looks_like_path(model):
            msg = f"no folder at {model!r}; pass the folder a cross-encoder was saved to, or a hub id"
            raise ModelNotFoundError(msg)
        if self.device == "cpu" and cpu_has_matrix_units(dtype) is False:
            logger.warning(
                "dtype=%r on a CPU without %s units: torch emulates it, usually slower than float32. "
                "Use dtype='float32', or backend='onnx-int8' for a faster CPU path",
                dtype,
                "AMX / AVX-512 BF16" if dtype == "bfloat16" else "AMX-FP16",
            )
        model_kwargs: dict[str, Any] = {"dtype": getattr(torch, dtype)}
        if not allow_pickle:
            model_kwargs["use_safetensors"] = True
        try:
            self._model = CrossEncoder(
                str(folder) if folder.is_dir() else model,
                device=self.device,
                trust_remote_code=trust_remote_code,
                local_files_only=local_files_only,
                model_kwargs=model_kwargs,
                activation_fn=torch.nn.Identity(),
            )
        except Exception as exc:  # transformers raises many types; translate them all
            raise _translate_load_error(model, folder, exc) from exc

        config = self._model.model.config if self._model.model is not None else None
        architectures = list(getattr(config, "architectures", None) or [])
        if architectures and not any(a.endswith("ForSequenceClassification") for a in architectures):
            msg = (
                f"{model!r} is a {architectures[0]}, not a cross-encoder (…ForSequenceClassification); "
                "its scores would be random. Pass a cross-encoder, or fine-tune this one with `xrerank train`"
            )
            raise NotACrossEncoderError(msg)
        missing = _missing_head(folder, self._model.model) if folder.is_dir() else []
        if missing:
            msg = (
                f"the weights in {folder} have no classification head ({', '.join(missing[:3])} missing), so it "
                "would be random: this is an encoder, not a cross-encoder. Fine-tune it into one first "
                "(`xrerank train --base ...`) or pass a cross-encoder"
            )
            raise NotACrossEncoderError(msg)
        self.num_labels = int(self._model.num_labels)
        if self.num_labels not in (1, 2):
            msg = (
                f"{model!r} has a {self.num_labels}-label head; a reranker needs one relevance logit "
                "(or two labels, not relevant / relevant). Pass a reranking cross-encoder"
            )
            raise NotACrossEncoderError(msg)
        if self.num_labels == 2:
            logger.info("%s has a 2-label head: scoring with logit(relevant) - logit(not relevant)", model)

        tokenizer = self._model.tokenizer
        if tokenizer is None:
            msg = f"{model!r} has no tokenizer; save the tokenizer next to the weights"
            raise ModelLoadError(msg)
        self.max_length = _model_limit(self._model)
        # The tokenizer cuts pairs (truncates_pairs) at the model's max_seq_length, which can be the raw
        # position-table size (a tokenizer that records no limit): cut at the limit that fits instead.
        self._model.max_seq_length = self.max_length
        self.num_special_tokens = int(tokenizer.num_special_tokens_to_add(pair=True))
        self.truncates_pairs = True  # its tokenizer cuts a pair at max_length (longest_first)
        # A GPU runs a forward pass of 128 pairs in about the time of 32; the token cap keeps
        # one pass of long pairs (128 x 512 tokens at most) within a few hundred MB of activations.
        on_gpu = self.device.startswith("cuda")
        self.preferred_batch_size = 128 if on_gpu else 32
        self.preferred_batch_tokens: int | None = 128 * 512 if on_gpu else None
        self._offsets_tokenizer = self._make_offsets_tokenizer(tokenizer)
        self._lock = threading.Lock()

    @staticmethod
    def _make_offsets_tokenizer(tokenizer: Any) -> Any:
        """A private copy of the fast tokenizer with no padding or truncation, or ``None``."""
        backend = getattr(tokenizer, "backend_tokenizer", None)
        if not getattr(tokenizer, "is_fast", False) or backend is None:
            logger.warning("the tokenizer has no fast (Rust) version: long documents will be truncated, not split")
            return None
        from tokenizers import Tokenizer

        copy = Tokenizer.from_str(backend.to_str())
        copy.no_padding()
        copy.no_truncation()
        return copy

    def token_offsets(self, texts: Sequence[str]) -> list[list[tuple[int, int]]] | None:
        """Character spans of each text's tokens (no special tokens), or ``None`` without a fast tokenizer."""
        if self._offsets_tokenizer is None:
            return None
        encodings = self._offsets_tokenizer.encode_batch(list(texts), add_special_tokens=False)
        return [list(e.offsets) for e in encodings]

    def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        """Raw relevance logits for one batch of pairs (the positive class minus the negative for 2 labels)."""
        with self._lock:
            logits = self._model.predict(
                [list(p) for p in pairs],
                batch_size=len(pairs),
                show_progress_bar=False,
                convert_to_numpy=True,
            )
        if self.num_labels == 2:
            return [float(row[1] - row[0]) for row in logits]
        return [float(x) for x in logits.reshape(-1)]


def _missing_head(folder: Path, model: Any) -> list[str]:
    """The parameters outside the base encoder (the head) that no safetensors file in ``folder`` holds."""
    files = sorted(folder.glob("*.safetensors"))
    if not files or model is None:
        return []
    from safetensors import safe_open

    saved: set[str] = set()
    for path in files:
        with safe_open(str(path), framework="pt") as f:
            saved.update(f.keys())
    prefix = f"{getattr(model, 'base_model_prefix', '')}."
    head = [name for name, _ in model.named_parameters() if not name.startswith(prefix)]
    return [name for name in head if name not in saved]


def _looks_like_path(model: str) -> bool:
    """A name that can only be a path: hub ids are ``name`` or ``org/name``."""
    return model.startswith((".", "/", "~")) or "\\" in model or model.count("/") > 1


def _translate_load_error(model: str, folder: Path, exc: Exception) -> Exception:
    """Turn an exception from deep inside transformers into one that says what to do."""
    text = str(exc)
    if "trust_remote_code" in text:
        msg = f"{model!r} ships its own Python code; read it, then load with trust_remote_code=True if you trust it"
        return RemoteCodeRequiredError(msg)
    if not folder.exists() and isinstance(exc, FileNotFoundError):
        msg = f"no folder at {model!r}; pass the folder a cross-encoder was saved to, or a hub id"
        return ModelNotFoundError(msg)
    if folder.is_dir():
        if "safetensors" in text.lower() or "header" in text.lower():
            msg = (
                f"the weights in {folder} could not be read ({text}); the file is damaged or incomplete: "
                "download or save the model again"
            )
            return ModelLoadError(msg)
        msg = f"could not load the model in {folder}: {text}"
        return ModelLoadError(msg)
    if isinstance(exc, OSError):
        msg = f"could not load {model!r} from the Hugging Face hub ({text.splitlines()[0]}). {_hub_hint()}"
        return ModelNotFoundError(msg)
    msg = f"could not load {model!r}: {text}"
    return ModelLoadError(msg)
