"""The prediction log: scored rows written to the catalog off the request path.

The serving app hands each session run's rows (input columns, outputs: the
tensors as the model saw them, not copied or encoded, and the requests they
answered) to `PredictionLog.submit` once per micro-batch, which never
blocks: the queue is bounded, and when it is full the rows are counted as
dropped instead. A background thread stacks the queued tensors, JSON-encodes
them column-wise in polars and inserts the frame (via Arrow) with its own
DuckDB cursor, one transaction per flush.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

import numpy as np
import polars as pl

from storage.catalog import Catalog

log = logging.getLogger(__name__)

FLUSH_INTERVAL_S = 0.5
"""How often the writer commits what it has queued. A kill -9 loses at most the
rows of this last interval (plus whatever was still queued); a clean stop loses
nothing, because `close()` flushes the rest."""

FLUSH_ROWS = 500
"""The writer also commits as soon as this many rows are waiting."""

QUEUE_BATCHES = 10_000
"""Requests waiting to be written; beyond this, rows are dropped and counted."""

ERROR_WINDOW_S = 10.0
"""Failed requests are counted in memory and written as one `serving_errors` row per
(endpoint, version, status) per window this long, not a row each: a client sending
bad requests in a loop costs the catalog a few rows a window, whatever its rate."""

COLUMNS = [
    "request_id",
    "row_index",
    "served_at",
    "model_version",
    "endpoint",
    "inputs_json",
    "output_json",
    "latency_ms",
    "shadow",
]


class LoggedRequest(NamedTuple):
    """One request's share of a `ScoredBatch`."""

    request_id: str
    endpoint: str
    rows: int
    latency_ms: float


@dataclass(frozen=True)
class ScoredBatch:
    """The rows of one session run, as the model saw and answered them, and the
    requests they belong to (in row order: their `rows` add up to the batch's)."""

    served_at: datetime
    model_version: int
    inputs: dict[str, np.ndarray]
    """The model's feed: column name -> [N, 1] tensor."""
    outputs: dict[str, np.ndarray]
    """The model's outputs: name -> [N, ...] tensor."""
    requests: list[LoggedRequest]
    shadow: bool = False

    @property
    def row_count(self) -> int:
        first = next(iter(self.inputs.values()), None)
        return 0 if first is None else int(first.shape[0])


@dataclass(frozen=True)
class FailedRequest:
    """A scoring request answered with an error (4xx / 5xx): the serving error rate.

    `model_version` is None for a version the server does not know."""

    served_at: datetime
    endpoint: str
    model_version: int | None
    status: int
    message: str

    row_count = 0


SCHEMA = pl.Schema(
    {
        "request_id": pl.Utf8(),
        "row_index": pl.Int32(),
        "served_at": pl.Datetime("us"),
        "model_version": pl.Int64(),
        "endpoint": pl.Utf8(),
        "inputs_json": pl.Utf8(),
        "output_json": pl.Utf8(),
        "latency_ms": pl.Float64(),
        "shadow": pl.Boolean(),
    }
)


def _series(name: str, values: np.ndarray) -> pl.Series:
    """A tensor's values ([N] or [N, k]) as a column; NaN becomes null."""
    if values.dtype == object:
        return pl.Series(name, values.tolist(), dtype=pl.Utf8 if values.ndim == 1 else None)
    series = pl.Series(name, values)
    if series.dtype in (pl.Float32, pl.Float64):
        series = series.fill_nan(None)
    return series


def _json_column(tensors: dict[str, list[np.ndarray]], n: int) -> pl.Series:
    """One JSON object per row, {name: value}, from per-batch tensors stacked by name.

    A tensor with one value per row is written as a scalar, a wider one as a list.
    The encoding runs in polars (Rust), not row by row in Python.
    """
    columns = []
    for name, parts in tensors.items():
        stacked = np.concatenate([part.reshape(part.shape[0], -1) for part in parts])
        columns.append(_series(name, stacked[:, 0] if stacked.shape[1] == 1 else stacked))
    frame = pl.DataFrame(columns, height=n)
    return frame.select(pl.struct(frame.columns).struct.json_encode()).to_series()


def batches_frame(batches: list[ScoredBatch]) -> pl.DataFrame:
    """The batches as predictions-table rows, one per scored row.

    Batches are grouped by their input and output names (versions may differ in
    them); within a group the tensors are stacked and JSON-encoded column-wise.
    """
    groups: dict[tuple[tuple[str, ...], tuple[str, ...]], list[ScoredBatch]] = {}
    for batch in batches:
        if batch.row_count:
            key = (tuple(batch.inputs), tuple(batch.outputs))
            groups.setdefault(key, []).append(batch)
    frames = []
    for (input_names, output_names), group in groups.items():
        batch_rows = [batch.row_count for batch in group]
        n = sum(batch_rows)
        requests = [r for batch in group for r in batch.requests]
        counts = np.fromiter((r.rows for r in requests), dtype=np.int64, count=len(requests))
        starts = np.cumsum(counts) - counts
        inputs_json = _json_column({k: [b.inputs[k] for b in group] for k in input_names}, n)
        output_json = _json_column({k: [b.outputs[k] for b in group] for k in output_names}, n)
        frames.append(
            pl.DataFrame(
                {
                    "request_id": np.repeat([r.request_id for r in requests], counts),
                    "row_index": np.arange(n) - np.repeat(starts, counts),
                    "served_at": np.repeat(
                        np.array([b.served_at for b in group], dtype="datetime64[us]"), batch_rows
                    ),
                    "model_version": np.repeat([b.model_version for b in group], batch_rows),
                    "endpoint": np.repeat([r.endpoint for r in requests], counts),
                    "inputs_json": inputs_json,
                    "output_json": output_json,
                    "latency_ms": np.repeat([r.latency_ms for r in requests], counts),
                    "shadow": np.repeat([b.shadow for b in group], batch_rows),
                }
            ).cast(SCHEMA)
        )
    if not frames:
        return pl.DataFrame(schema=SCHEMA)
    return pl.concat(frames)


