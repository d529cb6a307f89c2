"""The onnxruntime backend: a cross-encoder exported to ONNX, in float32 or dynamic int8.

The first use of a model exports it once and keeps the result on disk; later processes
load it from there. The export goes through the libraries' own tools:

1. ``torch.onnx.export`` of the transformers model (float32, eager attention, dynamic
   batch and sequence axes);
2. ``onnxruntime.transformers.optimizer`` fuses attention, GELU and layer norms for the
   BERT family (BERT, RoBERTa, XLM-RoBERTa, ELECTRA); other models keep the plain graph;
3. for ``onnx-int8``, ``onnxruntime.quantization.quantize_dynamic`` quantises the fused
   graph's weights per channel to int8 (activations are quantised per batch at run time).

Every step is checked against the torch model on a sample batch before it is kept; a
fusion that changes the scores is dropped. The cache folder is keyed by a hash of the
model's files and of the export recipe, so new weights or a new onnxruntime give a new
export; a damaged file is found by its checksum and rebuilt. A file lock keeps two
processes from exporting the same model at once.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
import warnings
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from xrerank_core._exceptions import ConfigError, ModelLoadError, ScoringError, missing_dependency

__all__ = ["OnnxScorer", "cuda_provider_available", "onnx_cache_root", "onnx_installed", "physical_cores"]

logger = logging.getLogger(__name__)

# Bump when the export recipe changes, so old exports are not reused.
_RECIPE = 2  # 2: int8 keeps the first half of the layers' FFN-output matmuls in float32
_OPSET = 17
# Model types whose graph onnxruntime's BERT optimizer knows how to fuse.
_FUSABLE = {"bert", "roberta", "xlm-roberta", "electra", "camembert"}
# Largest |ONNX fp32 - torch fp32| difference accepted on the sample batch, relative to the logits' scale.
_FP32_TOLERANCE = 1e-3
# Tokens per forward pass when each session runs on one core: 256-512 were fastest for int8 and
# float32 alike on this project's 2-core CPU (DL19 and SciFact pairs; 1024 and more were slower).
_SIDE_BY_SIDE_BATCH_TOKENS = 512
_SAMPLE = [
    ("what is the capital of france?", "Paris is the capital and most populous city of France."),
    ("what is the capital of france?", "Berlin is the capital of Germany."),
    ("how do cross-encoders rank documents", "A cross-encoder reads the query and the document together."),
]


def onnx_installed() -> bool:
    """Whether onnxruntime and onnx (needed to export) can be imported."""
    import importlib.util

    return all(importlib.util.find_spec(name) is not None for name in ("onnxruntime", "onnx"))


def cuda_provider_available() -> bool:
    """Whether the installed onnxruntime can run on CUDA (the onnxruntime-gpu build)."""
    try:
        import onnxruntime
    except ImportError:
        return False
    return "CUDAExecutionProvider" in onnxruntime.get_available_providers()


def onnx_cache_root() -> Path:
    """Where exported models are kept: ``$XRERANK_CACHE/onnx``, else ``~/.cache/xrerank/onnx``.

    ``$XDG_CACHE_HOME`` replaces ``~/.cache`` when it is set.
    """
    root = os.environ.get("XRERANK_CACHE")
    if root:
        return Path(root).expanduser() / "onnx"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "xrerank" / "onnx"


def physical_cores() -> int:
    """Cores this process may run on, counting physical cores only (no hyper-threads)."""
    try:
        allowed = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        allowed = os.cpu_count() or 1
    try:
        import psutil

        physical = psutil.cpu_count(logical=False) or allowed
    except ImportError:
        physical = allowed
    return max(1, min(allowed, physical))


def _import_runtime() -> Any:
    try:
        import onnxruntime
    except ImportError as exc:
        package = "onnxruntime"
        raise missing_dependency(package, "onnx", exc) from exc
    return onnxruntime


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _model_files(folder: Path) -> list[Path]:
    """The files that define a model: every top-level file but docs and earlier exports."""
    skip_suffixes = {".md", ".onnx", ".lock"}
    return sorted(
        p for p in folder.iterdir() if p.is_file() and p.suffix not in skip_suffixes and not p.name.startswith(".")
    )


def _cache_key(folder: Path) -> str:
    import onnxruntime

    digest = hashlib.sha256()
    # The fused graph uses onnxruntime's own operators: a new onnxruntime gets a new export.
    recipe = f"recipe={_RECIPE};opset={_OPSET};ort={onnxruntime.__version__}"
    digest.update(recipe.encode())
    for path in _model_files(folder):
        digest.update(f"\0{path.name}\0{_sha256(path)}".encode())
    return digest.hexdigest()[:32]


def _local_folder(model: str) -> Path:
    """The folder holding ``model``: the folder itself, or the hub snapshot (downloaded through the torch loader)."""
    folder = Path(model).expanduser()
    if folder.is_dir():
        return folder
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(model, local_files_only=True))
    except Exception:  # not in the local hub cache yet: let the torch loader fetch it, with its clear errors
        from xrerank_core._backends._torch import TorchScorer

        TorchScorer(model)
        return Path(snapshot_download(model, local_files_only=True))


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    try:
        from filelock import FileLock
    except ImportError as exc:
        package = "filelock"
        raise missing_dependency(package, "onnx", exc) from exc
    with FileLock(str(path), timeout=-1):
        yield


class _Export:
    """One cache folder: ``meta.json``, ``tokenizer.json``, ``model.onnx`` and ``model-int8.onnx``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.meta_path = folder / "meta.json"

    def meta(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.meta_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or data.get("recipe") != _RECIPE:
            return None
        tokenizer = self.folder / "tokenizer.json"
        if not tokenizer.is_file():
            return None
        recorded = data.get("tokenizer_sha256")  # absent in exports written before it was recorded
        if recorded is not None and _sha256(tokenizer) != recorded:
            logger.warning("%s does not match its checksum (damaged or changed); exporting again", tokenizer)
            return None
        return data

    def valid_file(self, variant: str) -> Path | None:
        """The variant's file when it is there and matches its recorded checksum."""
        meta = self.meta()
        if meta is None:
            return None
        entry = meta.get("files", {}).get(variant)
        path = self.folder / f"{variant}.onnx"
        if not isinstance(entry, str) or not path.is_file():
            return None
        if _sha256(path) != entry:
            logger.warning("%s does not match its checksum (damaged or changed); exporting it again", path)
            return None
        return path

    def record(self, meta: dict[str, Any], variant: str, path: Path) -> None:
        files = dict(meta.get("files", {}))
        files[variant] = _sha256(path)
        meta = {**meta, "files": files}
        tmp = self.meta_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(meta, indent=2, sort_keys=True), encoding="utf-8")
        os.replace(tmp, self.meta_path)


