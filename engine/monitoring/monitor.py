"""Stage 8, monitor: reference profiles at registration, a drift window per ingested batch.

The statistics live in :mod:`engine.monitoring.drift`; this module ties them to the catalog:

* ``record_reference_profile`` runs once per registered version (from
  engine.pipeline.training_run): it profiles the **holdout** rows of the version's dataset
  (the features of its feature spec) together with the model's own output on
  those rows (``TrainedModel.holdout_output``, already computed for the
  evaluation, so profiling costs no extra scoring). Holdout rather than train
  rows because the model's output on them is out-of-sample, like its output in
  production; features and prediction come from the same rows. The profile is
  stored in ``reference_profiles``.
* ``monitor_batch`` runs after each accepted (or warned) data batch is
  ingested (from engine.data.ingest): when the champion has a reference profile, the
  batch's Parquet snapshot is read back, scored with the champion's ONNX,
  summarised against the profile (vectorised per column) and compared; one
  ``drift_windows`` row keeps the additive summary and the report.
* ``latest_window`` / ``merged_window`` / ``batch_window`` read them back for
  ``mldeck drift``: a multi-window report is the merge of the stored summaries,
  recompared, so the data is never reread.

Thresholds come from ``[drift]`` in mldeck.toml (``drift_verdict``), over
engine.monitoring.drift's defaults. After a window is stored, the alert rules are judged
on it (engine.monitoring.alerts.check_drift). When the batch carries the id column, the
champion's output per row is kept (engine.monitoring.performance.store_scored_rows) so
that delayed labels can be joined to it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.core.errors import MldeckError, as_mldeck_error
from engine.core.events import EventSink, StageFinished, StageStarted, ignore_events
from engine.core.project import Project
from engine.records.registry import CHAMPION, alias_version, get_version
from engine.records.stage_runs import stage_run
from storage.catalog import Catalog, utcnow
from storage.errors import StorageError

if TYPE_CHECKING:
    import polars as pl

    from engine.core.config import DriftSettings
    from engine.data.features import FeatureSpec
    from engine.monitoring.drift import DriftReport, ReferenceProfile, WindowSummary


@dataclass
class DriftWindow:
    """A stored drift window (or several merged), with its recomputed or stored report."""

    model_version: int
    source: str
    window_ids: list[int]
    batch_ids: list[int]
    window_start: datetime
    window_end: datetime
    row_count: int
    report: dict[str, Any]
    skipped: int = 0
    """Windows in the range left out because they were counted against another profile."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "model_version": self.model_version,
            "source": self.source,
            "window_ids": self.window_ids,
            "batch_ids": self.batch_ids,
            "window_start": self.window_start,
            "window_end": self.window_end,
            "row_count": self.row_count,
            "skipped_windows": self.skipped,
            "report": self.report,
        }


# ------------------------------------------------------------------ model output


def output_for_profile(
    output: np.ndarray, task: str, classes: list[Any] | None
) -> np.ndarray | list[str]:
    """The model output that is profiled: P(positive class) for binary classification,
    the predicted label (as a category) for multiclass, the prediction for regression."""
    array = np.asarray(output)
    if task != "classification":
        return array.reshape(-1).astype(np.float64)
    if array.ndim == 2 and array.shape[1] == 2:
        return array[:, 1].astype(np.float64)
    labels = list(classes) if classes is not None else list(range(array.shape[1]))
    picked = np.asarray(labels, dtype=object)[np.argmax(array, axis=1)]
    return [str(v) for v in picked]


# ------------------------------------------------------------------ reference profiles


def build_reference_profile(
    holdout: pl.DataFrame,
    spec: FeatureSpec,
    output: np.ndarray,
    *,
    task: str,
    classes: list[Any] | None,
    meta: dict[str, Any],
) -> ReferenceProfile:
    import polars as pl

    from engine.monitoring.drift import build_profile

    pred = output_for_profile(output, task, classes)
    prediction = pl.Series("prediction", pred)
    return build_profile(
        holdout,
        numeric=list(spec.numeric),
        categorical=list(spec.categorical),
        prediction=prediction,
        meta=meta,
    )


def store_reference_profile(project: Project, version: int, profile: ReferenceProfile) -> None:
    project.catalog.execute(
        "INSERT INTO reference_profiles VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
        [version, profile.fingerprint, profile.to_json(), utcnow()],
    )


def load_reference_profile(project: Project, version: int) -> ReferenceProfile | None:
    from engine.monitoring.drift import ReferenceProfile

    row = project.catalog.row(
        "SELECT profile_json FROM reference_profiles WHERE model_version = ?", [version]
    )
    return None if row is None else ReferenceProfile.from_json(row["profile_json"])


