"""storage/: the DuckDB catalog (migrations, locking, transactions), the object store, the audit log.

Everything runs against real DuckDB files and real files in tmp dirs; the
cross-process cases start a second Python process.
"""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import duckdb
import pytest

import storage.catalog as catalog_module
from storage.audit import GENESIS_HASH, _entry_hash, append_entry, verify_chain
from storage.catalog import SCHEMA_VERSION, Catalog
from storage.errors import (
    CatalogError,
    CatalogLockedError,
    ObjectCorruptError,
    ObjectMissingError,
    ObjectStoreError,
)
from storage.migrations import MIGRATIONS, Migration
from storage.objects import ObjectStore, sha256_file

REPO = Path(__file__).resolve().parents[2]

# The tables issue 2 asks the catalog to hold, by the names the schema gives them.
REQUIRED_TABLES = {
    "batches",
    "validation_issues",
    "stage_runs",
    "datasets",
    "feature_definitions",
    "training_runs",
    "metrics",
    "model_versions",
    "aliases",
    "audit_log",
    "schema_migrations",
}


def tables(catalog: Catalog) -> set[str]:
    return {
        r["table_name"] for r in catalog.rows("SELECT table_name FROM information_schema.tables")
    }


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    """Run a snippet in a fresh interpreter (a separate process, as a second command would be)."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def cat_path(tmp_path: Path) -> Path:
    # A folder that does not exist yet: opening must create it.
    return tmp_path / "fresh" / ".mldeck" / "catalog.duckdb"


@pytest.fixture
def catalog(cat_path: Path) -> Iterator[Catalog]:
    with Catalog.open(cat_path) as cat:
        yield cat


# ---------------------------------------------------------------- migrations


def test_open_on_empty_folder_creates_every_table_and_records_the_schema(cat_path: Path) -> None:
    assert not cat_path.parent.exists()
    with Catalog.open(cat_path) as cat:
        assert cat_path.is_file()
        assert REQUIRED_TABLES <= tables(cat)
        recorded = cat.rows("SELECT number, name FROM schema_migrations ORDER BY number")
        assert [(r["number"], r["name"]) for r in recorded] == [
            (m.number, m.name) for m in MIGRATIONS
        ]
        assert cat.schema_version() == SCHEMA_VERSION == MIGRATIONS[-1].number
        # The audit log has the columns the issue names: who, when, action, from/to, reason.
        audit_columns = {
            r["column_name"]
            for r in cat.rows(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'audit_log'"
            )
        }
        assert {"actor", "recorded_at", "action", "from_version", "to_version", "reason"} <= (
            audit_columns
        )


def test_migration_numbers_are_increasing_and_unique() -> None:
    numbers = [m.number for m in MIGRATIONS]
    assert numbers == sorted(set(numbers))
    assert numbers[0] == 1


def test_reopening_applies_nothing_new(cat_path: Path) -> None:
    with Catalog.open(cat_path) as cat:
        first = cat.rows("SELECT number, applied_at FROM schema_migrations ORDER BY number")
    with Catalog.open(cat_path) as cat:
        assert cat.migrate() == []
        again = cat.rows("SELECT number, applied_at FROM schema_migrations ORDER BY number")
    assert again == first


@pytest.mark.parametrize("read_only", [False, True], ids=["write", "read-only"])
def test_a_new_migration_is_applied_forward_on_open(
    cat_path: Path, monkeypatch: pytest.MonkeyPatch, read_only: bool
) -> None:
    """A read-only open too: a lookup after an upgrade migrates the old catalog first."""
    with Catalog.open(cat_path) as cat:
        cat.execute("INSERT INTO aliases VALUES ('champion', 1, TIMESTAMP '2024-01-01 00:00:00')")
    extra = Migration(SCHEMA_VERSION + 1, "add note", "ALTER TABLE aliases ADD COLUMN note VARCHAR")
    monkeypatch.setattr(catalog_module, "MIGRATIONS", [*MIGRATIONS, extra])
    monkeypatch.setattr(catalog_module, "SCHEMA_VERSION", extra.number)
    with Catalog.open(cat_path, read_only=read_only) as cat:
        assert cat.schema_version() == extra.number
        # The existing row survived and gained the new column.
        assert cat.rows("SELECT alias, version, note FROM aliases") == [
            {"alias": "champion", "version": 1, "note": None}
        ]
        assert cat.migrate() == []


def test_a_failing_migration_is_rolled_back_whole(
    cat_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    Catalog.open(cat_path).close()
    broken = Migration(
        SCHEMA_VERSION + 1,
        "broken",
        "CREATE TABLE half_done (x INTEGER); SELECT * FROM no_such_table;",
    )
    monkeypatch.setattr(catalog_module, "MIGRATIONS", [*MIGRATIONS, broken])
    monkeypatch.setattr(catalog_module, "SCHEMA_VERSION", broken.number)
    with pytest.raises(CatalogError) as err:
        Catalog.open(cat_path)
    assert f"migration {broken.number}" in err.value.msg and "broken" in err.value.msg
    monkeypatch.undo()
    with Catalog.open(cat_path) as cat:
        assert "half_done" not in tables(cat)
        assert cat.schema_version() == SCHEMA_VERSION


def test_a_read_only_catalog_reads_and_refuses_writes(cat_path: Path) -> None:
    with Catalog.open(cat_path) as cat:
        cat.execute("INSERT INTO aliases VALUES ('champion', 3, TIMESTAMP '2024-01-01 00:00:00')")
    with Catalog.open(cat_path, read_only=True) as cat:
        assert cat.schema_version() == SCHEMA_VERSION
        assert cat.rows("SELECT alias, version FROM aliases") == [
            {"alias": "champion", "version": 3}
        ]
        with pytest.raises(duckdb.Error, match="read-only"):
            cat.execute("DELETE FROM aliases")
    with Catalog.open(cat_path) as cat:
        assert cat.scalar("SELECT count(*) FROM aliases") == 1


def test_a_read_only_open_of_a_missing_catalog_creates_it(tmp_path: Path) -> None:
    path = tmp_path / "state" / "catalog.duckdb"
    with Catalog.open(path, read_only=True) as cat:
        assert cat.schema_version() == SCHEMA_VERSION
        assert REQUIRED_TABLES <= tables(cat)


def test_a_catalog_newer_than_this_code_is_refused(cat_path: Path) -> None:
    newer = SCHEMA_VERSION + 5
    with Catalog.open(cat_path) as cat:
        cat.execute("INSERT INTO schema_migrations VALUES (?, 'from the future', now())", [newer])
    for read_only in (False, True):
        with pytest.raises(CatalogError) as err:
            Catalog.open(cat_path, read_only=read_only)
        assert not isinstance(err.value, CatalogLockedError)
        assert str(cat_path) in err.value.msg
        assert f"schema {newer}" in err.value.msg and "upgrade mldeck" in err.value.msg
    # The refused open left nothing holding the file: another process can open it.
    probe = run_python(
        f"""
        import duckdb
        con = duckdb.connect({str(cat_path)!r})
        print(con.execute("SELECT max(number) FROM schema_migrations").fetchone()[0])
        """
    )
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.strip() == str(newer)


def test_a_file_that_is_not_a_database_gives_a_catalog_error(tmp_path: Path) -> None:
    path = tmp_path / "catalog.duckdb"
    path.write_bytes(b"this is not a duckdb file\n" * 100)
    with pytest.raises(CatalogError) as err:
        Catalog.open(path)
    assert str(path) in err.value.msg


# ---------------------------------------------------------------- persistence across processes


def test_state_survives_the_process_and_is_seen_by_another(cat_path: Path) -> None:
    with Catalog.open(cat_path) as cat:
        for i in range(7):
            cat.execute(
                "INSERT INTO batches (kind, source_path, source_name, content_hash, size_bytes,"
                " status, ingested_at) VALUES ('data', ?, ?, ?, ?, 'accepted', now())",
                [f"/data/b{i}.csv", f"b{i}.csv", f"{i:064x}", 100 + i],
            )
        append_entry(cat, actor="ann", action="promote", to_version=3, reason="better")
    reader = run_python(
        f"""
        from pathlib import Path
        from storage.catalog import Catalog
        from storage.audit import verify_chain
        with Catalog.open(Path({str(cat_path)!r})) as cat:
            print(cat.scalar("SELECT count(*) FROM batches"))
            print(cat.scalar("SELECT sum(size_bytes) FROM batches"))
            print(cat.scalar("SELECT reason FROM audit_log"))
            print(verify_chain(cat))
        """
    )
    assert reader.returncode == 0, reader.stderr
    assert reader.stdout.split() == ["7", str(sum(100 + i for i in range(7))), "better", "None"]


def let_go(holder: subprocess.Popen[str]) -> None:
    """Tell a `holding` process to close the catalog (once; later calls do nothing)."""
    assert holder.stdin is not None
    with suppress(BrokenPipeError, ValueError):  # it has let go already
        holder.stdin.write("\n")
        holder.stdin.close()


@contextmanager
def holding(cat_path: Path, read_only: bool) -> Iterator[subprocess.Popen[str]]:
    """Another process with the catalog open until its stdin gets a line."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys
                from pathlib import Path
                from storage.catalog import Catalog
                cat = Catalog.open(Path({str(cat_path)!r}), read_only={read_only})
                print("holding", flush=True)
                sys.stdin.readline()
                cat.close()
                """
            ),
        ],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdin is not None
        assert holder.stdout.readline().strip() == "holding"
        yield holder
        let_go(holder)
        assert holder.wait(timeout=30) == 0
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


def test_a_second_writer_process_gets_a_clear_lock_error(cat_path: Path) -> None:
    Catalog.open(cat_path).close()
    with holding(cat_path, read_only=False) as holder:
        for read_only in (False, True):
            with pytest.raises(CatalogLockedError) as err:
                Catalog.open(cat_path, read_only=read_only)
            msg = err.value.msg
            assert str(cat_path) in msg
            assert "open for writing" in msg
            assert f"process {holder.pid}" in msg
            assert "Traceback" not in msg
    # Once the holder is gone, the catalog opens normally.
    with Catalog.open(cat_path) as cat:
        assert cat.schema_version() == SCHEMA_VERSION


def test_readers_share_the_catalog_and_a_writer_waits_for_them(cat_path: Path) -> None:
    Catalog.open(cat_path).close()
    with holding(cat_path, read_only=True) as holder:
        with Catalog.open(cat_path, read_only=True) as cat:  # readers share it
            assert cat.schema_version() == SCHEMA_VERSION
        # The reader lets go a moment after the writer starts waiting for it.
        threading.Timer(0.5, let_go, [holder]).start()
        with Catalog.open(cat_path) as cat:
            assert cat.schema_version() == SCHEMA_VERSION
        assert holder.wait(timeout=30) == 0


def test_a_writer_names_a_reader_that_does_not_let_go(
    cat_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    Catalog.open(cat_path).close()
    monkeypatch.setattr(catalog_module, "READERS_WAIT_S", 0.3)
    with holding(cat_path, read_only=True) as holder:
        with pytest.raises(CatalogLockedError) as err:
            Catalog.open(cat_path)
        assert err.value.msg == (
            f"{cat_path} is being read by process {holder.pid} (a lookup such as "
            "`mldeck explain`); run this again when it has finished"
        )


# ---------------------------------------------------------------- transactions


def _insert_alias(cat: Catalog, alias: str, version: int) -> None:
    cat.execute("INSERT INTO aliases VALUES (?, ?, now())", [alias, version])


def test_a_transaction_rolls_back_on_exception(catalog: Catalog) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        with catalog.transaction():
            _insert_alias(catalog, "champion", 1)
            assert catalog.scalar("SELECT count(*) FROM aliases") == 1
            raise RuntimeError("boom")
    assert catalog.scalar("SELECT count(*) FROM aliases") == 0
    # The catalog is usable afterwards and a later transaction commits.
    with catalog.transaction():
        _insert_alias(catalog, "champion", 2)
    assert catalog.rows("SELECT alias, version FROM aliases") == [
        {"alias": "champion", "version": 2}
    ]


def test_a_failing_nested_block_rolls_back_the_outer_transaction(catalog: Catalog) -> None:
    with pytest.raises(duckdb.ConstraintException):
        with catalog.transaction():
            _insert_alias(catalog, "champion", 1)
            with catalog.transaction():
                _insert_alias(catalog, "challenger", 2)
                _insert_alias(catalog, "champion", 3)  # primary key clash
    assert catalog.scalar("SELECT count(*) FROM aliases") == 0


def test_committed_transaction_is_durable_after_reopen(cat_path: Path) -> None:
    with Catalog.open(cat_path) as cat:
        with cat.transaction():
            _insert_alias(cat, "champion", 4)
            _insert_alias(cat, "challenger", 5)
    with Catalog.open(cat_path) as cat:
        assert cat.rows("SELECT alias, version FROM aliases ORDER BY alias") == [
            {"alias": "challenger", "version": 5},
            {"alias": "champion", "version": 4},
        ]


# ---------------------------------------------------------------- object store


@pytest.fixture
def store(tmp_path: Path) -> ObjectStore:
    objects = ObjectStore(tmp_path / "objects")
    objects.ensure()
    return objects


def stored_files(store: ObjectStore) -> list[Path]:
    return sorted(
        p for p in store.root.rglob("*") if p.is_file() and store.tmp_dir not in p.parents
    )


def test_put_bytes_round_trips_under_its_sha256(store: ObjectStore) -> None:
    data = b"loan_id,default\nL1,0\nL2,1\n"
    digest = store.put_bytes(data)
    assert digest == hashlib.sha256(data).hexdigest()
    path = store.path(digest)
    assert path == store.root / digest[:2] / digest
    assert path.read_bytes() == data
    assert store.read_bytes(digest) == data
    assert store.verified_path(digest) == path
    assert store.exists(digest)
    assert list(store.iter_digests()) == [digest]


def test_put_file_copies_and_leaves_the_source_alone(store: ObjectStore, tmp_path: Path) -> None:
    source = tmp_path / "model.bin"
    data = os.urandom(3 * (1 << 20) + 17)  # more than one hashing chunk
    source.write_bytes(data)
    before = (sha256_file(source), source.stat().st_mtime_ns, stat.S_IMODE(source.stat().st_mode))
    digest = store.put_file(source)
    assert digest == hashlib.sha256(data).hexdigest() == sha256_file(source)
    assert store.read_bytes(digest) == data
    assert source.exists()
    after = (sha256_file(source), source.stat().st_mtime_ns, stat.S_IMODE(source.stat().st_mode))
    assert after == before


def test_same_bytes_are_stored_once(store: ObjectStore, tmp_path: Path) -> None:
    data = b"same content" * 1000
    one = tmp_path / "a.bin"
    two = tmp_path / "b.bin"
    one.write_bytes(data)
    two.write_bytes(data)
    digests = {store.put_bytes(data), store.put_file(one), store.put_file(two)}
    assert len(digests) == 1
    assert len(stored_files(store)) == 1
    other = store.put_bytes(data + b"!")
    assert other not in digests
    assert len(stored_files(store)) == 2


def test_objects_are_stored_read_only(store: ObjectStore) -> None:
    path = store.path(store.put_bytes(b"immutable"))
    mode = stat.S_IMODE(path.stat().st_mode)
    assert mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH) == 0


def test_writes_leave_nothing_in_tmp(store: ObjectStore, tmp_path: Path) -> None:
    source = tmp_path / "x.bin"
    source.write_bytes(b"x" * 5000)
    store.put_bytes(b"a")
    store.put_bytes(b"a")  # already there
    store.put_file(source)
    store.put_file(source)  # already there: the staged copy must be removed too
    with store.staging_path(".parquet") as staged:
        staged.write_bytes(b"written by a writer")
        store.adopt(staged)
    with store.staging_path() as staged:
        staged.write_bytes(b"abandoned by a writer that failed")
    assert list(store.tmp_dir.iterdir()) == []
    assert len(stored_files(store)) == 3


def test_tampered_bytes_are_refused_on_read(store: ObjectStore) -> None:
    data = b"model weights" * 100
    digest = store.put_bytes(data)
    path = store.path(digest)
    os.chmod(path, 0o644)
    path.write_bytes(data[:-1] + b"X")
    with pytest.raises(ObjectCorruptError) as err:
        store.read_bytes(digest)
    assert digest[:12] in err.value.msg and "corrupt" in err.value.msg
    with pytest.raises(ObjectCorruptError):
        store.verified_path(digest)


def test_a_missing_object_is_reported(store: ObjectStore) -> None:
    digest = hashlib.sha256(b"never stored").hexdigest()
    assert not store.exists(digest)
    with pytest.raises(ObjectMissingError) as err:
        store.read_bytes(digest)
    assert digest[:12] in err.value.msg
    with pytest.raises(ObjectMissingError):
        store.verified_path(digest)
    # A stored object that disappears is missing too.
    stored = store.put_bytes(b"here for now")
    store.path(stored).unlink()
    with pytest.raises(ObjectMissingError):
        store.read_bytes(stored)


@pytest.mark.parametrize("bad", ["", "abc", "../" + "0" * 61, "A" * 64, "g" * 64])
def test_object_names_must_be_sha256_digests(store: ObjectStore, bad: str) -> None:
    with pytest.raises(ObjectStoreError):
        store.path(bad)


# ---------------------------------------------------------------- audit log


def _fill_audit(cat: Catalog) -> list[int]:
    return [
        append_entry(cat, actor="ann", action="register", to_version=1),
        append_entry(
            cat,
            actor="bob",
            action="promote",
            alias="champion",
            from_version=1,
            to_version=2,
            reason="beats v1 on AUC",
            details={"auc": 0.93},
        ),
        append_entry(
            cat,
            actor="ann",
            action="rollback",
            alias="champion",
            from_version=2,
            to_version=1,
            reason="latency",
        ),
    ]


def test_audit_entries_chain_and_verify(catalog: Catalog) -> None:
    ids = _fill_audit(catalog)
    assert ids == [1, 2, 3]
    entries = catalog.rows("SELECT * FROM audit_log ORDER BY entry_id")
    assert entries[0]["prev_hash"] == GENESIS_HASH
    for before, after in zip(entries, entries[1:], strict=False):
        assert after["prev_hash"] == before["entry_hash"]
    assert len({e["entry_hash"] for e in entries}) == 3
    assert entries[1]["actor"] == "bob" and entries[1]["reason"] == "beats v1 on AUC"
    assert (entries[1]["from_version"], entries[1]["to_version"]) == (1, 2)
    assert verify_chain(catalog) is None


def test_audit_chain_verifies_after_reopen(cat_path: Path) -> None:
    with Catalog.open(cat_path) as cat:
        _fill_audit(cat)
    with Catalog.open(cat_path) as cat:
        assert verify_chain(cat) is None
        assert append_entry(cat, actor="cy", action="archive", to_version=1) == 4
        assert verify_chain(cat) is None


def test_an_edited_audit_row_is_named(catalog: Catalog) -> None:
    _fill_audit(catalog)
    catalog.execute("UPDATE audit_log SET reason = 'it was better' WHERE entry_id = 2")
    assert verify_chain(catalog) == 2


def test_an_edited_row_with_a_recomputed_hash_breaks_the_next_link(catalog: Catalog) -> None:
    _fill_audit(catalog)
    # A forger who rewrites row 2 and recomputes its own hash still breaks row 3's link.
    catalog.execute("UPDATE audit_log SET actor = 'mallory' WHERE entry_id = 2")
    forged = catalog.row("SELECT * FROM audit_log WHERE entry_id = 2")
    assert forged is not None
    catalog.execute(
        "UPDATE audit_log SET entry_hash = ? WHERE entry_id = 2",
        [_entry_hash(forged, forged["prev_hash"])],
    )
    assert verify_chain(catalog) == 3


def test_a_deleted_audit_row_breaks_the_chain_at_the_next_entry(catalog: Catalog) -> None:
    _fill_audit(catalog)
    catalog.execute("DELETE FROM audit_log WHERE entry_id = 2")
    assert verify_chain(catalog) == 3


def test_an_empty_audit_log_verifies(catalog: Catalog) -> None:
    assert verify_chain(catalog) is None


def test_audit_append_inside_a_failed_transaction_leaves_no_entry(catalog: Catalog) -> None:
    with pytest.raises(RuntimeError):
        with catalog.transaction():
            append_entry(catalog, actor="ann", action="promote", to_version=2)
            raise RuntimeError("the alias move failed")
    assert catalog.scalar("SELECT count(*) FROM audit_log") == 0
    assert append_entry(catalog, actor="ann", action="promote", to_version=2) == 1
