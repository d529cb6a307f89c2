"""The scorer protocol every backend implements."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

__all__ = ["Scorer"]


@runtime_checkable
class Scorer(Protocol):
    """What the engine needs from a backend.

    Attributes:
        name: A label for logs and results (the model id or folder).
        max_length: The most tokens the model accepts for one (query, document) pair,
            special tokens included.
        num_special_tokens: Tokens the model adds around a pair (``[CLS] q [SEP] d [SEP]``: 3).

    An optional attribute ``truncates_pairs = True`` says that :meth:`score_pairs` cuts a pair
    longer than ``max_length`` itself (the tokenizer's ``longest_first``, as sentence-transformers
    does). With ``long_documents="truncate"`` the engine then hands it a little more text than
    fits and lets it cut at the exact token, so scores match ``CrossEncoder.predict``.

    A scorer that can run several forward passes at once (the ONNX backend on CPU: one
    single-threaded session per core) also has ``workers`` (an int above 1) and
    ``score_batches(batches)``, returning an iterator of each batch's scores in order; the
    engine then hands it all of a job's batches together (in rounds of ``workers`` under
    ``budget_ms``). Its ``score_pairs`` must then be safe to call from several threads.
    """

    name: str
    max_length: int
    num_special_tokens: int

    def token_offsets(self, texts: Sequence[str]) -> list[list[tuple[int, int]]] | None:
        """Return, for each text, the character span of each of its tokens.

        Special tokens are not included. ``None`` means the scorer cannot tokenize
        (a remote service); the engine then sends texts whole.
        """
        ...

    def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        """Return the model's raw relevance logit for each (query, text) pair, in order.

        The engine calls it with one batch at a time and never with an empty list.
        """
        ...