def _torch_logits(hf_model: Any, tokenizer: Any, max_length: int) -> tuple[dict[str, Any], np.ndarray]:
    import torch

    batch = tokenizer(
        [q for q, _ in _SAMPLE],
        [d for _, d in _SAMPLE],
        padding=True,
        truncation=True,
        max_length=max_length,
        return_tensors="pt",
    )
    with torch.inference_mode():
        logits = hf_model(**batch).logits.float().numpy()
    return dict(batch), logits


def _run_graph(path: Path, feeds: dict[str, np.ndarray]) -> np.ndarray:
    ort = _import_runtime()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}
    return np.asarray(session.run(None, {k: v for k, v in feeds.items() if k in names})[0], dtype=np.float32)


def _close(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two logit arrays agree; equal infinities and NaN in the same places count as agreeing.

    (Damaged weights give non-finite logits in both; the engine reports those when it scores.)
    """
    if a.shape != b.shape:
        return False
    same = (a == b) | (np.isnan(a) & np.isnan(b))
    if bool(same.all()):
        return True
    finite = np.isfinite(a) & np.isfinite(b)
    if not bool((same | finite).all()):
        return False
    scale = max(1.0, float(np.abs(b[finite]).max()))
    return float(np.abs(a[finite] - b[finite]).max()) <= _FP32_TOLERANCE * scale


def _logits_module(hf_model: Any, input_names: list[str]) -> Any:
    """Wrap ``hf_model`` so the tracer sees positional inputs (in ``input_names`` order) and one output."""
    import torch

    class LogitsOnly(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = hf_model

        def forward(self, *inputs: Any) -> Any:
            return self.model(**dict(zip(input_names, inputs, strict=True))).logits

    return LogitsOnly()


def _export_fp32(source: Path, out: Path, *, trust_remote_code: bool, allow_pickle: bool) -> dict[str, Any]:
    """Export ``source`` to ``out/model.onnx`` (fused when possible) and write ``out/tokenizer.json``."""
    import torch

    from xrerank_core._backends._torch import TorchScorer

    torch_scorer = TorchScorer(
        str(source), device="cpu", dtype="float32", trust_remote_code=trust_remote_code, allow_pickle=allow_pickle
    )
    cross_encoder = torch_scorer._model
    hf_model = cross_encoder.model
    tokenizer = cross_encoder.tokenizer
    if hf_model is None or tokenizer is None or not getattr(tokenizer, "is_fast", False):
        msg = f"{source} has no fast (Rust) tokenizer, which the ONNX backend needs; use backend='torch'"
        raise ModelLoadError(msg)
    hf_model = hf_model.float().eval()
    with contextlib.suppress(Exception):  # tracing needs plain attention; not every model can switch
        hf_model.set_attn_implementation("eager")
    tokenizer.backend_tokenizer.save(str(out / "tokenizer.json"))

    feeds_pt, reference = _torch_logits(hf_model, tokenizer, torch_scorer.max_length)
    import inspect

    forward_args = set(inspect.signature(hf_model.forward).parameters)
    candidates: tuple[str, ...] = ("input_ids", "attention_mask", "token_type_ids")
    input_names = [n for n in candidates if n in feeds_pt and n in forward_args]
    feeds = {n: feeds_pt[n].numpy().astype(np.int64) for n in input_names}
    plain = out / "plain.onnx"
    axes = {n: {0: "batch", 1: "sequence"} for n in input_names}
    logger.info("exporting %s to ONNX (once; kept in %s)", source, out)
    try:
        # The tracer warns about every Python-level branch it freezes; the check below is what counts.
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                _logits_module(hf_model, input_names),
                tuple(feeds_pt[n] for n in input_names),
                str(plain),
                input_names=input_names,
                output_names=["logits"],
                dynamic_axes={**axes, "logits": {0: "batch"}},
                opset_version=_OPSET,
                dynamo=False,
            )
    except Exception as exc:  # the tracer raises many types
        msg = f"could not export {source} to ONNX ({type(exc).__name__}: {exc}); use backend='torch'"
        raise ModelLoadError(msg) from exc
    if not _close(_run_graph(plain, feeds), reference):
        msg = f"the ONNX export of {source} does not reproduce the torch scores; use backend='torch'"
        raise ModelLoadError(msg)

    config = hf_model.config
    final = out / "model.onnx"
    fused = False
    if str(getattr(config, "model_type", "")) in _FUSABLE:
        fused = _try_fuse(plain, final, config, feeds, reference)
    if fused:
        plain.unlink()
    else:
        os.replace(plain, final)
    return {
        "recipe": _RECIPE,
        "source": str(source),
        "input_names": input_names,
        "max_length": torch_scorer.max_length,
        "num_special_tokens": torch_scorer.num_special_tokens,
        "num_labels": torch_scorer.num_labels,
        "pad_token_id": int(tokenizer.pad_token_id or 0),
        "pad_token": str(tokenizer.pad_token or "[PAD]"),
        "fused": fused,
        "files": {},
        "tokenizer_sha256": _sha256(out / "tokenizer.json"),
    }


def _try_fuse(plain: Path, final: Path, config: Any, feeds: dict[str, np.ndarray], reference: np.ndarray) -> bool:
    """Fuse the BERT-family graph with onnxruntime's optimizer; keep it only if the scores stay the same."""
    try:
        from onnxruntime.transformers.optimizer import optimize_model

        optimized = optimize_model(
            str(plain),
            model_type="bert",
            num_heads=int(config.num_attention_heads),
            hidden_size=int(config.hidden_size),
        )
        optimized.save_model_to_file(str(final))
    except Exception as exc:  # an optimizer that cannot handle this graph: keep the plain one
        logger.info("onnxruntime could not fuse the graph (%s); keeping the plain export", exc)
        return False
    if _close(_run_graph(final, feeds), reference):
        return True
    logger.warning("the fused ONNX graph changed the scores; keeping the plain export")
    final.unlink()
    return False


def ffn_output_matmuls(graph: Any) -> list[str]:
    """The names of the MatMuls that read a GELU's output (each layer's FFN output projection), in order."""
    gelu_outputs = {o for n in graph.node if n.op_type in ("BiasGelu", "Gelu", "FastGelu") for o in n.output}
    return [n.name for n in graph.node if n.op_type == "MatMul" and n.input and n.input[0] in gelu_outputs]


def _float32_matmuls(graph: Any) -> list[str]:
    """The MatMuls int8 leaves in float32: the FFN output projections of the first half of the layers.

    Their input (after GELU) has the widest range of any activation, and dynamic int8 quantises it
    with one scale per batch. On the shipped MiniLM-L6 (DL19, 4,300 pairs) keeping those of layers
    0-2 in float32 cut the mean |int8 - float32| score error from 0.38 to 0.24 (logits with a
    spread of 3.5) for about 20 % of int8's speed; the last three layers' did little
    (``benchmarks/int8_recipe.py``).
    """
    ffn_out = ffn_output_matmuls(graph)
    return ffn_out[: (len(ffn_out) + 1) // 2]


def _quantize(fp32: Path, out: Path) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    tmp = out.with_suffix(".onnx.tmp")
    keep = _float32_matmuls(onnx.load(str(fp32), load_external_data=False).graph)
    # The fused graph has contrib ops whose output types the quantiser cannot infer: it is
    # told they are float. Weights per output channel: closest to float32 in our checks.
    quantize_dynamic(
        str(fp32),
        str(tmp),
        per_channel=True,
        weight_type=QuantType.QInt8,
        nodes_to_exclude=keep,
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )
    os.replace(tmp, out)


def _ensure_export(model: str, variant: str, *, trust_remote_code: bool, allow_pickle: bool) -> tuple[Path, Path]:
    """Return (the variant's ONNX file, its export folder), exporting under a lock when needed."""
    source = _local_folder(model)
    root = onnx_cache_root()
    root.mkdir(parents=True, exist_ok=True)
    folder = root / _cache_key(source)
    export = _Export(folder)
    found = export.valid_file(variant)
    if found is not None:
        return found, folder
    with _file_lock(root / f"{folder.name}.lock"):
        found = export.valid_file(variant)  # another process may have built it while we waited
        if found is not None:
            return found, folder
        meta = export.meta()
        fp32 = export.valid_file("model")
        if meta is None or fp32 is None:
            work = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=root))
            try:
                meta = _export_fp32(source, work, trust_remote_code=trust_remote_code, allow_pickle=allow_pickle)
                if folder.exists():
                    shutil.rmtree(folder)
                os.replace(work, folder)
            finally:
                shutil.rmtree(work, ignore_errors=True)
            fp32 = folder / "model.onnx"
            export.record(meta, "model", fp32)
            meta = export.meta() or meta
        if variant == "model-int8":
            target = folder / "model-int8.onnx"
            logger.info("quantising %s to int8 (once)", model)
            _quantize(fp32, target)
            export.record(meta, "model-int8", target)
            return target, folder
        return fp32, folder


