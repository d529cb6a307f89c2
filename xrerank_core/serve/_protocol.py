"""uvicorn's HTTP protocol with a deadline for a request's head (imported only with the ``serve`` extra).

uvicorn closes a keep-alive connection that stays idle after an answer, but it waits forever for
the first request on a new connection, and for a request head sent a byte at a time: each such
client holds a socket (a file descriptor) for as long as it likes. The protocols here close a
connection that has sent no complete request head for ``read_timeout_s`` while no request of it
is being answered. A request's body has its own deadline in the app (408).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["http_protocol"]


class _HeadDeadline:
    """Closes the connection when a whole period passes with no new request head and none running.

    Works on both uvicorn protocols through what they share: ``transport``, ``loop`` and
    ``cycle`` (the request being answered, replaced when a new request's head is complete).
    """

    read_timeout_s: float = 30.0

    def _arm_head_deadline(self) -> None:
        loop: asyncio.AbstractEventLoop = getattr(self, "loop")  # noqa: B009
        self._seen_cycle: object = getattr(self, "cycle", None)
        self._head_timer: asyncio.TimerHandle | None = loop.call_later(self.read_timeout_s, self._check_head)

    def _check_head(self) -> None:
        self._head_timer = None
        transport: asyncio.Transport | None = getattr(self, "transport", None)
        if transport is None or transport.is_closing():
            return
        cycle = getattr(self, "cycle", None)
        answering = cycle is not None and not getattr(cycle, "response_complete", True)
        if answering or cycle is not self._seen_cycle:
            self._arm_head_deadline()  # a request came or is running: look again a period later
            return
        transport.close()

    def _disarm_head_deadline(self) -> None:
        timer = getattr(self, "_head_timer", None)
        if timer is not None:
            timer.cancel()
            self._head_timer = None

    # Placed before a uvicorn protocol in the bases, so these wrap its own connection hooks.
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self._arm_head_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_deadline()
        super().connection_lost(exc)  # type: ignore[misc]


class _GuardedH11(_HeadDeadline, H11Protocol):
    pass


def http_protocol(read_timeout_s: float) -> type[asyncio.Protocol]:
    """The HTTP protocol class uvicorn would choose (httptools if installed, else h11), with the deadline."""
    base: type[Any]
    try:
        import httptools  # noqa: F401
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:
        base = _GuardedH11
    else:

        class _GuardedHttpTools(_HeadDeadline, HttpToolsProtocol):
            pass

        base = _GuardedHttpTools
    return type(base.__name__, (base,), {"read_timeout_s": float(read_timeout_s)})
