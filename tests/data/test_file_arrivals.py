"""Files arrive the way people send them: a generated corpus through `mldeck ingest` and a daemon.

The corpus is generated from a seed (`MLDECK_CORPUS_SEED`, printed in every
failure): names with spaces, quotes, dots, leading digits, other scripts, SQL
keywords, punctuation and 250-byte lengths; valid and invalid CSV, gzip CSV
and Parquet content in UTF-8, UTF-8 with a BOM, CRLF and latin-1; links inside
and outside the project, dangling links, FIFOs and sockets; files copied,
written in chunks, moved in from another folder, renamed from a temp name (rsync,
scp, editors) and hard-linked. Every valid file must be ingested exactly once,
every bad one quarantined (its bytes kept under a short name, the original name
in the catalog) or refused with a reason; no source file may change, nothing
may be written outside the project, and nothing may exit 70.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import random
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from engine.core.errors import ConfigError
from engine.core.project import init_project, open_project
from engine.data.arrivals import display_name, utf8_text
from engine.data.batches import quarantine_name
from engine.service.watcher import Watcher
from tests.conftest import REPO
from tests.daemon_helpers import Daemon, wait_until

SEED = int(os.environ.get("MLDECK_CORPUS_SEED", "1313"))
CITIES = ["Zürich", "Montréal", "São Paulo", "Kraków", "Oslo"]
HEADER = ["row_id", "x", "city", "y"]
NAME_MAX = 255

NAME_PIECES = [
    "week 04",
    "it's",
    'say "hi"',
    "v1.2.3",
    "2024-01-31",
    "007",
    "Zürich",
    "données été",
    "日本語",
    "😀",
    "DROP TABLE batches;--",
    "SELECT * FROM x",
    "'; DELETE FROM batches; --",
    "a;b",
    "$(whoami)",
    "100%",
    "(€)",
    "[bold]red",
    "#1",
    "a,b",
    "x&y",
    "back\\slash",
    "NULL",
    "ORDER BY",
    "..",
    "{json}",
    "<tag>",
]


@dataclass
class Item:
    """One file of the corpus and what must become of it."""

    name: str
    kind: str
    """What it is: csv, csv_bom, parquet, binary, fifo, link_outside, ..."""
    expect: str
    """ok (accepted or warned, once) | bad (quarantined with a reason) | refused."""
    arrival: str
    """cp | chunks | mv | rsync | hardlink | link | special."""
    content: bytes = b""

    @property
    def sha(self) -> str:
        return hashlib.sha256(self.content).hexdigest()


# ---------------------------------------------------------------- generating the corpus


class Corpus:
    """Seeded generation of names and contents, unique across one test."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.names: set[str] = set()
        self.next_id = 0

    def name(self, suffix: str, long: bool = False) -> str:
        rng = self.rng
        while True:
            pieces = rng.sample(NAME_PIECES, rng.randint(1, 3))
            stem = rng.choice([" ", "_", ".", "-", ""]).join(pieces)
            if rng.random() < 0.3:
                stem = f"{rng.randint(0, 99)}{stem}"
            stem = stem.lstrip(".~-") or "x"
            if long:
                stem = _fit(stem + " " + "é日x" * 100, NAME_MAX - 5 - len(suffix.encode()))
            name = f"{stem}{suffix}"
            if name not in self.names:
                self.names.add(name)
                return name

    def rows(self, n: int) -> list[list[Any]]:
        rng = self.rng
        rows = []
        for _ in range(n):
            self.next_id += 1
            rows.append(
                [
                    f"R{self.next_id:06d}",
                    round(rng.uniform(1, 99), 3),
                    rng.choice(CITIES),
                    rng.randint(0, 1),
                ]
            )
        return rows

    def valid(self, kind: str) -> bytes:
        rows = self.rows(self.rng.randint(3, 30))
        if kind == "parquet":
            table = pa.table({h: [r[i] for r in rows] for i, h in enumerate(HEADER)})
            sink = io.BytesIO()
            pq.write_table(table, sink)
            return sink.getvalue()
        newline = "\r\n" if kind == "csv_crlf" else "\n"
        text = newline.join([",".join(HEADER)] + [",".join(map(str, r)) for r in rows]) + newline
        data = text.encode("utf-8")
        if kind == "csv_bom":
            data = b"\xef\xbb\xbf" + data
        if kind == "csv_gz":
            data = gzip.compress(data, mtime=0)
        return data

    def invalid(self, kind: str) -> bytes:
        token = self.rng.randrange(10**9)
        if kind == "binary":
            return bytes([0, 1, 2, 255]) + token.to_bytes(8, "big") + bytes(range(256))
        if kind == "ragged":
            lines = [",".join(map(str, r)) for r in self.rows(6)]
            lines[3] += ",extra,fields"
            return ("\n".join([",".join(HEADER), *lines]) + "\n").encode()
        if kind == "no_id":
            rows = self.rows(5)
            body = "\n".join(",".join(map(str, r[1:])) for r in rows)
            return f"x,city,y\n{body}\n".encode()
        if kind == "dup_ids":
            rows = self.rows(5)
            rows[4][0] = rows[0][0]
            return (
                "\n".join([",".join(HEADER)] + [",".join(map(str, r)) for r in rows]) + "\n"
            ).encode()
        if kind == "latin1":
            rows = self.rows(5)
            rows[2][2] = "Zürich"
            text = "\n".join([",".join(HEADER)] + [",".join(map(str, r)) for r in rows]) + "\n"
            return text.encode("latin-1")
        if kind == "truncated_parquet":
            return self.valid("parquet")[:-40]
        if kind == "prose":
            return f"Dear team,\nhere is the data you asked for. ({token})\nBest\n".encode()
        raise AssertionError(kind)


