"""Reading a request body under a size limit, for both server interfaces.

A body over the limit is refused as soon as it passes it, not after it is all in
memory. The declared content-length is checked by the caller before reading.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any


class BodyTooLarge(Exception):
    """The body passed the limit while it was being read."""


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
