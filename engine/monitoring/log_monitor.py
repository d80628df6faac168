"""Stage 8 over the served prediction log: drift windows and serving windows of a time span.

``monitor_log(project, span)`` looks at the champion's non-shadow rows of the
``predictions`` table served in the last ``span`` and stores:

* a drift window (``drift_windows.source = 'log'``): the rows' logged inputs
  (``inputs_json``, the model's feed) are unpacked into typed columns by DuckDB
  (``json_transform`` with the reference profile's columns) and the model's
  logged output into the profiled prediction, then summarised and judged
  exactly like a batch (engine.monitoring.drift, whole columns, no Python loop over rows);
* serving statistics of the same span: scoring requests, failed ones (from
  ``serving_errors``), the error rate and the p99 latency.

The alert rules are judged on both right away (engine.monitoring.alerts). Log windows are
computed on demand (``mldeck drift --source log --window 1h``, or an engine's
schedule); unlike batch windows they may overlap, so they are never merged.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from engine.core.answers import ServingWindowStats
from engine.core.events import EventSink, ignore_events
from engine.core.project import Project
from engine.monitoring.monitor import (
    DriftWindow,
    drift_verdict,
    load_reference_profile,
    store_drift_window,
)
from engine.records.registry import CHAMPION, alias_version, get_version
from storage.catalog import utcnow
from storage.sql import quote_ident, quote_literal


@dataclass
class LogMonitorResult:
    window_ref: str
    model_version: int | None
    window: DriftWindow | None
    """The stored drift window; None when the champion served no rows in the span."""
    serving: ServingWindowStats | None
    """Serving statistics of the span; None when nothing was scored."""
    alerts: list[int] = field(default_factory=list)


def window_ref_for(start: datetime, end: datetime) -> str:
    return f"log {start.isoformat(timespec='minutes')}/{end.isoformat(timespec='minutes')}"


def _prediction_sql(task: str, classes: list[Any] | None) -> str:
    """The profiled model output (engine.monitoring.monitor.output_for_profile) from output_json."""
    if task != "classification":
        return "CAST(json_extract(output_json, '$.prediction') AS DOUBLE)"
    if classes is not None and len(classes) == 2:
        return "CAST(json_extract(output_json, '$.probabilities[1]') AS DOUBLE)"
    return "json_extract_string(output_json, '$.label')"


def log_window_frame(project: Project, version: int, start: datetime, end: datetime) -> Any:
    """The version's non-shadow logged rows served in [start, end) as a polars frame:
    one typed column per profiled feature, plus ``__prediction__``."""
    from engine.monitoring.drift import NUMERIC, PREDICTION

    profile = load_reference_profile(project, version)
    assert profile is not None
    row = get_version(project.catalog, version)
    classes = json.loads(row["classes_json"] or "null")
    shape = {
        name: "DOUBLE" if col.kind == NUMERIC else "VARCHAR"
        for name, col in profile.columns.items()
    }
    columns_sql = ", ".join(f"j.{quote_ident(name)}" for name in profile.columns)
    # The structure is a literal: json_transform needs it constant to type its result.
    relation = project.catalog.conn.sql(
        f"SELECT {columns_sql}, p AS {quote_ident(PREDICTION)} FROM (SELECT json_transform("
        f"inputs_json, {quote_literal(json.dumps(shape))}) AS j, {_prediction_sql(row['task'], classes)} AS p"
        " FROM predictions WHERE NOT shadow AND model_version = $v AND served_at >= $start"
        " AND served_at < $end) AS logged",
        params={"v": version, "start": start, "end": end},
    )
    return relation.pl()


def serving_stats(
    project: Project, version: int | None, start: datetime, end: datetime
) -> ServingWindowStats:
    """Scoring requests, failures, error rate and p99 latency in [start, end)."""
    catalog = project.catalog
    served = catalog.row(
        "SELECT count(*) AS requests, quantile_cont(latency_ms, 0.99) AS p99,"
        " quantile_cont(latency_ms, 0.5) AS p50 FROM (SELECT request_id,"
        " any_value(latency_ms) AS latency_ms FROM predictions WHERE NOT shadow"
        " AND served_at >= ? AND served_at < ? GROUP BY request_id)",
        [start, end],
    )
    assert served is not None
    errors = int(
        catalog.scalar(
            "SELECT coalesce(sum(requests), 0) FROM serving_errors"
            " WHERE served_at >= ? AND served_at < ?",
            [start, end],
        )
    )
    requests = int(served["requests"]) + errors
    return {
        "model_version": version,
        "window_start": start,
        "window_end": end,
        "requests": requests,
        "errors": errors,
        "error_rate": errors / requests if requests else None,
        "p50_latency_ms": served["p50"],
        "p99_latency_ms": served["p99"],
    }


def monitor_log(
    project: Project,
    span: timedelta,
    *,
    end: datetime | None = None,
    events: EventSink = ignore_events,
) -> LogMonitorResult:
    """Store the drift window of the champion's served rows in the last ``span`` and judge
    the drift and serving alert rules on it."""
    from engine.monitoring.alerts import check_drift, check_serving
    from engine.monitoring.drift import PREDICTION, summarize_window

    end = end or utcnow()
    start = end - span
    ref = window_ref_for(start, end)
    catalog = project.catalog
    champion = alias_version(catalog, CHAMPION)
    result = LogMonitorResult(ref, champion, None, None)
    stats = serving_stats(project, champion, start, end)
    if stats["requests"]:
        result.serving = stats
        result.alerts += check_serving(project, stats, window_ref=ref, events=events)
    if champion is None:
        return result
    profile = load_reference_profile(project, champion)
    if profile is None:
        return result
    frame = log_window_frame(project, champion, start, end)
    if frame.height == 0:
        return result
    prediction = frame.get_column(PREDICTION) if profile.prediction is not None else None
    summary = summarize_window(profile, frame.drop(PREDICTION), prediction=prediction)
    report = drift_verdict(project.config.drift, profile, summary)
    report_dict = report.to_dict()
    window_id = store_drift_window(
        catalog, champion, "log", None, start, end, summary, report, report_dict
    )
    result.window = DriftWindow(
        model_version=champion,
        source="log",
        window_ids=[window_id],
        batch_ids=[],
        window_start=start,
        window_end=end,
        row_count=summary.n_rows,
        report=report_dict,
    )
    result.alerts += check_drift(
        project,
        report_dict,
        model_version=champion,
        window_kind="log",
        window_ref=ref,
        events=events,
    )
    return result
