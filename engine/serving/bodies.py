"""Reading a request body under a size limit, for both server interfaces.

A body over the limit is refused as soon as it passes it, not after it is all in
memory. The declared content-length is checked by the caller before reading.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, TypeVar

T = TypeVar("T")


class BodyTooLarge(Exception):
    """The body passed the limit while it was being read."""


class BodyTooSlow(Exception):
    """The body did not arrive within its time."""


class BodyWatch:
    """Body reads with a time limit, all watched by one timer.

    Every second the reads past their time are cancelled (their `read` raises
    BodyTooSlow). Per request this is a dict entry, not a timer: a timer per
    request (`asyncio.timeout`) cost several microseconds on the 1-row path.
    """

    SWEEP_S = 1.0

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._reading: dict[asyncio.Task[Any], float] = {}
        self._expired: set[asyncio.Task[Any]] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_loop: asyncio.AbstractEventLoop | None = None

    async def read(self, body: Awaitable[T]) -> T:
        """`body`'s result, or BodyTooSlow once it took `seconds` (plus up to a sweep)."""
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        self._reading[task] = loop.time() + self.seconds
        if self._timer is None or self._timer_loop is not loop:
            self._timer_loop = loop
            self._timer = loop.call_later(self.SWEEP_S, self._sweep, loop)
        try:
            return await body
        except asyncio.CancelledError:
            if task in self._expired:
                self._expired.discard(task)
                task.uncancel()
                raise BodyTooSlow from None
            raise
        finally:
            self._reading.pop(task, None)

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        now = loop.time()
        for task, deadline in list(self._reading.items()):
            if deadline <= now:
                del self._reading[task]
                self._expired.add(task)
                task.cancel()
        self._timer = loop.call_later(self.SWEEP_S, self._sweep, loop) if self._reading else None


async def read_asgi_body(
    receive: Callable[[], Awaitable[MutableMapping[str, Any]]], limit: int
) -> bytes | None:
    """An ASGI request's body; None when the client went away first."""
    chunks: list[bytes] = []
    size = 0
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
        more = message.get("more_body", False)
    return b"".join(chunks)


async def read_rsgi_body(protocol: Any, limit: int) -> bytes:
    """An RSGI request's body, chunk by chunk (a chunked body has no declared length)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in protocol:
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)
