"""Running the app on a socket: granian over RSGI (default) or uvicorn over ASGI,
one worker, in this process.

One process only: it is the one that writes the DuckDB catalog, and the
prediction log and model slot live in it. granian's embedded server takes the
app object itself (no import string, no worker process); `bench/serve.py`
measures both servers.
"""

from __future__ import annotations

import asyncio
import gc
import signal
from collections.abc import Callable
from typing import Any, Literal

ServerKind = Literal["granian", "uvicorn"]
SERVERS: tuple[ServerKind, ...] = ("granian", "uvicorn")


def serve_app(
    app: Any,
    host: str,
    port: int,
    server: ServerKind = "granian",
    on_stop: Callable[[], None] | None = None,
    header_timeout_s: float = 10.0,
) -> None:
    """Serve `app` until SIGINT or SIGTERM; returns after a clean shutdown.

    Args:
        on_stop: called first when a stop signal arrives (granian only), e.g. to
            end long-lived event streams so the server can finish.
        header_timeout_s: a connection that has not sent its request headers by then is
            closed (slow clients); the body's own timeout is the app's.
    """
    # What is loaded by now (models, catalog, imports) lives as long as the server;
    # freezing it spares the collector re-scanning it (about 8% more requests/s
    # measured in-process).
    gc.collect()
    gc.freeze()
    if server == "uvicorn":
        import uvicorn

        uvicorn.run(
            app,
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            timeout_keep_alive=max(1, int(header_timeout_s)),
        )
        return
    asyncio.run(_serve_granian(app, host, port, on_stop, header_timeout_s))


async def _serve_granian(
    app: Any,
    host: str,
    port: int,
    on_stop: Callable[[], None] | None,
    header_timeout_s: float,
) -> None:
    from granian.constants import Interfaces
    from granian.http import HTTP1Settings
    from granian.log import LogLevels
    from granian.server.embed import Server

    server = Server(
        app,
        address=host,
        port=port,
        interface=Interfaces.RSGI,  # the app's RSGI adapter: less per-request overhead
        websockets=False,
        http1_settings=HTTP1Settings(header_read_timeout=int(header_timeout_s * 1000)),
        log_level=LogLevels.error,
        log_access=False,
    )
    loop = asyncio.get_running_loop()

    def stop() -> None:
        if on_stop is not None:
            on_stop()
        server.signal_handler_interrupt()  # type: ignore[no-untyped-call]

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop)
    await server.serve()
