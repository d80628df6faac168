"""Stage 8, live performance: delayed labels joined by id to what the champion predicted.

Two kinds of predictions can be labelled:

* rows of a monitored data batch: ``monitor_batch`` stores the champion's
  output per row, keyed by the id column, in ``scored_rows``
  (``store_scored_rows``); one performance window per (batch, version),
  ``window_ref = 'batch N'``;
* served predictions whose request carried the id column (it is logged in
  ``inputs_json``): one window per UTC day and version, ``'log YYYY-MM-DD'``.

Labels live in ``labels`` (engine.data.labels); when an id is labelled twice, the
later labels file wins. A window is (re)computed whenever labels arrive for
its rows, or rows arrive for labels already there, and the alert rules are
judged on it right away (engine.monitoring.alerts.check_performance). Joins and the
extraction of ids and outputs from the log's JSON run in DuckDB over whole
columns; the metrics are engine.models.evaluate's, so live figures are comparable
with the holdout figures the version was registered with.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from engine.core.answers import PerformanceWindow
from engine.core.events import EventSink, ignore_events
from engine.core.project import Project
from engine.data.labels import LATEST_LABELS, label_text
from engine.records.registry import version_metrics
from storage.catalog import utcnow
from storage.sql import quote_literal

if TYPE_CHECKING:
    import numpy as np
    import polars as pl


def _json_path(column: str) -> str:
    return '$."' + column.replace('"', '\\"') + '"'


# ------------------------------------------------------------------ storing batch scores


def store_scored_rows(
    project: Project,
    batch_id: int,
    version_row: dict[str, Any],
    ids: pl.Series,
    output: np.ndarray,
) -> int:
    """Keep the champion's output for each row of a monitored batch, keyed by id; rows stored."""
    import numpy as np
    import polars as pl

    task = version_row["task"]
    frame = pl.DataFrame(
        {
            "batch_id": pl.Series([batch_id] * len(ids), dtype=pl.Int64),
            "model_version": pl.Series([int(version_row["version"])] * len(ids), dtype=pl.Int64),
            "row_id": ids.cast(pl.String),
        }
    )
    if task == "classification":
        classes = [label_text(c) for c in json.loads(version_row["classes_json"])]
        proba = np.asarray(output, dtype=np.float64)
        frame = frame.with_columns(
            predicted=pl.Series(np.asarray(classes, dtype=object)[proba.argmax(axis=1)].tolist()),
            score=pl.lit(None, dtype=pl.Float64),
            probabilities=pl.Series(proba, dtype=pl.Array(pl.Float64, proba.shape[1])).cast(
                pl.List(pl.Float64)
            ),
        )
    else:
        frame = frame.with_columns(
            predicted=pl.lit(None, dtype=pl.String),
            score=pl.Series(np.asarray(output, dtype=np.float64).reshape(-1)),
            probabilities=pl.lit(None, dtype=pl.List(pl.Float64)),
        )
    frame = frame.filter(pl.col("row_id").is_not_null())
    conn = project.catalog.conn
    conn.register("mldeck_scored_rows", frame.to_arrow())
    try:
        project.catalog.execute(
            "INSERT INTO scored_rows SELECT batch_id, model_version, row_id, predicted, score,"
            " probabilities FROM mldeck_scored_rows"
        )
    finally:
        conn.unregister("mldeck_scored_rows")
    return frame.height


# ------------------------------------------------------------------ metrics


def live_metrics(
    task: str, classes: list[Any] | None, labels: list[str], output: np.ndarray
) -> dict[str, float | None]:
    """engine.models.evaluate's metrics on labelled rows; labels as text, output as stored."""
    import numpy as np

    from engine.models.evaluate import classification_metrics, regression_metrics

    if not labels:
        return {}
    if task == "classification":
        assert classes is not None
        y = np.asarray(labels, dtype=object)
        return classification_metrics(y, output, [label_text(c) for c in classes])
    y_num = np.asarray([float(v) for v in labels], dtype=np.float64)
    return regression_metrics(y_num, output)


