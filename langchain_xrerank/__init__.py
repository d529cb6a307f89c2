"""LangChain adapter for xrerank: a ``BaseDocumentCompressor`` backed by a cross-encoder."""

from __future__ import annotations

from langchain_xrerank._compressor import XRerankCompressor

__all__ = ["XRerankCompressor"]
