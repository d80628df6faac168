"""Lineage: what a prediction or a model version was made from, as JSON-ready dicts.

`explain_prediction` answers for one served prediction: the version that
answered, its inputs and output, and that version's lineage (snapshots,
feature definition, params, seed, device, library and code versions, config)
with the audit entry that made it champion before the prediction was served.
`version_lineage` gives the same from the model's side, plus the predictions
it served, counted by day.

Everything is read from the catalog only, so it works for versions archived or
superseded long ago. Times are ISO 8601 strings in UTC (see `engine.views.status.iso`).
"""

from __future__ import annotations

import json
from typing import Any, cast

from engine.core.answers import AuditEntry, ExplainAnswer, LineageAnswer, VersionRecord
from engine.core.errors import NotFoundError
from engine.core.jsonable import iso
from engine.data.dataset_snapshots import snapshot_of_batches
from engine.records.provenance import version_provenance
from engine.records.registry import CHAMPION, get_version, version_metrics
from storage.catalog import Catalog

ROW_SEPARATOR = "/"
"""A prediction id is a request id, or `request_id/row` for one row of a batch request."""


def _isoed(row: dict[str, Any]) -> dict[str, Any]:
    return {key: iso(value) for key, value in row.items()}


def _json(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _audit_entry(row: dict[str, Any]) -> AuditEntry:
    entry = _isoed(row)
    entry["details"] = _json(entry.pop("details_json"))
    return cast(AuditEntry, entry)


def version_record(catalog: Catalog, version: int) -> VersionRecord:
    """A model version with everything it was made from and its audit history.

    Raises:
        NotFoundError: no such version.
    """
    row = get_version(catalog, version)
    run = catalog.row(
        "SELECT training_run_id, candidate, started_at, ended_at, duration_s, status"
        " FROM training_runs WHERE training_run_id = ?",
        [row["training_run_id"]],
    )
    dataset = catalog.row(
        "SELECT dataset_id, dataset_hash, batch_ids_json, snapshot_hashes_json, split_json,"
        " row_count, train_rows, holdout_rows, created_at FROM datasets WHERE dataset_id = ?",
        [row["dataset_id"]],
    )
    snapshots: list[dict[str, Any]] = []
    if dataset is not None:
        batch_ids = json.loads(dataset.pop("batch_ids_json"))
        hashes = json.loads(dataset.pop("snapshot_hashes_json"))
        dataset["split"] = json.loads(dataset.pop("split_json"))
        by_id = {
            int(b["batch_id"]): b
            for b in catalog.rows(
                "SELECT batch_id, source_name, source_path, content_hash, row_count, status,"
                " ingested_at, snapshot_hash AS own_snapshot FROM batches"
                " WHERE list_contains(?, batch_id)",
                [batch_ids],
            )
        }
        own = {batch_id: b.pop("own_snapshot") for batch_id, b in by_id.items()}
        for batch_id, snapshot_hash in snapshot_of_batches(
            [int(b) for b in batch_ids], hashes, own
        ):
            batch = by_id.get(batch_id, {"batch_id": batch_id})
            snapshots.append(_isoed({**batch, "snapshot_hash": snapshot_hash}))
    feature_spec = catalog.scalar(
        "SELECT spec_json FROM feature_definitions WHERE feature_hash = ?", [row["feature_hash"]]
    )
    history = catalog.rows(
        "SELECT * EXCLUDE (prev_hash, entry_hash) FROM audit_log"
        " WHERE to_version = ? OR from_version = ? ORDER BY entry_id",
        [version, version],
    )
    aliases = [
        r["alias"]
        for r in catalog.rows(
            "SELECT alias FROM aliases WHERE version = ? ORDER BY alias", [version]
        )
    ]
    return {
        "version": version,
        "name": row["name"],
        "kind": row["kind"],
        "task": row["task"],
        "target": row["target"],
        "status": row["status"],
        "aliases": aliases,
        "created_at": iso(row["created_at"]),
        "params": json.loads(row["params_json"]),
        "seed": row["seed"],
        "device": row["device"],
        "classes": _json(row["classes_json"]),
        "onnx_hash": row["onnx_hash"],
        "native_hash": row["native_hash"],
        "parity_max_abs_diff": row["parity_max_abs_diff"],
        "promotable": row["promotable"],
        "metrics": version_metrics(catalog, version),
        "training_run": None if run is None else _isoed(run),
        "dataset": None if dataset is None else _isoed(dataset),
        "snapshots": snapshots,
        "feature_definition": {"hash": row["feature_hash"], "spec": _json(feature_spec)},
        "library_versions": json.loads(row["library_versions_json"]),
        "provenance": version_provenance(catalog, version),
        "history": [_audit_entry(entry) for entry in history],
    }


def _prediction_rows(
    catalog: Catalog, request_id: str, row_index: int | None
) -> list[dict[str, Any]]:
    return catalog.rows(
        "SELECT row_index, served_at, model_version, endpoint, inputs_json, output_json,"
        " latency_ms, shadow FROM predictions WHERE request_id = ?"
        + ("" if row_index is None else " AND row_index = ?")
        + " ORDER BY shadow, row_index",
        [request_id] if row_index is None else [request_id, row_index],
    )


def explain_prediction(catalog: Catalog, prediction_id: str) -> ExplainAnswer:
    """Everything behind one served prediction (a request, or one row of it).

    Raises:
        NotFoundError: no logged prediction has that id.
    """
    prediction_id = prediction_id.strip()
    if not prediction_id:
        raise NotFoundError("an empty prediction id: give the request id a server answered with")
    # A client may choose OIP ids containing the separator: the whole id is tried first.
    request_id, row_index = prediction_id, None
    rows = _prediction_rows(catalog, request_id, None)
    head, separator, tail = prediction_id.rpartition(ROW_SEPARATOR)
    if not rows and separator and head and tail.isdigit():
        request_id, row_index = head, int(tail)
        rows = _prediction_rows(catalog, request_id, row_index)
    if not rows:
        raise NotFoundError(
            f"no logged prediction {prediction_id!r}: a prediction id is the request id a "
            "server answered with (x-request-id, or the OIP response's id), optionally "
            f"followed by {ROW_SEPARATOR}ROW (a row number in that request)"
        )
    served = [r for r in rows if not r["shadow"]]
    shadow_rows = [r for r in rows if r["shadow"]]
    if not served:  # only a shadow scored it: explain that model's answer
        served, shadow_rows = shadow_rows, []
    first = served[0]
    version = int(first["model_version"])
    promoted = catalog.row(
        "SELECT * EXCLUDE (prev_hash, entry_hash) FROM audit_log"
        " WHERE alias = ? AND to_version = ? AND recorded_at <= ? ORDER BY entry_id DESC LIMIT 1",
        [CHAMPION, version, first["served_at"]],
    )
    champion_then = catalog.scalar(
        "SELECT to_version FROM audit_log WHERE alias = ? AND recorded_at <= ?"
        " ORDER BY entry_id DESC LIMIT 1",
        [CHAMPION, first["served_at"]],
    )
    return {
        "prediction_id": prediction_id,
        "request_id": request_id,
        "served_at": iso(first["served_at"]),
        "endpoint": first["endpoint"],
        "latency_ms": first["latency_ms"],
        "model_version": version,
        "champion_at_the_time": None if champion_then is None else int(champion_then),
        "promoted_by": None if promoted is None else _audit_entry(promoted),
        "rows": [
            {
                "row": int(r["row_index"]),
                "inputs": json.loads(r["inputs_json"]),
                "output": json.loads(r["output_json"]),
            }
            for r in served
        ],
        "shadow": [
            {
                "row": int(r["row_index"]),
                "model_version": int(r["model_version"]),
                "output": json.loads(r["output_json"]),
            }
            for r in shadow_rows
        ],
        "model": version_record(catalog, version),
    }


def version_lineage(catalog: Catalog, version: int) -> LineageAnswer:
    """A version's lineage and history, plus its logged predictions counted by day.

    Raises:
        NotFoundError: no such version.
    """
    record = version_record(catalog, version)
    days = catalog.rows(
        "SELECT CAST(served_at AS DATE) AS day, count(*) FILTER (WHERE NOT shadow) AS served,"
        " count(*) FILTER (WHERE shadow) AS shadow FROM predictions WHERE model_version = ?"
        " GROUP BY ALL ORDER BY day",
        [version],
    )
    return {
        **record,
        "predictions_by_day": [
            {"day": str(d["day"]), "served": int(d["served"]), "shadow": int(d["shadow"])}
            for d in days
        ],
    }
