"""One engine owns a project: the owner file, and promote / rollback through a
running `mldeck serve` (a real process) with a hot swap under load."""

from __future__ import annotations

import http.client
import json
import os
import signal
import stat
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from engine.core.errors import ProjectError
from engine.core.owner import OWNER_FILE, claim, project_token, read_owner, release
from engine.core.project import open_project
from engine.service.client import RemoteEngine
from storage.audit import verify_chain
from tests.daemon_helpers import cli
from tests.helpers import TWO_LINEAR, free_port, start_server, stop_server, wait_until

# ------------------------------------------------------------------ owner file


def test_token_is_private_and_stable(tmp_path: Path) -> None:
    token = project_token(tmp_path)
    assert len(token) >= 32
    assert stat.S_IMODE((tmp_path / "token").stat().st_mode) == 0o600
    assert project_token(tmp_path) == token


def test_claim_read_release(tmp_path: Path) -> None:
    assert read_owner(tmp_path) is None
    owner = claim(tmp_path, "http://127.0.0.1:9", ("serve",))
    assert read_owner(tmp_path) == owner
    assert owner.pid == os.getpid()
    release(tmp_path)
    assert not (tmp_path / OWNER_FILE).exists()


def test_a_live_owner_is_refused_and_a_dead_one_taken_over(tmp_path: Path) -> None:
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        record = {"pid": sleeper.pid, "url": "http://127.0.0.1:9", "parts": ["serve"]}
        (tmp_path / OWNER_FILE).write_text(json.dumps(record))
        with pytest.raises(ProjectError, match=f"process {sleeper.pid}"):
            claim(tmp_path, "http://127.0.0.1:10", ("serve",))
    finally:
        sleeper.kill()
        sleeper.wait()
    assert read_owner(tmp_path) is None  # stale: its process is gone
    assert claim(tmp_path, "http://127.0.0.1:10", ("serve",)).pid == os.getpid()


# ------------------------------------------------------------------ a served project


def released(root: Path, timeout: float) -> None:
    """Wait until no live engine owns the project (an assertion error if it takes longer)."""
    wait_until(lambda: read_owner(root / ".mldeck") is None, timeout, "the project released")


@pytest.fixture
def served(trained_project: Callable[..., Path]) -> Iterator[tuple[Path, int]]:
    root = trained_project(TWO_LINEAR)
    server, port = start_server(root)
    yield root, port
    stop_server(server)


def invocation(
    port: int, body: bytes, conn: http.client.HTTPConnection | None = None
) -> tuple[int, str]:
    status, version, _ = identified_invocation(port, body, conn)
    return status, version