def _fit(text: str, max_bytes: int) -> str:
    """`text` cut to at most `max_bytes` of UTF-8, never inside a character."""
    return text.encode("utf-8")[:max_bytes].decode("utf-8", "ignore").rstrip(" .")


VALID_KINDS = {
    "csv": ".csv",
    "csv_bom": ".csv",
    "csv_crlf": ".csv",
    "csv_gz": ".csv.gz",
    "parquet": ".parquet",
}
INVALID_KINDS = {
    "binary": ".csv",
    "ragged": ".csv",
    "no_id": ".csv",
    "dup_ids": ".csv",
    "latin1": ".csv",
    "truncated_parquet": ".parquet",
    "prose": ".txt",
}
FILE_ARRIVALS = ("cp", "chunks", "mv", "rsync", "hardlink")


def make_corpus(corpus: Corpus, per_kind: int) -> list[Item]:
    """`per_kind` files of each valid and invalid kind, one in eight with a 250-byte name,
    each arriving in a random way, plus links, FIFOs and sockets."""
    rng = corpus.rng
    items: list[Item] = []
    for kinds, expect, make in (
        (VALID_KINDS, "ok", corpus.valid),
        (INVALID_KINDS, "bad", corpus.invalid),
    ):
        for kind, suffix in kinds.items():
            for _ in range(per_kind):
                name = corpus.name(suffix, long=rng.random() < 0.125)
                items.append(Item(name, kind, expect, rng.choice(FILE_ARRIVALS), make(kind)))
    # One empty file (all empty files have the same bytes).
    items.append(Item(corpus.name(".csv"), "empty", "bad", "cp", b""))
    for _ in range(per_kind):
        items.append(Item(corpus.name(".csv"), "link_inside", "ok", "link", corpus.valid("csv")))
        items.append(
            Item(corpus.name(".csv"), "link_outside", "refused", "link", corpus.valid("csv"))
        )
        items.append(Item(corpus.name(".csv"), "link_dangling", "refused", "link"))
        items.append(Item(corpus.name(".csv", long=True), "fifo", "refused", "special"))
        items.append(Item(corpus.name(".csv"), "socket", "refused", "special"))
    # A name whose bytes are not UTF-8 (a latin-1 "é"), as an old zip tool writes it.
    latin1_name = os.fsdecode(b"caf\xe9 " + corpus.name(".csv").encode())
    items.append(Item(latin1_name, "latin1_name", "refused", "cp", corpus.valid("csv")))
    rng.shuffle(items)
    return items


# ---------------------------------------------------------------- delivering it


@dataclass
class Layout:
    """Where a test's files live: the project, and the folders outside it."""

    root: Path
    sources: Path
    """Outside the project: link targets and the files hard-linked in."""
    staging: Path
    """Outside the project, same file system: files `mv`ed into data/incoming."""

    @property
    def incoming(self) -> Path:
        return self.root / "data" / "incoming"

    @property
    def archive(self) -> Path:
        """Inside the project, not watched: targets of links that stay inside."""
        return self.root / "archive"


