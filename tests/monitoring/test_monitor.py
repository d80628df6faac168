"""Stage 8 in the pipeline: reference profiles at registration, drift windows per batch, `mldeck drift`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from engine.core.project import Project, init_project, open_project
from engine.core.spans import parse_span
from engine.monitoring.drift import ReferenceProfile, WindowSummary
from engine.monitoring.monitor import batch_window, latest_window, merged_window
from engine.pipeline.intake import ingest_file
from engine.pipeline.training_run import train
from engine.records.registry import CHAMPION, alias_version
from tests.conftest import REFERENCE, SAMPLE, append_models, run_cli

LINEAR_ONLY = '\n[models.linear]\nkind = "linear"\n'
TRUTH = json.loads((SAMPLE / "drift_truth.json").read_text())
WEEK_1 = SAMPLE / "stream" / "week_01.csv"
WEEK_13 = SAMPLE / "stream" / "week_13.csv"


def linear_project(root: Path, reference: Path) -> Project:
    init_project(root, target="default", id_column="loan_id")
    append_models(root, LINEAR_ONLY)
    project = open_project(root)
    assert ingest_file(project, reference).status == "accepted"
    return project


@dataclass
class Monitored:
    root: Path
    project: Project
    champion: int
    holdout_rows: int
    batch_1: int
    batch_13: int


@pytest.fixture(scope="module")
def monitored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Monitored]:
    """The full reference trained (linear only), then weeks 1 and 13 ingested."""
    root = tmp_path_factory.mktemp("monitor") / "loans"
    project = linear_project(root, REFERENCE)
    # No champion yet: ingesting the reference stored no window.
    assert project.catalog.scalar("SELECT count(*) FROM drift_windows") == 0
    result = train(project)
    champion = alias_version(project.catalog, CHAMPION)
    assert champion is not None
    week_1 = ingest_file(project, WEEK_1)
    week_13 = ingest_file(project, WEEK_13)
    assert week_1.batch_id is not None and week_13.batch_id is not None
    yield Monitored(root, project, champion, result.holdout_rows, week_1.batch_id, week_13.batch_id)
    project.close()


def test_the_reference_profile_is_stored_at_registration(monitored: Monitored) -> None:
    row = monitored.project.catalog.row(
        "SELECT fingerprint, profile_json FROM reference_profiles WHERE model_version = ?",
        [monitored.champion],
    )
    assert row is not None
    profile = ReferenceProfile.from_json(row["profile_json"])
    assert profile.fingerprint == row["fingerprint"]
    assert profile.meta["rows"] == "holdout" and profile.meta["model_version"] == monitored.champion
    assert profile.n_rows == monitored.holdout_rows
    features = set(TRUTH["drifted_features"]) | set(TRUTH["undrifted_features"])
    assert set(profile.columns) == features
    # Binary classification: the profiled output is P(default = 1), a number in [0, 1].
    assert profile.prediction is not None and profile.prediction.kind == "numeric"
    assert profile.prediction.n == monitored.holdout_rows
    stages = monitored.project.catalog.rows("SELECT status FROM stage_runs WHERE stage = 'profile'")
    assert [s["status"] for s in stages] == ["succeeded"]


def test_each_ingested_batch_gets_one_window(monitored: Monitored) -> None:
    rows = monitored.project.catalog.rows(
        "SELECT batch_id, model_version, source, row_count, drifted_features FROM drift_windows "
        "ORDER BY window_id"
    )
    assert [(r["batch_id"], r["model_version"], r["source"]) for r in rows] == [
        (monitored.batch_1, monitored.champion, "batch"),
        (monitored.batch_13, monitored.champion, "batch"),
    ]
    assert [r["row_count"] for r in rows] == [
        TRUTH["stream"][0]["rows"],
        TRUTH["stream"][12]["rows"],
    ]
    assert [r["drifted_features"] for r in rows] == [0, len(TRUTH["drifted_features"])]
    stages = monitored.project.catalog.rows(
        "SELECT status FROM stage_runs WHERE stage = 'monitor' ORDER BY run_id"
    )
    assert [s["status"] for s in stages] == ["succeeded", "succeeded"]


def test_week_13_flags_exactly_the_shifted_features_and_week_1_none(monitored: Monitored) -> None:
    week_1 = batch_window(monitored.project, monitored.batch_1)
    week_13 = batch_window(monitored.project, monitored.batch_13)
    assert week_1 is not None and week_13 is not None
    assert week_1.report["drifted"] == [] and week_1.report["dataset_drift"] is False
    assert sorted(week_13.report["drifted"]) == sorted(TRUTH["drifted_features"])
    assert week_13.report["dataset_drift"] is True
    loan_purpose = next(f for f in week_13.report["features"] if f["feature"] == "loan_purpose")
    assert "bnpl" in loan_purpose["new_categories"]
    for window in (week_1, week_13):
        pred = window.report["prediction"]
        assert pred is not None and pred["feature"] == "__prediction__"
        assert pred["n_current"] == window.row_count and pred["status"] in ("ok", "warn", "alert")


def test_drift_json_prints_the_latest_windows_report(monitored: Monitored) -> None:
    stored = monitored.project.catalog.scalar(
        "SELECT report_json FROM drift_windows ORDER BY window_id DESC LIMIT 1"
    )
    for args in (["drift", "--json"], ["drift", "--last", "--json"]):
        result = run_cli(args, cwd=monitored.root)
        assert result.exit_code == 0, result.stderr
        data = json.loads(result.stdout)
        window = data.pop("window")
        assert data == json.loads(stored)
        assert window["batch_ids"] == [monitored.batch_13]
        assert window["model_version"] == monitored.champion
    latest = latest_window(monitored.project)
    assert latest is not None and latest.batch_ids == [monitored.batch_13]


def test_drift_window_merges_the_stored_summaries(monitored: Monitored) -> None:
    merged = merged_window(monitored.project, timedelta(days=7))
    assert merged is not None
    assert merged.batch_ids == [monitored.batch_1, monitored.batch_13]
    assert merged.row_count == TRUTH["stream"][0]["rows"] + TRUTH["stream"][12]["rows"]
    assert merged.report["n_current"] == merged.row_count
    assert merged.report["prediction"]["n_current"] == merged.row_count

    # The merge is the sum of the two windows' counts.
    summaries = [
        WindowSummary.from_json(r["summary_json"])
        for r in monitored.project.catalog.rows(
            "SELECT summary_json FROM drift_windows ORDER BY window_id"
        )
    ]
    assert summaries[0].merge(summaries[1]).n_rows == merged.row_count

    result = run_cli(["drift", "--window", "7d", "--json"], cwd=monitored.root)
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["window"]["row_count"] == merged.row_count
    assert data["n_current"] == merged.row_count
    assert sorted(data["drifted"]) == sorted(merged.report["drifted"])

    batch = run_cli(["drift", "--batch", str(monitored.batch_1), "--json"], cwd=monitored.root)
    assert batch.exit_code == 0, batch.stderr
    assert json.loads(batch.stdout)["drifted"] == []


def test_drift_table_and_errors(monitored: Monitored) -> None:
    result = run_cli(["drift"], cwd=monitored.root)
    assert result.exit_code == 0, result.stderr
    for name in [*TRUTH["drifted_features"], "__prediction__", "bnpl", "alert", "DRIFTED"]:
        assert name in result.stdout
    missing = run_cli(["drift", "--batch", "999"], cwd=monitored.root)
    assert missing.exit_code == 1 and "No drift window" in missing.stderr
    bad = run_cli(["drift", "--window", "7x"], cwd=monitored.root)
    assert bad.exit_code == 1 and "Bad window" in bad.stderr
    both = run_cli(["drift", "--last", "--batch", "1"], cwd=monitored.root)
    assert both.exit_code == 2


def test_parse_span() -> None:
    assert parse_span("7d") == timedelta(days=7)
    assert parse_span("12h") == timedelta(hours=12)
    assert parse_span("2w") == timedelta(weeks=2)


def test_a_profile_failure_is_recorded_and_the_version_stays_registered(
    tmp_path: Path, small_reference: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import engine.monitoring.monitor

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("profiling exploded")

    monkeypatch.setattr(engine.monitoring.monitor, "build_reference_profile", broken)
    project = linear_project(tmp_path / "p", small_reference)
    try:
        result = train(project)
        assert [o.status for o in result.outcomes] == ["registered"]
        assert result.champion is not None
        failed = project.catalog.rows(
            "SELECT status, error FROM stage_runs WHERE stage = 'profile'"
        )
        assert [(r["status"], r["error"]) for r in failed] == [("failed", "profiling exploded")]
        assert project.catalog.scalar("SELECT count(*) FROM reference_profiles") == 0
        # Without a reference, an ingested batch is simply not monitored.
        assert ingest_file(project, WEEK_1).status in ("accepted", "warned")
        assert project.catalog.scalar("SELECT count(*) FROM drift_windows") == 0
    finally:
        project.close()


def test_a_monitoring_failure_never_fails_the_ingest(
    tmp_path: Path, small_reference: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import engine.monitoring.monitor

    project = linear_project(tmp_path / "p", small_reference)
    try:
        train(project)

        def broken(*args: object, **kwargs: object) -> None:
            raise RuntimeError("window exploded")

        monkeypatch.setattr(engine.monitoring.monitor, "monitor_batch", broken)
        assert ingest_file(project, WEEK_1).status in ("accepted", "warned")
        runs = project.catalog.rows("SELECT status, error FROM stage_runs WHERE stage = 'monitor'")
        assert [(r["status"], r["error"]) for r in runs] == [("failed", "window exploded")]
        assert project.catalog.scalar("SELECT count(*) FROM drift_windows") == 0
    finally:
        project.close()
