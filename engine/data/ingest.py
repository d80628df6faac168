"""Stage 1, ingest: read a CSV / gzip CSV / Parquet file once, by content hash.

A file is hashed while DuckDB loads it into an in-memory table. The same bytes
already ingested from the same path are skipped; from another path they are
recorded as a duplicate. A readable batch is validated against the contract
(stage 2) and stored as an immutable Parquet snapshot in the object store. A
batch that fails hard is copied byte for byte into `.mldeck/quarantine/` with
every reason. Source files are only ever read.

Only regular files are read (engine.data.arrivals): a FIFO, socket or device, or a
link from a watched folder out of the project, is *refused* with one line and
an audit entry, never opened. The quarantine copy gets a short, safe name (the
original name stays in the catalog and the reason file), so no file name, up
to the file system's limit, can make the copy fail.
"""

from __future__ import annotations

import csv
import gzip
import json
import os
import re
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TextIO

import duckdb

from engine.core.answers import BatchStatus, IngestAnswer, IngestStatus
from engine.core.config_template import write_inferred
from engine.core.errors import InputFileError
from engine.core.events import EventSink, StageFinished, StageStarted, ignore_events
from engine.core.project import CONFIG_NAME, Project
from engine.data.arrivals import display_name, open_regular, refusal, utf8_text
from engine.data.contract import SQL_TYPES, Issue, infer_contract, validate_batch
from engine.records.stage_runs import stage_run
from storage.audit import append_entry
from storage.catalog import Catalog, utcnow
from storage.objects import sha256_file
from storage.sql import quote_ident, quote_literal

SNIFF_BYTES = 64 * 1024
_scratch = threading.local()
DATA_SUFFIXES = (".csv", ".csv.gz", ".parquet", ".pq", ".tsv", ".txt")


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


def is_candidate_file(path: Path) -> bool:
    """Hidden, temporary and partial files are never ingested."""
    name = path.name
    return not (name.startswith((".", "~")) or name.endswith((".tmp", ".part", ".swp", "~")))


def expand_paths(paths: list[Path]) -> list[Path]:
    """Files given directly, plus the candidate files of given folders, in name order.

    A folder's FIFOs, sockets, devices and links are listed too (ingest refuses
    or follows them, saying why); its sub-folders are not.
    """
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(
                p for p in sorted(path.iterdir()) if is_candidate_file(p) and not p.is_dir()
            )
        elif os.path.lexists(path):
            files.append(path)
        else:
            raise InputFileError(f"{path}: no such file or folder")
    return files


def sniff(path: Path) -> str:
    """The file's format (csv, csv.gz, parquet); raises InputFileError for non-tables."""
    with open_regular(path) as handle:
        head = handle.read(SNIFF_BYTES)
    if not head:
        raise InputFileError(f"{path.name}: empty file (0 bytes)")
    if head[:4] == b"PAR1":
        return "parquet"
    fmt = "csv"
    if head[:2] == b"\x1f\x8b":
        fmt = "csv.gz"
        try:
            with gzip.open(path, "rb") as handle:
                head = handle.read(SNIFF_BYTES)
        except (OSError, EOFError) as exc:
            raise InputFileError(f"{path.name}: gzip data is corrupt or truncated ({exc})") from exc
        if not head:
            raise InputFileError(f"{path.name}: empty file (gzip with no content)")
    if b"\x00" in head:
        raise InputFileError(f"{path.name}: binary data (NUL bytes), not a CSV or Parquet table")
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not just a character cut at the sniff boundary
            raise InputFileError(
                f"{path.name}: not UTF-8 text (byte 0x{head[exc.start]:02x} at offset {exc.start})"
            ) from exc
    return fmt


def _clean_duckdb_error(exc: duckdb.Error) -> str:
    """The first meaningful lines of a DuckDB error, without its hints and option dump."""
    lines: list[str] = []
    for line in str(exc).splitlines():
        text = line.strip()
        if not text:
            if lines:
                break
            continue
        if text.startswith(("Original Line:", "Possible Solution", "LINE ")):
            continue
        lines.append(text.replace("Invalid Input Error: ", "").replace("Conversion Error: ", ""))
    return "; ".join(lines)[:400]


