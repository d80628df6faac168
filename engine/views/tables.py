"""Read-only views of a project for the UI: batches, stage lanes, lineage, drift history,
serving figures, as JSON-ready dicts.

Every function takes an open project and returns plain dicts and lists with
times as ISO 8601 strings (UTC), so the answer reads the same whether it was
built in this process (`engine.service.client.LocalEngine`) or came over the control API
of the engine that owns the project (`engine.service.client.RemoteEngine`).
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import TYPE_CHECKING, Any, cast

from engine.core.answers import (
    AliasMove,
    BatchIssue,
    BatchRow,
    DriftHistogramAnswer,
    DriftHistoryFeature,
    DriftHistoryWindow,
    LineageSummaryAnswer,
    QuarantinedBatch,
    QueuedRun,
    ServingStatsAnswer,
    StageLane,
    StageLanesAnswer,
)
from engine.core.errors import NotFoundError
from engine.core.jsonable import iso, iso_rows
from engine.core.project import Project
from engine.records.registry import CHAMPION, alias_version, get_version, version_metrics
from storage.catalog import utcnow

if TYPE_CHECKING:
    from engine.monitoring.drift import ColumnCounts, ColumnProfile

STAGES = (
    "ingest",
    "validate",
    "prepare",
    "train",
    "evaluate",
    "register",
    "deploy",
    "monitor",
    "retrain",
)
"""The nine stages, in pipeline order (DESIGN.md)."""

_LANE_OF_RUN = {"profile": "monitor", "revalidate": "validate"}
"""Stage runs recorded under another name than their lane: the reference profile
stored at registration is the monitor stage's first step; re-validating a
quarantined file is a validation."""

PREDICTION = "prediction"
"""The model output's name in drift views (engine.monitoring.drift reports it as its own PREDICTION)."""


# ------------------------------------------------------------------ data


def batches(project: Project, limit: int = 200) -> list[BatchRow]:
    """The newest `limit` batches, newest first, with their issue counts. The UI's table
    shows these; more rows made each switch to the Data screen slower (bench/ui_start.py),
    and `mldeck status` / the catalog hold the counts of all of them."""
    rows = iso_rows(
        project.catalog.rows(
            "SELECT b.batch_id, b.kind, b.source_name, b.content_hash, b.size_bytes, b.format,"
            " b.status, b.duplicate_of, b.row_count, b.labelled, b.ingested_at, b.revalidated_from,"
            " count(i.code) FILTER (WHERE i.severity = 'error') AS errors,"
            " count(i.code) FILTER (WHERE i.severity = 'warning') AS warnings"
            " FROM batches b LEFT JOIN validation_issues i USING (batch_id)"
            " GROUP BY ALL ORDER BY b.batch_id DESC LIMIT ?",
            [limit],
        )
    )
    return cast("list[BatchRow]", rows)


def batch_issues(project: Project, batch_id: int) -> list[BatchIssue]:
    """The validation issues of one batch, errors first."""
    if project.catalog.row("SELECT 1 AS x FROM batches WHERE batch_id = ?", [batch_id]) is None:
        raise NotFoundError(f"no batch {batch_id}")
    rows = project.catalog.rows(
        "SELECT severity, column_name, code, message FROM validation_issues WHERE batch_id = ?"
        " ORDER BY severity = 'error' DESC, column_name NULLS FIRST, code",
        [batch_id],
    )
    return cast("list[BatchIssue]", rows)


def quarantined(project: Project) -> list[QuarantinedBatch]:
    """Quarantined batches with every reason and where the file is kept."""
    rows = iso_rows(
        project.catalog.rows(
            "SELECT b.batch_id, b.kind, b.source_name, b.content_hash, b.quarantine_path,"
            " b.ingested_at,"
            " (SELECT string_agg(message, '; ') FROM validation_issues i"
            "  WHERE i.batch_id = b.batch_id AND severity = 'error') AS reason"
            " FROM batches b WHERE status = 'quarantined' ORDER BY batch_id"
        )
    )
    return cast("list[QuarantinedBatch]", rows)


# ------------------------------------------------------------------ pipeline


_NOT_SUMMARISED = {"duration_s", "onnx", "snapshot", "fingerprint", "pid"}
"""Outputs left out of a lane's line: timings (the lane shows the run's), object hashes and
the process that trained."""


