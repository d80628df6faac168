"""Reading a dropped file: which files are candidates, its format sniffed, loaded into a scratch
DuckDB table and hashed in one pass; a load error is kept for the quarantine, not raised."""

from __future__ import annotations

import csv
import gzip
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TextIO

import duckdb

from engine.core.errors import InputFileError
from engine.data.arrivals import open_regular
from storage.objects import sha256_file

_scratch = threading.local()

SNIFF_BYTES = 64 * 1024


DATA_SUFFIXES = (".csv", ".csv.gz", ".parquet", ".pq", ".tsv", ".txt")


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


def batch_columns(con: duckdb.DuckDBPyConnection) -> list[dict[str, str]]:
    """The loaded `batch` table's columns (DuckDB types) as `batches.schema_json` records them."""
    return [{"name": r[0], "type": r[1]} for r in con.execute("DESCRIBE batch").fetchall()]
