"""The DuckDB catalog: one file per project, migrated forward on open.

DuckDB allows one read-write process per database file, or any number of
read-only ones. `Catalog.open` turns a lock conflict into `CatalogLockedError`,
naming the process that holds it; an open for writing first waits a little for
read-only lookups to finish.
"""

from __future__ import annotations

import importlib
import re
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from storage.errors import CatalogError, CatalogLockedError
from storage.migrations import MIGRATIONS

if TYPE_CHECKING:
    import duckdb

SCHEMA_VERSION = MIGRATIONS[-1].number
HEADER_BYTES = 3 * 4096
"""DuckDB's file header: one main header and two database headers before the blocks."""


def utcnow() -> datetime:
    """Now in UTC, without tzinfo (the catalog's TIMESTAMP columns are UTC)."""
    return datetime.now(UTC).replace(tzinfo=None)


def _driver(read_only: bool) -> ModuleType:
    """DuckDB's module for a connection (see `Catalog.open`).

    Imported here, not at the top: duckdb costs ~0.2 s to import, and commands that
    talk to a running engine (or only read engine.json) never open a catalog.
    """
    if read_only:
        # The package re-exports its C extension under this name; fall back to the
        # package should a release stop shipping it.
        try:
            return importlib.import_module("_duckdb")
        except ImportError:
            pass
    return importlib.import_module("duckdb")


READERS_WAIT_S = 3.0
"""How long an open for writing waits for read-only lookups (`mldeck explain`, which
hold the file for well under a second) to let go of the catalog."""


def _connect(path: Path, read_only: bool) -> duckdb.DuckDBPyConnection:
    """A connection to the catalog file; a lock conflict becomes `CatalogLockedError`."""
    driver = _driver(read_only)
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + READERS_WAIT_S
    while True:
        try:
            conn: duckdb.DuckDBPyConnection = driver.connect(str(path), read_only=read_only)
            return conn
        except driver.IOException as exc:
            text = str(exc)
            if "lock" not in text.lower():
                raise CatalogError(f"cannot open {path}: {text}") from exc
            # DuckDB adds this hint only when the holders merely read.
            readers = "read-only mode" in text
            if readers and time.monotonic() < deadline:
                time.sleep(0.05)
                continue
            pid = re.search(r"PID (\d+)", text)
            holder = f"process {pid.group(1)}" if pid else "another process"
            if readers:
                raise CatalogLockedError(
                    f"{path} is being read by {holder} (a lookup such as `mldeck explain`); "
                    "run this again when it has finished"
                ) from exc
            raise CatalogLockedError(
                f"{path} is open for writing by {holder}; stop it or run this command through it"
            ) from exc
        except driver.Error as exc:
            raise CatalogError(f"cannot open {path}: {exc}") from exc


class Catalog:
    """A connection to a project's catalog with small row helpers."""

    def __init__(self, conn: duckdb.DuckDBPyConnection, path: Path) -> None:
        self.conn = conn
        self.path = path
        self._depth = 0

    @classmethod
    def open(cls, path: Path, read_only: bool = False) -> Catalog:
        """Open (creating if needed) and migrate the catalog at `path`.

        Args:
            read_only: open it for reading only, for commands that only look things up.
                Such a connection comes from DuckDB's C extension alone, whose import
                costs ~50 ms against ~200 ms for the `duckdb` package, and lacks the
                relational API (`.sql()`) until `duckdb` is imported. A catalog that
                does not exist yet or needs migrating is opened for writing instead, so
                that a catalog written by an older mldeck stays readable.
        """
        if read_only and not path.exists():
            return cls.open(path)
        wal = path.with_name(path.name + ".wal")
        replays_wal = wal.exists()
        conn = _connect(path, read_only)
        catalog = cls(conn, path)
        try:
            if not replays_wal:  # blocks a WAL replay adds may not be on disk yet
                catalog.check_complete()
            outdated = read_only and catalog.check_version() < SCHEMA_VERSION
            if not read_only:
                catalog.migrate()
        except BaseException:
            conn.close()  # never leave a half-opened catalog holding the file
            raise
        if outdated:
            catalog.close()
            return cls.open(path)
        return catalog

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def check_complete(self) -> None:
        """Refuse a catalog file too short for the blocks its header says are used (a truncated
        copy, a full disk): DuckDB opens one and fails later, on whichever query first
        reads a missing block."""
        found = self.conn.execute(
            "SELECT block_size, used_blocks FROM pragma_database_size()"
            " WHERE database_name = current_database()"
        ).fetchone()
        if found is None:
            return
        # Used blocks only: free ones past the end may have been cut off (harmless).
        block_size, used_blocks = int(found[0]), int(found[1])
        if used_blocks == 0:  # a new, empty file
            return
        expected = HEADER_BYTES + block_size * used_blocks
        size = self.path.stat().st_size
        if size < expected:
            raise CatalogError(
                f"{self.path} is damaged: the file has {size} bytes, its used blocks need "
                f"{expected} (truncated?); restore it from a backup (the objects in "
                f"{self.path.parent / 'objects'} are not affected)"
            )

    def schema_version(self) -> int:
        exists = self.scalar(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_migrations'"
        )
        if not exists:
            return 0
        return int(self.scalar("SELECT coalesce(max(number), 0) FROM schema_migrations"))

    def check_version(self) -> int:
        """The catalog's schema number; refuses one newer than this code knows."""
        current = self.schema_version()
        if current > SCHEMA_VERSION:
            raise CatalogError(
                f"{self.path} has schema {current}, newer than this mldeck knows "
                f"({SCHEMA_VERSION}); upgrade mldeck"
            )
        return current

    def migrate(self) -> list[int]:
        """Apply every migration newer than the catalog's schema; return their numbers."""
        import duckdb

        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " number INTEGER PRIMARY KEY, name VARCHAR NOT NULL, applied_at TIMESTAMP NOT NULL)"
        )
        current = self.check_version()
        applied = []
        for migration in MIGRATIONS:
            if migration.number <= current:
                continue
            try:
                with self.transaction():
                    self.conn.execute(migration.sql)
                    self.conn.execute(
                        "INSERT INTO schema_migrations VALUES (?, ?, ?)",
                        [migration.number, migration.name, utcnow()],
                    )
            except duckdb.Error as exc:
                raise CatalogError(
                    f"{self.path}: migration {migration.number} ({migration.name}) failed and "
                    f"was rolled back: {exc}"
                ) from exc
            applied.append(migration.number)
        return applied

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """A transaction; nested uses join the outermost one."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self.conn.execute("BEGIN TRANSACTION")
        self._depth = 1
        try:
            yield
        except BaseException:
            self._depth = 0
            self.conn.execute("ROLLBACK")
            raise
        self._depth = 0
        self.conn.execute("COMMIT")

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> None:
        self.conn.execute(sql, params or [])

    def rows(self, sql: str, params: Sequence[Any] | None = None) -> list[dict[str, Any]]:
        cursor = self.conn.execute(sql, params or [])
        names = [d[0] for d in cursor.description or []]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def row(self, sql: str, params: Sequence[Any] | None = None) -> dict[str, Any] | None:
        found = self.rows(sql, params)
        return found[0] if found else None

    def scalar(self, sql: str, params: Sequence[Any] | None = None) -> Any:
        found = self.conn.execute(sql, params or []).fetchone()
        return None if found is None else found[0]