def make_layout(tmp_path: Path, follow_symlinks: bool = False, polling: bool = False) -> Layout:
    root = tmp_path / "proj"
    init_project(root, target="y", id_column="row_id")
    if follow_symlinks or polling:
        config = root / "mldeck.toml"
        text = config.read_text()
        text = text.replace("polling = false", f"polling = {str(polling).lower()}")
        text = text.replace("quiet_seconds = 2.0", "quiet_seconds = 0.5")
        text = text.replace(
            "follow_symlinks = false", f"follow_symlinks = {str(follow_symlinks).lower()}"
        )
        config.write_text(text)
    layout = Layout(root, tmp_path / "sources", tmp_path / "staging")
    for folder in (layout.sources, layout.staging, layout.archive):
        folder.mkdir()
    return layout


def seed_project(layout: Layout) -> None:
    """The first batch, which the contract is inferred from (all cities, x over 0..100)."""
    rows = [
        [f"S{i:04d}", round(i * 100 / 199, 3), CITIES[i % len(CITIES)], i % 2] for i in range(200)
    ]
    seed = layout.root / "seed.csv"
    seed.write_text("\n".join([",".join(HEADER)] + [",".join(map(str, r)) for r in rows]) + "\n")
    result = cli("ingest", str(seed), cwd=layout.root)
    assert result.returncode == 0, result.stderr


def prepare(layout: Layout, item: Item, index: int) -> Path | None:
    """What has to exist before the item arrives (outside data/incoming); the staged path."""
    if item.arrival == "mv":
        staged = layout.staging / item.name
        staged.write_bytes(item.content)
        return staged
    if item.arrival == "hardlink" or item.kind in ("link_outside",):
        source = layout.sources / f"{index:03d}-{item.kind}{Path(item.name).suffix}"
        source.write_bytes(item.content)
        return source
    if item.kind == "link_inside":
        target = layout.archive / f"{index:03d}-kept.csv"
        target.write_bytes(item.content)
        return target
    return None


def deliver(layout: Layout, item: Item, staged: Path | None, index: int) -> None:
    """Make the item appear in data/incoming the way its arrival says."""
    dest = layout.incoming / item.name
    if item.arrival == "cp":
        dest.write_bytes(item.content)
    elif item.arrival == "chunks":
        with open(dest, "wb") as handle:
            step = max(1, len(item.content) // 4)
            for start in range(0, len(item.content), step):
                handle.write(item.content[start : start + step])
                handle.flush()
                os.fsync(handle.fileno())
                time.sleep(0.02)  # a slow writer: the file must not be taken half-way
    elif item.arrival == "mv":
        assert staged is not None
        os.rename(staged, dest)
    elif item.arrival == "rsync":  # rsync and scp -> temp name: a hidden file, then a rename
        temp = layout.incoming / f".{index:04d}.rsync-XXXXXX"
        temp.write_bytes(item.content)
        os.rename(temp, dest)
    elif item.arrival == "hardlink":
        assert staged is not None
        os.link(staged, dest)
    elif item.kind in ("link_inside", "link_outside"):
        assert staged is not None
        dest.symlink_to(os.path.relpath(staged, layout.incoming))
    elif item.kind == "link_dangling":
        dest.symlink_to(layout.archive / f"missing-{index}.csv")
    elif item.kind == "fifo":
        os.mkfifo(dest)
    elif item.kind == "socket":
        _bind_socket(dest)
    else:
        raise AssertionError(item)


def _bind_socket(path: Path) -> None:
    # A socket's path is limited to ~108 bytes: bind by a name relative to its folder.
    here = os.getcwd()
    os.chdir(path.parent)
    try:
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(path.name)
        sock.close()
    finally:
        os.chdir(here)


# ---------------------------------------------------------------- observing


def cli(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """`mldeck ARGS` as a real subprocess (a FIFO that hangs it fails the test by timeout)."""
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO), "MLDECK_ACTOR": "tester", "COLUMNS": "200"},
        timeout=timeout,
    )


