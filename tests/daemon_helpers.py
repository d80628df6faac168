"""Running real `mldeck daemon` processes on a temp project."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from engine.core.owner import project_token, read_owner
from engine.service.client import RemoteEngine
from tests.helpers import REPO, free_port, wait_until

__all__ = ["Daemon", "cli", "wait_until"]


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`mldeck ARGS` in its own process."""
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO), "MLDECK_ACTOR": "tester"},
        timeout=300,
    )


class Daemon:
    """A `mldeck daemon` process on `root`."""

    def __init__(self, root: Path, *args: str) -> None:
        self.root = root
        self.port = free_port()
        self.log = open(root.parent / f"daemon-{self.port}.log", "w")  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, "-m", "app", "daemon", "--port", str(self.port), *args],
            cwd=root,
            env={**os.environ, "PYTHONPATH": str(REPO), "MLDECK_ACTOR": "tester"},
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def claimed(self, timeout: float = 60.0) -> None:
        """Wait until this process owns the project."""

        def owned() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"the daemon exited: {self.output()}")
            owner = read_owner(self.root / ".mldeck")
            return owner is not None and owner.pid == self.process.pid

        wait_until(owned, timeout, "the daemon to claim the project")

    def ready(self, timeout: float = 60.0) -> RemoteEngine:
        """Wait until its control API answers; its client."""
        self.claimed(timeout)
        engine = self.engine()
        wait_until(lambda: engine.status(), timeout, "the control API")
        return engine

    def engine(self) -> RemoteEngine:
        return RemoteEngine(f"http://127.0.0.1:{self.port}", project_token(self.root / ".mldeck"))

    def idle(self, engine: RemoteEngine, timeout: float = 120.0) -> dict[str, Any]:
        """Wait until the pipeline queue is empty; the status then."""
        status: dict[str, Any] = wait_until(
            lambda: (s := engine.status())["engine"]["queue"] == [] and s, timeout, "idle queue"
        )
        return status

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM; the exit code (fails if it takes longer than `timeout`)."""
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        finally:
            self.log.close()

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(timeout=30)
        self.log.close()

    def output(self) -> str:
        self.log.flush()
        return (self.root.parent / f"daemon-{self.port}.log").read_text()
