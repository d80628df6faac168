"""Shared fixtures: throwaway projects in tmp dirs, built from sample_data/."""

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
from typing import Any

import pytest
from click.testing import CliRunner, Result

from app.cli import cli
from engine.core.project import Project, init_project, open_project

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "sample_data"
REFERENCE = SAMPLE / "reference" / "loans_reference.csv"

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


@pytest.fixture(autouse=True)
def _quiet_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLDECK_ACTOR", "tester")
    monkeypatch.delenv("MLDECK_PROJECT", raising=False)


@pytest.fixture(scope="session")
def small_reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 3,000 rows of the reference data (header included)."""
    path = tmp_path_factory.mktemp("data") / "loans_small.csv"
    with open(REFERENCE) as src, open(path, "w") as dst:
        for i, line in enumerate(src):
            if i > 3000:
                break
            dst.write(line)
    return path


def append_models(root: Path, models: str = FAST_MODELS) -> None:
    config = root / "mldeck.toml"
    config.write_text(config.read_text() + models)


@pytest.fixture
def make_project(tmp_path: Path) -> Callable[..., Path]:
    """Create a project folder; returns its root."""

    def make(
        name: str = "proj",
        target: str | None = "default",
        id_column: str | None = "loan_id",
        models: str | None = FAST_MODELS,
    ) -> Path:
        root = tmp_path / name
        init_project(root, target=target, id_column=id_column)
        if models:
            append_models(root, models)
        return root

    return make


@pytest.fixture
def open_proj() -> Callable[[Path], Project]:
    opened: list[Project] = []

    def opener(root: Path) -> Project:
        project = open_project(root)
        opened.append(project)
        return project

    yield opener  # type: ignore[misc]
    for project in opened:
        project.close()


def run_cli(args: list[str], cwd: Path | None = None) -> Result:
    """Invoke the CLI in-process (stdout and stderr kept apart)."""
    runner = CliRunner()
    old = os.getcwd()
    if cwd is not None:
        os.chdir(cwd)
    try:
        return runner.invoke(cli, args, catch_exceptions=False)
    finally:
        os.chdir(old)


# Two linear candidates that really differ (v1, v2): serving, swap and shadow tests.
TWO_LINEAR = """
[models.linear]
kind = "linear"

[models.linear2]
kind = "linear"
C = 0.05
"""


def build_trained(root: Path, data: Path, models: str) -> list[int]:
    """init + ingest `data` + train `models` in a new project at `root`; the registered versions."""
    from engine.data.ingest import ingest_file
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
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.started, "uvicorn did not start"
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
    deadline = time.monotonic() + 60
    while True:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/v2/health/ready")
            if conn.getresponse().status == 200:
                return server, port
        except OSError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            out, err = server.communicate(timeout=5)
            pytest.fail(f"server did not start: {out} {err}")
        time.sleep(0.2)


def stop_server(server: subprocess.Popen[str]) -> None:
    if server.poll() is None:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=20)


async def until(pilot: Any, condition: Callable[[], bool], timeout_s: float = 30) -> None:
    """Let a Textual app (its `Pilot`) run until `condition` holds; a bounded wait, not a
    timing check."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not condition():
        assert loop.time() < deadline, "the UI did not get there"
        await pilot.pause(0.1)