def tree(top: Path, skip: Path) -> dict[str, tuple[str, str]]:
    """Every entry under `top` except `skip` and daemon logs: kind and content hash."""
    found: dict[str, tuple[str, str]] = {}
    for folder, dirs, files in os.walk(top):
        here = Path(folder)
        dirs[:] = [d for d in dirs if here / d != skip]
        for name in dirs + files:
            path = here / name
            if path.parent == top and name.startswith("daemon-") and name.endswith(".log"):
                continue
            mode = path.lstat().st_mode
            if stat.S_ISREG(mode):
                found[str(path)] = ("file", hashlib.sha256(path.read_bytes()).hexdigest())
            elif stat.S_ISLNK(mode):
                found[str(path)] = ("link", os.readlink(path))
            else:
                found[str(path)] = ("dir" if stat.S_ISDIR(mode) else "other", "")
    return found


def expected_source(layout: Layout, item: Item, staged: Path | None) -> str:
    if item.kind == "link_inside":
        assert staged is not None
        return str(staged.resolve())
    return str((layout.incoming / item.name).resolve().parent / item.name)


def check_catalog(layout: Layout, placed: list[tuple[Item, Path | None]], context: str) -> None:
    """The catalog holds exactly what the corpus should have become."""
    with open_project(layout.root) as project:
        catalog = project.catalog
        rows = catalog.rows(
            "SELECT batch_id, source_path, source_name, content_hash, status, quarantine_path"
            " FROM batches WHERE source_name != 'seed.csv' ORDER BY batch_id"
        )
        refusals = [
            json.loads(r["details_json"])["source"]
            for r in catalog.rows("SELECT details_json FROM audit_log WHERE action = 'refuse'")
        ]
        issues = {
            r["batch_id"]: r["n"]
            for r in catalog.rows(
                "SELECT batch_id, count(*) AS n FROM validation_issues WHERE severity = 'error'"
                " GROUP BY 1"
            )
        }
    assert len(refusals) == len(set(refusals)), f"{context}: a refusal was logged twice"
    by_key: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        by_key.setdefault((row["source_path"], row["content_hash"]), []).append(row)
    expected_rows = 0
    for item, staged in placed:
        where = f"{context}: {item.kind} {item.name!r} ({item.arrival}), seed {SEED}"
        source = expected_source(layout, item, staged)
        if item.expect == "refused":
            recorded = display_name(str(layout.incoming / item.name))
            assert recorded in refusals, f"{where}: no refusal recorded"
            assert not any(r["source_path"] == source for r in rows), f"{where}: was read"
            continue
        expected_rows += 1
        found = by_key.get((source, item.sha), [])
        assert len(found) == 1, f"{where}: {len(found)} batches, want exactly one: {found}"
        row = found[0]
        assert row["source_name"] == item.name, where
        if item.expect == "ok":
            assert row["status"] in ("accepted", "warned"), f"{where}: {row}"
        else:
            assert row["status"] == "quarantined", f"{where}: {row}"
            assert issues.get(row["batch_id"]), f"{where}: quarantined without a reason"
            copy = Path(row["quarantine_path"])
            assert copy.parent == layout.root / ".mldeck" / "quarantine", where
            assert len(copy.name.encode()) < 100, where
            assert hashlib.sha256(copy.read_bytes()).hexdigest() == item.sha, where
            reason = Path(f"{copy}.reason.txt").read_text(encoding="utf-8")
            assert f"name: {item.name}" in reason and "- " in reason, where
    assert len(rows) == expected_rows, f"{context}: {len(rows)} batches for {expected_rows} files"
    outside_hashes = {
        hashlib.sha256(p.read_bytes()).hexdigest() for p in layout.sources.iterdir() if p.is_file()
    }
    quarantined = {r["content_hash"] for r in rows if r["status"] == "quarantined"}
    refused_targets = {i.sha for i, _ in placed if i.kind == "link_outside"}
    assert not (quarantined & refused_targets & outside_hashes), (
        "a refused link's target was copied"
    )


def check_untouched(
    layout: Layout, placed: list[tuple[Item, Path | None]], outside: dict[str, tuple[str, str]]
) -> None:
    """Every source still has its bytes; nothing outside the project changed or appeared."""
    for item, staged in placed:
        if item.kind not in ("link_inside", "link_outside", "link_dangling", "fifo", "socket"):
            path = layout.incoming / item.name
            assert hashlib.sha256(path.read_bytes()).hexdigest() == item.sha, item.name
        if staged is not None and staged.exists():
            assert hashlib.sha256(staged.read_bytes()).hexdigest() == item.sha, staged
    assert tree(layout.root.parent, layout.root) == outside


