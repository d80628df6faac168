"""The judged end to end run: sample_data/ played week by week through mldeck.

Reference -> train (a linear model: fast, and the logistic regression that
sample_data/measure.py also fits) -> for each of the 13 weeks, the week's
applications, then its labels file. The truth comes from the generator's own
record (drift_truth.json) and from measure.py run in the test, never from
numbers written here.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from engine.core.events import AlertRaised, Event
from engine.core.project import Project, init_project, open_project
from engine.monitoring.alerts import list_alerts
from engine.monitoring.monitor import batch_window, merged_window
from engine.monitoring.performance import performance_windows
from engine.pipeline.training_run import train
from tests.conftest import REFERENCE, SAMPLE, append_models, run_cli

TRUTH = json.loads((SAMPLE / "drift_truth.json").read_text())
WEEKS = TRUTH["stream"]
ACCURACY_FLOOR = 0.90
"""The configured floor under test: live accuracy below it raises performance_min."""
CONFIG = '\n[models.linear]\nkind = "linear"\n'
ALERTS = f"[alerts]\nmin = {{ accuracy = {ACCURACY_FLOOR} }}\n"


@dataclass
class Played:
    root: Path
    project: Project
    champion: int
    week_batches: list[int]
    """The data batch id of each week, in week order."""
    label_batches: list[int]
    events_by_week: list[list[Event]]
    alerts_by_week: list[list[dict[str, Any]]]
    """The alerts stored while each week (data + labels) was played."""


@pytest.fixture(scope="module")
def played(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Played]:
    from engine.pipeline.intake import ingest_file, ingest_labels_file

    root = tmp_path_factory.mktemp("e2e") / "loans"
    init_project(root, target="default", id_column="loan_id")
    config = root / "mldeck.toml"
    config.write_text(config.read_text().replace("[alerts]\n", ALERTS, 1))
    append_models(root, CONFIG)
    project = open_project(root)
    assert ingest_file(project, REFERENCE).status == "accepted"
    result = train(project)
    assert result.champion is not None
    week_batches, label_batches, events_by_week, alerts_by_week = [], [], [], []
    for week in WEEKS:
        before = max([a["alert_id"] for a in list_alerts(project.catalog)], default=0)
        events: list[Event] = []
        data = ingest_file(project, SAMPLE / week["file"], events.append)
        labels = ingest_labels_file(project, SAMPLE / week["labels"], events.append)
        assert data.status in ("accepted", "warned") and data.batch_id is not None
        assert labels.status == "accepted", labels.issues
        assert labels.batch_id is not None
        week_batches.append(data.batch_id)
        label_batches.append(labels.batch_id)
        events_by_week.append(events)
        alerts_by_week.append(list_alerts(project.catalog, since_id=before))
    yield Played(
        root,
        project,
        result.champion,
        week_batches,
        label_batches,
        events_by_week,
        alerts_by_week,
    )
    project.close()


def _measure_module() -> Any:
    spec = importlib.util.spec_from_file_location("measure", SAMPLE / "measure.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def measured_lr_accuracy() -> list[float]:
    """measure.py's logistic regression fitted on the reference, scored on each week."""
    measure = _measure_module()
    ref, weeks = measure.load(str(SAMPLE))
    fitted = measure.fit("lr", ref)
    return [measure.score(fitted, weeks[w])[0] for w in range(1, len(WEEKS) + 1)]


def _week_accuracy(played: Played) -> list[float]:
    by_ref = {w["window_ref"]: w for w in performance_windows(played.project)}
    out = []
    for week, batch_id in zip(WEEKS, played.week_batches, strict=True):
        window = by_ref[f"batch {batch_id}"]
        assert window["model_version"] == played.champion
        assert window["n_labelled"] == window["n_rows"] == week["rows"]
        out.append(window["metrics"]["accuracy"])
    return out


# ------------------------------------------------------------------ drift


def test_the_drift_table_flags_exactly_the_shifted_features(played: Played) -> None:
    shifted = set(TRUTH["drifted_features"])
    features = TRUTH["features"]
    flagged_weeks: dict[str, list[int]] = {name: [] for name in features}
    for week, batch_id in zip(WEEKS, played.week_batches, strict=True):
        window = batch_window(played.project, batch_id)
        assert window is not None and window.row_count == week["rows"]
        for name in window.report["drifted"]:
            flagged_weeks[name].append(week["week"])
    # Never a feature the generator left alone, in any week.
    assert {n for n, weeks in flagged_weeks.items() if weeks} <= shifted
    # Never before the generator started shifting it (loan_purpose: its new category).
    for name in shifted:
        assert all(w >= features[name]["from_week"] for w in flagged_weeks[name]), name
    # The last week, with the largest shift, flags exactly the shifted ones.
    last = batch_window(played.project, played.week_batches[-1])
    assert last is not None and sorted(last.report["drifted"]) == sorted(shifted)
    new_category = TRUTH["new_categories"]["loan_purpose"]["category"]
    purpose = next(f for f in last.report["features"] if f["feature"] == "loan_purpose")
    assert new_category in purpose["new_categories"]
    # The quarter merged (every stored summary added up) says the same.
    merged = merged_window(played.project, None)
    assert merged is not None and merged.row_count == sum(w["rows"] for w in WEEKS)
    assert sorted(merged.report["drifted"]) == sorted(shifted)


# ------------------------------------------------------------------ performance