def _store_window(
    project: Project,
    *,
    source: str,
    window_ref: str,
    version: int,
    start: datetime,
    end: datetime,
    n_rows: int,
    n_labelled: int,
    metrics: dict[str, float | None],
    events: EventSink,
) -> dict[str, Any]:
    from engine.monitoring.alerts import check_performance

    catalog = project.catalog
    holdout = version_metrics(catalog, version)
    now = utcnow()
    with catalog.transaction():
        catalog.execute(
            "DELETE FROM performance_windows WHERE source = ? AND window_ref = ? AND model_version = ?",
            [source, window_ref, version],
        )
        catalog.execute(
            "INSERT INTO performance_windows (source, window_ref, model_version, window_start,"
            " window_end, n_rows, n_labelled, metrics_json, holdout_json, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                source,
                window_ref,
                version,
                start,
                end,
                n_rows,
                n_labelled,
                json.dumps(metrics),
                json.dumps(holdout),
                now,
            ],
        )
    window = {
        "source": source,
        "window_ref": window_ref,
        "model_version": version,
        "window_start": start,
        "window_end": end,
        "n_rows": n_rows,
        "n_labelled": n_labelled,
        "metrics": metrics,
        "holdout": holdout,
        "updated_at": now,
    }
    check_performance(project, window, events)
    return window


def _version_info(project: Project, version: int) -> tuple[str, list[Any] | None]:
    row = project.catalog.row(
        "SELECT task, classes_json FROM model_versions WHERE version = ?", [version]
    )
    assert row is not None
    return str(row["task"]), json.loads(row["classes_json"] or "null")


# ------------------------------------------------------------------ batch windows


def refresh_batch_windows(
    project: Project, batch_ids: list[int], events: EventSink = ignore_events
) -> list[dict[str, Any]]:
    """Recompute the performance window of each (batch, version) among ``batch_ids``."""
    if not batch_ids:
        return []
    catalog = project.catalog
    placeholders = ", ".join("?" for _ in batch_ids)
    groups = catalog.rows(
        "SELECT s.batch_id, s.model_version, count(*) AS n_rows, any_value(b.ingested_at) AS at"
        f" FROM scored_rows s JOIN batches b USING (batch_id) WHERE s.batch_id IN ({placeholders})"
        " GROUP BY s.batch_id, s.model_version ORDER BY s.batch_id, s.model_version",
        batch_ids,
    )
    windows = []
    for group in groups:
        batch_id, version = int(group["batch_id"]), int(group["model_version"])
        labelled = catalog.conn.execute(
            f"SELECT l.label, s.score, s.probabilities FROM scored_rows s"
            f" JOIN ({LATEST_LABELS}) l USING (row_id)"
            " WHERE s.batch_id = ? AND s.model_version = ?",
            [batch_id, version],
        ).fetchnumpy()
        window = _labelled_window(
            project,
            labelled,
            source="batch",
            window_ref=f"batch {batch_id}",
            version=version,
            start=group["at"],
            end=group["at"],
            n_rows=int(group["n_rows"]),
            events=events,
        )
        if window is not None:
            windows.append(window)
    return windows


def _labelled_window(
    project: Project,
    labelled: dict[str, Any],
    *,
    source: str,
    window_ref: str,
    version: int,
    start: Any,
    end: Any,
    n_rows: int,
    events: EventSink,
) -> dict[str, Any] | None:
    """Store the window's live metrics from its labelled rows (label, score, probabilities);
    None when none of its rows is labelled yet."""
    labels = [str(v) for v in labelled["label"]]
    if not labels:
        return None
    task, classes = _version_info(project, version)
    output = _output(task, labelled.get("score"), labelled.get("probabilities"))
    return _store_window(
        project,
        source=source,
        window_ref=window_ref,
        version=version,
        start=start,
        end=end,
        n_rows=n_rows,
        n_labelled=len(labels),
        metrics=live_metrics(task, classes, labels, output),
        events=events,
    )


def _output(task: str, score: Any, probabilities: Any) -> np.ndarray:
    import numpy as np

    if task == "classification":
        return np.asarray([np.asarray(p, dtype=np.float64) for p in probabilities])
    return np.asarray(score, dtype=np.float64)


