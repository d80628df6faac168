"""Helpers shared by the tests: paths, model configs, project builders, request drivers and
the one bounded wait (`wait_until`). Fixtures live in conftest.py; plain functions live here."""

from __future__ import annotations

import asyncio
import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from click.testing import CliRunner, Result

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "sample_data"
REFERENCE = SAMPLE / "reference" / "loans_reference.csv"

LINEAR = '\n[models.linear]\nkind = "linear"\n'

# Two linear candidates that really differ (v1, v2): serving, swap and shadow tests.
TWO_LINEAR = """
[models.linear]
kind = "linear"

[models.linear2]
kind = "linear"
C = 0.05
"""

# Small, fast candidates: the tests check behaviour, not model quality.
FAST_MODELS = """
[models.linear]
kind = "linear"

[models.forest]
kind = "random_forest"
n_estimators = 15
max_depth = 6

[models.boost]
kind = "gradient_boosting"
n_estimators = 15

[models.mlp]
kind = "mlp"
hidden = [16]
epochs = 3
"""

T = TypeVar("T")


def wait_until(
    check: Callable[[], T], timeout: float = 60.0, what: str = "", interval: float = 0.1
) -> T:
    """Poll `check` until it returns something truthy (returned); fail after `timeout` s.

    The one way the tests wait: on the state an assert needs, bounded, never a fixed sleep.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what or check}")
        time.sleep(interval)


async def until(pilot: Any, condition: Callable[[], bool], timeout_s: float = 30) -> None:
    """Let a Textual app (its `Pilot`) run until `condition` holds; a bounded wait, not a
    timing check."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not condition():
        assert loop.time() < deadline, "the UI did not get there"
        await pilot.pause(0.05)


def slices(source: Path, folder: Path, sizes: list[int]) -> list[Path]:
    """Consecutive row ranges of `source` as CSV files (header each) in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = source.read_text().splitlines(keepends=True)
    header, rows = lines[0], lines[1:]
    out, start = [], 0
    for i, size in enumerate(sizes):
        path = folder / f"part_{i:02d}.csv"
        path.write_text(header + "".join(rows[start : start + size]))
        out.append(path)
        start += size
    return out


def append_models(root: Path, models: str = FAST_MODELS) -> None:
    config = root / "mldeck.toml"
    config.write_text(config.read_text() + models)


def run_cli(args: list[str], cwd: Path | None = None) -> Result:
    """Invoke the CLI in-process (stdout and stderr kept apart)."""
    from app.cli import cli

    runner = CliRunner()
    old = os.getcwd()
    if cwd is not None:
        os.chdir(cwd)
    try:
        return runner.invoke(cli, args, catch_exceptions=False)
    finally:
        os.chdir(old)


def build_trained(root: Path, data: Path, models: str) -> list[int]:
    """init + ingest `data` + train `models` in a new project at `root`; the registered versions.

    Tests take a copy of a trained project from the `trained_project` fixture instead of
    calling this themselves: it trains each (models, data) once per test session and worker.
    """
    from engine.core.project import init_project, open_project
    from engine.pipeline.intake import ingest_file
    from engine.pipeline.training_run import train

    init_project(root, target="default", id_column="loan_id")
    append_models(root, models)
    with open_project(root) as project:
        ingest_file(project, data)
        result = train(project)
    return [o.version for o in result.outcomes if o.version is not None]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve_in_thread(app: Any) -> Iterator[int]:
    """Run an ASGI app behind uvicorn on 127.0.0.1 in a thread; yields its port."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    wait_until(lambda: server.started, 10, "uvicorn to start", interval=0.01)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
    assert not thread.is_alive()


def start_server(root: Path) -> tuple[subprocess.Popen[str], int]:
    """Start `mldeck serve` (a real process) on the project at `root`; once it answers."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "app", "serve", "--port", str(port)],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

    def ready() -> bool:
        if server.poll() is not None:
            out, err = server.communicate(timeout=5)
            raise AssertionError(f"server exited: {out} {err}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/v2/health/ready")
            return conn.getresponse().status == 200
        except OSError:
            return False

    try:
        wait_until(ready, 60, "`mldeck serve` to answer", interval=0.2)
    except AssertionError:
        stop_server(server)
        raise
    return server, port


def stop_server(server: subprocess.Popen[str]) -> None:
    if server.poll() is None:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=20)


def http_request(
    port: int, method: str, path: str, body: bytes | None = None, content_type: str = ""
) -> tuple[int, dict[str, str], bytes]:
    """One real HTTP request to 127.0.0.1:`port`; (status, headers, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        headers = {"content-type": content_type} if content_type else {}
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def metric_value(metrics_text: str, name: str) -> float:
    """The value of an unlabelled sample `name` in a Prometheus text exposition."""
    for line in metrics_text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} is not in /metrics:\n{metrics_text}")
