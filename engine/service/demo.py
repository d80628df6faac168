"""The demo: sample_data/'s quarter played week by week into a fresh project.

The reference data trains the first champion; then each week's batch lands in
data/incoming/ and, right after, its labels in data/labels/ (`drop_file`, as a
careful producer would). Two players share that:

- `play_weeks` (`mldeck demo --headless`) ingests each file itself, puts the
  due retrain triggers through the project's retrain policy, and yields a
  `Week` saying what happened;
- `QuarterFeed` (`mldeck demo` in the UI) only drops the files at a watchable
  pace: the engine running in the UI ingests them from its watched folders
  and its scheduler turns alerts into retrain proposals, as for any project.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import tomlkit

from engine.core.answers import AlertAnswer, IngestAnswer, ProposeAnswer, TrainAnswer
from engine.core.errors import ProjectError
from engine.core.events import EventSink, ignore_events
from engine.core.project import Project, init_project
from engine.records.registry import CHAMPION, alias_version
from storage.catalog import utcnow

if TYPE_CHECKING:
    from engine.service.operations import EngineClient

log = logging.getLogger(__name__)

DEMO_MODELS = {
    "linear": {"kind": "linear"},
    "boost": {"kind": "gradient_boosting", "n_estimators": 60, "max_depth": 3},
}
"""Two quick candidates, so a retrain takes seconds."""


@dataclass(frozen=True)
class WeekFiles:
    """One week of the stream: its batch and its labels file."""

    week: int
    batch: Path
    labels: Path


def reference_files(sample_data: Path) -> list[Path]:
    """The reference data the first champion learns from."""
    return sorted((sample_data / "reference").glob("*.csv"))


def quarter(sample_data: Path) -> list[WeekFiles]:
    """The stream's weeks in order (sample_data/drift_truth.json)."""
    truth = json.loads((sample_data / "drift_truth.json").read_text())
    return [
        WeekFiles(int(e["week"]), sample_data / e["file"], sample_data / e["labels"])
        for e in truth["stream"]
    ]


def drop_file(source: Path, folder: Path) -> Path:
    """Copy `source` into a watched folder under a hidden temporary name, then rename it
    into place: a watcher takes it once, whole. Returns where it landed."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / source.name
    partial = folder / f".{source.name}.part"
    shutil.copyfile(source, partial)
    os.replace(partial, target)
    return target


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
    alerts: list[AlertAnswer]
    triggers: list[ProposeAnswer] = field(default_factory=list)
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


def train_reference(project: Project, sample_data: Path, on_event: EventSink) -> TrainAnswer:
    """Ingest the reference data and train the first champion."""
    from engine.pipeline.training_run import train, train_result_dict

    for source in reference_files(sample_data):
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
    from engine.monitoring.alerts import list_alerts
    from engine.monitoring.monitor import batch_window
    from engine.monitoring.performance import performance_windows
    from engine.pipeline.retrain import due_triggers, propose

    last_alert = max((a["alert_id"] for a in list_alerts(project.catalog)), default=0)
    for files in quarter(sample_data):
        started = time.monotonic()
        champion = alias_version(project.catalog, CHAMPION)
        batch = _drop(project, files.batch, project.incoming_dir, on_event)
        _drop(project, files.labels, project.labels_dir, on_event)
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
            week=files.week,
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


def _drop(project: Project, source: Path, folder: Path, on_event: EventSink) -> IngestAnswer:
    """Drop a file into a watched folder and ingest it there, as the watcher would."""
    from engine.data.ingest import ingest_result_dict
    from engine.pipeline.intake import ingest_dropped

    target = drop_file(source, folder)
    return ingest_result_dict(project, ingest_dropped(project, target, on_event))


class QuarterFeed:
    """Plays the quarter into an engine that watches the project's folders.

    The engine's watcher ingests the reference data dropped before it started
    (`drop_reference`); the feed's first call is the training of the first
    champion, queued behind that ingest. Then, every `pace_s` seconds, a week's
    batch lands in data/incoming/ and its labels in data/labels/; the engine
    ingests them in that order and its scheduler proposes retrains. The feed
    runs on a daemon thread: `stop` ends it between weeks.

    Args:
        client: the engine that owns the project.
        incoming_dir, labels_dir: the project's watched folders.
        pace_s: seconds between weeks.
        on_step: told what the feed is doing, as a short line (called on the feed's thread).
    """

    def __init__(
        self,
        client: EngineClient,
        sample_data: Path,
        *,
        incoming_dir: Path,
        labels_dir: Path,
        pace_s: float,
        on_step: Callable[[str], None] = lambda step: None,
        actor: str = "demo",
    ) -> None:
        self.client = client
        self.weeks = quarter(sample_data)
        self.incoming_dir = incoming_dir
        self.labels_dir = labels_dir
        self.pace_s = pace_s
        self.on_step = on_step
        self.actor = actor
        self.error: Exception | None = None
        """What stopped the feed early, if anything."""
        self.weeks_dropped = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demo-feed", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout_s)

    def wait(self, timeout_s: float | None = None) -> bool:
        """Wait for the feed to end; whether it did."""
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def _run(self) -> None:
        try:
            self.on_step("training the first champion (the engine's first job)")
            trained = self.client.train(actor=self.actor, only=[])
            self.on_step(f"champion v{trained.get('champion')}; the quarter starts")
            for files in self.weeks:
                if self._stop.wait(self.pace_s):
                    return
                drop_file(files.batch, self.incoming_dir)
                drop_file(files.labels, self.labels_dir)
                self.weeks_dropped += 1
                self.on_step(f"week {files.week} of {len(self.weeks)}")
            self.on_step(f"the quarter is played ({len(self.weeks)} weeks)")
        except Exception as exc:  # an engine that stopped, a failed training: the feed ends
            if not self._stop.is_set():
                log.warning("demo feed stopped: %s", exc)
                self.error = exc
                self.on_step(f"the demo feed stopped: {exc}")


def drop_reference(sample_data: Path, incoming_dir: Path) -> list[Path]:
    """Drop the reference data into data/incoming/ (before the engine starts: its watcher
    ingests files already there first)."""
    return [drop_file(source, incoming_dir) for source in reference_files(sample_data)]