def place_all(
    layout: Layout, items: list[Item]
) -> tuple[list[tuple[Item, Path | None]], dict[str, Any]]:
    """Prepare every item, snapshot what lies outside the project, then deliver them all."""
    staged = [prepare(layout, item, i) for i, item in enumerate(items)]
    outside = tree(layout.root.parent, layout.root)
    for i, (item, path) in enumerate(zip(items, staged, strict=True)):
        deliver(layout, item, path, i)
        if item.arrival == "mv":
            assert path is not None
            outside.pop(str(path))  # the test moved it into the project
    return list(zip(items, staged, strict=True)), outside


def refused_count(engine: Any) -> int:
    return len(engine.audit_entries(kinds=["refuse"]))


def batch_count(engine: Any) -> int:
    return sum(engine.status()["batches"].values())


# ---------------------------------------------------------------- tests


def test_names_of_quarantine_copies_are_short_and_safe() -> None:
    corpus = Corpus(SEED)
    for _ in range(300):
        name = corpus.name(corpus.rng.choice([".csv", ".parquet", ".csv.gz", ""]), long=True)
        assert len(name.encode()) <= NAME_MAX
        safe = quarantine_name(name, "ab" * 32)
        assert len(f".{safe}.reason.txt.tmp".encode()) <= 100
        assert safe.isascii() and "/" not in safe and not safe.startswith(".")
        assert safe.startswith("abababababab-")
    assert quarantine_name("week 04.CSV.GZ", "0" * 64) == "000000000000-week_04.csv.gz"
    assert quarantine_name("日本語.parquet", "0" * 64) == "000000000000-file.parquet"


def test_corpus_through_mldeck_ingest(tmp_path: Path) -> None:
    layout = make_layout(tmp_path)
    seed_project(layout)
    items = make_corpus(Corpus(SEED), per_kind=2)
    placed, outside = place_all(layout, items)

    first = cli("ingest", "--json", cwd=layout.root)
    assert first.returncode == 1, first.stderr  # bad and refused files: exit 1, never 70
    assert "Traceback" not in first.stderr
    results = json.loads(first.stdout)
    by_name = {Path(r["path"]).name: r for r in results}
    for item in items:
        result = by_name[utf8_text(item.name)]
        want = {"ok": ("accepted", "warned"), "bad": ("quarantined",), "refused": ("refused",)}
        assert result["status"] in want[item.expect], f"{item.kind} {item.name!r}: {result}"
        if item.expect != "ok":
            assert result["issues"] and result["issues"][0]["message"], item.name
    refused_lines = [line for line in first.stderr.splitlines() if "Refused" in line]
    assert len(refused_lines) == sum(i.expect == "refused" for i in items)

    # A FIFO passed by name: one line, exit 1, no hang.
    fifo = next(i for i in items if i.kind == "fifo")
    by_hand = cli("ingest", str(layout.incoming / fifo.name), cwd=layout.root, timeout=60)
    assert by_hand.returncode == 1
    assert by_hand.stderr.count("\n") == 1 and "FIFO" in by_hand.stderr

    # Devices by name: refused, never read (/dev/zero would never end).
    for device in ("/dev/null", "/dev/zero"):
        refused = cli("ingest", device, cwd=layout.root, timeout=60)
        assert refused.returncode == 1 and "character device" in refused.stderr, refused.stderr

    # Again: nothing is ingested twice.
    again = cli("ingest", "--json", cwd=layout.root)
    assert again.returncode == 1 and "Traceback" not in again.stderr
    for result in json.loads(again.stdout):
        assert result["status"] in ("skipped", "refused"), result
    check_catalog(layout, placed, "mldeck ingest")
    check_untouched(layout, placed, outside)


def test_a_link_out_of_the_project_is_taken_when_configured(tmp_path: Path) -> None:
    layout = make_layout(tmp_path, follow_symlinks=True)
    seed_project(layout)
    corpus = Corpus(SEED + 1)
    good = Item(corpus.name(".csv"), "link_outside", "ok", "link", corpus.valid("csv"))
    bad = Item(corpus.name(".csv"), "link_outside", "bad", "link", corpus.invalid("ragged"))
    placed, outside = place_all(layout, [good, bad])
    result = cli("ingest", "--json", cwd=layout.root)
    assert result.returncode == 1  # the bad one is quarantined
    statuses = {Path(r["path"]).name: r["status"] for r in json.loads(result.stdout)}
    assert statuses[bad.name] == "quarantined"
    assert statuses[good.name] in ("accepted", "warned")
    check_untouched(layout, placed, outside)


