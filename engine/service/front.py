"""The engine's one HTTP endpoint: `/control/...` goes to the control API, the
rest to the serving app.

A control call may wait for a pipeline job (a training, say), so it runs on a
worker thread, never on the event loop that answers predictions. Until the
project has a champion (a daemon started on a fresh project) the model routes
answer 503; the engine puts a serving app in place when a champion appears.
`/control/events` is a server-sent event stream of the engine's events.

Like the serving app it speaks RSGI (granian, `mldeck serve` and the daemon)
and ASGI 3 (uvicorn in the tests); both adapters share the handlers.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson

from engine.core.events import Event, EventHub, event_to_dict
from engine.service.control import ControlApi, ControlError
from engine.serving.access import Access
from engine.serving.bodies import BodyTooLarge, read_asgi_body, read_rsgi_body

if TYPE_CHECKING:
    from engine.serving.app import Receive, Scope, Send, ServingApp

MAX_CONTROL_BODY = 1024 * 1024
TOO_LARGE = "control request body too large"
NO_CHAMPION = (
    503,
    {"error": "no champion is served yet: the engine serves one once a model is promoted"},
)
JSON_HEADERS = [("content-type", "application/json")]
SSE_HEADERS = [("content-type", "text/event-stream"), ("cache-control", "no-cache")]
KEEPALIVE_S = 15.0
"""An idle event stream sends a comment this often, which also finds closed connections."""


class EngineFront:
    def __init__(self, control: ControlApi, hub: EventHub) -> None:
        self.control = control
        self.hub = hub
        self.serving: ServingApp | None = None
        """The champion's serving app; None until the project has a champion."""
        self.access = Access()
        """Host, Origin and token checks for every request (see `engine.serving.access`)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI 3."""
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        path = scope.get("path", "")
        headers = {
            bytes(k).decode("latin-1"): bytes(v).decode("latin-1")
            for k, v in scope.get("headers", [])
        }
        refusal = self.access.refusal(scope["method"], path, headers.get)
        if refusal is not None:
            await _respond(send, refusal[0], {"error": refusal[1]})
            return
        if not path.startswith("/control/"):
            serving = self.serving
            if serving is None:
                await _respond(send, *NO_CHAMPION)
            else:
                await serving(scope, receive, send)
            return
        authorization = headers.get("authorization")
        if path == "/control/events":
            await self._events_asgi(authorization, send)
            return
        try:
            body = await read_asgi_body(receive, MAX_CONTROL_BODY)
        except BodyTooLarge:
            await _respond(send, 413, {"error": TOO_LARGE})
            return
        if body is None:
            return  # the client went away
        query = bytes(scope.get("query_string", b"")).decode("latin-1")
        await _respond(
            send, *await self._control(scope["method"], path, query, authorization, body)
        )

    async def __rsgi__(self, scope: Any, protocol: Any) -> None:
        """RSGI (granian)."""
        if scope.proto != "http":
            return
        path = scope.path
        refusal = self.access.refusal(scope.method, path, scope.headers.get)
        if refusal is not None:
            protocol.response_bytes(refusal[0], JSON_HEADERS, orjson.dumps({"error": refusal[1]}))
            return
        if not path.startswith("/control/"):
            serving = self.serving
            if serving is None:
                status, answer = NO_CHAMPION
                protocol.response_bytes(status, JSON_HEADERS, orjson.dumps(answer))
            else:
                await serving.__rsgi__(scope, protocol)
            return
        authorization = scope.headers.get("authorization")
        if path == "/control/events":
            await self._events_rsgi(authorization, protocol)
            return
        try:
            body = await read_rsgi_body(protocol, MAX_CONTROL_BODY)
        except BodyTooLarge:
            protocol.response_bytes(413, JSON_HEADERS, orjson.dumps({"error": TOO_LARGE}))
            return
        status, answer = await self._control(
            scope.method, path, scope.query_string, authorization, body
        )
        protocol.response_bytes(status, JSON_HEADERS, orjson.dumps(answer, default=str))

    async def _control(
        self, method: str, path: str, query: str, authorization: str | None, body: bytes
    ) -> tuple[int, Any]:
        try:
            return await asyncio.to_thread(
                self.control.handle, method, path, query, authorization, body
            )
        except Exception as exc:  # a bug: answer 500, keep serving
            return 500, {"error": f"internal error: {type(exc).__name__}: {exc}"}

    async def _events_asgi(self, authorization: str | None, send: Send) -> None:
        try:
            self.control.authorize(authorization)
        except ControlError as exc:
            await _respond(send, exc.status, {"error": exc.msg, "title": exc.title})
            return
        start = {
            "type": "http.response.start",
            "status": 200,
            "headers": [(k.encode(), v.encode()) for k, v in SSE_HEADERS],
        }

        async def write(chunk: bytes) -> None:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})

        try:
            await send(start)
            await self._stream_events(write)
            with contextlib.suppress(Exception):
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        except Exception:  # the client went away
            pass

    async def _events_rsgi(self, authorization: str | None, protocol: Any) -> None:
        try:
            self.control.authorize(authorization)
        except ControlError as exc:
            body = orjson.dumps({"error": exc.msg, "title": exc.title})
            protocol.response_bytes(exc.status, JSON_HEADERS, body)
            return
        transport = protocol.response_stream(200, SSE_HEADERS)
        with contextlib.suppress(Exception):  # the client went away
            await self._stream_events(transport.send_bytes)

    async def _stream_events(self, write: Callable[[bytes], Awaitable[None]]) -> None:
        """Write the hub's events until it closes, with a keep-alive comment when quiet."""
        loop = asyncio.get_running_loop()
        wake = asyncio.Event()

        def notify() -> None:
            loop.call_soon_threadsafe(wake.set)

        subscriber = self.hub.subscribe(notify=notify)
        try:
            await write(b": events\n\n")
            while True:
                item = await _next_event(subscriber, wake)
                if item is None:
                    break
                await write(b": keep-alive\n\n" if isinstance(item, str) else _sse(item))
        finally:
            self.hub.unsubscribe(subscriber)


async def _next_event(
    subscriber: queue.Queue[Event | None], wake: asyncio.Event
) -> Event | None | str:
    """The next event, None when the hub closed, or "keepalive" after a quiet spell."""
    while True:
        try:
            return subscriber.get_nowait()
        except queue.Empty:
            pass
        wake.clear()
        if not subscriber.empty():
            continue
        try:
            await asyncio.wait_for(wake.wait(), KEEPALIVE_S)
        except TimeoutError:
            return "keepalive"


def _sse(event: Event) -> bytes:
    return b"data: " + orjson.dumps(event_to_dict(event)) + b"\n\n"


async def _respond(send: Send, status: int, answer: Any) -> None:
    body = orjson.dumps(answer, default=str)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
