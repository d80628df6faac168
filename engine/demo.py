"""The demo: sample_data/'s quarter played week by week into a fresh project.

The reference data trains the first champion; then each week's batch lands in
data/incoming/ and, right after, its labels in data/labels/. Each is ingested
as any dropped file would be (drift checked, the batch scored, the labels
joined), the due retrain triggers go through the project's retrain policy, and
a `Week` says what happened. The CLI prints the weeks (`mldeck demo
--headless`); the UI shows them as they happen.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomlkit

from engine.errors import ProjectError
from engine.events import EventSink, ignore_events
from engine.project import Project, init_project
from engine.registry import CHAMPION, alias_version
from storage.catalog import utcnow

DEMO_MODELS = {
    "linear": {"kind": "linear"},
    "boost": {"kind": "gradient_boosting", "n_estimators": 60, "max_depth": 3},
}
"""Two quick candidates, so a retrain takes seconds."""


@dataclass
class Week:
    week: int
    batch_id: int | None
    rows: int
    champion: int | None
    """The version that scored the week's batch."""
    drifted: list[str]
    """Features in drift alert in the week's batch."""
    accuracy: float | None
    holdout_accuracy: float | None
    alerts: list[dict[str, Any]]
    triggers: list[dict[str, Any]] = field(default_factory=list)
    """What each due retrain trigger did under the policy (propose's answers)."""
    champion_after: int | None = None


def create_demo_project(
    folder: Path, sample_data: Path, *, policy: str, floor: float, recent_batches: int
) -> Path:
    """A new project at `folder` set up for the demo (target `default`, id `loan_id`)."""
    if folder.exists() and any(folder.iterdir()):
        raise ProjectError(f"{folder} is not empty: the demo needs a new folder")
    if not (sample_data / "drift_truth.json").is_file():
        raise ProjectError(f"{sample_data} is not mldeck's sample_data/ (no drift_truth.json)")
    init_project(folder, target="default", id_column="loan_id")
    config = folder / "mldeck.toml"
    doc = tomlkit.parse(config.read_text(encoding="utf-8"))
    doc["retrain"]["policy"] = policy
    # A retrain learns from the last weeks, not from the world as it was.
    doc["training"]["recent_batches"] = recent_batches
    alerts = doc["alerts"]
    alerts["min_labelled"] = 200
    alerts["min"] = {"accuracy": floor}
    doc["models"] = DEMO_MODELS
    config.write_text(tomlkit.dumps(doc), encoding="utf-8")
    return folder


def train_reference(project: Project, sample_data: Path, on_event: EventSink) -> dict[str, Any]:
    """Ingest the reference data and train the first champion."""
    from engine.pipeline import train, train_result_dict

    for source in sorted((sample_data / "reference").glob("*.csv")):
        _drop(project, source, project.incoming_dir, on_event)
    return train_result_dict(train(project, events=on_event, actor="demo"))


def play_weeks(
    project: Project,
    sample_data: Path,
    *,
    pace_s: float = 0.0,
    on_event: EventSink = ignore_events,
) -> Iterator[Week]:
    """Play the stream week by week; yields each week once its labels are in and its
    triggers have gone through the retrain policy."""
    from engine.alerts import list_alerts
    from engine.monitor import batch_window
    from engine.performance import performance_windows
    from engine.retrain import due_triggers, propose

    truth = json.loads((sample_data / "drift_truth.json").read_text())
    last_alert = max((a["alert_id"] for a in list_alerts(project.catalog)), default=0)
    for entry in truth["stream"]:
        started = time.monotonic()
        champion = alias_version(project.catalog, CHAMPION)
        batch = _drop(project, sample_data / entry["file"], project.incoming_dir, on_event)
        _drop(project, sample_data / entry["labels"], project.labels_dir, on_event)
        batch_id = batch["batch_id"] if batch["status"] in ("accepted", "warned") else None
        drifted: list[str] = []
        if batch_id is not None:
            window = batch_window(project, batch_id)
            if window is not None:
                drifted = [
                    f["feature"] for f in window.report["features"] if f["status"] == "alert"
                ]
        accuracy = holdout = None
        for w in performance_windows(project):
            if w["window_ref"] == f"batch {batch_id}" and w["model_version"] == champion:
                accuracy = w["metrics"].get("accuracy")
                holdout = w["holdout"].get("accuracy")
        alerts = list_alerts(project.catalog, since_id=last_alert)
        last_alert = max((a["alert_id"] for a in alerts), default=last_alert)
        triggers = [
            propose(project, trigger, evidence, on_event, actor="demo")
            for trigger, evidence in due_triggers(project, utcnow(), {})
        ]
        yield Week(
            week=int(entry["week"]),
            batch_id=batch_id,
            rows=int(batch["rows"] or 0),
            champion=champion,
            drifted=drifted,
            accuracy=accuracy,
            holdout_accuracy=holdout,
            alerts=alerts,
            triggers=triggers,
            champion_after=alias_version(project.catalog, CHAMPION),
        )
        remaining = pace_s - (time.monotonic() - started)
        if remaining > 0:
            time.sleep(remaining)


def _drop(project: Project, source: Path, folder: Path, on_event: EventSink) -> dict[str, Any]:
    """Copy a file into a watched folder and ingest it there, as the watcher would."""
    from engine.ingest import ingest_dropped, ingest_result_dict

    target = folder / source.name
    shutil.copy(source, target)
    return ingest_result_dict(project, ingest_dropped(project, target, on_event))
