"""Model resolution and sharing.

A model is named by a Hugging Face hub id, a local folder, or the short name of a
model that ships with xrerank. Loaded scorers are shared: every
:class:`~xrerank_core.Reranker` that names the same (model, backend, device, options)
uses one instance, held weakly, so it is freed when the last user goes away.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from pathlib import Path

from xrerank_core._backends import Scorer
from xrerank_core._config import RerankerConfig
from xrerank_core._exceptions import ModelLoadError, ModelNotFoundError

__all__ = ["bundled_models", "get_scorer", "resolve_model"]

logger = logging.getLogger(__name__)

_BUNDLED_ROOT = Path(__file__).resolve().parent / "models"

_cache: weakref.WeakValueDictionary[tuple[object, ...], Scorer] = weakref.WeakValueDictionary()
_fallbacks: weakref.WeakSet[Scorer] = weakref.WeakSet()  # torch scorers "auto" chose when ONNX failed
_cache_lock = threading.Lock()
_key_locks: dict[tuple[object, ...], threading.Lock] = {}


def bundled_models() -> dict[str, Path]:
    """The cross-encoders that ship with xrerank, by short name, and their folders."""
    if not _BUNDLED_ROOT.is_dir():
        return {}
    return {
        f"xrerank/{p.name}": p for p in sorted(_BUNDLED_ROOT.iterdir()) if p.is_dir() and (p / "config.json").is_file()
    }


def resolve_model(model: str) -> str:
    """Map a short name of a bundled model to its folder; return anything else unchanged."""
    bundled = bundled_models()
    if model in bundled:
        return str(bundled[model])
    if model.startswith("xrerank/") and not Path(model).exists():
        names = ", ".join(bundled) or "none installed"
        msg = f"no bundled model named {model!r}; the bundled models are: {names}"
        raise ModelNotFoundError(msg)
    return model


def _device_key(device: str, backend: str) -> str:
    if device == "auto" and backend in ("onnx", "onnx-int8"):
        # Without importing torch (hundreds of MB): onnxruntime's CUDA provider or the CPU.
        from xrerank_core._backends._onnx import cuda_provider_available

        return "cuda" if cuda_provider_available() else "cpu"
    from xrerank_core._backends._torch import resolve_device

    return resolve_device(device)


def _http_scorer(url: str) -> Scorer:
    """One shared client per server URL and API key (the key comes from ``$XRERANK_API_KEY``)."""
    from xrerank_core._backends._http import API_KEY_ENV, HttpScorer

    key = (url, "http", os.environ.get(API_KEY_ENV))
    with _cache_lock:
        scorer = _cache.get(key)
        if scorer is None:
            scorer = _cache[key] = HttpScorer(url)
        return scorer


def get_scorer(config: RerankerConfig) -> Scorer:
    """Return the shared scorer for ``config``, loading it on first use.

    Two threads asking for the same model at once load it once.
    """
    if config.backend == "http" or (config.backend == "auto" and config.model.startswith(("http://", "https://"))):
        return _http_scorer(config.model)
    path = resolve_model(config.model)
    folder = Path(path).expanduser()
    model_key = str(folder.resolve()) if folder.is_dir() else path
    device = _device_key(config.device, config.backend)
    dtype = config.dtype
    backend = _pick_backend(config.backend, device, dtype)
    if dtype == "auto":
        dtype = "float16" if device.startswith("cuda") else "float32"
    workers = config.workers if backend.startswith("onnx") else None
    key = (model_key, backend, device, dtype, config.trust_remote_code, config.allow_pickle, workers)
    # A torch scorer that "auto" fell back to is cached under the ONNX key for later "auto" users,
    # never handed to one who asked for ONNX by name (they get ONNX or its error).
    explicit = config.backend != "auto"
    with _cache_lock:
        scorer = _cache.get(key)
        if scorer is not None and not (explicit and scorer in _fallbacks):
            return scorer
        key_lock = _key_locks.setdefault(key, threading.Lock())
    with key_lock:
        with _cache_lock:
            scorer = _cache.get(key)
        if scorer is not None and not (explicit and scorer in _fallbacks):
            return scorer
        logger.info("loading %s (backend=%s, device=%s, dtype=%s)", path, backend, device, dtype)
        scorer = _load(path, backend, device, dtype, config)
        with _cache_lock:
            if backend.startswith("onnx") and type(scorer).__name__ == "TorchScorer":
                _fallbacks.add(scorer)
            _cache[key] = scorer
        return scorer


def _pick_backend(backend: str, device: str, dtype: str) -> str:
    """``"auto"``: onnxruntime float32 on CPU when it is installed (same scores as torch), else torch.

    int8 is never picked automatically: it changes scores, so it is the user's choice. A
    reduced-precision ``dtype`` asks for torch.
    """
    if backend != "auto":
        return backend
    from xrerank_core._backends._onnx import onnx_installed

    cpu_float32 = device == "cpu" and dtype in ("auto", "float32")
    return "onnx" if cpu_float32 and onnx_installed() else "torch"


def _load(path: str, backend: str, device: str, dtype: str, config: RerankerConfig) -> Scorer:
    from xrerank_core._backends._torch import TorchScorer

    if backend in ("onnx", "onnx-int8"):
        from xrerank_core._backends._onnx import OnnxScorer

        try:
            return OnnxScorer(
                path,
                quantize=backend == "onnx-int8",
                device=device,
                trust_remote_code=config.trust_remote_code,
                allow_pickle=config.allow_pickle,
                workers=config.workers,
            )
        except ModelLoadError as exc:
            # Under "auto", an export that fails falls back to torch; a missing or wrong model does not.
            if config.backend != "auto" or type(exc) is not ModelLoadError:
                raise
            logger.warning("the ONNX backend is not available for %s (%s); using torch", path, exc)
    return TorchScorer(
        path,
        device=device,
        dtype=dtype,
        trust_remote_code=config.trust_remote_code,
        allow_pickle=config.allow_pickle,
    )
