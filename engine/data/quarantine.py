"""The quarantine: re-validating a quarantined file under the contract as it is now.

A file that failed validation is kept byte for byte in `.mldeck/quarantine/`.
After a person edits the contract in mldeck.toml (a column made optional by
removing it or listing it under `[data] ignore`, a type widened, ...), the
quarantined copy can be validated again:

- it passes: it becomes a new batch (accepted or warned) whose source is the
  quarantined copy and whose `revalidated_from` is the quarantined batch; that
  batch's status becomes `revalidated`. A data batch gets its snapshot and its
  drift check, a labels file its labels and performance windows, exactly as if
  it had just been dropped.
- it fails: it stays quarantined, its issues replaced by the new reasons (the
  old ones stay in the audit log's quarantine entry and the reason file).

Either way the attempt is an audit entry (`revalidate`, with who and why) and a
line in the reason file beside the copy.

There is deliberately no "release" that lets a file through despite its errors:
a hard error means the rows cannot be used as they are (the file cannot be
read, a column is missing, values do not parse, ids are null or repeated), and
a batch built from them would break training, drift or the label join later.
What a person can change is the contract; re-validating is then the one way
out of the quarantine.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import duckdb

from engine.core.answers import BatchStatus, RevalidateAnswer
from engine.core.errors import InputFileError, NotFoundError, ProjectError
from engine.core.events import EventSink, StageFinished, StageStarted, ignore_events
from engine.core.project import Project
from engine.data.batches import record_batch, record_issues
from engine.data.contract import Issue
from engine.data.ingest import store_snapshot, validate_loaded
from engine.data.labels import _check, _store_labels
from engine.data.read import batch_columns, load_file, scratch_connection
from engine.records.stage_runs import stage_run
from storage.audit import append_entry
from storage.catalog import utcnow
from storage.objects import sha256_file

REVALIDATED = "revalidated"
"""The status of a quarantined batch whose file passed a later re-validation."""


def revalidate(
    project: Project,
    batch_id: int,
    *,
    actor: str,
    reason: str,
    events: EventSink = ignore_events,
) -> RevalidateAnswer:
    """Validate quarantined batch `batch_id`'s kept copy again under the current contract.

    Args:
        actor: who asked (audit log).
        reason: why (audit log); required.

    Returns:
        JSON data: the quarantined `batch_id`, its `source_name`, the outcome
        `status` (accepted | warned | quarantined), the `new_batch_id` when it
        passed, its `rows`, and the `issues` found this time.

    Raises:
        NotFoundError: no such batch.
        ProjectError: the batch is not quarantined, no reason was given, or its
            quarantined copy is missing or no longer has the recorded bytes
            (nothing is changed then).
    """
    catalog = project.catalog
    batch = catalog.row(
        "SELECT batch_id, kind, source_name, content_hash, size_bytes, status, quarantine_path"
        " FROM batches WHERE batch_id = ?",
        [batch_id],
    )
    if batch is None:
        raise NotFoundError(f"no batch {batch_id}")
    name = batch["source_name"]
    if batch["status"] != "quarantined":
        raise ProjectError(
            f"batch {batch_id} ({name}) is {batch['status']}, not quarantined: "
            "only a quarantined batch can be re-validated",
            title="Not quarantined",
        )
    if not reason.strip():
        raise ProjectError("a reason is required: it goes to the audit log", title="No reason")
    copy = Path(batch["quarantine_path"])
    if not copy.is_file():
        raise ProjectError(
            f"batch {batch_id} ({name}): its quarantined copy {copy} is missing; nothing changed",
            title="Quarantine",
        )
    digest = sha256_file(copy)
    if digest != batch["content_hash"]:
        raise ProjectError(
            f"batch {batch_id} ({name}): its quarantined copy {copy} no longer has the bytes "
            f"that were quarantined (sha256 {digest[:12]}, recorded {batch['content_hash'][:12]});"
            " nothing changed",
            title="Quarantine",
        )

    events(StageStarted("revalidate", name))
    con = scratch_connection()
    try:
        inputs = {"batch_id": batch_id, "source": str(copy), "sha256": digest}
        with stage_run(catalog, "revalidate", inputs) as run:
            fmt, load_error = load_file(con, copy)
            outcome = _check_and_record(
                project, con, batch, copy, fmt, load_error, actor=actor, reason=reason
            )
            run.status = "quarantined" if outcome["new_batch_id"] is None else "succeeded"
            run.outputs = {
                "batch_id": batch_id,
                "new_batch_id": outcome["new_batch_id"],
                "status": outcome["status"],
                "issues": len(outcome["issues"]),
            }
    finally:
        con.execute("DROP TABLE IF EXISTS batch")
        con.close()

    new_batch_id = outcome["new_batch_id"]
    errors = [i for i in outcome["issues"] if i["severity"] == "error"]
    detail = errors[0]["message"] if errors else f"batch {new_batch_id}"
    events(StageFinished("revalidate", name, outcome["status"], detail))
    return outcome


def _check_and_record(
    project: Project,
    con: duckdb.DuckDBPyConnection,
    batch: dict[str, Any],
    copy: Path,
    fmt: str,
    load_error: InputFileError | None,
    *,
    actor: str,
    reason: str,
) -> RevalidateAnswer:
    """Validate the loaded table `batch` and record the outcome in one transaction."""
    catalog = project.catalog
    batch_id = int(batch["batch_id"])
    kind = batch["kind"]
    rows = 0
    labelled = False
    label_columns: tuple[str | None, str | None] = (None, None)
    if load_error is not None:
        issues = [Issue("error", None, "unreadable", load_error.msg)]
    else:
        rows = int(con.execute("SELECT count(*) FROM batch").fetchone()[0])  # type: ignore[index]
        if kind == "labels":
            issues, id_col, label_col = _check(project, con)
            label_columns = (id_col, label_col)
        else:
            issues, labelled = validate_loaded(project, con, Path(batch["source_name"]))
    errors = [i for i in issues if i.severity == "error"]
    status: BatchStatus = "quarantined" if errors else ("warned" if issues else "accepted")
    snapshot_hash = None
    if not errors and kind == "data":
        snapshot_hash = store_snapshot(project, con)
    new_batch_id: int | None = None
    with catalog.transaction():
        if errors:
            catalog.execute("DELETE FROM validation_issues WHERE batch_id = ?", [batch_id])
            record_issues(catalog, batch_id, issues)
        else:
            new_batch_id = record_batch(
                catalog,
                kind=kind,
                source=copy,
                name=batch["source_name"],
                digest=batch["content_hash"],
                size=batch["size_bytes"],
                fmt=fmt,
                status=status,
                rows=rows,
                schema=batch_columns(con),
                labelled=labelled if kind == "data" else True,
                issues=issues,
                snapshot_hash=snapshot_hash,
                revalidated_from=batch_id,
            )
            catalog.execute(
                "UPDATE batches SET status = ? WHERE batch_id = ?", [REVALIDATED, batch_id]
            )
            if kind == "labels":
                id_col, label_col = label_columns
                assert id_col is not None and label_col is not None
                _store_labels(project, con, new_batch_id, id_col, label_col)
        append_entry(
            catalog,
            actor=actor,
            action="revalidate",
            reason=reason,
            details={
                "batch_id": batch_id,
                "source": batch["source_name"],
                "sha256": batch["content_hash"],
                "outcome": status,
                "new_batch_id": new_batch_id,
                "errors": [i.message for i in errors],
            },
        )
    _note_in_reason_file(copy, actor, reason, status, new_batch_id, issues)
    return {
        "batch_id": batch_id,
        "source_name": batch["source_name"],
        "kind": kind,
        "status": status,
        "new_batch_id": new_batch_id,
        "rows": rows,
        "snapshot": snapshot_hash,
        "issues": [
            {"severity": i.severity, "column": i.column, "code": i.code, "message": i.message}
            for i in issues
        ],
    }


def _note_in_reason_file(
    copy: Path,
    actor: str,
    reason: str,
    status: str,
    new_batch_id: int | None,
    issues: list[Issue],
) -> None:
    """Append the attempt to the reason file beside the copy (atomic rename)."""
    reason_file = copy.with_name(copy.name + ".reason.txt")
    before = reason_file.read_text() if reason_file.is_file() else ""
    verdict = "still quarantined" if new_batch_id is None else f"{status} as batch {new_batch_id}"
    lines = [f"re-validated at {utcnow()}Z by {actor} ({reason}): {verdict}"]
    lines += [f"- {i.message}" for i in issues]
    temp = copy.with_name(f".{reason_file.name}.tmp")
    temp.write_text(before + "\n".join(lines) + "\n")
    os.replace(temp, reason_file)
