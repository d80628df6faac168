"""The prediction log: scored rows written to the catalog off the request path.

A request hands its whole batch (input columns, outputs) to `PredictionLog.submit`,
which never blocks: the queue is bounded, and when it is full the rows are
counted as dropped instead. A background thread turns batches into rows (the
JSON encoding happens there, not in the request) and writes them with its own
DuckDB cursor, one transaction per flush.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import queue
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

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

_TICK: Any = object()
"""Wakes the writer when the flush interval ends with nothing new queued."""

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


@dataclass(frozen=True)
class ScoredBatch:
    """One request's rows, as the model saw and answered them."""

    request_id: str
    served_at: datetime
    model_version: int
    endpoint: str
    inputs: dict[str, np.ndarray]
    """The model's feed: column name -> [N, 1] tensor."""
    outputs: dict[str, np.ndarray]
    """The model's outputs: name -> [N, ...] tensor."""
    latency_ms: float
    shadow: bool = False

    @property
    def row_count(self) -> int:
        first = next(iter(self.inputs.values()), None)
        return 0 if first is None else int(first.shape[0])


def _plain(value: Any) -> Any:
    """A JSON-ready Python value; NaN becomes null."""
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def batch_rows(batch: ScoredBatch) -> dict[str, list[Any]]:
    """The batch as predictions-table columns, one row per scored row."""
    n = batch.row_count
    inputs = {
        name: [_plain(v) for v in t.reshape(n, -1)[:, 0].tolist()]
        for name, t in batch.inputs.items()
    }
    outputs = {name: t.reshape(n, -1).tolist() for name, t in batch.outputs.items()}
    scalar_outputs = {name for name, t in batch.outputs.items() if t.size == n}
    inputs_json = [json.dumps({k: v[i] for k, v in inputs.items()}) for i in range(n)]
    output_json = [
        json.dumps({k: (v[i][0] if k in scalar_outputs else v[i]) for k, v in outputs.items()})
        for i in range(n)
    ]
    return {
        "request_id": [batch.request_id] * n,
        "row_index": list(range(n)),
        "served_at": [batch.served_at] * n,
        "model_version": [batch.model_version] * n,
        "endpoint": [batch.endpoint] * n,
        "inputs_json": inputs_json,
        "output_json": output_json,
        "latency_ms": [batch.latency_ms] * n,
        "shadow": [batch.shadow] * n,
    }


class PredictionLog:
    """Writes scored batches to the catalog's `predictions` table in the background."""

    def __init__(
        self,
        catalog: Catalog,
        flush_interval_s: float = FLUSH_INTERVAL_S,
        flush_rows: int = FLUSH_ROWS,
        max_queued: int = QUEUE_BATCHES,
    ) -> None:
        self._cursor = catalog.conn.cursor()
        self._queue: queue.Queue[ScoredBatch | None] = queue.Queue(maxsize=max_queued)
        self._flush_interval_s = flush_interval_s
        self._flush_rows = flush_rows
        self.dropped_rows = 0
        """Rows not logged because the queue was full."""
        self.written_rows = 0
        self.failed_flushes = 0
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()

    def submit(self, batch: ScoredBatch) -> bool:
        """Queue a batch for writing; never blocks. False when it was dropped."""
        if self._closed:
            self.dropped_rows += batch.row_count
            return False
        try:
            self._queue.put_nowait(batch)
        except queue.Full:
            self.dropped_rows += batch.row_count
            return False
        return True

    def close(self) -> None:
        """Write everything queued, then stop the writer and its cursor."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._thread.join()
        self._cursor.close()

    def _run(self) -> None:
        pending: list[ScoredBatch] = []
        pending_rows = 0
        deadline = time.monotonic() + self._flush_interval_s
        stopping = False
        while not stopping:
            timeout = max(0.0, deadline - time.monotonic())
            try:
                item = self._queue.get(timeout=timeout)
            except queue.Empty:
                item = _TICK
            if item is None:
                stopping = True
            elif item is not _TICK:
                pending.append(item)
                pending_rows += item.row_count
                if pending_rows < self._flush_rows:
                    continue
            if pending:
                self._flush(pending)
                pending, pending_rows = [], 0
            deadline = time.monotonic() + self._flush_interval_s

    def _flush(self, batches: list[ScoredBatch]) -> None:
        columns: dict[str, list[Any]] = {name: [] for name in COLUMNS}
        for batch in batches:
            for name, values in batch_rows(batch).items():
                columns[name].extend(values)
        frame = pl.DataFrame(
            columns,
            schema={
                "request_id": pl.Utf8,
                "row_index": pl.Int32,
                "served_at": pl.Datetime("us"),
                "model_version": pl.Int64,
                "endpoint": pl.Utf8,
                "inputs_json": pl.Utf8,
                "output_json": pl.Utf8,
                "latency_ms": pl.Float64,
                "shadow": pl.Boolean,
            },
        )
        try:
            self._cursor.register("mldeck_pending_predictions", frame.to_arrow())
            self._cursor.execute("BEGIN TRANSACTION")
            self._cursor.execute(
                f"INSERT INTO predictions ({', '.join(COLUMNS)}) "
                f"SELECT {', '.join(COLUMNS)} FROM mldeck_pending_predictions"
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
