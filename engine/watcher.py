"""Watched folders: a file is handed on once, when it is fully written.

With inotify (Linux's default observer) a finished file announces itself: a
writer closing it (`FileClosedEvent`) or a temporary file renamed into place
(`FileMovedEvent`); creation and modification events are ignored, so a file
being written is never read half-way. The polling observer (network file
systems) sees no closes: there a file is taken once its size and mtime have
not changed for a quiet period. Hidden and temporary names (`.*`, `*.tmp`,
`*.part`, `~*`) are never taken. Files already in the folders at start-up are
handed on first, in name order.

The watcher only says "this file is ready"; deciding whether its content is new
is ingest's job (by content hash), so a file reported twice costs a hash, not a
second batch.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from watchdog.events import FileSystemEvent, FileSystemEventHandler

from engine.ingest import is_candidate_file

log = logging.getLogger(__name__)

POLL_INTERVAL_S = 0.5
"""How often the polling observer scans, and how often quiet files are checked."""


class Watcher:
    """Reports the fully written files landing in `folders` to `on_ready`.

    Args:
        folders: the folders to watch (created if missing); not recursive.
        on_ready: called with each ready file's absolute path, on the watcher's threads.
        polling: use the polling observer and the quiet period instead of close events.
        quiet_seconds: polling only: how long a file's size and mtime must stay unchanged.
    """

    def __init__(
        self,
        folders: list[Path],
        on_ready: Callable[[Path], None],
        *,
        polling: bool = False,
        quiet_seconds: float = 2.0,
    ) -> None:
        self.folders = [folder.resolve() for folder in folders]
        self.on_ready = on_ready
        self.polling = polling
        self.quiet_seconds = quiet_seconds
        self._observer: Any = None
        self._settling: dict[Path, tuple[int, int, float]] = {}
        """Polling: file -> (size, mtime_ns, when that pair was first seen)."""
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self.ticks = 0
        """Polling: passes over the settling files finished (a file quiet long enough is
        reported within the pass that finds it so)."""

    def start(self) -> list[Path]:
        """Start watching, then report the files already there; returns those files."""
        from watchdog.observers import Observer
        from watchdog.observers.polling import PollingObserver

        for folder in self.folders:
            folder.mkdir(parents=True, exist_ok=True)
        observer = PollingObserver(timeout=POLL_INTERVAL_S) if self.polling else Observer()
        handler = _Handler(self)
        for folder in self.folders:
            observer.schedule(handler, str(folder), recursive=False)
        observer.start()
        self._observer = observer
        if self.polling:
            self._ticker = threading.Thread(target=self._tick, name="watch-quiet", daemon=True)
            self._ticker.start()
        # Watching starts before the scan, so a file landing in between is seen by
        # one or both; ingest recognises the second report.
        present = sorted(
            (p for folder in self.folders for p in folder.iterdir() if self._wanted(p)),
            key=lambda p: (self.folders.index(p.parent), p.name),
        )
        for path in present:
            if self.polling:
                self._note(path)
            else:
                self.on_ready(path)
        return present

    def stop(self) -> None:
        self._stop.set()
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
        if self._ticker is not None:
            self._ticker.join(timeout=5)

    def _wanted(self, path: Path) -> bool:
        return path.parent in self.folders and is_candidate_file(path) and path.is_file()

    def _ready(self, path: Path) -> None:
        if self._wanted(path):
            self.on_ready(path)

    # ---------------------------------------------------------------- polling

    def _note(self, path: Path) -> None:
        """Polling: (re)start a file's quiet period."""
        if not self._wanted(path):
            return
        try:
            stat = path.stat()
        except OSError:
            return
        with self._lock:
            known = self._settling.get(path)
            if known is None or known[:2] != (stat.st_size, stat.st_mtime_ns):
                self._settling[path] = (stat.st_size, stat.st_mtime_ns, time.monotonic())

    def _tick(self) -> None:
        while not self._stop.wait(POLL_INTERVAL_S):
            now = time.monotonic()
            with self._lock:
                candidates = sorted(self._settling.items(), key=lambda item: item[1][2])
            for path, (size, mtime_ns, since) in candidates:
                try:
                    stat = path.stat()
                except OSError:  # gone before it settled
                    with self._lock:
                        self._settling.pop(path, None)
                    continue
                if (stat.st_size, stat.st_mtime_ns) != (size, mtime_ns):
                    self._note(path)
                elif now - since >= self.quiet_seconds:
                    with self._lock:
                        self._settling.pop(path, None)
                    self._ready(path)
            self.ticks += 1

    def settling(self) -> dict[Path, int]:
        """Polling: the files waiting out their quiet period, and the size each was seen at."""
        with self._lock:
            return {path: size for path, (size, _, _) in self._settling.items()}


class _Handler(FileSystemEventHandler):
    def __init__(self, watcher: Watcher) -> None:
        self.watcher = watcher

    def dispatch(self, event: FileSystemEvent) -> None:
        if event.is_directory:
            return
        kind = event.event_type
        try:
            if kind == "moved":
                path = Path(os.fsdecode(event.dest_path))
            else:
                path = Path(os.fsdecode(event.src_path))
            if self.watcher.polling:
                if kind in ("created", "modified", "moved"):
                    self.watcher._note(path)
            elif kind in ("closed", "moved"):
                self.watcher._ready(path)
        except Exception:  # a watcher thread must survive whatever one event does
            log.exception("watcher: handling %s failed", event)