def _output_summary(outputs_json: str | None) -> str:
    """A short line of what a run produced ("batch_id=3 rows=1447 ...")."""
    try:
        outputs = json.loads(outputs_json or "{}")
    except ValueError:
        return ""
    if not isinstance(outputs, dict):
        return str(outputs)
    parts = []
    for key, value in outputs.items():
        if isinstance(value, list) and value and all(type(v) is int for v in value):
            value = ",".join(map(str, value))  # the versions a training run registered
        if value is None or isinstance(value, dict | list) or key in _NOT_SUMMARISED:
            continue
        text = f"{value:.3g}" if isinstance(value, float) else str(value)
        parts.append(f"{key}={text[:16]}")
    return " ".join(parts[:4])


def stage_lanes(project: Project) -> StageLanesAnswer:
    """The nine stages with each one's latest run, and the runs still going (the queue)."""
    catalog = project.catalog
    latest: dict[str, dict[str, Any]] = {}
    for row in catalog.rows(
        "SELECT run_id, stage, status, started_at, ended_at,"
        " epoch(ended_at) - epoch(started_at) AS duration_s, error, outputs_json"
        " FROM stage_runs QUALIFY row_number() OVER (PARTITION BY stage ORDER BY run_id DESC) = 1"
    ):
        lane = _LANE_OF_RUN.get(row["stage"], row["stage"])
        if lane not in latest or row["run_id"] > latest[lane]["run_id"]:
            latest[lane] = row
    # Deploying is moving the champion alias: its latest "run" is the latest alias move.
    deploy = catalog.row(
        "SELECT entry_id, action, from_version, to_version, recorded_at FROM audit_log"
        " WHERE alias = ? ORDER BY entry_id DESC LIMIT 1",
        [CHAMPION],
    )
    lanes: list[StageLane] = []
    for stage in STAGES:
        run = latest.get(stage)
        if stage == "deploy" and deploy is not None:
            lanes.append(
                {
                    "stage": stage,
                    "run_id": None,
                    "status": "succeeded",
                    "started_at": iso(deploy["recorded_at"]),
                    "duration_s": None,
                    "output": f"{deploy['action']} -> v{deploy['to_version']}",
                    "error": None,
                }
            )
        elif run is None:
            lanes.append(
                {
                    "stage": stage,
                    "run_id": None,
                    "status": None,
                    "started_at": None,
                    "duration_s": None,
                    "output": "",
                    "error": None,
                }
            )
        else:
            lanes.append(
                {
                    "stage": stage,
                    "run_id": int(run["run_id"]),
                    "status": run["status"],
                    "started_at": iso(run["started_at"]),
                    "duration_s": run["duration_s"],
                    "output": _output_summary(run["outputs_json"]),
                    "error": run["error"],
                }
            )
    queue = iso_rows(
        catalog.rows(
            "SELECT run_id, stage, started_at, inputs_json FROM stage_runs"
            " WHERE status = 'running' ORDER BY run_id"
        )
    )
    return {"lanes": lanes, "queue": cast("list[QueuedRun]", queue)}


# ------------------------------------------------------------------ models