def test_follow_symlinks_must_be_a_boolean(tmp_path: Path) -> None:
    layout = make_layout(tmp_path)
    config = layout.root / "mldeck.toml"
    config.write_text(
        config.read_text().replace("follow_symlinks = false", 'follow_symlinks = "yes"')
    )
    with pytest.raises(ConfigError) as err:
        open_project(layout.root).close()
    assert "follow_symlinks" in err.value.msg and "true or false" in err.value.msg
    result = cli("status", cwd=layout.root)
    assert result.returncode == 1 and "follow_symlinks" in result.stderr


@pytest.fixture
def daemon_layout(tmp_path: Path) -> Iterator[tuple[Layout, Daemon]]:
    layout = make_layout(tmp_path)
    seed_project(layout)
    daemon = Daemon(layout.root, "--no-serve")
    try:
        yield layout, daemon
    finally:
        if daemon.process.poll() is None:
            daemon.kill()


def test_corpus_through_a_running_daemon(daemon_layout: tuple[Layout, Daemon]) -> None:
    layout, daemon = daemon_layout
    engine = daemon.ready()
    items = make_corpus(Corpus(SEED + 2), per_kind=2)
    placed, outside = place_all(layout, items)
    rows = sum(i.expect != "refused" for i in items)
    refusals = sum(i.expect == "refused" for i in items)
    wait_until(
        lambda: batch_count(engine) >= rows + 1 and refused_count(engine) >= refusals,
        120,
        f"{rows} batches and {refusals} refusals (seed {SEED + 2})",
    )
    # `mldeck ingest FIFO` goes through the daemon's queue: one line, exit 1, no hang.
    fifo = next(i for i in items if i.kind == "fifo")
    by_hand = cli("ingest", str(layout.incoming / fifo.name), cwd=layout.root, timeout=60)
    assert by_hand.returncode == 1 and "FIFO" in by_hand.stderr, by_hand.stderr

    # Editors save by replacing: a temp file renamed over the old one (gedit, VS Code),
    # or the old one renamed away and the file written anew (vim, emacs). Each saved
    # version is a new batch of the same path; the first versions stay recorded.
    corpus = Corpus(SEED + 3)
    first = [item for item, _ in placed if item.kind == "csv"][:2]
    saved = [Item(item.name, "csv", "ok", "editor", corpus.valid("csv")) for item in first]
    for n, item in enumerate(saved):
        dest = layout.incoming / item.name
        if n == 0:
            temp = layout.incoming / f".{n}.save-tmp"
            temp.write_bytes(item.content)
            os.replace(temp, dest)
        else:
            os.rename(dest, layout.incoming / f"{n}.backup~")
            dest.write_bytes(item.content)
            os.unlink(layout.incoming / f"{n}.backup~")
    wait_until(lambda: batch_count(engine) >= rows + 1 + len(saved), 60, "the saved versions")
    daemon.idle(engine)
    assert daemon.stop() == 0
    log = (layout.root.parent / f"daemon-{daemon.port}.log").read_text()
    assert "Traceback" not in log
    assert log.count("refused:") >= refusals
    now = [(i, s) for i, s in placed if i not in first] + [(i, None) for i in saved]
    check_catalog(layout, placed + [(i, None) for i in saved], "daemon")
    check_untouched(layout, now, outside)


def test_polling_takes_moved_copied_renamed_and_refuses_specials(tmp_path: Path) -> None:
    layout = make_layout(tmp_path, polling=True)
    seed_project(layout)
    corpus = Corpus(SEED + 4)
    items = [
        Item(corpus.name(".csv"), "csv", "ok", arrival, corpus.valid("csv"))
        for arrival in ("cp", "chunks", "mv", "rsync", "hardlink")
    ] + [
        Item(corpus.name(".csv"), "fifo", "refused", "special"),
        Item(corpus.name(".csv"), "link_outside", "refused", "link", corpus.valid("csv")),
        Item(corpus.name(".csv"), "link_dangling", "refused", "link"),
        Item(corpus.name(".csv"), "binary", "bad", "mv", corpus.invalid("binary")),
    ]
    daemon = Daemon(layout.root, "--no-serve")
    try:
        engine = daemon.ready()
        placed, outside = place_all(layout, items)
        wait_until(
            lambda: batch_count(engine) >= 7 and refused_count(engine) >= 3, 60, "polling ingests"
        )
        daemon.idle(engine)
        assert daemon.stop() == 0
    finally:
        if daemon.process.poll() is None:
            daemon.kill()
    check_catalog(layout, placed, "polling daemon")
    check_untouched(layout, placed, outside)


