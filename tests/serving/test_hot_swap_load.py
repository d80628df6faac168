"""Hot swaps under load, counted: a real `mldeck serve`, client threads on both protocols
(MLflow /invocations and OIP infer, keep-alive connections), and 100+ promotions and
rollbacks through the control API (as `mldeck promote` / `mldeck rollback` send them)
while they run.

Every request must succeed, and the three counts must agree: requests sent, requests
counted in /metrics, and requests in the prediction log (rows too); each logged row
carries the version that answered its request (the response's `x-model-version` /
OIP `model_version`, matched by request id).
"""

from __future__ import annotations

import csv
import http.client
import json
import re
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from engine.core.owner import project_token
from engine.core.project import open_project
from engine.service.client import RemoteEngine
from tests.conftest import TWO_LINEAR, build_trained, start_server, stop_server
from tests.daemon_helpers import wait_until

SWAPS = 120
"""Promotions and rollbacks, alternating (v2 promoted, rolled back to v1, ...)."""

INVOCATION_ROWS = 2
"""Rows per /invocations request (OIP requests send 1), so rows and requests differ."""


@dataclass
class Answered:
    """What the clients saw: request id -> (endpoint, version, rows), and failures."""

    versions: dict[str, tuple[str, str, int]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, request_id: str, endpoint: str, version: str, rows: int) -> None:
        with self.lock:
            assert request_id not in self.versions, f"request id {request_id} answered twice"
            self.versions[request_id] = (endpoint, version, rows)

    def fail(self, what: str) -> None:
        with self.lock:
            self.failures.append(what)


def champion_inputs(root: Path) -> list[tuple[str, bool]]:
    """The champion's input names, and whether each is a string, from the unserved project."""
    from engine.records.registry import CHAMPION, alias_version
    from engine.serving.model_slot import load_model

    with open_project(root) as project:
        model = load_model(project, alias_version(project.catalog, CHAMPION) or 0)
    return [(spec.name, spec.is_string) for spec in model.inputs]


def request_bodies(root: Path, data: Path) -> tuple[bytes, bytes]:
    """(/invocations body with INVOCATION_ROWS records, 1-row OIP infer body) from real rows."""
    with open(data) as f:
        records = [row for _, row in zip(range(INVOCATION_ROWS), csv.DictReader(f), strict=False)]
    for record in records:
        record.pop("default")
    invocations = json.dumps({"dataframe_records": records}).encode()
    tensors = [
        {
            "name": name,
            "datatype": "BYTES" if is_string else "FP64",
            "shape": [1],
            "data": [records[0][name] if is_string else float(records[0][name] or "nan")],
        }
        for name, is_string in champion_inputs(root)
    ]
    return invocations, json.dumps({"inputs": tensors}).encode()


def client(
    port: int, endpoint: str, path: str, body: bytes, answered: Answered, stop: threading.Event
) -> None:
    """Send `body` to `path` on one keep-alive connection until `stop`; record each answer."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    rows = INVOCATION_ROWS if endpoint == "invocations" else 1
    headers = {"Content-Type": "application/json"}
    while not stop.is_set():
        try:
            conn.request("POST", path, body=body, headers=headers)
            response = conn.getresponse()
            payload = response.read()
        except OSError as exc:
            answered.fail(f"{endpoint}: {exc!r}")
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            continue
        if response.status != 200:
            answered.fail(f"{endpoint}: {response.status} {payload[:200]!r}")
            continue
        if endpoint == "invocations":
            request_id = response.getheader("x-request-id") or ""
            version = response.getheader("x-model-version") or ""
            assert len(json.loads(payload)["predictions"]) == rows
        else:
            answer = json.loads(payload)
            request_id, version = answer["id"], answer["model_version"]
        answered.add(request_id, endpoint, version, rows)
    conn.close()


def metrics_requests(port: int) -> dict[tuple[str, str], int]:
    """mldeck_requests_total by (endpoint, model_version), and errors under ("errors", status)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    counts: dict[tuple[str, str], int] = {}
    for m in re.finditer(
        r'^mldeck_requests_total\{endpoint="([^"]*)",model_version="([^"]*)"\} (\d+)$', text, re.M
    ):
        counts[(m.group(1), m.group(2))] = int(m.group(3))
    for m in re.finditer(
        r'^mldeck_request_errors_total\{endpoint="([^"]*)",[^}]*status="(\d+)"\} (\d+)$', text, re.M
    ):
        counts[("errors", f"{m.group(1)} {m.group(2)}")] = int(m.group(3))
    return counts


@dataclass
class SwapRun:
    swaps: int
    answered: Answered
    metrics: dict[tuple[str, str], int]
    logged: dict[str, tuple[int, int]]
    """Logged request id -> (model version, rows), read after the server stopped."""
    serving_totals: dict[str, Any]


