"""A file as a batch in the catalog: its row and issues, the duplicate and already-seen checks,
and its byte-for-byte quarantine copy (under a short safe name) with the reason beside it."""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from engine.core.answers import BatchStatus, IngestStatus
from engine.core.events import EventSink, StageFinished
from engine.core.project import Project
from engine.data.arrivals import display_name, open_regular
from engine.data.contract import Issue
from engine.data.read import DATA_SUFFIXES
from storage.audit import append_entry
from storage.catalog import Catalog, utcnow


@dataclass
class IngestResult:
    path: Path
    status: IngestStatus
    """accepted | warned | quarantined | duplicate | skipped (this path and content seen before)
    | refused (not a regular file, or a link out of the project: never read, `content_hash` "")."""
    content_hash: str
    batch_id: int | None = None
    rows: int | None = None
    labelled: bool | None = None
    snapshot_hash: str | None = None
    duplicate_of: int | None = None
    quarantine_path: Path | None = None
    issues: list[Issue] = field(default_factory=list)
    previous_status: BatchStatus | None = None
    """For a skipped file: what happened when it was first ingested."""


def audit_quarantine(
    project: Project,
    batch_id: int,
    source: Path,
    digest: str,
    quarantine_path: Path | None,
    errors: list[Issue],
) -> None:
    """The audit entry for a quarantined file (inside the caller's transaction)."""
    append_entry(
        project.catalog,
        actor="mldeck",
        action="quarantine",
        reason="; ".join(i.message for i in errors),
        details={
            "batch_id": batch_id,
            "source": str(source),
            "sha256": digest,
            "quarantine_path": str(quarantine_path),
        },
    )


QUARANTINE_STEM_CHARS = 60
"""How much of the original name (made safe) a quarantine copy's name keeps."""


def quarantine_name(name: str, digest: str) -> str:
    """A quarantine copy's file name: the content hash, then a safe, short form of the name.

    Any original name (spaces, quotes, other scripts, up to the file system's
    255 bytes) gives at most ~85 ASCII bytes, so the copy, its `.reason.txt`
    and their temp names always fit. The data suffix is kept.
    """
    lower = name.lower()
    suffix = next((s for s in DATA_SUFFIXES if lower.endswith(s)), "")
    stem = name[: len(name) - len(suffix)] if suffix else name
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._-")[:QUARANTINE_STEM_CHARS]
    return f"{digest[:12]}-{safe or 'file'}{suffix.lower()}"


def quarantine_file(project: Project, path: Path, digest: str, issues: list[Issue]) -> Path:
    """Copy the file byte for byte into the quarantine, with a reason file beside it."""
    folder = project.quarantine_dir
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / quarantine_name(path.name, digest)
    temp = folder / f".{target.name}.tmp"
    with open_regular(path) as source, open(temp, "wb") as copy:
        shutil.copyfileobj(source, copy)
    os.replace(temp, target)
    reasons = "\n".join(f"- {display_name(i.message)}" for i in issues)
    reason_file = target.with_name(target.name + ".reason.txt")
    temp.write_text(
        f"source: {display_name(str(path))}\nname: {display_name(path.name)}\nsha256: {digest}\n"
        f"rejected at: {utcnow()}Z\n{reasons}\n",
        encoding="utf-8",
    )
    os.replace(temp, reason_file)
    return target


def record_batch(
    catalog: Catalog,
    *,
    kind: str,
    source: Path,
    name: str,
    digest: str,
    size: int,
    fmt: str,
    status: str,
    rows: int,
    schema: list[dict[str, str]],
    labelled: bool,
    issues: list[Issue],
    snapshot_hash: str | None = None,
    quarantine_path: Path | None = None,
    revalidated_from: int | None = None,
) -> int:
    """The `batches` row of an ingested file and its validation issues, inside the caller's
    transaction; returns the batch id."""
    batch_id = int(
        catalog.scalar(
            "INSERT INTO batches (kind, source_path, source_name, content_hash, size_bytes,"
            " format, status, row_count, schema_json, labelled, snapshot_hash,"
            " quarantine_path, ingested_at, revalidated_from)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING batch_id",
            [
                kind,
                str(source),
                name,
                digest,
                size,
                fmt,
                status,
                rows,
                json.dumps(schema),
                labelled,
                snapshot_hash,
                None if quarantine_path is None else str(quarantine_path),
                utcnow(),
                revalidated_from,
            ],
        )
    )
    record_issues(catalog, batch_id, issues)
    return batch_id


def record_issues(catalog: Catalog, batch_id: int, issues: list[Issue]) -> None:
    for issue in issues:
        catalog.execute(
            "INSERT INTO validation_issues VALUES (?, ?, ?, ?, ?)",
            [batch_id, issue.severity, issue.column, issue.code, issue.message],
        )


def seen_before(
    project: Project,
    path: Path,
    digest: str,
    size: int,
    fmt: str,
    events: EventSink,
    kind: str,
) -> IngestResult | None:
    """The result for a file whose bytes were ingested before (skipped or duplicate), else None.

    The same path with the same bytes is skipped; the same bytes under another
    path are recorded as a duplicate of the first batch that had them.
    """
    source = path.resolve()
    catalog = project.catalog
    seen = catalog.row(
        "SELECT batch_id, status FROM batches WHERE source_path = ? AND content_hash = ?",
        [str(source), digest],
    )
    if seen:
        events(StageFinished("ingest", path.name, "skipped", f"already {seen['status']}"))
        return IngestResult(
            path, "skipped", digest, batch_id=seen["batch_id"], previous_status=seen["status"]
        )
    original = catalog.row(
        "SELECT batch_id FROM batches WHERE content_hash = ? AND status != 'duplicate' "
        "ORDER BY batch_id LIMIT 1",
        [digest],
    )
    if original:
        return _record_duplicate(
            project, source, digest, size, fmt, original["batch_id"], events, kind
        )
    return None


def _record_duplicate(
    project: Project,
    source: Path,
    digest: str,
    size: int,
    fmt: str,
    original: int,
    events: EventSink,
    kind: str = "data",
) -> IngestResult:
    batch_id = int(
        project.catalog.scalar(
            "INSERT INTO batches (kind, source_path, source_name, content_hash, size_bytes, format,"
            " status, duplicate_of, ingested_at) VALUES (?, ?, ?, ?, ?, ?, 'duplicate', ?, ?)"
            " RETURNING batch_id",
            [kind, str(source), source.name, digest, size, fmt, original, utcnow()],
        )
    )
    events(StageFinished("ingest", source.name, "duplicate", f"same bytes as batch {original}"))
    return IngestResult(source, "duplicate", digest, batch_id=batch_id, duplicate_of=original)
