"""The server's limits and options (no optional dependency needed to build them)."""

from __future__ import annotations

from dataclasses import dataclass

from xrerank_core._exceptions import ConfigError

__all__ = ["ServerSettings"]


@dataclass(frozen=True)
class ServerSettings:
    """Limits and options of the rerank service.

    Attributes:
        model_name: The name reported in answers and ``/health``.
        max_documents: Most documents (or texts) in one request; more is answered 413.
        max_body_bytes: Largest request body; larger is answered 413.
        timeout_s: Seconds a request may take, waiting included: a request still waiting
            for a free scorer then is answered 503, one still being scored 504.
        max_concurrency: Scoring jobs run at once (each in its own worker thread); the
            requests that arrive meanwhile wait, in arrival order.
        max_batch_requests: Most waiting requests one job scores together (their pairs share
            length-sorted forward passes); 1 scores each request on its own.
        read_timeout_s: Seconds a client has to send a request: its body, counted from the
            request's start (slower: 408, and the connection is closed), and a request head on
            an open connection (none complete in time, while nothing is being answered: the
            connection is closed without an answer).
        api_key: When set, every request except ``/health`` must carry
            ``Authorization: Bearer <api_key>``.
    """

    model_name: str = "xrerank"
    max_documents: int = 1000
    max_body_bytes: int = 10 * 1024 * 1024
    timeout_s: float = 30.0
    max_concurrency: int = 1
    max_batch_requests: int = 16
    read_timeout_s: float = 30.0
    api_key: str | None = None

    def __post_init__(self) -> None:
        """Check every limit; raise :class:`~xrerank_core.ConfigError` naming the bad one."""
        for name in ("max_documents", "max_body_bytes", "max_concurrency", "max_batch_requests"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                msg = f"{name} must be a positive integer, got {value!r}"
                raise ConfigError(msg)
        for name in ("timeout_s", "read_timeout_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0 or value == float("inf"):
                msg = f"{name} must be a positive number of seconds, got {value!r}"
                raise ConfigError(msg)
        if self.api_key is not None and (not isinstance(self.api_key, str) or not self.api_key.strip()):
            msg = "api_key must be a non-empty string, or None for no key"
            raise ConfigError(msg)
