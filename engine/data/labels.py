"""Delayed ground truth: files of (id, label) landing in ``data/labels/``.

The same rules as data batches (engine.data.ingest): the file is hashed; the same
path and bytes again are *skipped*, the same bytes elsewhere a *duplicate*; a
file that cannot be used is copied byte for byte into the quarantine with
every reason: unreadable or malformed, empty, no id column or no label column
(the target's name, or ``label``), null ids or labels, ids given twice, labels
that do not parse as the target's contract type. Soft issues (extra columns,
classes the champion does not know) are recorded and the file is accepted.

Accepted labels go to the ``labels`` table (one row per id, the label cast to
the target's type and kept as text) and to a ``batches`` row of kind
``labels``; the performance windows whose rows they label are recomputed right
away (engine.monitoring.performance), which judges the alert rules.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb

from engine.core.answers import ColumnType, IngestStatus
from engine.core.events import EventSink, StageFinished, StageStarted, ignore_events
from engine.core.project import Project
from engine.data.batches import (
    IngestResult,
    audit_quarantine,
    quarantine_file,
    record_batch,
    seen_before,
)
from engine.data.contract import SQL_TYPES, Issue, batch_schema
from engine.data.read import batch_columns, load_and_hash, scratch_connection
from engine.records.registry import CHAMPION, alias_version
from engine.records.stage_runs import stage_run
from storage.catalog import utcnow
from storage.sql import quote_ident

LATEST_LABELS = "SELECT row_id, arg_max(label, batch_id) AS label FROM labels GROUP BY row_id"
"""One label per id: a later labels file corrects an earlier one."""

LABEL_ALIAS = "label"
"""A labels file may name its label column like the target or plainly ``label``."""


def _label_column(project: Project, schema: dict[str, ColumnType]) -> str | None:
    target = project.config.target
    for name in (target, LABEL_ALIAS):
        if name is not None and name in schema:
            return name
    return None


def _check(
    project: Project, con: duckdb.DuckDBPyConnection
) -> tuple[list[Issue], str | None, str | None]:
    """Issues of the loaded table ``batch``, and its id and label columns."""
    config = project.config
    schema = batch_schema(con, "batch")
    issues: list[Issue] = []
    rows = int(con.execute("SELECT count(*) FROM batch").fetchone()[0])  # type: ignore[index]
    if rows == 0:
        return [Issue("error", None, "empty", "the file has a header but no rows")], None, None
    id_col = config.id_column
    if id_col is None:
        issues.append(
            Issue(
                "error",
                None,
                "no_id_column",
                "the project has no id column ([data] id in mldeck.toml): labels cannot be joined",
            )
        )
    elif id_col not in schema:
        issues.append(
            Issue("error", id_col, "missing_column", f"the id column {id_col!r} is missing")
        )
        id_col = None
    label_col = _label_column(project, schema)
    if label_col is None:
        wanted = " or ".join(repr(n) for n in (config.target, LABEL_ALIAS) if n)
        issues.append(
            Issue(
                "error", config.target, "missing_label", f"the label column ({wanted}) is missing"
            )
        )
    for name in schema:
        if name not in (id_col, label_col, config.id_column):
            issues.append(Issue("warning", name, "extra_column", f"column {name!r} is not used"))
    if id_col is not None:
        q = quote_ident(id_col)
        nulls, dupes, example = con.execute(
            f"SELECT count(*) FILTER (WHERE {q} IS NULL), count({q}) - count(DISTINCT {q}),"
            f" (SELECT any_value(CAST({q} AS VARCHAR)) FROM (SELECT {q} FROM batch"
            f" WHERE {q} IS NOT NULL GROUP BY {q} HAVING count(*) > 1)) FROM batch"
        ).fetchone()  # type: ignore[misc]
        if nulls:
            issues.append(Issue("error", id_col, "null_id", f"{nulls} rows have no id"))
        if dupes:
            issues.append(
                Issue(
                    "error",
                    id_col,
                    "duplicate_id",
                    f"{dupes} ids are labelled more than once in the file (e.g. {example!r})",
                )
            )
    if label_col is not None:
        q = quote_ident(label_col)
        nulls = con.execute(f"SELECT count(*) FROM batch WHERE {q} IS NULL").fetchone()[0]  # type: ignore[index]
        if nulls:
            issues.append(Issue("error", label_col, "null_label", f"{nulls} rows have no label"))
        label_type = _label_type(project)
        if label_type is not None:
            bad, example = con.execute(
                f"SELECT count(*), any_value(CAST({q} AS VARCHAR)) FROM batch WHERE {q} IS NOT NULL"
                f" AND TRY_CAST({q} AS {SQL_TYPES[label_type]}) IS NULL"
            ).fetchone()  # type: ignore[misc]
            if bad:
                issues.append(
                    Issue(
                        "error",
                        label_col,
                        "bad_type",
                        f"wrong label type: {bad} values of {label_col!r} are not {label_type}"
                        f" (e.g. {example!r})",
                    )
                )
            else:
                issues += _unknown_classes(project, con, label_col, label_type)
    return issues, id_col, label_col


def label_type_sql(project: Project) -> str | None:
    """The SQL type labels are cast to (stored as text): the target's contract type."""
    label_type = _label_type(project)
    return None if label_type is None else SQL_TYPES[label_type]


