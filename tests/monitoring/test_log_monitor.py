"""Monitoring the served prediction log: drift and serving windows, labels joined to served rows."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest

from engine.core.project import Project, open_project
from engine.monitoring.alerts import list_alerts
from engine.monitoring.log_monitor import monitor_log
from engine.monitoring.performance import performance_windows
from engine.pipeline.intake import ingest_file, ingest_labels_file
from engine.serving.app import create_app
from tests.conftest import TrainedTemplates
from tests.helpers import LINEAR, REFERENCE, SAMPLE, run_cli
from tests.serving.test_serving import call

TRUTH = json.loads((SAMPLE / "drift_truth.json").read_text())
WEEK_13 = SAMPLE / "stream" / "week_13.csv"
LABELS_13 = SAMPLE / "labels" / "labels_13.csv"
CHUNK = 250


@dataclass
class Served:
    root: Path
    project: Project
    rows_with_id: int
    rows_without_id: int
    requests: int
    failed: int


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, trained_templates: TrainedTemplates
) -> Iterator[Served]:
    """The champion (trained on the whole reference) served week 13, mostly with ids."""
    root = tmp_path_factory.mktemp("log") / "loans"
    shutil.copytree(trained_templates.get(LINEAR, REFERENCE)[0], root)
    config = root / "mldeck.toml"
    config.write_text(config.read_text().replace("[alerts]\n", "[alerts]\nmax_error_rate = 0.05\n"))
    project = open_project(root)
    frame = pl.read_csv(WEEK_13).drop("application_date")
    with_id, without_id = frame.head(1400), frame.tail(frame.height - 1400).drop("loan_id")
    app = create_app(project)
    requests = failed = 0
    try:
        for part in (with_id, without_id):
            for start in range(0, part.height, CHUNK):
                records = part.slice(start, CHUNK).to_dicts()
                answer = call(app, "POST", "/invocations", {"dataframe_records": records})
                assert answer.status == 200, answer.body
                requests += 1
        for _ in range(2):
            bad = call(app, "POST", "/invocations", {"dataframe_records": [{"age": 30}]})
            assert bad.status == 400
            failed += 1
    finally:
        app.close()
    yield Served(root, project, with_id.height, without_id.height, requests, failed)
    project.close()


def test_a_log_window_checks_the_served_rows_and_serving_health(served: Served) -> None:
    result = monitor_log(served.project, timedelta(hours=1))
    window = result.window
    assert window is not None and window.source == "log"
    assert window.row_count == served.rows_with_id + served.rows_without_id
    report = window.report
    assert report["n_current"] == window.row_count
    assert sorted(report["drifted"]) == sorted(TRUTH["drifted_features"])
    assert report["prediction"]["n_current"] == window.row_count
    stats = result.serving
    assert stats is not None
    assert stats["requests"] == served.requests + served.failed
    assert stats["errors"] == served.failed
    assert stats["error_rate"] == pytest.approx(served.failed / (served.requests + served.failed))
    assert stats["p99_latency_ms"] is not None and stats["p99_latency_ms"] > 0
    # The window is stored, and both rules fired on it.
    stored = served.project.catalog.row(
        "SELECT source, batch_id, row_count FROM drift_windows WHERE window_id = ?",
        [window.window_ids[0]],
    )
    assert stored == {"source": "log", "batch_id": None, "row_count": window.row_count}
    rules = {(a["rule"], a["window_kind"]) for a in list_alerts(served.project.catalog)}
    assert {("drift", "log"), ("error_rate", "serving")} <= rules
    # An empty span stores nothing.
    later = monitor_log(
        served.project, timedelta(minutes=1), end=window.window_end + timedelta(hours=2)
    )
    assert later.window is None and later.serving is None


def test_labels_join_served_rows_that_carried_the_id(served: Served) -> None:
    assert ingest_labels_file(served.project, LABELS_13).status == "accepted"
    (log_window,) = [w for w in performance_windows(served.project) if w["source"] == "log"]
    assert log_window["n_rows"] == log_window["n_labelled"] == served.rows_with_id
    # The same rows as a batch: the champion's output and so its metrics are the same.
    head = served.root / "week_13_head.csv"
    pl.read_csv(WEEK_13).head(served.rows_with_id).write_csv(head)
    batch = ingest_file(served.project, head)
    (batch_window,) = [
        w
        for w in performance_windows(served.project)
        if w["window_ref"] == f"batch {batch.batch_id}"
    ]
    for metric, value in log_window["metrics"].items():
        assert value == pytest.approx(batch_window["metrics"][metric], abs=1e-6), metric


def test_drift_source_log_on_the_cli(served: Served) -> None:
    result = run_cli(["drift", "--source", "log", "--window", "2h", "--json"], cwd=served.root)
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["window"]["source"] == "log"
    assert data["serving"]["errors"] == served.failed
    table = run_cli(["drift", "--source", "log"], cwd=served.root)
    assert table.exit_code == 0 and "served log" in table.stdout and "Serving:" in table.stdout
    wrong = run_cli(["drift", "--source", "log", "--batch", "1"], cwd=served.root)
    assert wrong.exit_code == 2