def record_reference_profile(
    project: Project,
    version: int,
    holdout: pl.DataFrame,
    spec: FeatureSpec,
    output: np.ndarray,
    *,
    task: str,
    classes: list[Any] | None,
    dataset_id: int,
    events: EventSink = ignore_events,
) -> bool:
    """Profile and store a newly registered version's reference; never raises.

    A failure is recorded as a failed ``profile`` stage run (and a failed event):
    the version stays registered, only its drift monitoring is unavailable.
    """
    events(StageStarted("profile", f"v{version}"))
    try:
        with stage_run(
            project.catalog, "profile", {"version": version, "dataset_id": dataset_id}
        ) as run:
            profile = build_reference_profile(
                holdout,
                spec,
                output,
                task=task,
                classes=classes,
                meta={
                    "model_version": version,
                    "dataset_id": dataset_id,
                    "feature_hash": spec.hash,
                    "rows": "holdout",
                },
            )
            store_reference_profile(project, version, profile)
            run.outputs = {"fingerprint": profile.fingerprint, "rows": profile.n_rows}
    except Exception as exc:  # recorded above; registration must go on
        message = exc.msg if isinstance(exc, MldeckError) else f"{type(exc).__name__}: {exc}"
        events(StageFinished("profile", f"v{version}", "failed", message))
        return False
    events(StageFinished("profile", f"v{version}", "succeeded", f"{profile.n_rows} rows"))
    return True


# ------------------------------------------------------------------ verdicts


def drift_verdict(
    settings: DriftSettings, profile: ReferenceProfile, summary: WindowSummary
) -> DriftReport:
    """Compare a window with its profile under the project's ``[drift]`` thresholds.

    Per-feature overrides for columns the profile lacks (an ignored column, a
    feature of another version) do not apply and are left out.
    """
    from engine.monitoring.drift import PREDICTION, Thresholds, compare

    names = {*profile.columns, PREDICTION}
    return compare(
        profile,
        summary,
        thresholds=Thresholds().override(settings.thresholds),
        per_feature={
            name: settings.for_feature(name) for name in settings.features if name in names
        },
        dataset_share=settings.dataset_share,
    )


# ------------------------------------------------------------------ batch windows


def _read_snapshot(project: Project, snapshot_hash: str) -> pl.DataFrame:
    import polars as pl

    try:
        path = project.objects.verified_path(snapshot_hash)
    except StorageError as exc:
        raise as_mldeck_error(exc) from exc
    return pl.read_parquet(path)


def store_drift_window(
    catalog: Catalog,
    champion: int,
    source: str,
    batch_id: int | None,
    start: datetime,
    end: datetime,
    summary: WindowSummary,
    report: DriftReport,
    report_dict: dict[str, Any],
) -> int:
    """Record a drift window (its additive summary, so merged windows are cheap); its id."""
    return int(
        catalog.scalar(
            "INSERT INTO drift_windows (model_version, source, batch_id, window_start,"
            " window_end, row_count, summary_json, report_json, dataset_drift,"
            " drifted_features, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " RETURNING window_id",
            [
                champion,
                source,
                batch_id,
                start,
                end,
                summary.n_rows,
                summary.to_json(),
                json.dumps(report_dict, sort_keys=True),
                report.dataset_drift,
                len(report.drifted),
                utcnow(),
            ],
        )
    )


def monitor_batch(project: Project, batch_id: int, events: EventSink = ignore_events) -> int | None:
    """Store the drift window of one ingested batch against the champion; its window_id.

    Also keeps the champion's output per row (when the batch has the id column)
    and judges the alert rules on the new window. None (nothing stored) when
    there is no champion, the champion has no reference profile, or the batch
    is not an accepted data batch with a snapshot. Raises on a real failure
    (unreadable snapshot, ...).
    """
    from engine.models.scoring import score_version
    from engine.monitoring.alerts import check_drift
    from engine.monitoring.drift import summarize_window
    from engine.monitoring.performance import refresh_batch_windows, store_scored_rows

    catalog = project.catalog
    champion = alias_version(catalog, CHAMPION)
    if champion is None:
        return None
    profile = load_reference_profile(project, champion)
    if profile is None:
        return None
    batch = catalog.row(
        "SELECT batch_id, kind, status, snapshot_hash, ingested_at FROM batches WHERE batch_id = ?",
        [batch_id],
    )
    if (
        batch is None
        or batch["kind"] != "data"
        or batch["status"] not in ("accepted", "warned")
        or not batch["snapshot_hash"]
    ):
        return None
    frame = _read_snapshot(project, batch["snapshot_hash"])
    version_row = get_version(catalog, champion)
    prediction: Any = None
    prediction_error = None
    output = None
    if profile.prediction is not None and frame.height:
        try:
            output = score_version(project, version_row, frame)
            classes = json.loads(version_row["classes_json"] or "null")
            prediction = output_for_profile(output, version_row["task"], classes)
        except MldeckError as exc:  # e.g. a feature column missing: features still checked
            prediction_error = exc.msg
    summary = summarize_window(profile, frame, prediction=prediction)
    report = drift_verdict(project.config.drift, profile, summary)
    report_dict = report.to_dict()
    if prediction_error is not None:
        report_dict["prediction_error"] = prediction_error
    at = batch["ingested_at"]
    id_column = project.config.id_column
    scored = False
    with catalog.transaction():
        window_id = store_drift_window(
            catalog, champion, "batch", batch_id, at, at, summary, report, report_dict
        )
        if output is not None and id_column is not None and id_column in frame.columns:
            store_scored_rows(project, batch_id, version_row, frame.get_column(id_column), output)
            scored = True
    check_drift(
        project,
        report_dict,
        model_version=champion,
        window_kind="batch",
        window_ref=f"batch {batch_id}",
        events=events,
    )
    if scored:  # labels may have arrived before the batch
        refresh_batch_windows(project, [batch_id], events)
    return window_id