def test_live_performance_follows_the_decay(
    played: Played, measured_lr_accuracy: list[float]
) -> None:
    accuracy = _week_accuracy(played)
    # Week by week, what measure.py's logistic regression sees on the same labels
    # (ours is fitted on the training split only, hence the tolerance).
    for week, ours, theirs in zip(WEEKS, accuracy, measured_lr_accuracy, strict=True):
        assert abs(ours - theirs) < 0.02, (week["week"], ours, theirs)
    # The shape the generator was built for: start near the intended figure, end near
    # it, and lose the difference along the way.
    path = TRUTH["intended_accuracy_path"]
    assert abs(accuracy[0] - path["week_1"]) < 0.03
    assert abs(accuracy[-1] - path["week_13"]) < 0.03
    assert sum(accuracy[:3]) / 3 - sum(accuracy[-3:]) / 3 > 0.07
    # Next to the holdout figure the version was registered with.
    first = performance_windows(played.project)[0]
    holdout = played.project.catalog.scalar(
        "SELECT value FROM metrics WHERE version = ? AND name = 'accuracy'", [played.champion]
    )
    assert first["holdout"]["accuracy"] == pytest.approx(holdout)


def test_the_floor_alert_fires_in_the_first_week_below_it_and_not_before(played: Played) -> None:
    accuracy = _week_accuracy(played)
    crossed = [i for i, value in enumerate(accuracy) if value < ACCURACY_FLOOR]
    assert crossed, "the decay never crossed the configured floor"
    first = crossed[0]
    for i, alerts in enumerate(played.alerts_by_week):
        floor_alerts = [a for a in alerts if a["rule"] == "performance_min"]
        if i < first:
            assert floor_alerts == [], f"week {i + 1}: alert before the floor was crossed"
        if i in crossed:
            assert len(floor_alerts) == 1, f"week {i + 1}"
            alert = floor_alerts[0]
            assert alert["window_ref"] == f"batch {played.week_batches[i]}"
            assert alert["model_version"] == played.champion
            assert alert["window_kind"] == "labels" and alert["severity"] == "alert"
            assert alert["evidence"]["breaches"][0]["value"] == pytest.approx(accuracy[i])
            raised = [e for e in played.events_by_week[i] if isinstance(e, AlertRaised)]
            assert alert["alert_id"] in [e.alert_id for e in raised]


def test_the_first_floor_week_matches_measure_py(
    played: Played, measured_lr_accuracy: list[float]
) -> None:
    ours = next(i for i, v in enumerate(_week_accuracy(played)) if v < ACCURACY_FLOOR)
    theirs = next(i for i, v in enumerate(measured_lr_accuracy) if v < ACCURACY_FLOOR)
    assert ours == theirs


def test_drift_alerts_follow_the_dataset_verdict(played: Played) -> None:
    for week_alerts, batch_id in zip(played.alerts_by_week, played.week_batches, strict=True):
        window = batch_window(played.project, batch_id)
        assert window is not None
        drift_alerts = [a for a in week_alerts if a["rule"] == "drift"]
        assert len(drift_alerts) == int(window.report["dataset_drift"])
        for alert in drift_alerts:
            assert alert["window_kind"] == "batch"
            assert sorted(alert["evidence"]["drifted"]) == sorted(window.report["drifted"])


# ------------------------------------------------------------------ the CLI


def test_perf_alerts_and_report_on_the_played_quarter(played: Played, tmp_path: Path) -> None:
    perf = run_cli(["perf", "--json"], cwd=played.root)
    assert perf.exit_code == 0, perf.stderr
    windows = json.loads(perf.stdout)
    assert [w["window_ref"] for w in windows] == [f"batch {b}" for b in played.week_batches]
    table = run_cli(["perf"], cwd=played.root)
    assert table.exit_code == 0 and "holdout" in table.stdout

    alerts = run_cli(["alerts", "--json"], cwd=played.root)
    assert alerts.exit_code == 0, alerts.stderr
    stored = json.loads(alerts.stdout)
    assert {a["rule"] for a in stored} >= {"performance_min", "drift"}
    first_id = stored[0]["alert_id"]
    acked = run_cli(["alerts", "--ack", str(first_id), "--json"], cwd=played.root)
    assert first_id not in [a["alert_id"] for a in json.loads(acked.stdout)]
    everything = run_cli(["alerts", "--all", "--json"], cwd=played.root)
    assert first_id in [a["alert_id"] for a in json.loads(everything.stdout)]
    assert "performance_min" in run_cli(["alerts"], cwd=played.root).stdout

    out = tmp_path / "drift.html"
    written = run_cli(["report", "--out", str(out)], cwd=played.root)
    assert written.exit_code == 0, written.stderr
    text = out.read_text(encoding="utf-8")
    _assert_self_contained_html(text)
    for name in [*TRUTH["drifted_features"], *TRUTH["undrifted_features"]]:
        assert f"<h3>{name} " in text, name
    assert text.count("<svg") >= len(TRUTH["features"]) + 2  # histograms + over-time charts
    assert "Live performance over time" in text and "performance_min" in text


class _Checker(HTMLParser):
    VOID = {"meta", "br", "hr", "img", "input", "link", "circle", "rect", "line", "polyline"}

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.tags: set[str] = set()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.urls += [v for k, v in attrs if k in ("src", "href") and v]
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in self.VOID:
            return
        assert self.stack and self.stack[-1] == tag, (tag, self.stack[-5:])
        self.stack.pop()


def _assert_self_contained_html(text: str) -> None:
    checker = _Checker()
    checker.feed(text)
    checker.close()
    assert checker.stack == [], checker.stack  # every element closed, in order
    assert {"html", "head", "style", "body", "table", "svg"} <= checker.tags
    assert "script" not in checker.tags and checker.urls == []
    assert "http://" not in text and "https://" not in text