def run_swaps_under_load(
    root: Path, data: Path, swaps: int = SWAPS, threads_per_protocol: int = 2
) -> SwapRun:
    """Serve `root` (its champion v1, v2 registered), load it from client threads on both
    protocols, promote v2 / roll back `swaps` times through the control API, then stop
    the clients, wait for the log and stop the server."""
    model_name = root.name
    invocations, infer = request_bodies(root, data)
    server, port = start_server(root)
    answered = Answered()
    stop = threading.Event()
    try:
        engine = RemoteEngine(f"http://127.0.0.1:{port}", project_token(root / ".mldeck"))
        routes = [("invocations", "/invocations", invocations)] * threads_per_protocol + [
            ("infer", f"/v2/models/{model_name}/infer", infer)
        ] * threads_per_protocol
        threads = [
            threading.Thread(target=client, args=(port, e, p, b, answered, stop))
            for e, p, b in routes
        ]
        for thread in threads:
            thread.start()
        wait_until(lambda: len(answered.versions) >= 50, 60, "the load started")
        done = 0
        for i in range(swaps):
            if i % 2 == 0:
                answer = engine.promote(2, actor="tester", reason=f"swap {i}", force=True)
                assert answer["champion"] == 2, answer
            else:
                answer = engine.rollback(actor="tester", reason=f"swap {i}")
                assert answer == {"champion": 1, "previous": 2}, answer
            done += 1
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
        sent = len(answered.versions) + len(answered.failures)
        # The log is written off the request path: wait (bounded) until it holds them all.
        totals = wait_until(
            lambda: (t := engine.serving_stats())["total_requests"] >= sent and t,
            60,
            "the prediction log to hold every request",
        )
        metrics = metrics_requests(port)
    finally:
        stop.set()
        stop_server(server)
    with open_project(root) as project:
        rows = project.catalog.rows(
            "SELECT request_id, any_value(model_version) AS version,"
            " count(DISTINCT model_version) AS versions, count(*) AS rows"
            " FROM predictions WHERE NOT shadow GROUP BY request_id"
        )
    assert all(r["versions"] == 1 for r in rows), "a request logged under two versions"
    logged = {r["request_id"]: (int(r["version"]), int(r["rows"])) for r in rows}
    return SwapRun(done, answered, metrics, logged, totals)


def version_changes(answered: Answered) -> int:
    """How often the answering version changed, in the order the answers arrived."""
    versions = [version for _, version, _ in answered.versions.values()]
    return sum(1 for a, b in zip(versions, versions[1:], strict=False) if a != b)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory, small_reference: Path) -> Path:
    root = tmp_path_factory.mktemp("swap-template") / "loans"
    assert build_trained(root, small_reference, TWO_LINEAR) == [1, 2]
    return root


@pytest.fixture
def project_root(template: Path, tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "loans"
    shutil.copytree(template, root)
    yield root


def test_swaps_under_load_fail_nothing_and_every_count_agrees(
    project_root: Path, small_reference: Path
) -> None:
    run = run_swaps_under_load(project_root, small_reference)
    answered = run.answered.versions
    assert run.swaps >= 100
    assert run.answered.failures == []
    sent = len(answered)
    sent_rows = sum(rows for _, _, rows in answered.values())
    by_endpoint = {
        e: sum(1 for a in answered.values() if a[0] == e) for e in ("infer", "invocations")
    }
    assert min(by_endpoint.values()) > 100, by_endpoint  # both protocols under load throughout
    versions_seen = {version for _, version, _ in answered.values()}
    assert versions_seen == {"1", "2"}
    # The load overlapped the swaps, not only their ends: the answering version kept changing.
    assert version_changes(run.answered) >= run.swaps // 4

    # /metrics counted exactly the requests sent, by endpoint and answering version, no errors.
    counted = {k: n for k, n in run.metrics.items() if k[0] in ("infer", "invocations")}
    expected: dict[tuple[str, str], int] = {}
    for endpoint, version, _ in answered.values():
        expected[(endpoint, version)] = expected.get((endpoint, version), 0) + 1
    assert counted == expected
    assert not [k for k in run.metrics if k[0] == "errors"]

    # The prediction log holds every request, with its rows, under the version that answered.
    assert run.serving_totals["total_requests"] == sent
    assert run.serving_totals["total_rows"] == sent_rows
    assert set(run.logged) == set(answered)
    mismatched = [
        (request_id, answered[request_id][1], logged)
        for request_id, logged in run.logged.items()
        if (int(answered[request_id][1]), answered[request_id][2]) != logged
    ]
    assert mismatched == []
