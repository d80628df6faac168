"""The watcher in-process: a file is reported once, when it is fully written."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from engine.service.watcher import Watcher


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


def wait_until(check: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def write_in_chunks(path: Path, chunks: list[bytes], pause: float) -> None:
    with open(path, "wb") as handle:
        for chunk in chunks:
            handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
            time.sleep(pause)


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
        write_in_chunks(incoming / "chunked.csv", [b"a,b\n", b"1,2\n", b"3,4\n"], pause=0.2)
        staged = incoming / "renamed.csv.part"
        staged.write_text("a\n5\n")
        os.replace(staged, incoming / "renamed.csv")
        (incoming / "ignored.tmp").write_text("a\n1\n")
        (incoming / "~lock.csv").write_text("a\n1\n")
        (labels / "labels_1.csv").write_text("id,label\n1,0\n")
        assert wait_until(lambda: len(reports.names()) >= 4)
        time.sleep(0.5)  # nothing else may arrive
    finally:
        watcher.stop()
    assert sorted(reports.names()) == ["chunked.csv", "early.csv", "labels_1.csv", "renamed.csv"]
    assert reports.sizes["chunked.csv"] == len(b"a,b\n1,2\n3,4\n")  # never read half-way


def test_polling_waits_for_a_quiet_file(folders: tuple[Path, Path]) -> None:
    incoming, labels = folders
    reports = Reports()
    watcher = Watcher([incoming, labels], reports, polling=True, quiet_seconds=1.0)
    try:
        watcher.start()
        # pauses shorter than the quiet period: one report, after the last chunk
        write_in_chunks(incoming / "slow.csv", [b"a\n", b"1\n", b"2\n", b"3\n"], pause=0.4)
        (incoming / ".partial.csv").write_text("a\n1\n")
        assert wait_until(lambda: reports.names() == ["slow.csv"])
        time.sleep(1.5)
    finally:
        watcher.stop()
    assert reports.names() == ["slow.csv"]
    assert reports.sizes["slow.csv"] == len(b"a\n1\n2\n3\n")
