"""The watcher in-process: a file is reported once, when it is fully written."""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from engine.service.watcher import POLL_INTERVAL_S, Watcher
from tests.helpers import wait_until


class Reports:
    """The watcher's callback: what was reported, and each file's size at that moment."""

    def __init__(self) -> None:
        self.paths: list[Path] = []
        self.sizes: dict[str, int] = {}
        """A file reported half-way shows here with fewer bytes than it ends with."""
        self.lock = threading.Lock()

    def __call__(self, path: Path) -> None:
        with self.lock:
            self.paths.append(path)
            self.sizes[path.name] = path.stat().st_size

    def names(self) -> list[str]:
        with self.lock:
            return [p.name for p in self.paths]


def write_in_chunks(path: Path, chunks: list[bytes], between: Callable[[int], None]) -> None:
    """Write `chunks` through one open handle; `between(bytes so far)` after each."""
    written = 0
    with open(path, "wb") as handle:
        for chunk in chunks:
            handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
            written += len(chunk)
            between(written)


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    return tmp_path / "incoming", tmp_path / "labels"


def test_closed_and_renamed_files_are_reported_once_when_complete(
    folders: tuple[Path, Path],
) -> None:
    incoming, labels = folders
    incoming.mkdir()
    (incoming / "early.csv").write_text("a\n1\n")
    (incoming / ".hidden.csv").write_text("a\n1\n")
    reports = Reports()
    watcher = Watcher([incoming, labels], reports)
    try:
        assert [p.name for p in watcher.start()] == ["early.csv"]

        def still_open(_: int) -> None:
            assert "chunked.csv" not in reports.names()

        write_in_chunks(incoming / "chunked.csv", [b"a,b\n", b"1,2\n", b"3,4\n"], still_open)
        staged = incoming / "renamed.csv.part"
        staged.write_text("a\n5\n")
        os.replace(staged, incoming / "renamed.csv")
        (incoming / "ignored.tmp").write_text("a\n1\n")
        (incoming / "~lock.csv").write_text("a\n1\n")
        (labels / "labels_1.csv").write_text("id,label\n1,0\n")
        # Sentinels, written last in each folder: one watch delivers its folder's events in
        # order, so once both are reported every earlier file has been decided on.
        (incoming / "zz_sentinel.csv").write_text("a\n9\n")
        (labels / "zz_sentinel.csv").write_text("id,label\n9,1\n")
        wait_until(lambda: reports.names().count("zz_sentinel.csv") == 2, 30, "the sentinels")
    finally:
        watcher.stop()
    assert sorted(reports.names()) == [
        "chunked.csv",
        "early.csv",
        "labels_1.csv",
        "renamed.csv",
        "zz_sentinel.csv",
        "zz_sentinel.csv",
    ]
    assert reports.sizes["chunked.csv"] == len(b"a,b\n1,2\n3,4\n")  # never read half-way


def test_polling_waits_for_a_quiet_file(folders: tuple[Path, Path]) -> None:
    incoming, labels = folders
    reports = Reports()
    watcher = Watcher([incoming, labels], reports, polling=True, quiet_seconds=2.0)
    try:
        watcher.start()
        slow = (incoming / "slow.csv").resolve()

        def seen_settling(size: int) -> None:
            # the next chunk comes once the watcher has seen this one (a state, not a pause):
            # the file is growing, so it must not have been reported
            wait_until(lambda: watcher.settling().get(slow) == size, 30, f"{size} bytes seen")
            assert reports.names() == []

        write_in_chunks(slow, [b"a\n", b"1\n", b"2\n", b"3\n"], seen_settling)
        (incoming / ".partial.csv").write_text("a\n1\n")
        wait_until(lambda: reports.names() == ["slow.csv"], 30, "slow.csv reported")
        # nothing more: wait out passes of the quiet-file checker long enough for any file
        # noted since to ripen and be reported
        after = watcher.ticks
        ripe = after + math.ceil(watcher.quiet_seconds / POLL_INTERVAL_S) + 2
        wait_until(lambda: watcher.ticks >= ripe, 30, "passes of the quiet-file checker")
        assert reports.names() == ["slow.csv"] and watcher.settling() == {}
    finally:
        watcher.stop()
    assert reports.names() == ["slow.csv"]
    assert reports.sizes["slow.csv"] == len(b"a\n1\n2\n3\n")