@pytest.mark.slow
def test_a_burst_of_hundreds_is_ingested_once_each(daemon_layout: tuple[Layout, Daemon]) -> None:
    layout, daemon = daemon_layout
    engine = daemon.ready()
    corpus = Corpus(SEED + 5)
    items = [
        Item(
            f"burst {n:03d}.csv", "csv", "ok", corpus.rng.choice(FILE_ARRIVALS), corpus.valid("csv")
        )
        for n in range(300)
    ]
    placed, outside = place_all(layout, items)
    wait_until(lambda: batch_count(engine) >= 301, 300, "300 burst files")
    daemon.idle(engine)
    assert daemon.stop() == 0
    check_catalog(layout, placed, "burst")
    check_untouched(layout, placed, outside)


# ---------------------------------------------------------------- the watcher itself


class Reports:
    def __init__(self) -> None:
        self.names: list[str] = []

    def __call__(self, path: Path) -> None:
        self.names.append(path.name)


def test_the_watcher_reports_each_way_a_file_arrives(tmp_path: Path) -> None:
    incoming, outside = tmp_path / "incoming", tmp_path / "elsewhere"
    outside.mkdir()
    reports = Reports()
    watcher = Watcher([incoming], reports)
    watcher.start()
    try:
        (outside / "moved.csv").write_text("a\n1\n")
        os.rename(outside / "moved.csv", incoming / "moved.csv")
        (outside / "linked.csv").write_text("a\n2\n")
        os.link(outside / "linked.csv", incoming / "hard.csv")
        (incoming / "soft.csv").symlink_to(outside / "linked.csv")
        os.mkfifo(incoming / "pipe.csv")
        with open(incoming / "open.csv", "wb") as handle:  # still being written
            handle.write(b"a\n")
            handle.flush()
            wait_until(lambda: len(reports.names) >= 4, 10, "four reports")
            assert "open.csv" not in reports.names
        wait_until(lambda: "open.csv" in reports.names, 10, "the closed file")
        os.rename(incoming / "moved.csv", outside / "moved-out.csv")  # leaving: not reported
        (incoming / "sub").mkdir()  # a folder: not reported
        (incoming / "last.csv").write_text("a\n3\n")
        wait_until(lambda: "last.csv" in reports.names, 10, "the last file")
    finally:
        watcher.stop()
    assert sorted(reports.names) == sorted(
        ["moved.csv", "hard.csv", "soft.csv", "pipe.csv", "open.csv", "last.csv"]
    )


def test_the_watcher_rescans_after_lost_events(tmp_path: Path) -> None:
    from watchdog.events import EventsLostEvent

    from engine.service.watcher import _Handler

    incoming = tmp_path / "incoming"
    incoming.mkdir()
    reports = Reports()
    watcher = Watcher([incoming], reports)
    (incoming / "missed.csv").write_text("a\n1\n")
    _Handler(watcher).dispatch(EventsLostEvent(str(incoming), is_directory=True))
    assert reports.names == ["missed.csv"]


def test_a_quarantined_240_character_name_does_not_stop_later_ingests(tmp_path: Path) -> None:
    layout = make_layout(tmp_path)
    seed_project(layout)
    long_name = "w" * 236 + ".csv"
    (layout.incoming / long_name).write_bytes(b"\x00\x01 not a table")
    first = cli("ingest", cwd=layout.root)
    assert first.returncode == 1 and "Quarantined" in first.stderr, first.stderr
    corpus = Corpus(SEED + 6)
    (layout.incoming / "later.csv").write_bytes(corpus.valid("csv"))
    second = cli("ingest", cwd=layout.root)
    assert second.returncode == 0, second.stderr
    assert "accepted" in second.stdout and "later.csv" in second.stdout
    with open_project(layout.root) as project:
        kept = project.catalog.row(
            "SELECT source_name, quarantine_path FROM batches WHERE status = 'quarantined'"
        )
    assert kept is not None and kept["source_name"] == long_name
    assert Path(kept["quarantine_path"]).read_bytes() == b"\x00\x01 not a table"
