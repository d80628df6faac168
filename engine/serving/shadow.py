"""A shadow challenger: scores the same requests as the champion, off the request
path, is logged beside it (`shadow = true`) and is never returned.

The serving app hands each champion run's feed and requests to
`ShadowScorer.submit`, which never blocks: when the bounded queue is full the
run is skipped and its requests counted. A worker thread runs the shadow model
and submits its outputs to the prediction log under the same request ids as
the champion's answers.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Any

import numpy as np

from engine.serving.model_slot import LoadedModel
from engine.serving.prediction_log import LoggedRequest, PredictionLog, ScoredBatch
from storage.catalog import utcnow

log = logging.getLogger(__name__)

QUEUE_RUNS = 10_000
"""Runs waiting for the shadow; beyond this they are skipped and their requests counted."""

_STOP: Any = object()


class ShadowScorer:
    def __init__(self, model: LoadedModel, prediction_log: PredictionLog) -> None:
        self.model = model
        self.prediction_log = prediction_log
        self.skipped_requests = 0
        self.failed_requests = 0
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=QUEUE_RUNS)
        self._thread = threading.Thread(target=self._run, name="mldeck-shadow", daemon=True)
        self._thread.start()

    def submit(self, feed: dict[str, np.ndarray], requests: list[LoggedRequest]) -> None:
        """Queue one champion run's feed for the shadow model; never blocks."""
        try:
            self._queue.put_nowait((feed, requests))
        except queue.Full:
            self.skipped_requests += len(requests)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            feed, requests = item
            started = time.perf_counter()
            try:
                outputs = self.model.run(feed)
            except Exception:  # the shadow must never affect serving; counted, logged
                self.failed_requests += len(requests)
                ids = ", ".join(r.request_id for r in requests[:3])
                log.exception("shadow v%s failed on requests %s", self.model.version, ids)
                continue
            latency_ms = (time.perf_counter() - started) * 1000
            self.prediction_log.submit(
                ScoredBatch(
                    served_at=utcnow(),
                    model_version=self.model.version,
                    inputs=feed,
                    outputs=outputs,
                    requests=[r._replace(latency_ms=latency_ms) for r in requests],
                    shadow=True,
                )
            )

    def close(self) -> None:
        """Score what is queued, then stop (call before closing the prediction log)."""
        self._queue.put(_STOP)
        self._thread.join()
