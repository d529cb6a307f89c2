"""The two-stage chatbot demo: Chroma retrieves 100 SciFact abstracts, xrerank keeps 10.

Two pipelines, one per framework, with the same store and the same reranker:

* :mod:`xrerank_demo.langchain_app`: ``ContextualCompressionRetriever`` + ``XRerankCompressor``
  in an LCEL chain.
* :mod:`xrerank_demo.llamaindex_app`: ``VectorStoreIndex`` over ``ChromaVectorStore`` with
  ``XRerankPostprocessor`` in a query engine.

Run ``xrerank demo --framework langchain|llamaindex [--question ...]`` or the scripts in
``examples/``.
"""

from __future__ import annotations

from xrerank_demo._common import DEFAULT_MODEL, SAMPLE_QUESTIONS, Answer, Source

__all__ = ["DEFAULT_MODEL", "SAMPLE_QUESTIONS", "Answer", "Source"]