SHAPE_SAMPLE_ROWS = 1000


def _shape_problem(path: Path, fmt: str) -> str | None:
    """Why the file's lines do not form a comma-separated table, or None if they do.

    A few lines with the wrong number of fields make a malformed CSV (the first
    one is named); when most lines disagree with the header, it is not a table.
    """
    handle: TextIO
    if fmt == "csv.gz":
        handle = gzip.open(path, "rt", encoding="utf-8", errors="replace", newline="")
    else:
        handle = open(path, encoding="utf-8", errors="replace", newline="")
    with handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if not header:
            return None
        first_bad: str | None = None
        seen = bad = 0
        for row in reader:
            if not row:
                continue
            seen += 1
            if len(row) != len(header):
                bad += 1
                if first_bad is None:
                    first_bad = f"line {reader.line_num} has {len(row)} fields but the header has {len(header)}"
            if first_bad is not None and seen >= SHAPE_SAMPLE_ROWS:
                break
    if first_bad is None:
        return None
    if bad * 2 > seen:
        return f"not a table: most lines have a different number of fields ({first_bad})"
    return f"malformed CSV: {first_bad}"


def load_batch(con: duckdb.DuckDBPyConnection, path: Path, fmt: str) -> None:
    """Load the file into table `batch`; raises InputFileError naming the problem."""
    try:
        if fmt == "parquet":
            con.execute("CREATE TABLE batch AS SELECT * FROM read_parquet($p)", {"p": str(path)})
        else:
            compression = "gzip" if fmt == "csv.gz" else "none"
            # skip = 0: the header is the first line; never let the sniffer drop lines.
            con.execute(
                "CREATE TABLE batch AS SELECT * FROM read_csv($p, header = true, skip = 0,"
                " compression = $c)",
                {"p": str(path), "c": compression},
            )
    except duckdb.Error as exc:
        detail = _clean_duckdb_error(exc)
        if fmt != "parquet":
            detail = _shape_problem(path, fmt) or detail
        raise InputFileError(f"{path.name}: cannot be read as {fmt}: {detail}") from exc
    columns = [r[0] for r in con.execute("DESCRIBE batch").fetchall()]
    if fmt != "parquet" and len(columns) == 1:
        problem = _shape_problem(path, fmt) or (
            f"not a table: no delimiter-separated columns (the first line is {columns[0][:80]!r})"
        )
        raise InputFileError(f"{path.name}: {problem}")


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


def scratch_connection() -> duckdb.DuckDBPyConnection:
    """A fresh connection to this thread's in-memory DuckDB, where a batch is loaded.

    Opening an in-memory database costs about 70 ms, a cursor on one about 1 ms:
    that difference decides how fast a burst of small files is ingested.
    """
    database = getattr(_scratch, "database", None)
    if database is None:
        database = _scratch.database = duckdb.connect()
    return database.cursor()


def load_and_hash(
    con: duckdb.DuckDBPyConnection, source: Path
) -> tuple[str, str, InputFileError | None]:
    """Load a file into `batch` on `con` while its sha256 is computed on another thread.

    Returns:
        (sha256, format, the load error or None): an unreadable file is still hashed,
        so it can be quarantined and recognised when it comes again.

    Raises:
        InputFileError: not a regular file (checked without blocking, before hashing).
    """
    open_regular(source).close()
    with ThreadPoolExecutor(max_workers=1) as pool:
        hashing = pool.submit(sha256_file, source)
        fmt, load_error = load_file(con, source)
        return hashing.result(), fmt, load_error


def load_file(con: duckdb.DuckDBPyConnection, source: Path) -> tuple[str, InputFileError | None]:
    """Sniff and load a file into `batch` on `con`: (format, the load error or None).

    An unreadable file is an outcome, not an exception: it is quarantined.
    """
    try:
        fmt = sniff(source)
    except InputFileError as exc:
        return "?", exc
    try:
        load_batch(con, source, fmt)
    except InputFileError as exc:
        return fmt, exc
    return fmt, None


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