def monitor_batch_recorded(
    project: Project, batch_id: int, events: EventSink = ignore_events
) -> int | None:
    """monitor_batch inside a ``monitor`` stage run; a failure is recorded, never raised
    (the batch itself is ingested either way)."""
    catalog = project.catalog
    champion = alias_version(catalog, CHAMPION)
    if (
        champion is None
        or catalog.row("SELECT 1 AS x FROM reference_profiles WHERE model_version = ?", [champion])
        is None
    ):
        return None
    events(StageStarted("monitor", f"batch {batch_id}"))
    try:
        with stage_run(
            catalog, "monitor", {"batch_id": batch_id, "model_version": champion}
        ) as run:
            window_id = monitor_batch(project, batch_id, events)
            run.outputs = {"window_id": window_id}
    except Exception as exc:
        message = exc.msg if isinstance(exc, MldeckError) else f"{type(exc).__name__}: {exc}"
        events(StageFinished("monitor", f"batch {batch_id}", "failed", message))
        return None
    events(StageFinished("monitor", f"batch {batch_id}", "succeeded", f"window {window_id}"))
    return window_id


# ------------------------------------------------------------------ reading windows

_WINDOW_COLUMNS = (
    "window_id, model_version, source, batch_id, window_start, window_end, row_count,"
    " summary_json, report_json, created_at"
)


def _single(row: dict[str, Any]) -> DriftWindow:
    return DriftWindow(
        model_version=int(row["model_version"]),
        source=str(row["source"]),
        window_ids=[int(row["window_id"])],
        batch_ids=[] if row["batch_id"] is None else [int(row["batch_id"])],
        window_start=row["window_start"],
        window_end=row["window_end"],
        row_count=int(row["row_count"]),
        report=json.loads(row["report_json"]),
    )


def latest_window(project: Project, source: str = "batch") -> DriftWindow | None:
    row = project.catalog.row(
        f"SELECT {_WINDOW_COLUMNS} FROM drift_windows WHERE source = ? "
        "ORDER BY window_id DESC LIMIT 1",
        [source],
    )
    return None if row is None else _single(row)


def batch_window(project: Project, batch_id: int) -> DriftWindow | None:
    row = project.catalog.row(
        f"SELECT {_WINDOW_COLUMNS} FROM drift_windows WHERE batch_id = ? "
        "ORDER BY window_id DESC LIMIT 1",
        [batch_id],
    )
    return None if row is None else _single(row)


def merged_window(
    project: Project, span: timedelta | None, source: str = "batch"
) -> DriftWindow | None:
    """The ``source`` windows created in the last ``span`` (None: all), merged (summaries
    are additive), judged under the current ``[drift]`` thresholds.

    Only windows counted against the newest window's profile (same champion and
    reference) are merged; the others are counted in ``skipped``.
    """
    from engine.monitoring.drift import WindowSummary

    since = utcnow() - span if span is not None else datetime.min
    rows = project.catalog.rows(
        f"SELECT {_WINDOW_COLUMNS} FROM drift_windows WHERE created_at >= ? AND source = ? "
        "ORDER BY window_id DESC",
        [since, source],
    )
    if not rows:
        return None
    version = int(rows[0]["model_version"])
    profile = load_reference_profile(project, version)
    if profile is None:
        raise MldeckError(
            f"model version {version} has no stored reference profile", title="No reference"
        )
    merged: WindowSummary | None = None
    used: list[dict[str, Any]] = []
    for row in rows:
        summary = WindowSummary.from_json(row["summary_json"])
        if summary.profile != profile.fingerprint:
            continue
        merged = summary if merged is None else merged.merge(summary)
        used.append(row)
    assert merged is not None  # the newest row was counted against its own version's profile
    report: DriftReport = drift_verdict(project.config.drift, profile, merged)
    return DriftWindow(
        model_version=version,
        source="+".join(sorted({str(r["source"]) for r in used})),
        window_ids=sorted(int(r["window_id"]) for r in used),
        batch_ids=sorted(int(r["batch_id"]) for r in used if r["batch_id"] is not None),
        window_start=min(r["window_start"] for r in used),
        window_end=max(r["window_end"] for r in used),
        row_count=merged.n_rows,
        report=report.to_dict(),
        skipped=len(rows) - len(used),
    )