def lineage_summary(project: Project, version: int) -> LineageSummaryAnswer:
    """Where a version came from and what happened to it: data, features, training,
    metrics beside the champion's, and its alias moves from the audit log."""
    catalog = project.catalog
    row = get_version(catalog, version)
    dataset = catalog.row(
        "SELECT dataset_id, dataset_hash, batch_ids_json, snapshot_hashes_json, row_count,"
        " train_rows, holdout_rows FROM datasets WHERE dataset_id = ?",
        [row["dataset_id"]],
    )
    training = catalog.row(
        "SELECT duration_s, started_at FROM training_runs WHERE training_run_id = ?",
        [row["training_run_id"]],
    )
    champion = alias_version(catalog, CHAMPION)
    history = cast(
        "list[AliasMove]",
        iso_rows(
            catalog.rows(
                "SELECT entry_id, recorded_at, actor, action, from_version, to_version, reason"
                " FROM audit_log WHERE to_version = ? OR from_version = ? ORDER BY entry_id",
                [version, version],
            )
        ),
    )
    return {
        "version": version,
        "name": row["name"],
        "kind": row["kind"],
        "status": row["status"],
        "created_at": iso(row["created_at"]),
        "dataset": None
        if dataset is None
        else {
            "dataset_id": int(dataset["dataset_id"]),
            "dataset_hash": dataset["dataset_hash"],
            "batch_ids": json.loads(dataset["batch_ids_json"]),
            "snapshot_hashes": json.loads(dataset["snapshot_hashes_json"]),
            "rows": int(dataset["row_count"]),
            "train_rows": int(dataset["train_rows"]),
            "holdout_rows": int(dataset["holdout_rows"]),
        },
        "feature_hash": row["feature_hash"],
        "onnx_hash": row["onnx_hash"],
        "params": json.loads(row["params_json"]),
        "seed": int(row["seed"]),
        "device": row["device"],
        "parity_max_abs_diff": row["parity_max_abs_diff"],
        "promotable": bool(row["promotable"]),
        "training_s": None if training is None else training["duration_s"],
        "library_versions": json.loads(row["library_versions_json"]),
        "metrics": version_metrics(catalog, version),
        "champion": champion,
        "champion_metrics": None if champion is None else version_metrics(catalog, champion),
        "history": history,
    }


# ------------------------------------------------------------------ drift


def _chart_test(feature: dict[str, Any]) -> dict[str, Any] | None:
    """The test charted over time: PSI for numbers, Jensen-Shannon for categories
    (distances with warn/alert levels, comparable from window to window)."""
    wanted = "psi" if feature["kind"] == "numeric" else "jensen_shannon"
    for test in feature.get("tests", []):
        if test["method"] == wanted:
            return dict(test)
    return None


def drift_history(project: Project, limit: int = 200) -> list[DriftHistoryWindow]:
    """The stored drift windows, oldest first, each with every feature's verdict.

    Each feature (and the model output, as "prediction") has its status, the
    worst test's method/score/threshold, and the charted distance (`chart`:
    PSI or Jensen-Shannon with its warn and alert levels).
    """
    rows = project.catalog.rows(
        "SELECT * FROM (SELECT window_id, model_version, source, batch_id, window_end, row_count,"
        " dataset_drift, drifted_features, report_json FROM drift_windows"
        " ORDER BY window_id DESC LIMIT ?) ORDER BY window_id",
        [limit],
    )
    out: list[DriftHistoryWindow] = []
    for row in rows:
        report = json.loads(row.pop("report_json"))
        features = list(report["features"])
        if report.get("prediction") is not None:
            features.append({**report["prediction"], "feature": PREDICTION})
        verdicts: list[DriftHistoryFeature] = [
            {
                "feature": f["feature"],
                "kind": f["kind"],
                "status": f["status"],
                "method": f["method"],
                "score": f["score"],
                "threshold": f["threshold"],
                "chart": _chart_test(f),
            }
            for f in features
        ]
        window = {
            **{key: iso(value) for key, value in row.items()},
            "status": report["status"],
            "share_drifted": report["share_drifted"],
            "features": verdicts,
        }
        out.append(cast(DriftHistoryWindow, window))
    return out


def _numeric_bins(ref: Any, cur: Any) -> tuple[list[str], list[int], list[int]]:
    """Reference and window counts in the reference's PSI bins (as engine.monitoring.drift counts them)."""
    import numpy as np

    c_le = np.cumsum(cur.eq + cur.gap)
    c_lt = c_le - cur.eq
    idx = np.searchsorted(ref.values, ref.edges[:-1])
    below = np.concatenate([[0], c_lt[idx], [c_le[-1]], [cur.n]])
    current = np.diff(below)
    edges = [f"{e:.3g}" for e in ref.edges]
    labels = [f"<{edges[0]}"]
    labels += [f"{a}-{b}" for a, b in zip(edges[:-1], edges[1:], strict=True)]
    labels.append(f">={edges[-1]}")
    return labels, [int(v) for v in ref.bin_counts], [int(v) for v in current]


def _category_bins(ref: Any, cur: Any) -> tuple[list[str], list[int], list[int]]:
    labels = list(ref.categories)
    reference = [int(v) for v in ref.counts]
    current = [int(v) for v in cur.counts]
    if ref.other or cur.other:
        labels.append("(other)")
        reference.append(int(ref.other))
        current.append(int(cur.other))
    if cur.new:
        labels.append("(new)")
        reference.append(0)
        current.append(int(sum(cur.new.values())))
    return labels, reference, current