def _label_type(project: Project) -> str | None:
    """The contract type of the target (None before the first data batch)."""
    contract = project.config.contract
    target = project.config.target
    if contract is None or target is None or target not in contract.columns:
        return None
    return contract.columns[target].type


def _unknown_classes(
    project: Project, con: duckdb.DuckDBPyConnection, label_col: str, label_type: str
) -> list[Issue]:
    champion = alias_version(project.catalog, CHAMPION)
    if champion is None:
        return []
    row = project.catalog.row(
        "SELECT task, classes_json FROM model_versions WHERE version = ?", [champion]
    )
    if row is None or row["task"] != "classification" or not row["classes_json"]:
        return []
    known = {label_text(c) for c in json.loads(row["classes_json"])}
    q = quote_ident(label_col)
    found = [
        str(r[0])
        for r in con.execute(
            f"SELECT DISTINCT CAST(CAST({q} AS {SQL_TYPES[label_type]}) AS VARCHAR) FROM batch"
        ).fetchall()
    ]
    unknown = sorted(set(found) - known)
    if not unknown:
        return []
    return [
        Issue(
            "warning",
            label_col,
            "unknown_class",
            f"labels the champion v{champion} never predicts: {', '.join(unknown[:10])}",
        )
    ]


def ingest_labels_file(
    project: Project, path: Path, on_event: EventSink = ignore_events
) -> IngestResult:
    """Ingest one labels file; the performance windows it labels are recomputed (and judged)."""
    source = path.resolve()
    catalog = project.catalog
    on_event(StageStarted("labels", path.name))
    con = scratch_connection()
    try:
        digest, fmt, load_error = load_and_hash(con, source)
        size = source.stat().st_size
        seen = seen_before(project, path, digest, size, fmt, on_event, kind="labels")
        if seen is not None:
            return seen
        with stage_run(catalog, "labels", {"source": str(source), "sha256": digest}) as run:
            rows = 0
            if load_error is not None:
                issues = [Issue("error", None, "unreadable", load_error.msg)]
                id_col = label_col = None
            else:
                rows = int(con.execute("SELECT count(*) FROM batch").fetchone()[0])  # type: ignore[index]
                issues, id_col, label_col = _check(project, con)
            errors = [i for i in issues if i.severity == "error"]
            quarantine_path = quarantine_file(project, source, digest, issues) if errors else None
            status: IngestStatus = "quarantined" if errors else ("warned" if issues else "accepted")
            with catalog.transaction():
                batch_id = record_batch(
                    catalog,
                    kind="labels",
                    source=source,
                    name=path.name,
                    digest=digest,
                    size=size,
                    fmt=fmt,
                    status=status,
                    rows=rows,
                    schema=[] if load_error else batch_columns(con),
                    labelled=not errors,
                    issues=issues,
                    quarantine_path=quarantine_path,
                )
                if errors:
                    audit_quarantine(project, batch_id, source, digest, quarantine_path, errors)
                else:
                    assert id_col is not None and label_col is not None
                    _store_labels(project, con, batch_id, id_col, label_col)
            run.status = "quarantined" if errors else "succeeded"
            run.outputs = {"batch_id": batch_id, "status": status, "rows": rows}
    finally:
        con.execute("DROP TABLE IF EXISTS batch")  # the scratch database outlives this file
        con.close()
    on_event(
        StageFinished(
            "labels", path.name, status, errors[0].message if errors else f"{rows} labels"
        )
    )
    return IngestResult(
        path,
        status,
        digest,
        batch_id=batch_id,
        rows=rows,
        labelled=not errors,
        quarantine_path=quarantine_path,
        issues=issues,
    )


def _store_labels(
    project: Project, con: duckdb.DuckDBPyConnection, batch_id: int, id_col: str, label_col: str
) -> None:
    type_sql = label_type_sql(project)
    label = quote_ident(label_col)
    if type_sql is not None:
        label = f"CAST({label} AS {type_sql})"
    table = con.sql(
        f"SELECT CAST({quote_ident(id_col)} AS VARCHAR) AS row_id, CAST({label} AS VARCHAR) AS label"
        " FROM batch"
    ).to_arrow_table()
    conn = project.catalog.conn
    conn.register("mldeck_new_labels", table)
    try:
        project.catalog.execute(
            "INSERT INTO labels SELECT row_id, label, ?, ? FROM mldeck_new_labels",
            [batch_id, utcnow()],
        )
    finally:
        conn.unregister("mldeck_new_labels")


def label_text(value: Any) -> str:
    """A class or label as the text stored in ``labels.label`` (DuckDB's CAST to VARCHAR)."""
    # numpy is imported lazily: reading the windows (the UI's first screen) needs none of it.
    import numpy as np

    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    return str(value)
