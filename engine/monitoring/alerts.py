"""Alerts: the rules of ``[alerts]`` in mldeck.toml, judged on each new monitoring window.

The functions that create windows call the ``check_*`` function of their kind
right after storing the window:

* a drift window of a data batch (``window_kind = 'batch'``) or of the served
  prediction log (``'log'``): rule ``drift`` (at least ``drifted_features``
  features in alert, or the dataset verdict when that is not set) and rule
  ``prediction_drift`` (the model's output drifts);
* a live performance window once labels arrive (``'labels'``): rules
  ``performance_min`` / ``performance_max`` (a floor or ceiling crossed) and
  ``performance_drop`` (worse than the holdout figure by more than allowed),
  judged only from ``min_labelled`` labelled rows;
* a serving window of the prediction log (``'serving'``): rules ``error_rate``
  and ``p99_latency``.

A rule fires at most once per window (rule, window kind, window reference,
model version): a performance window that is re-judged as more labels arrive
does not raise the same alert twice. Each alert is stored with its evidence
and raised as an :class:`engine.core.events.AlertRaised` event.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final, cast

from engine.core.answers import AlertAnswer, AlertSeverity, AlertWindowKind, ServingWindowStats
from engine.core.config import LOWER_IS_BETTER, AlertRules
from engine.core.errors import NotFoundError
from engine.core.events import AlertRaised, EventSink, ignore_events
from engine.core.project import Project
from storage.catalog import Catalog, utcnow

WARN: Final = "warn"
ALERT: Final = "alert"
OPEN: Final = "open"
ACKNOWLEDGED: Final = "acknowledged"

_COLUMNS = (
    "alert_id, raised_at, rule, severity, model_version, window_kind, window_ref, message,"
    " evidence_json, status"
)


def list_alerts(
    catalog: Catalog, *, since_id: int | None = None, status: str | None = None
) -> list[AlertAnswer]:
    """Stored alerts, oldest first; ``since_id``: only those after it; ``status``: open | acknowledged."""
    where: list[str] = []
    params: list[Any] = []
    if since_id is not None:
        where.append("alert_id > ?")
        params.append(since_id)
    if status is not None:
        where.append("status = ?")
        params.append(status)
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    rows = catalog.rows(f"SELECT {_COLUMNS} FROM alerts{clause} ORDER BY alert_id", params)
    for row in rows:
        row["evidence"] = json.loads(row.pop("evidence_json"))
    return cast("list[AlertAnswer]", rows)  # catalog rows: raised_at a datetime until jsonable


def acknowledge_alert(catalog: Catalog, alert_id: int) -> None:
    """Mark an alert as seen: it leaves the default `mldeck alerts` list."""
    if catalog.row("SELECT 1 AS x FROM alerts WHERE alert_id = ?", [alert_id]) is None:
        raise NotFoundError(f"no alert {alert_id}")
    catalog.execute("UPDATE alerts SET status = ? WHERE alert_id = ?", [ACKNOWLEDGED, alert_id])


def raise_alert(
    project: Project,
    *,
    rule: str,
    severity: AlertSeverity,
    model_version: int | None,
    window_kind: AlertWindowKind,
    window_ref: str,
    message: str,
    evidence: Mapping[str, Any],
    events: EventSink = ignore_events,
) -> int | None:
    """Store an alert and send its event; None when this rule already fired for this window."""
    catalog = project.catalog
    seen = catalog.row(
        "SELECT alert_id FROM alerts WHERE rule = ? AND window_kind = ? AND window_ref = ?"
        " AND model_version IS NOT DISTINCT FROM ?",
        [rule, window_kind, window_ref, model_version],
    )
    if seen is not None:
        return None
    alert_id = int(
        catalog.scalar(
            "INSERT INTO alerts (raised_at, rule, severity, model_version, window_kind,"
            " window_ref, message, evidence_json, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " RETURNING alert_id",
            [
                utcnow(),
                rule,
                severity,
                model_version,
                window_kind,
                window_ref,
                message,
                json.dumps(evidence, sort_keys=True, default=str),
                OPEN,
            ],
        )
    )
    events(AlertRaised(alert_id, rule, severity, model_version, message))
    return alert_id


# ------------------------------------------------------------------ drift


def check_drift(
    project: Project,
    report: dict[str, Any],
    *,
    model_version: int,
    window_kind: AlertWindowKind,
    window_ref: str,
    events: EventSink = ignore_events,
) -> list[int]:
    """Rules ``drift`` and ``prediction_drift`` on a stored drift report (DriftReport.to_dict())."""
    rules: AlertRules = project.config.alerts
    raised: list[int] = []
    drifted = list(report.get("drifted") or [])
    if rules.drifted_features is not None:
        fires = len(drifted) >= rules.drifted_features
        why = f"{len(drifted)} features in drift alert (rule: >= {rules.drifted_features})"
    else:
        fires = bool(report.get("dataset_drift"))
        share = report.get("share_drifted") or 0.0
        why = (
            f"dataset drift: {len(drifted)} features in alert, {share:.0%} of those with data "
            f"(>= {report.get('dataset_share', 0):.0%})"
        )
    if fires:
        scores = {
            f["feature"]: {"method": f["method"], "score": f["score"], "p_value": f["p_value"]}
            for f in report.get("features", [])
            if f["feature"] in drifted
        }
        alert_id = raise_alert(
            project,
            rule="drift",
            severity=ALERT,
            model_version=model_version,
            window_kind=window_kind,
            window_ref=window_ref,
            message=f"{window_ref}: {why}: {', '.join(drifted)}",
            evidence={"drifted": drifted, "scores": scores, "n_current": report.get("n_current")},
            events=events,
        )
        if alert_id is not None:
            raised.append(alert_id)
    pred = report.get("prediction")
    if rules.prediction_drift and pred is not None and pred["status"] == "alert":
        alert_id = raise_alert(
            project,
            rule="prediction_drift",
            severity=WARN,
            model_version=model_version,
            window_kind=window_kind,
            window_ref=window_ref,
            message=(
                f"{window_ref}: the model's output drifted ({pred['method']} "
                f"{pred['score']:.3g} vs threshold {pred['threshold']})"
            ),
            evidence={k: pred.get(k) for k in ("method", "score", "p_value", "threshold")},
            events=events,
        )
        if alert_id is not None:
            raised.append(alert_id)
    return raised


# ------------------------------------------------------------------ live performance


def check_performance(
    project: Project,
    window: dict[str, Any],
    events: EventSink = ignore_events,
) -> list[int]:
    """Rules ``performance_min`` / ``performance_max`` / ``performance_drop`` on a performance
    window (a row of engine.monitoring.performance.performance_windows)."""
    rules: AlertRules = project.config.alerts
    if window["n_labelled"] < rules.min_labelled:
        return []
    metrics: dict[str, float | None] = window["metrics"]
    holdout: dict[str, float | None] = window["holdout"]
    ref = window["window_ref"]
    version = window["model_version"]
    found: dict[str, list[dict[str, Any]]] = {
        "performance_min": [],
        "performance_max": [],
        "performance_drop": [],
    }
    for metric, bound in rules.min.items():
        value = metrics.get(metric)
        if value is not None and value < bound:
            found["performance_min"].append({"metric": metric, "value": value, "min": bound})
    for metric, bound in rules.max.items():
        value = metrics.get(metric)
        if value is not None and value > bound:
            found["performance_max"].append({"metric": metric, "value": value, "max": bound})
    for metric, allowed in rules.max_drop.items():
        value, base = metrics.get(metric), holdout.get(metric)
        if value is None or base is None:
            continue
        drop = (value - base) if metric in LOWER_IS_BETTER else (base - value)
        if drop > allowed:
            found["performance_drop"].append(
                {
                    "metric": metric,
                    "value": value,
                    "holdout": base,
                    "drop": drop,
                    "max_drop": allowed,
                }
            )
    raised = []
    for rule, breaches in found.items():
        if not breaches:
            continue
        parts = []
        for b in breaches:
            if rule == "performance_drop":
                parts.append(
                    f"{b['metric']} {b['value']:.4f}, down {b['drop']:.4f} from the holdout's "
                    f"{b['holdout']:.4f} (allowed {b['max_drop']})"
                )
            else:
                bound = b["min"] if rule == "performance_min" else b["max"]
                side = "below the floor" if rule == "performance_min" else "above the ceiling"
                parts.append(f"{b['metric']} {b['value']:.4f} {side} {bound}")
        alert_id = raise_alert(
            project,
            rule=rule,
            severity=ALERT,
            model_version=version,
            window_kind="labels",
            window_ref=ref,
            message=f"{ref}, {window['n_labelled']} labelled rows: {'; '.join(parts)}",
            evidence={"breaches": breaches, "n_labelled": window["n_labelled"]},
            events=events,
        )
        if alert_id is not None:
            raised.append(alert_id)
    return raised


# ------------------------------------------------------------------ serving


def check_serving(
    project: Project,
    stats: ServingWindowStats,
    *,
    window_ref: str,
    events: EventSink = ignore_events,
) -> list[int]:
    """Rules ``error_rate`` and ``p99_latency`` on a serving window's statistics
    (engine.monitoring.log_monitor.serving_stats)."""
    rules: AlertRules = project.config.alerts
    raised = []
    version = stats.get("model_version")
    rate = stats.get("error_rate")
    if rules.max_error_rate is not None and rate is not None and rate > rules.max_error_rate:
        alert_id = raise_alert(
            project,
            rule="error_rate",
            severity=ALERT,
            model_version=version,
            window_kind="serving",
            window_ref=window_ref,
            message=(
                f"{window_ref}: {stats['errors']} of {stats['requests']} scoring requests failed "
                f"({rate:.1%} > {rules.max_error_rate:.1%})"
            ),
            evidence=stats,
            events=events,
        )
        if alert_id is not None:
            raised.append(alert_id)
    p99 = stats.get("p99_latency_ms")
    if rules.max_p99_latency_ms is not None and p99 is not None and p99 > rules.max_p99_latency_ms:
        alert_id = raise_alert(
            project,
            rule="p99_latency",
            severity=ALERT,
            model_version=version,
            window_kind="serving",
            window_ref=window_ref,
            message=(
                f"{window_ref}: p99 scoring latency {p99:.1f} ms > {rules.max_p99_latency_ms} ms"
            ),
            evidence=stats,
            events=events,
        )
        if alert_id is not None:
            raised.append(alert_id)
    return raised
