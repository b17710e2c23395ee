"""Request limits that must act while the body streams in, and admission of big images.

:class:`BodyLimitMiddleware` is a plain ASGI middleware: it refuses a declared
``Content-Length`` over the limit before reading anything, counts the body as it
arrives (chunked uploads included, which declare no length) and answers 413 as soon as
the count passes the limit, and gives the whole body a deadline (408), so a client
trickling one byte at a time cannot hold a connection forever. Nothing past the limit
is ever handed to the multipart parser or written to temporary storage.

:class:`Admission` bounds how many big images are processed at once, queueing the rest.
"""

from __future__ import annotations

import asyncio
import collections
import json
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Room for the multipart envelope (boundaries, part headers) around the file itself.
MULTIPART_OVERHEAD = 64 * 1024


async def send_error(
    send: Send, status: int, message: str, headers: dict[str, str] | None = None
) -> None:
    """Send a complete ``{"error": message}`` JSON response that closes the connection."""
    body = json.dumps({"error": message}).encode()
    raw = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body, "more_body": False})


class BodyLimitMiddleware:
    """Cap every request body at the upload limit and ``body_timeout`` seconds.

    Args:
        app: The ASGI application to wrap.
        max_upload_bytes: Largest upload accepted, in bytes; bodies larger than this
            plus :data:`MULTIPART_OVERHEAD` get 413.
        body_timeout: Seconds allowed from the first ``receive`` to the end of the body;
            slower bodies get 408.
    """

    def __init__(self, app: ASGIApp, max_upload_bytes: int, body_timeout: float) -> None:
        self.app = app
        self.max_upload_bytes = max_upload_bytes
        self.body_timeout = body_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_upload_bytes + MULTIPART_OVERHEAD
        too_large = f"upload too large (limit {self.max_upload_bytes} bytes)"
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length", b"").decode("latin-1")
        if declared.isdigit() and int(declared) > limit:
            await send_error(
                send,
                413,
                f"upload too large ({declared} bytes, limit {self.max_upload_bytes} bytes)",
            )
            return
        received = 0
        deadline: float | None = None
        started = False
        refusal: tuple[int, str] | None = None

        async def counted_receive() -> Message:
            # A refused body reads as a client disconnect to the app, whose own answer is
            # then dropped in favour of the refusal.
            nonlocal received, deadline, refusal
            if refusal is not None:
                return {"type": "http.disconnect"}
            if deadline is None:
                deadline = time.monotonic() + self.body_timeout
            remaining = deadline - time.monotonic()
            try:
                message = await asyncio.wait_for(receive(), timeout=max(remaining, 0.001))
            except TimeoutError:
                refusal = (408, f"request body not received within {self.body_timeout:g} s")
                return {"type": "http.disconnect"}
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    refusal = (413, too_large)
                    return {"type": "http.disconnect"}
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if refusal is not None and not started:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except Exception:
            if refusal is None or started:
                raise
        if refusal is not None and not started:
            await send_error(send, *refusal)


class AdmissionRefused(Exception):
    """No slot for a big image: the queue is full, or the wait ran out (503 + Retry-After)."""


class Admission:
    """A fixed number of slots for big images, and a bounded queue of requests waiting for one.

    A request that finds every slot taken waits, in arrival order, for up to
    ``queue_timeout`` seconds; when ``queue_size`` requests already wait, or the wait runs
    out, it is refused (503 with ``Retry-After``). Memory stays bounded: at most ``slots``
    big images are decoded at once, and a waiting request holds only its upload (at most
    the upload limit). ``queue_size=0`` refuses at once whenever the slots are busy.

    Slots are released from worker threads (the callback of the job's future), so the
    state is guarded by a lock and waiters are woken on their own event loop.

    Args:
        slots: Big images processed at the same time.
        queue_size: Requests that may wait for a slot.
        queue_timeout: Seconds a request waits for a slot at most.
        retry_after: Seconds suggested to refused clients.
    """

    def __init__(
        self, slots: int, queue_size: int = 0, queue_timeout: float = 60.0, retry_after: int = 5
    ) -> None:
        self.slots = max(1, slots)
        self.queue_size = max(0, queue_size)
        self.queue_timeout = queue_timeout
        self.retry_after = retry_after
        self._free = self.slots
        self._waiters: collections.deque[tuple[asyncio.AbstractEventLoop, asyncio.Future]] = (
            collections.deque()
        )
        self._lock = threading.Lock()

    @property
    def waiting(self) -> int:
        """Requests waiting for a slot now."""
        return len(self._waiters)

    def try_acquire(self) -> bool:
        """Take a slot if one is free and nobody waits for it, without waiting."""
        with self._lock:
            if self._free and not self._waiters:
                self._free -= 1
                return True
            return False

    async def acquire(self) -> None:
        """Take a slot, waiting in the queue if need be.

        Raises:
            AdmissionRefused: the queue is full, or no slot came within ``queue_timeout``.
        """
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._free and not self._waiters:
                self._free -= 1
                return
            if len(self._waiters) >= self.queue_size:
                raise AdmissionRefused(f"{self.queue_size} already waiting")
            entry = (loop, loop.create_future())
            self._waiters.append(entry)
        try:
            await asyncio.wait_for(asyncio.shield(entry[1]), self.queue_timeout)
        except BaseException as e:  # timed out, or the request was cancelled
            with self._lock:
                queued = entry in self._waiters
                if queued:
                    self._waiters.remove(entry)
            if not queued:  # the slot was handed over just now: give it back
                self.release()
            if isinstance(e, TimeoutError):
                raise AdmissionRefused(f"no slot within {self.queue_timeout:g} s") from None
            raise

    def release(self) -> None:
        """Give a slot back: to the longest waiter if any, else to the free pool."""
        with self._lock:
            while self._waiters:
                loop, future = self._waiters.popleft()
                if not loop.is_closed():  # else its server is gone: try the next one
                    loop.call_soon_threadsafe(_grant, future)
                    return
            self._free += 1


def _grant(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)
