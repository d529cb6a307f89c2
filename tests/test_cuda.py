"""The torch backend on a CUDA device: float16 by default, large batches, the same rankings as on CPU.

The CUDA tests skip on a machine without a GPU (CI); ``benchmarks/gpu_run.sh`` runs them on one.
The batching test at the end runs everywhere: the CPU path must keep its batches of 32.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from xrerank_core import Reranker

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

SHIPPED = "xrerank/minilm-scifact"
QUERY = "Vitamin D supplementation lowers the risk of bone fractures in older adults."
DOCS = [
    "A randomised trial of vitamin D and calcium in 36,282 postmenopausal women found no reduction in hip fracture.",
    "Vitamin D deficiency is common in elderly people and is associated with falls and fractures.",
    "The crystal structure of a bacterial ion channel reveals a selectivity filter.",
    "Annual high-dose oral vitamin D increased falls and fractures among older women in a controlled trial.",
    "Deep learning models for image segmentation outperform classical methods on medical scans.",
    "Bone mineral density improved with combined calcium and vitamin D supplementation over three years.",
    "Zinc finger proteins regulate transcription in yeast.",
    "Fracture risk in the elderly depends on bone density, falls and frailty; supplements had mixed effects.",
] * 4


def _forward_batches(rr: Reranker, call: Any) -> list[int]:
    """Run ``call`` and return the batch size of every forward pass of the torch model."""
    sizes: list[int] = []

    def count(_module: Any, args: Any, kwargs: Any) -> None:
        features = args[0] if args else kwargs
        sizes.append(int(features["input_ids"].shape[0]))

    handle = rr.scorer._model[0].register_forward_pre_hook(count, with_kwargs=True)  # type: ignore[attr-defined]
    try:
        call()
    finally:
        handle.remove()
    return sizes


@needs_cuda
def test_cuda_defaults_to_float16_and_agrees_with_cpu_float32() -> None:
    gpu = Reranker(SHIPPED, backend="torch", device="cuda", long_documents="truncate")
    cpu = Reranker(SHIPPED, backend="torch", device="cpu", long_documents="truncate")
    weights = next(gpu.scorer._model.model.parameters())  # type: ignore[attr-defined]
    assert weights.dtype == torch.float16 and weights.device.type == "cuda"
    on_gpu, on_cpu = gpu.score(QUERY, DOCS), cpu.score(QUERY, DOCS)
    assert max(abs(a - b) for a, b in zip(on_gpu, on_cpu, strict=True)) < 0.05
    # Every pair of documents that float32 separates by more than 0.1 keeps its order in float16.
    for i, j in ((i, j) for i in range(len(DOCS)) for j in range(len(DOCS)) if on_cpu[i] > on_cpu[j] + 0.1):
        assert on_gpu[i] > on_gpu[j], (i, j)


@needs_cuda
def test_cuda_fills_the_device_with_large_batches() -> None:
    rr = Reranker(SHIPPED, backend="torch", device="cuda", cache_size=0)
    texts = [f"{d} (variant {i})" for i, d in enumerate(DOCS * 4)]  # 128 distinct documents
    assert _forward_batches(rr, lambda: rr.rerank(QUERY, texts)) == [128]
    # An explicit batch_size still wins.
    small = Reranker(SHIPPED, backend="torch", device="cuda", batch_size=16, cache_size=0)
    assert _forward_batches(small, lambda: small.rerank(QUERY, texts)) == [16] * 8


@needs_cuda
def test_cuda_long_documents_bfloat16_and_budget() -> None:
    long_doc = " ".join(DOCS) * 3  # several windows
    texts = [long_doc, *DOCS[:8]]
    maxp_gpu = Reranker(SHIPPED, device="cuda", long_documents="maxp").score(QUERY, texts)
    maxp_cpu = Reranker(SHIPPED, device="cpu", backend="torch", long_documents="maxp").score(QUERY, texts)
    assert max(abs(a - b) for a, b in zip(maxp_gpu, maxp_cpu, strict=True)) < 0.05
    bf16 = Reranker(SHIPPED, device="cuda", dtype="bfloat16")
    assert next(bf16.scorer._model.model.parameters()).dtype == torch.bfloat16  # type: ignore[attr-defined]
    assert max(abs(a - b) for a, b in zip(bf16.score(QUERY, texts), maxp_cpu, strict=True)) < 0.3
    ranked = Reranker(SHIPPED, device="cuda").rerank(QUERY, DOCS, budget_ms=10_000)
    assert all(r.scored for r in ranked) and len(ranked) == len(DOCS)


def test_cpu_keeps_batches_of_32(tiny_bert: str) -> None:
    rr = Reranker(tiny_bert, backend="torch", device="cpu", cache_size=0)
    texts = [f"document number {i} about topic {i % 7}" for i in range(70)]
    assert _forward_batches(rr, lambda: rr.rerank("topic 3", texts)) == [32, 32, 6]