def batch_columns(con: duckdb.DuckDBPyConnection) -> list[dict[str, str]]:
    """The loaded `batch` table's columns (DuckDB types) as `batches.schema_json` records them."""
    return [{"name": r[0], "type": r[1]} for r in con.execute("DESCRIBE batch").fetchall()]


def ingest_file(project: Project, path: Path, events: EventSink = ignore_events) -> IngestResult:
    """Ingest and validate one data file (stages 1 and 2)."""
    refused = refuse_unreadable(project, path, events)
    if refused is not None:
        return refused
    source = path.resolve()
    catalog = project.catalog
    events(StageStarted("ingest", path.name))
    con = scratch_connection()
    try:
        digest, fmt, load_error = load_and_hash(con, source)
        size = source.stat().st_size
        seen = seen_before(project, path, digest, size, fmt, events, kind="data")
        if seen is not None:
            return seen

        with stage_run(catalog, "ingest", {"source": str(source), "sha256": digest}) as run:
            issues: list[Issue] = []
            labelled = False
            rows = 0
            if load_error is not None:
                issues = [Issue("error", None, "unreadable", load_error.msg)]
            else:
                rows = int(con.execute("SELECT count(*) FROM batch").fetchone()[0])  # type: ignore[index]
                with stage_run(catalog, "validate", {"source": str(source)}) as check:
                    issues, labelled = validate_loaded(project, con, path)
                    failed = any(i.severity == "error" for i in issues)
                    check.status = "quarantined" if failed else "succeeded"
                    check.outputs = {
                        "errors": sum(i.severity == "error" for i in issues),
                        "warnings": sum(i.severity == "warning" for i in issues),
                    }
            errors = [i for i in issues if i.severity == "error"]
            snapshot_hash = None
            quarantine_path = None
            status: IngestStatus
            if errors:
                quarantine_path = quarantine_file(project, source, digest, issues)
                status = "quarantined"
            else:
                snapshot_hash = store_snapshot(project, con)
                status = "warned" if issues else "accepted"
            with catalog.transaction():
                batch_id = record_batch(
                    catalog,
                    kind="data",
                    source=source,
                    name=path.name,
                    digest=digest,
                    size=size,
                    fmt=fmt,
                    status=status,
                    rows=rows,
                    schema=[] if load_error else batch_columns(con),
                    labelled=labelled,
                    issues=issues,
                    snapshot_hash=snapshot_hash,
                    quarantine_path=quarantine_path,
                )
                if errors:
                    audit_quarantine(project, batch_id, source, digest, quarantine_path, errors)
            run.status = "quarantined" if errors else "succeeded"
            run.outputs = {
                "batch_id": batch_id,
                "status": status,
                "rows": rows,
                "snapshot": snapshot_hash,
                "issues": len(issues),
            }
    finally:
        con.execute("DROP TABLE IF EXISTS batch")
        con.close()
    detail = f"{rows} rows" if not errors else errors[0].message
    events(StageFinished("ingest", path.name, status, detail))
    return IngestResult(
        path,
        status,
        digest,
        batch_id=batch_id,
        rows=rows,
        labelled=labelled,
        snapshot_hash=snapshot_hash,
        quarantine_path=quarantine_path,
        issues=issues,
    )


def validate_loaded(
    project: Project, con: duckdb.DuckDBPyConnection, path: Path
) -> tuple[list[Issue], bool]:
    config = project.config
    if config.contract is None:
        inferred = infer_contract(con, "batch", config, path.name)
        columns = inferred.contract.columns
        if config.target is not None and config.target not in columns:
            return [
                Issue(
                    "error",
                    config.target,
                    "missing_target",
                    f"the target column {config.target!r} is missing; the first batch "
                    "must be labelled to infer the contract",
                )
            ], False
        if config.id_column is not None and config.id_column not in columns:
            return [
                Issue(
                    "error",
                    config.id_column,
                    "missing_column",
                    f"the id column {config.id_column!r} is missing",
                )
            ], False
        # Check the batch against its own contract first: a first batch that fails
        # (e.g. duplicate ids) is quarantined and must not become the contract.
        candidate = replace(
            config,
            target=config.target or inferred.target,
            id_column=config.id_column or inferred.id_column,
            task=config.task or inferred.task,
            ignore=config.ignore or inferred.ignore,
            contract=inferred.contract,
        )
        issues, labelled = validate_batch(
            con, "batch", inferred.contract, candidate, soft_checks=False
        )
        if any(i.severity == "error" for i in issues):
            return issues, labelled
        write_inferred(
            project.root / CONFIG_NAME,
            target=inferred.target if config.target is None else None,
            id_column=inferred.id_column if config.id_column is None else None,
            task=inferred.task if config.task is None else None,
            ignore=inferred.ignore if not config.ignore else None,
            contract=inferred.contract,
        )
        project.reload_config()
        return issues, labelled
    assert config.contract is not None
    return validate_batch(con, "batch", config.contract, config)