def drift_histogram(project: Project, window_id: int, feature: str) -> DriftHistogramAnswer:
    """Reference vs window distribution of one feature (or "prediction") in a drift window,
    as shares per bin: the reference's PSI bins for numbers, categories otherwise."""
    from engine.monitoring.drift import NUMERIC, ReferenceProfile, WindowSummary

    row = project.catalog.row(
        "SELECT w.summary_json, p.profile_json FROM drift_windows w"
        " JOIN reference_profiles p USING (model_version) WHERE w.window_id = ?",
        [window_id],
    )
    if row is None:
        raise NotFoundError(f"no drift window {window_id} with a reference profile")
    profile = ReferenceProfile.from_json(row["profile_json"])
    summary = WindowSummary.from_json(row["summary_json"])
    ref: ColumnProfile | None
    cur: ColumnCounts | None
    if feature == PREDICTION:
        ref, cur = profile.prediction, summary.prediction
    else:
        ref, cur = profile.columns.get(feature), summary.columns.get(feature)
    if ref is None or cur is None:
        raise NotFoundError(f"drift window {window_id} has no feature {feature!r}")
    if ref.kind == NUMERIC:
        labels, reference, current = _numeric_bins(ref, cur)
    else:
        labels, reference, current = _category_bins(ref, cur)
    ref_total, cur_total = sum(reference) or 1, sum(current) or 1
    return {
        "window_id": window_id,
        "feature": feature,
        "kind": ref.kind,
        "bins": labels,
        "reference": [n / ref_total for n in reference],
        "current": [n / cur_total for n in current],
    }


# ------------------------------------------------------------------ serving


def serving_stats(project: Project, window_s: float = 60.0) -> ServingStatsAnswer:
    """Traffic from the prediction log: requests/s, p50/p99 latency and rows in the last
    `window_s` seconds, per answering version, plus the shadow versions and totals."""
    catalog = project.catalog
    since = utcnow() - timedelta(seconds=window_s)
    per_version = catalog.rows(
        "WITH requests AS (SELECT request_id, model_version, shadow, any_value(latency_ms) AS ms,"
        " count(*) AS rows FROM predictions WHERE served_at >= ? GROUP BY ALL)"
        " SELECT model_version, shadow, count(*) AS requests, sum(rows) AS rows,"
        " quantile_cont(ms, 0.5) AS p50_ms, quantile_cont(ms, 0.99) AS p99_ms"
        " FROM requests GROUP BY ALL ORDER BY shadow, model_version",
        [since],
    )
    totals = catalog.row(
        "SELECT count(DISTINCT request_id) AS requests, count(*) AS rows,"
        " max(served_at) AS last_served_at FROM predictions WHERE NOT shadow"
    ) or {"requests": 0, "rows": 0, "last_served_at": None}
    served = [r for r in per_version if not r["shadow"]]
    requests = sum(int(r["requests"]) for r in served)
    latency = catalog.row(
        "WITH requests AS (SELECT request_id, any_value(latency_ms) AS ms FROM predictions"
        " WHERE served_at >= ? AND NOT shadow GROUP BY ALL)"
        " SELECT quantile_cont(ms, 0.5) AS p50_ms, quantile_cont(ms, 0.99) AS p99_ms"
        " FROM requests",
        [since],
    ) or {"p50_ms": None, "p99_ms": None}
    return {
        "window_s": window_s,
        "requests": requests,
        "requests_per_s": requests / window_s,
        "p50_ms": latency["p50_ms"],
        "p99_ms": latency["p99_ms"],
        "versions": [
            {
                "version": int(r["model_version"]),
                "shadow": bool(r["shadow"]),
                "requests": int(r["requests"]),
                "rows": int(r["rows"]),
                "p50_ms": r["p50_ms"],
                "p99_ms": r["p99_ms"],
            }
            for r in per_version
        ],
        "shadow_versions": sorted({int(r["model_version"]) for r in per_version if r["shadow"]}),
        "total_requests": int(totals["requests"]),
        "total_rows": int(totals["rows"]),
        "last_served_at": iso(totals["last_served_at"]),
        "endpoint": None,
    }
