"""The engine's one HTTP endpoint: `/control/...` goes to the control API, the
rest to the serving app.

A control call may wait for a pipeline job (a training, say), so it runs on a
worker thread, never on the event loop that answers predictions. Until the
project has a champion (a daemon started on a fresh project) the model routes
answer 503; the engine puts a serving app in place when a champion appears.
`/control/events` is a server-sent event stream of the engine's events.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
from typing import TYPE_CHECKING, Any

import orjson

from engine.events import Event, EventHub, event_to_dict
from engine.serving.control import ControlApi, ControlError

if TYPE_CHECKING:
    from engine.serving.app import Receive, Scope, Send, ServingApp

MAX_CONTROL_BODY = 1024 * 1024
KEEPALIVE_S = 15.0
"""An idle event stream sends a comment this often, which also finds closed connections."""


class EngineFront:
    def __init__(self, control: ControlApi, hub: EventHub) -> None:
        self.control = control
        self.hub = hub
        self.serving: ServingApp | None = None
        """The champion's serving app; None until the project has a champion."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
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
        if path.startswith("/control/"):
            if path == "/control/events":
                await self._events(scope, send)
            else:
                await self._control(scope, receive, send)
            return
        serving = self.serving
        if serving is None:
            await _respond(
                send,
                503,
                {
                    "error": "no champion is served yet: the engine serves one once a model is promoted"
                },
            )
            return
        await serving(scope, receive, send)

    async def _control(self, scope: Scope, receive: Receive, send: Send) -> None:
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_CONTROL_BODY:
                await _respond(send, 413, {"error": "control request body too large"})
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        headers = dict(scope.get("headers", []))
        query = bytes(scope.get("query_string", b"")).decode("latin-1")
        try:
            status, answer = await asyncio.to_thread(
                self.control.handle,
                scope["method"],
                scope["path"],
                query,
                headers,
                b"".join(chunks),
            )
        except Exception as exc:  # a bug: answer 500, keep serving
            status, answer = 500, {"error": f"internal error: {type(exc).__name__}: {exc}"}
        await _respond(send, status, answer)

    async def _events(self, scope: Scope, send: Send) -> None:
        try:
            self.control.authorize(dict(scope.get("headers", [])))
        except ControlError as exc:
            await _respond(send, exc.status, {"error": exc.msg, "title": exc.title})
            return
        loop = asyncio.get_running_loop()
        wake = asyncio.Event()

        def notify() -> None:
            loop.call_soon_threadsafe(wake.set)

        subscriber = self.hub.subscribe(notify=notify)
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-type", b"text/event-stream"),
                        (b"cache-control", b"no-cache"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": b": events\n\n", "more_body": True})
            while True:
                item = await _next_event(subscriber, wake)
                if item is None:
                    break
                body = b": keep-alive\n\n" if isinstance(item, str) else _sse(item)
                await send({"type": "http.response.body", "body": body, "more_body": True})
            with contextlib.suppress(Exception):
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        except Exception:  # the client went away
            pass
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