def identified_invocation(
    port: int, body: bytes, conn: http.client.HTTPConnection | None = None
) -> tuple[int, str, str]:
    """(status, x-model-version, x-request-id) of one /invocations request."""
    conn = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("POST", "/invocations", body=body, headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    response.read()
    version = response.getheader("x-model-version") or ""
    return response.status, version, response.getheader("x-request-id") or ""


@pytest.fixture(scope="module")
def body(small_reference: Path) -> bytes:
    frame = pl.read_csv(small_reference).head(3).drop("default")
    return json.dumps({"dataframe_records": frame.to_dicts()}).encode()


def test_promote_and_rollback_go_through_the_running_server(
    served: tuple[Path, int], body: bytes
) -> None:
    root, port = served
    owner = read_owner(root / ".mldeck")
    assert owner is not None and owner.url == f"http://127.0.0.1:{port}"
    assert invocation(port, body) == (200, "1")

    promoted = cli("promote", "2", "--reason", "smaller C", cwd=root)
    assert promoted.returncode == 0, promoted.stderr
    assert "v1 -> v2" in promoted.stdout
    assert invocation(port, body) == (200, "2")

    # status goes through the server and shows what it serves.
    status = cli("status", "--json", cwd=root)
    assert status.returncode == 0, status.stderr
    info = json.loads(status.stdout)
    assert info["champion"]["version"] == 2
    assert info["serving"] == {
        "url": f"http://127.0.0.1:{port}",
        "version": 2,
        "name": "loans",
        "provider": "CPUExecutionProvider",
    }
    # A second engine is refused with a message naming the one that holds the project.
    second = cli("daemon", "--port", str(free_port()), cwd=root)
    assert second.returncode == 1
    assert "held by `mldeck serve`" in second.stderr and str(owner.pid) in second.stderr
    assert "Traceback" not in second.stderr

    unknown = cli("promote", "9", "--reason", "x", cwd=root)
    assert unknown.returncode == 1 and "no model version 9" in unknown.stderr

    rolled = cli("rollback", "--reason", "v2 misbehaves", "--json", cwd=root)
    assert rolled.returncode == 0, rolled.stderr
    assert json.loads(rolled.stdout) == {"champion": 1, "previous": 2}
    assert invocation(port, body) == (200, "1")


def test_control_routes_need_the_token(served: tuple[Path, int]) -> None:
    _, port = served
    for token in ("", "Bearer wrong"):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        headers = {"Content-Type": "application/json", "Authorization": token}
        conn.request("POST", "/control/promote", body=b'{"version": 2}', headers=headers)
        response = conn.getresponse()
        assert response.status == 401
        assert "token" in json.loads(response.read())["error"]


def test_hot_swap_under_load_fails_no_request(served: tuple[Path, int], body: bytes) -> None:
    root, port = served
    results: list[tuple[int, str, str]] = []
    promoted_at: list[int] = []
    stop = threading.Event()

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        while not stop.is_set():
            try:
                results.append(identified_invocation(port, body, conn))
            except OSError as exc:  # a failed request: recorded, then the test fails
                results.append((0, repr(exc), ""))
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

    threads = [threading.Thread(target=client) for _ in range(8)]
    for thread in threads:
        thread.start()
    wait_until(lambda: len(results) >= 30, 60, "answers from v1 under load")
    promoted = cli("promote", "2", "--reason", "swap under load", cwd=root)
    promoted_at.append(len(results))
    wait_until(
        lambda: len(results) >= promoted_at[0] + len(threads) + 30, 60, "answers after the swap"
    )
    stop.set()
    for thread in threads:
        thread.join()

    assert promoted.returncode == 0, promoted.stderr
    assert len(results) > 50
    assert all(status == 200 for status, _, _ in results), [r for r in results if r[0] != 200][:3]
    versions = [version for _, version, _ in results]
    assert set(versions) == {"1", "2"}
    # Once the promote command returned, every later answer came from v2 (8 in flight may lag).
    assert set(versions[promoted_at[0] + len(threads) :]) == {"2"}

    # Each logged row carries the version that answered its request (read after a clean stop).
    owner = read_owner(root / ".mldeck")
    assert owner is not None
    os.kill(owner.pid, signal.SIGINT)
    released(root, timeout=20)
    with open_project(root) as project:
        logged = project.catalog.rows(
            "SELECT request_id, model_version, count(*) AS n FROM predictions WHERE NOT shadow"
            " GROUP BY ALL"
        )
    answered = {request_id: int(version) for _, version, request_id in results}
    assert len(logged) == len(answered)  # one version per request, every request logged
    assert {r["request_id"]: r["model_version"] for r in logged} == answered
    assert {r["n"] for r in logged} == {3}


def test_audit_after_remote_promotions(served: tuple[Path, int]) -> None:
    root, _ = served
    assert cli("promote", "2", "--reason", "audited", cwd=root).returncode == 0
    owner = read_owner(root / ".mldeck")
    assert owner is not None
    os.kill(owner.pid, signal.SIGINT)
    released(root, timeout=20)
    assert not (root / ".mldeck" / OWNER_FILE).exists()
    with open_project(root) as project:
        entries: list[dict[str, Any]] = project.catalog.rows(
            "SELECT actor, action, from_version, to_version, reason FROM audit_log ORDER BY entry_id"
        )
        assert verify_chain(project.catalog) is None
    assert entries[-1] == {
        "actor": "tester",
        "action": "promote",
        "from_version": 1,
        "to_version": 2,
        "reason": "audited",
    }


def test_prediction_log_survives_kill_9(served: tuple[Path, int], body: bytes) -> None:
    """Rows older than the flush interval are in the catalog after a SIGKILL."""
    from engine.serving.prediction_log import FLUSH_INTERVAL_S

    root, port = served
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for _ in range(40):
        assert invocation(port, body, conn)[0] == 200
    owner = read_owner(root / ".mldeck")
    assert owner is not None
    # the kill comes once the server's own catalog holds every row: committed, not just queued
    engine = RemoteEngine(owner.url, project_token(root / ".mldeck"))
    wait_until(
        lambda: engine.serving_stats()["total_rows"] == 40 * 3,
        FLUSH_INTERVAL_S * 20,
        "the prediction log to commit the 40 requests",
    )
    os.kill(owner.pid, signal.SIGKILL)
    os.waitpid(owner.pid, 0)  # reap it: a zombie's pid still reads as alive
    released(root, timeout=10)
    with open_project(root) as project:
        logged = project.catalog.row(
            "SELECT count(DISTINCT request_id) AS requests, count(*) AS rows FROM predictions "
            "WHERE NOT shadow"
        )
    assert logged == {"requests": 40, "rows": 40 * 3}
