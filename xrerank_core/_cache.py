"""A bounded, thread-safe LRU of cross-encoder scores, and the throughput meter behind ``budget_ms``."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Sequence

__all__ = ["ScoreCache", "Throughput"]


class ScoreCache:
    """Raw scores of (query, text) pairs, least recently used dropped first.

    Keys are a 128-bit hash of the model's identity, the query and the text, so the cache
    holds no document text. One instance belongs to one :class:`~xrerank_core.Reranker`.

    Attributes:
        size: The most scores kept.
        hits: Lookups answered from the cache.
        misses: Lookups that had to be scored.
    """

    def __init__(self, size: int, model_id: str) -> None:
        self.size = size
        self.hits = 0
        self.misses = 0
        self._model = model_id.encode("utf-8")
        self._data: OrderedDict[bytes, float] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._data)

    def key(self, query: str, text: str) -> bytes:
        """The cache key of one pair.

        Each field is hashed after its length in bytes, so no two different
        (model, query, text) triples read as the same bytes, whatever characters they hold.
        """
        digest = hashlib.blake2b(digest_size=16)
        for field in (self._model, query.encode("utf-8", "surrogatepass"), text.encode("utf-8", "surrogatepass")):
            digest.update(len(field).to_bytes(8, "big"))
            digest.update(field)
        return digest.digest()

    def get_many(self, keys: Sequence[bytes]) -> list[float | None]:
        """The cached score of each key, ``None`` where there is none."""
        out: list[float | None] = []
        with self._lock:
            for k in keys:
                value = self._data.get(k)
                if value is None:
                    self.misses += 1
                else:
                    self.hits += 1
                    self._data.move_to_end(k)
                out.append(value)
        return out

    def put_many(self, items: Sequence[tuple[bytes, float]]) -> None:
        """Store scores, dropping the least recently used beyond :attr:`size`."""
        with self._lock:
            for k, value in items:
                self._data[k] = value
                self._data.move_to_end(k)
            while len(self._data) > self.size:
                self._data.popitem(last=False)

    def clear(self) -> None:
        """Forget every score."""
        with self._lock:
            self._data.clear()


class Throughput:
    """Seconds per padded token of a scorer, measured on every batch it scores (moving average).

    Padded tokens are a batch's size times its longest pair: what a forward pass costs.
    """

    def __init__(self, weight: float = 0.3) -> None:
        self._weight = weight
        self._seconds_per_token: float | None = None
        self._last: float | None = None
        self._lock = threading.Lock()

    @property
    def seconds_per_token(self) -> float | None:
        """The current estimate, ``None`` before the first batch."""
        return self._seconds_per_token

    @property
    def cautious_seconds_per_token(self) -> float | None:
        """The slower of the average and the latest batch: what a deadline should plan with."""
        average, last = self._seconds_per_token, self._last
        if average is None or last is None:
            return average
        return max(average, last)

    def record(self, seconds: float, padded_tokens: int) -> None:
        """Add one batch's measurement."""
        if padded_tokens <= 0 or seconds <= 0:
            return
        rate = seconds / padded_tokens
        with self._lock:
            self._last = rate
            old = self._seconds_per_token
            self._seconds_per_token = rate if old is None else (1 - self._weight) * old + self._weight * rate
