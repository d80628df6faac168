"""Watched folders: a file is handed on once, when it is fully written.

With inotify (Linux's default observer) a finished file announces itself: a
writer closing it (`cp`, `scp`, an editor writing in place: `FileClosedEvent`),
or a complete file renamed into place, from inside the folder (rsync's and
editors' temp file + rename) or from another folder (`mv ~/week_04.csv
data/incoming/`). The observer runs with full events so that last case comes as
a move with no source instead of a creation, which would look like a file just
opened for writing. A creation alone is taken only for what arrives whole: a
hard link, a symbolic link, a FIFO, socket or device (ingest refuses those
last three, and links that leave the project, without reading them); a file
being written is never read half-way. The polling observer (network file
systems) sees no closes: there a file is taken once its size and mtime have
not changed for a quiet period. Hidden and temporary names (`.*`, `*.tmp`,
`*.part`, `~*`) are never taken. Files already in the folders at start-up are
handed on first, in name order, and again after the kernel's event queue
overflowed (a burst too large for it), so no file is missed.

The watcher only says "this file is ready"; deciding whether its content is new
is ingest's job (by content hash), so a file reported twice costs a hash, not a
second batch.
"""

from __future__ import annotations

import logging
import os
import stat
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from watchdog.events import FileSystemEvent, FileSystemEventHandler

from engine.data.read import is_candidate_file

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
        from watchdog.observers.polling import PollingObserverVFS

        for folder in self.folders:
            folder.mkdir(parents=True, exist_ok=True)
        if self.polling:
            # Entries are lstat'ed, so a dangling link is seen (and refused) too.
            roots = {str(folder) for folder in self.folders}
            observer = PollingObserverVFS(
                lambda p: os.stat(p) if p in roots else os.lstat(p),
                os.scandir,
                polling_interval=POLL_INTERVAL_S,
            )
        else:
            observer = _native_observer()
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
        return self.rescan()

    def rescan(self) -> list[Path]:
        """Report every wanted file in the folders now (in folder, then name order)."""
        present = sorted(
            (p for folder in self.folders for p in folder.iterdir() if self._wanted(p)),
            key=lambda p: (self.folders.index(p.parent), p.name),
        )
        for path in present:
            if self.polling and _is_regular(path):
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
        """A candidate name directly in a watched folder, and anything but a folder.

        FIFOs, sockets, devices and links are wanted too: ingest refuses them
        with a reason (never reading them) or follows a link that stays inside.
        """
        if path.parent not in self.folders or not is_candidate_file(path):
            return False
        try:
            mode = path.lstat().st_mode
        except OSError:  # gone already
            return False
        return not stat.S_ISDIR(mode) and not (stat.S_ISLNK(mode) and path.is_dir())

    def _ready(self, path: Path) -> None:
        if self._wanted(path):
            self.on_ready(path)

    def _created(self, path: Path) -> None:
        """inotify: a name appeared; take it now only if it cannot still be being written.

        A regular file with one link was just opened for writing: its close
        event says when it is complete. A hard link (more than one link) names
        a file that was complete already; links, FIFOs, sockets and devices
        never get a close event.
        """
        try:
            info = path.lstat()
        except OSError:
            return
        if not stat.S_ISREG(info.st_mode) or info.st_nlink > 1:
            self._ready(path)

    # ---------------------------------------------------------------- polling

    def _note(self, path: Path) -> None:
        """Polling: (re)start a file's quiet period."""
        if not self._wanted(path):
            return
        try:
            info = path.stat()
        except OSError:
            return
        with self._lock:
            known = self._settling.get(path)
            if known is None or known[:2] != (info.st_size, info.st_mtime_ns):
                self._settling[path] = (info.st_size, info.st_mtime_ns, time.monotonic())

    def _tick(self) -> None:
        while not self._stop.wait(POLL_INTERVAL_S):
            now = time.monotonic()
            with self._lock:
                candidates = sorted(self._settling.items(), key=lambda item: item[1][2])
            for path, (size, mtime_ns, since) in candidates:
                try:
                    info = path.stat()
                except OSError:  # gone before it settled
                    with self._lock:
                        self._settling.pop(path, None)
                    continue
                if (info.st_size, info.st_mtime_ns) != (size, mtime_ns):
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
        kind = event.event_type
        try:
            if kind == "events_lost":  # the kernel queue overflowed: look at what is there
                self.watcher.rescan()
                return
            if event.is_directory:
                return
            if kind == "moved":
                if not event.dest_path:  # moved out of the folder
                    return
                path = Path(os.fsdecode(event.dest_path))
            else:
                path = Path(os.fsdecode(event.src_path))
            if self.watcher.polling:
                if kind in ("created", "modified", "moved"):
                    if _is_regular(path):
                        self.watcher._note(path)
                    else:  # a link, FIFO, socket or device: nothing to wait for
                        self.watcher._ready(path)
            elif kind in ("closed", "moved"):
                self.watcher._ready(path)
            elif kind == "created":
                self.watcher._created(path)
        except Exception:  # a watcher thread must survive whatever one event does
            log.exception("watcher: handling %s failed", event)


def _native_observer() -> Any:
    """inotify with full events on Linux (a move in from another folder is a move, not a
    creation); elsewhere the platform's default observer."""
    if sys.platform.startswith("linux"):
        from watchdog.observers.inotify import InotifyObserver

        return InotifyObserver(generate_full_events=True)
    from watchdog.observers import Observer

    return Observer()


def _is_regular(path: Path) -> bool:
    """A regular file itself (not a link to one); False when it is gone."""
    try:
        return stat.S_ISREG(path.lstat().st_mode)
    except OSError:
        return False
