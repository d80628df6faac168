"""Intake: what follows a file's arrival, chaining the data stages to the monitoring ones.

The data layer (engine.data) reads, validates and records a batch; what the batch then sets
off — its drift window against the champion (stage 8), the live-performance windows its
labels touch — lives in engine.monitoring, above it. These functions call one, then the
other, so neither layer calls the one above it. Every path by which a file comes in (the
CLI, the watcher, the control API, revalidation, the demo) goes through here.
"""

from __future__ import annotations

from pathlib import Path

from engine.core.answers import RevalidateAnswer
from engine.core.errors import MldeckError
from engine.core.events import EventSink, StageFinished, StageStarted, ignore_events
from engine.core.project import Project
from engine.data import ingest as data_ingest
from engine.data import labels as data_labels
from engine.data import quarantine
from engine.data.batches import IngestResult
from engine.data.ingest import is_labels_file, refuse_unreadable
from engine.data.read import expand_paths
from engine.records.stage_runs import stage_run


def ingest_file(project: Project, path: Path, events: EventSink = ignore_events) -> IngestResult:
    """Ingest a data file; an accepted batch gets its drift window against the champion."""
    result = data_ingest.ingest_file(project, path, events)
    if result.status in ("accepted", "warned") and result.batch_id is not None:
        monitor_batch(project, result.batch_id, events)
    return result


def ingest_labels_file(
    project: Project, path: Path, events: EventSink = ignore_events
) -> IngestResult:
    """Ingest a labels file; the performance windows it labels are recomputed (and judged)."""
    result = data_labels.ingest_labels_file(project, path, events)
    if result.status in ("accepted", "warned") and result.batch_id is not None:
        refresh_performance(project, result.batch_id, events)
    return result


def ingest_dropped(project: Project, path: Path, events: EventSink = ignore_events) -> IngestResult:
    """Ingest a file by where it lies: under the labels folder as labels, otherwise as data."""
    refused = refuse_unreadable(project, path, events)
    if refused is not None:
        return refused
    if is_labels_file(project, path):
        return ingest_labels_file(project, path, events)
    return ingest_file(project, path, events)


def ingest_paths(
    project: Project, paths: list[Path], events: EventSink = ignore_events
) -> list[IngestResult]:
    return [ingest_file(project, p, events) for p in expand_paths(paths)]


def revalidate(
    project: Project,
    batch_id: int,
    *,
    actor: str,
    reason: str,
    events: EventSink = ignore_events,
) -> RevalidateAnswer:
    """Validate a quarantined batch again (engine.data.quarantine); a batch it accepts is
    monitored, or its labels refresh the performance windows, as if it had just arrived."""
    outcome = quarantine.revalidate(project, batch_id, actor=actor, reason=reason, events=events)
    new_batch_id = outcome["new_batch_id"]
    if new_batch_id is not None and outcome["kind"] == "data":
        monitor_batch(project, new_batch_id, events)
    elif new_batch_id is not None:
        refresh_performance(project, new_batch_id, events)
    return outcome


def monitor_batch(project: Project, batch_id: int, events: EventSink = ignore_events) -> None:
    """Stage 8: the batch's drift window against the champion (when it has a reference
    profile); recorded as a "monitor" stage run, never fails the ingest."""
    from engine.monitoring.monitor import monitor_batch_recorded  # numpy: only when needed

    monitor_batch_recorded(project, batch_id, events)


def refresh_performance(project: Project, batch_id: int, on_event: EventSink) -> None:
    """Recompute the windows these labels touch, inside a ``performance`` stage run; a failure
    is recorded, never raised (the labels are stored either way)."""
    from engine.monitoring.performance import refresh_for_labels

    on_event(StageStarted("performance", f"labels {batch_id}"))
    try:
        with stage_run(project.catalog, "performance", {"labels_batch_id": batch_id}) as run:
            windows = refresh_for_labels(project, batch_id, on_event)
            run.outputs = {"windows": [w["window_ref"] for w in windows]}
    except Exception as exc:
        message = exc.msg if isinstance(exc, MldeckError) else f"{type(exc).__name__}: {exc}"
        on_event(StageFinished("performance", f"labels {batch_id}", "failed", message))
        return
    on_event(
        StageFinished("performance", f"labels {batch_id}", "succeeded", f"{len(windows)} windows")
    )
