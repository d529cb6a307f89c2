"""LlamaIndex adapter for xrerank: a ``BaseNodePostprocessor`` backed by a cross-encoder."""

from __future__ import annotations

from llamaindex_xrerank._postprocessor import XRerankPostprocessor

__all__ = ["XRerankPostprocessor"]