class PredictionLog:
    """Writes scored batches to the catalog's `predictions` table in the background.

    Requests append to a deque and the writer drains it in bulk. The writer is
    woken only when `flush_rows` rows are waiting or the interval ends, not per
    request: a per-request wake-up (as with `queue.Queue`) hands the GIL to the
    writer thousands of times a second and cost a third of the throughput.
    """

    def __init__(
        self,
        catalog: Catalog,
        flush_interval_s: float = FLUSH_INTERVAL_S,
        flush_rows: int = FLUSH_ROWS,
        max_queued: int = QUEUE_BATCHES,
    ) -> None:
        self._cursor = catalog.conn.cursor()
        self._queue: deque[ScoredBatch] = deque()
        self._queued_rows = 0
        """Approximate (updated without a lock): it only decides when to wake the writer."""
        self._wake = threading.Event()
        self._flush_interval_s = flush_interval_s
        self._errors: dict[tuple[str, int | None, int], list[object]] = {}
        """(endpoint, version, status) -> [first served_at, count, first message] this window."""
        self._errors_lock = threading.Lock()
        self._errors_written_at = time.monotonic()
        self.error_window_s = ERROR_WINDOW_S
        self._flush_rows = flush_rows
        self._max_queued = max_queued
        self.dropped_rows = 0
        """Rows not logged because the queue was full."""
        self.written_rows = 0
        self.failed_flushes = 0
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()

    def submit(self, batch: ScoredBatch) -> bool:
        """Queue a batch for writing; never blocks. False when it was dropped."""
        if self._closed or len(self._queue) >= self._max_queued:
            self.dropped_rows += batch.row_count
            return False
        self._queue.append(batch)  # deque.append is atomic: no lock on the request path
        self._queued_rows += batch.row_count
        if self._queued_rows >= self._flush_rows and not self._wake.is_set():
            self._wake.set()
        return True

    def submit_failure(self, failure: FailedRequest) -> bool:
        """Count a failed request for `serving_errors` (written once a window). False
        after close."""
        if self._closed:
            return False
        key = (failure.endpoint, failure.model_version, failure.status)
        with self._errors_lock:
            counted = self._errors.get(key)
            if counted is None:
                self._errors[key] = [failure.served_at, 1, failure.message[:500]]
            else:
                counted[1] += 1  # type: ignore[operator]
        return True

    def _take_errors(self, stopping: bool) -> list[list[object]]:
        """The window's error counts as `serving_errors` rows, once the window is over."""
        now = time.monotonic()
        if not stopping and now - self._errors_written_at < self.error_window_s:
            return []
        with self._errors_lock:
            errors, self._errors = self._errors, {}
        self._errors_written_at = now
        return [
            [served_at, endpoint, version, status, message, count]
            for (endpoint, version, status), (served_at, count, message) in errors.items()
        ]

    def close(self) -> None:
        """Write everything queued, then stop the writer and its cursor."""
        if self._closed:
            return
        self._closed = True
        self._wake.set()
        self._thread.join()
        self._cursor.close()

    def _run(self) -> None:
        while True:
            self._wake.wait(self._flush_interval_s)
            self._wake.clear()
            stopping = self._closed  # read before draining, so nothing submitted earlier is left
            self._queued_rows = 0
            pending: list[ScoredBatch] = []
            while self._queue:
                pending.append(self._queue.popleft())
            failures = self._take_errors(stopping)
            if pending or failures:
                self._flush(pending, failures)
            if stopping:
                return

    def _flush(self, items: list[ScoredBatch], failures: list[list[object]]) -> None:
        frame = batches_frame(items)
        try:
            self._cursor.register("mldeck_pending_predictions", frame.to_arrow())
            self._cursor.execute("BEGIN TRANSACTION")
            self._cursor.execute(
                f"INSERT INTO predictions ({', '.join(COLUMNS)}) "
                f"SELECT {', '.join(COLUMNS)} FROM mldeck_pending_predictions"
            )
            if failures:
                self._cursor.executemany(
                    "INSERT INTO serving_errors"
                    " (served_at, endpoint, model_version, status, message, requests)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    failures,
                )
            self._cursor.execute("COMMIT")
            self.written_rows += frame.height
        except Exception:
            self.failed_flushes += 1
            log.exception("prediction log: a flush of %d rows failed", frame.height)
            with contextlib.suppress(Exception):  # the failure may have left none open
                self._cursor.execute("ROLLBACK")
        finally:
            with contextlib.suppress(Exception):
                self._cursor.unregister("mldeck_pending_predictions")
