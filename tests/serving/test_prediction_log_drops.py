"""The prediction log's drop path, behind a real HTTP server: when the log's queue is full,
requests are still answered, their rows are dropped, and /metrics counts exactly those rows.

The log is built with a queue of QUEUED requests and a writer that does not flush until the
server closes (an hour's interval, an unreachable row threshold): the queue really fills.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import polars as pl
import pytest

from engine.core.project import Project
from engine.records.registry import CHAMPION, alias_version
from engine.serving.app import ServingApp
from engine.serving.model_slot import ModelSlot, load_model
from engine.serving.prediction_log import PredictionLog
from tests.helpers import http_request, metric_value, serve_in_thread

QUEUED = 3
"""Requests the log's queue holds."""
REQUESTS = 8
ROWS = 5
"""Rows per request."""
DROPPED_METRIC = "mldeck_prediction_log_dropped_rows_total"


@pytest.fixture
def project(trained_project: Callable[..., Path], open_proj: Callable[[Path], Project]) -> Project:
    return open_proj(trained_project())


@pytest.fixture
def app(project: Project) -> Iterator[ServingApp]:
    champion = alias_version(project.catalog, CHAMPION)
    assert champion is not None
    log = PredictionLog(project.catalog, flush_interval_s=3600, flush_rows=10**9, max_queued=QUEUED)
    served = ServingApp(project, ModelSlot(load_model(project, champion)), log)
    yield served
    served.close()


def test_a_full_log_queue_drops_rows_and_metrics_counts_them(
    app: ServingApp, project: Project, small_reference: Path
) -> None:
    rows = pl.read_csv(small_reference).drop("default")
    answered: list[str] = []
    with serve_in_thread(app) as port:
        status, _, body = http_request(port, "GET", "/metrics")
        assert status == 200 and metric_value(body.decode(), DROPPED_METRIC) == 0
        for i in range(REQUESTS):
            chunk = rows.slice(i * ROWS, ROWS).to_dicts()
            status, headers, body = http_request(
                port,
                "POST",
                "/invocations",
                json.dumps({"dataframe_records": chunk}).encode(),
                "application/json",
            )
            # a full log never costs an answer
            assert status == 200, body
            assert len(json.loads(body)["predictions"]) == ROWS
            answered.append(headers["x-request-id"])
        status, _, body = http_request(port, "GET", "/metrics")
        assert status == 200
        dropped = metric_value(body.decode(), DROPPED_METRIC)
    assert dropped == (REQUESTS - QUEUED) * ROWS
    assert app.live_traffic()["dropped_rows"] == dropped

    app.close()  # the writer flushes what the queue held
    logged = project.catalog.rows(
        "SELECT request_id, count(*) AS n FROM predictions GROUP BY request_id"
    )
    # the first QUEUED requests were logged in full; every later one was dropped, all its rows
    assert sorted((r["request_id"], r["n"]) for r in logged) == sorted(
        (request_id, ROWS) for request_id in answered[:QUEUED]
    )
    assert REQUESTS * ROWS - sum(r["n"] for r in logged) == dropped