def store_snapshot(project: Project, con: duckdb.DuckDBPyConnection) -> str:
    """Write the batch as Parquet (contract columns cast to their types) into the object store.

    Snappy, DuckDB's default: on 1M x 20 it wrote in 0.84 s against 1.03 s for
    zstd level 1, for a file 15% larger (bench/ingest.py).
    """
    contract = project.config.contract
    present = [(str(r[0]), str(r[1])) for r in con.execute("DESCRIBE batch").fetchall()]
    exprs = []
    for name, duckdb_type in present:
        col = contract.columns.get(name) if contract else None
        q = quote_ident(name)
        if col is None or SQL_TYPES[col.type] == duckdb_type:
            exprs.append(q)
        else:
            exprs.append(f"CAST({q} AS {SQL_TYPES[col.type]}) AS {q}")
    with project.objects.staging_path(".parquet") as staged:
        con.execute(
            f"COPY (SELECT {', '.join(exprs)} FROM batch) TO {quote_literal(staged)} "
            "(FORMAT parquet, COMPRESSION snappy)"
        )
        return project.objects.adopt(staged)


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


def ingest_result_dict(project: Project, result: IngestResult) -> IngestAnswer:
    """An ingest answer as JSON data (what `mldeck ingest --json` prints per file)."""
    return {
        "path": utf8_text(str(result.path)),
        "kind": "labels" if is_labels_file(project, result.path) else "data",
        "status": result.status,
        "sha256": result.content_hash,
        "batch_id": result.batch_id,
        "rows": result.rows,
        "labelled": result.labelled,
        "snapshot": result.snapshot_hash,
        "duplicate_of": result.duplicate_of,
        "previous_status": result.previous_status,
        "quarantine_path": str(result.quarantine_path) if result.quarantine_path else None,
        "issues": [
            {"severity": i.severity, "column": i.column, "code": i.code, "message": i.message}
            for i in result.issues
        ],
    }


def refuse_unreadable(
    project: Project, path: Path, events: EventSink = ignore_events
) -> IngestResult | None:
    """A `refused` result (and its audit entry) for a file that must not be read, else None.

    The audit entry is written once per file and reason, so a FIFO left in a
    watched folder is not logged again at every start.
    """
    path = Path(os.path.abspath(path))
    reason = refusal(
        path,
        project_root=project.root,
        state_dir=project.state_dir,
        watched=[project.incoming_dir, project.labels_dir],
        follow_symlinks=project.config.watch.follow_symlinks,
    )
    if reason is None:
        return None
    source = display_name(str(path))
    logged = project.catalog.scalar(
        "SELECT count(*) FROM audit_log WHERE action = 'refuse' AND reason = ?"
        " AND json_extract_string(details_json, '$.source') = ?",
        [reason, source],
    )
    if not logged:
        append_entry(
            project.catalog,
            actor="mldeck",
            action="refuse",
            reason=reason,
            details={"source": source},
        )
    name = display_name(path.name)
    events(StageStarted("ingest", name))
    events(StageFinished("ingest", name, "refused", reason))
    return IngestResult(path, "refused", "", issues=[Issue("error", None, "refused", reason)])


def is_labels_file(project: Project, path: Path) -> bool:
    return path.resolve().is_relative_to(project.labels_dir.resolve())