class OnnxScorer:
    """Scores pairs with onnxruntime: the model exported to ONNX, float32 or dynamic int8.

    One instance is shared by every :class:`~xrerank_core.Reranker` that names the same
    model, backend and device (see :func:`xrerank_core._models.get_scorer`).

    Attributes:
        quantized: Whether the weights are int8 (dynamic quantisation).
        path: The ONNX file in use.
        preferred_batch_tokens: The tokens per forward pass this backend runs fastest with;
            the engine uses it when ``max_batch_tokens`` is not set.
        preferred_batch_size: Pairs per forward pass when ``batch_size`` is not set: 1 for
            int8, whatever the workers and device, else ``None``. Dynamic quantisation scales
            a pass's activations by their range over the whole batch, so one pair per pass
            keeps each pair's score independent of the pairs it is scored with; an explicit
            ``batch_size`` above 1 gives that up (scores then move with their batch).
        workers: Forward passes that run at once. On CPU, by default one per physical core,
            each on one thread of one shared onnxruntime session (one copy of the weights):
            small batches side by side use the cores better than one batch split across them
            (``benchmarks/RESULTS.md``, speed.py). :meth:`score_batches` spreads a job's
            batches over them.
    """

    def __init__(
        self,
        model: str,
        *,
        quantize: bool = False,
        device: str = "cpu",
        trust_remote_code: bool = False,
        allow_pickle: bool = False,
        threads: int | None = None,
        workers: int | None = None,
    ) -> None:
        """Load the exported model, exporting it first if this machine has not yet.

        Args:
            model: A hub id or a local folder.
            quantize: Use int8 weights (faster on CPU; scores move slightly).
            device: ``"cpu"``, or ``"cuda"`` / ``"cuda:N"`` with onnxruntime-gpu.
            trust_remote_code: Allow the model's own Python code to run (for the export).
            allow_pickle: Allow ``pytorch_model.bin`` weights (for the export).
            threads: Threads for one forward pass. ``None``: 1 on CPU when ``workers`` is more
                than 1, else this machine's physical cores.
            workers: Forward passes that run at once (threads sharing one session). ``None``: this machine's physical
                cores on CPU (divided by ``threads`` when it is given), 1 on CUDA.

        Raises:
            MissingDependencyError: onnxruntime or onnx is not installed.
            ConfigError: A CUDA device without onnxruntime's CUDA provider.
            ModelLoadError: The model could not be exported or loaded.
        """
        ort = _import_runtime()
        try:
            import onnx  # noqa: F401  (the exporter and the quantiser need it)
        except ImportError as exc:
            package = "onnx"
            raise missing_dependency(package, "onnx", exc) from exc
        from tokenizers import Tokenizer

        self.name = model
        self.quantized = quantize
        variant = "model-int8" if quantize else "model"
        meta: dict[str, Any] = {}
        providers: list[Any] = ["CPUExecutionProvider"]
        if device.startswith("cuda"):
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                msg = (
                    "backend='onnx' on a CUDA device needs onnxruntime's CUDA provider "
                    "(pip install onnxruntime-gpu); or use backend='torch', which runs float16 on CUDA"
                )
                raise ConfigError(msg)
            number = device.split(":", 1)[1] if ":" in device else "0"
            if not number.isdigit():
                msg = f"a CUDA device is 'cuda' or 'cuda:N' with N a number, got {device!r}"
                raise ConfigError(msg)
            index = int(number)
            providers = [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]
        elif device not in ("cpu", "auto"):
            msg = f"backend='onnx' runs on 'cpu' or 'cuda'; got device={device!r}"
            raise ConfigError(msg)
        self.device = "cuda" if device.startswith("cuda") else "cpu"

        if threads is not None and threads < 1:
            msg = f"threads must be >= 1, got {threads}"
            raise ConfigError(msg)
        if workers is not None and workers < 1:
            msg = f"workers must be >= 1, got {workers}"
            raise ConfigError(msg)
        cores = physical_cores()
        if self.device == "cuda":
            workers = 1
        elif workers is None:
            workers = max(1, cores // threads) if threads else cores
        if threads is None:
            threads = 1 if workers > 1 else cores
        self.workers = workers
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        for attempt in (0, 1):
            path, folder = _ensure_export(
                model, variant, trust_remote_code=trust_remote_code, allow_pickle=allow_pickle
            )
            try:
                # One session for every worker: onnxruntime runs concurrent calls of one session side by
                # side, each on its caller's thread (intra_op_num_threads=1), over one copy of the weights.
                # A session per worker held a copy each: RSS grew with the core count (+62 MiB at one
                # worker, +334 MiB at four for the bundled MiniLM's float32 graph).
                session = ort.InferenceSession(str(path), options, providers=providers)
                offsets_tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
                pair_tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
                found = _Export(folder).meta()
                if found is None:
                    msg = "its meta.json is gone or damaged"
                    raise ValueError(msg)
                meta = found
                break
            except Exception as exc:  # onnxruntime and tokenizers raise their own types for damaged files
                if attempt:
                    msg = f"could not load the ONNX export {folder} ({exc}); delete it and try again"
                    raise ModelLoadError(msg) from exc
                logger.warning("could not load the ONNX export %s (%s); exporting it again", folder, exc)
                with _file_lock(folder.parent / f"{folder.name}.lock"):
                    shutil.rmtree(folder, ignore_errors=True)
        self.path = path
        self.max_length = int(meta["max_length"])
        self.num_special_tokens = int(meta["num_special_tokens"])
        self.truncates_pairs = True  # its tokenizer cuts a pair at max_length (longest_first)
        self.num_labels = int(meta["num_labels"])
        self._input_names = [str(n) for n in meta["input_names"]]
        # One pair per pass for int8, on every device and with any number of workers: int8 then
        # quantises each pair's activations on their own, so a score does not depend on which other
        # pairs share its batch (side by side, as fast as 512-token batches: benchmarks/RESULTS.md).
        self.preferred_batch_size: int | None = 1 if quantize else None
        # Small batches keep a pass's matrices in cache: on CPU, one per core side by side were fastest;
        # one session on all cores ran float32 best near 8192 tokens.
        if self.device == "cuda":
            self.preferred_batch_tokens = 8192
        elif workers > 1:
            self.preferred_batch_tokens = _SIDE_BY_SIDE_BATCH_TOKENS
        else:
            self.preferred_batch_tokens = 2048 if quantize else 8192

        offsets_tokenizer.no_padding()
        offsets_tokenizer.no_truncation()
        self._offsets_tokenizer = offsets_tokenizer
        pair_tokenizer.enable_truncation(self.max_length, strategy="longest_first")
        pair_tokenizer.enable_padding(pad_id=int(meta["pad_token_id"]), pad_token=str(meta["pad_token"]))
        self._pair_tokenizer = pair_tokenizer
        self._session = session
        # At most `workers` forward passes at once: each takes a slot (a core, on CPU).
        self._slots = threading.BoundedSemaphore(workers)
        self._pool: ThreadPoolExecutor | None = None
        self._pool_pid = os.getpid()
        self._pool_lock = threading.Lock()

    def token_offsets(self, texts: Sequence[str]) -> list[list[tuple[int, int]]] | None:
        """Character spans of each text's tokens (no special tokens)."""
        encodings = self._offsets_tokenizer.encode_batch(list(texts), add_special_tokens=False)
        return [list(e.offsets) for e in encodings]

    def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        """Raw relevance logits for one batch of pairs (the positive class minus the negative for 2 labels)."""
        encodings = self._pair_tokenizer.encode_batch([(q, d) for q, d in pairs])
        columns = {
            "input_ids": [e.ids for e in encodings],
            "attention_mask": [e.attention_mask for e in encodings],
            "token_type_ids": [e.type_ids for e in encodings],
        }
        feeds = {name: np.asarray(columns[name], dtype=np.int64) for name in self._input_names}
        with self._slots:
            try:
                logits = np.asarray(self._session.run(None, feeds)[0], dtype=np.float64)
            except Exception as exc:  # onnxruntime raises its own types
                msg = f"onnxruntime failed on a batch of {len(pairs)} pairs: {exc}"
                raise ScoringError(msg) from exc
        if self.num_labels == 2:
            return [float(row[1] - row[0]) for row in logits]
        return [float(x) for x in logits.reshape(-1)]

    def score_batches(self, batches: Sequence[Sequence[tuple[str, str]]]) -> Iterator[list[float]]:
        """Scores of several batches, in order, running up to :attr:`workers` of them at once."""
        if self.workers == 1 or len(batches) < 2:
            for batch in batches:
                yield self.score_pairs(batch)
            return
        if self._pool_pid != os.getpid():
            # A forked child (gunicorn --preload, multiprocessing's fork) inherits the pool without
            # its threads, and it would wait on them forever: it starts a pool of its own.
            self._pool_lock = threading.Lock()
            self._pool = None
            self._pool_pid = os.getpid()
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="xrerank-onnx")
        # Executor.map cancels the batches not yet started if the caller stops early.
        yield from self._pool.map(self.score_pairs, batches)
