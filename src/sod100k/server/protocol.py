"""uvicorn's h11 protocol with a header timeout and a cap on open connections.

uvicorn times out idle keep-alive connections, but a client that sends half a request
line or header block, slowly or never, holds its connection forever; 500 of them hold
500. Here every connection must deliver a complete request head within
``header_timeout`` seconds of connecting (or of its previous response), and connections
beyond ``max_connections`` are answered at once with a JSON 503 and closed. Body
timeouts are handled by :class:`~sod100k.server.limits.BodyLimitMiddleware`.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import h11
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState


def _raw_response(status: int, reason: str, message: str, extra: str = "") -> bytes:
    body = json.dumps({"error": message}).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n{extra}\r\n"
    )
    return head.encode() + body


class GuardedH11Protocol(H11Protocol):
    """:class:`H11Protocol` plus ``header_timeout`` and ``max_connections``.

    Both are read from the class (set them with :func:`guarded_protocol`), since uvicorn
    builds one protocol instance per connection from a class.
    """

    header_timeout: float = 10.0
    max_connections: int = 256
    retry_after: int = 1

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            transport.write(
                _raw_response(
                    503,
                    "Service Unavailable",
                    f"too many connections (limit {self.max_connections})",
                    f"retry-after: {self.retry_after}\r\n",
                )
            )
            transport.close()
            return
        self._arm_head_timer()

    def _arm_head_timer(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.header_timeout, self._head_timed_out)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        if self._waiting_for_head():
            if self.conn.our_state is h11.IDLE:
                self.transport.write(
                    _raw_response(
                        408,
                        "Request Timeout",
                        f"request head not received within {self.header_timeout:g} s",
                    )
                )
            self.transport.close()

    def _waiting_for_head(self) -> bool:
        # A request is under way once h11 has produced its Request event (cycle set for it).
        return self.cycle is None or self.cycle.response_complete

    def data_received(self, data: bytes) -> None:
        if self._waiting_for_head():
            self._arm_head_timer()
        super().data_received(data)
        if not self._waiting_for_head():
            self._disarm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        super().connection_lost(exc)


def guarded_protocol(
    header_timeout: float, max_connections: int, retry_after: int = 1
) -> type[GuardedH11Protocol]:
    """A :class:`GuardedH11Protocol` subclass with these limits for ``uvicorn.Config``."""
    return type(
        "GuardedH11Protocol",
        (GuardedH11Protocol,),
        {
            "header_timeout": header_timeout,
            "max_connections": max_connections,
            "retry_after": retry_after,
        },
    )