# ------------------------------------------------------------------ served predictions


def _log_rows_sql(id_column: str) -> str:
    """Non-shadow logged predictions that carry an id, with their day and output."""
    path = _json_path(id_column)
    return (
        "SELECT CAST(served_at AS DATE) AS day, served_at, model_version,"
        f" json_extract_string(inputs_json, {quote_literal(path)}) AS row_id,"
        " json_extract_string(output_json, '$.label') AS predicted,"
        " CAST(json_extract(output_json, '$.probabilities') AS DOUBLE[]) AS probabilities,"
        " CAST(json_extract(output_json, '$.prediction') AS DOUBLE) AS score"
        " FROM predictions WHERE NOT shadow"
    )


def refresh_log_windows(
    project: Project, days: list[Any], events: EventSink = ignore_events
) -> list[dict[str, Any]]:
    """Recompute the performance window of each (UTC day, version) of the served log in ``days``."""
    id_column = project.config.id_column
    if id_column is None or not days:
        return []
    catalog = project.catalog
    placeholders = ", ".join("?" for _ in days)
    base = f"SELECT * FROM ({_log_rows_sql(id_column)}) WHERE row_id IS NOT NULL AND day IN ({placeholders})"
    groups = catalog.rows(
        f"SELECT day, model_version, count(*) AS n_rows, min(served_at) AS start,"
        f" max(served_at) AS end FROM ({base}) GROUP BY day, model_version ORDER BY day, model_version",
        days,
    )
    windows = []
    for group in groups:
        version = int(group["model_version"])
        labelled = catalog.conn.execute(
            f"SELECT l.label, r.score, r.probabilities FROM ({base}) r"
            f" JOIN ({LATEST_LABELS}) l USING (row_id) WHERE r.day = ? AND r.model_version = ?",
            [*days, group["day"], version],
        ).fetchnumpy()
        window = _labelled_window(
            project,
            labelled,
            source="log",
            window_ref=f"log {group['day']}",
            version=version,
            start=group["start"],
            end=group["end"],
            n_rows=int(group["n_rows"]),
            events=events,
        )
        if window is not None:
            windows.append(window)
    return windows


def refresh_for_labels(
    project: Project, labels_batch_id: int, events: EventSink = ignore_events
) -> list[dict[str, Any]]:
    """The performance windows touched by a newly ingested labels file, recomputed."""
    catalog = project.catalog
    batch_ids = [
        int(r["batch_id"])
        for r in catalog.rows(
            "SELECT DISTINCT batch_id FROM scored_rows WHERE row_id IN"
            " (SELECT row_id FROM labels WHERE batch_id = ?) ORDER BY batch_id",
            [labels_batch_id],
        )
    ]
    windows = refresh_batch_windows(project, batch_ids, events)
    id_column = project.config.id_column
    if id_column is not None:
        days = [
            r["day"]
            for r in catalog.rows(
                f"SELECT DISTINCT day FROM ({_log_rows_sql(id_column)}) WHERE row_id IN"
                " (SELECT row_id FROM labels WHERE batch_id = ?) ORDER BY day",
                [labels_batch_id],
            )
        ]
        windows += refresh_log_windows(project, days, events)
    return windows


# ------------------------------------------------------------------ reading


def performance_windows(project: Project) -> list[PerformanceWindow]:
    """Every live performance window, oldest first: window_ref, model_version, n_labelled,
    metrics (live) and holdout (as registered), with source, n_rows and the time span."""
    rows = project.catalog.rows(
        "SELECT source, window_ref, model_version, window_start, window_end, n_rows, n_labelled,"
        " metrics_json, holdout_json, updated_at FROM performance_windows"
        " ORDER BY window_start, window_id"
    )
    for row in rows:
        row["metrics"] = json.loads(row.pop("metrics_json"))
        row["holdout"] = json.loads(row.pop("holdout_json"))
    return cast("list[PerformanceWindow]", rows)  # catalog rows: datetimes until jsonable
