"""A shadow challenger: scores the same requests as the champion, off the request
path, is logged beside it (`shadow = true`) and is never returned.

Requests hand their feed to `ShadowScorer.submit`, which never blocks: when the
bounded queue is full the request is skipped and counted. A worker thread runs
the shadow model and submits its outputs to the prediction log under the same
request id as the champion's answer.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Any

import numpy as np

from engine.serving.model_slot import LoadedModel
from engine.serving.prediction_log import PredictionLog, ScoredBatch
from storage.catalog import utcnow

log = logging.getLogger(__name__)

QUEUE_REQUESTS = 10_000
"""Requests waiting for the shadow; beyond this they are skipped and counted."""

_STOP: Any = object()


class ShadowScorer:
    def __init__(self, model: LoadedModel, prediction_log: PredictionLog) -> None:
        self.model = model
        self.prediction_log = prediction_log
        self.skipped_requests = 0
        self.failed_requests = 0
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=QUEUE_REQUESTS)
        self._thread = threading.Thread(target=self._run, name="mldeck-shadow", daemon=True)
        self._thread.start()

    def submit(self, request_id: str, endpoint: str, feed: dict[str, np.ndarray]) -> None:
        """Queue one request's feed for the shadow model; never blocks."""
        try:
            self._queue.put_nowait((request_id, endpoint, feed))
        except queue.Full:
            self.skipped_requests += 1

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            request_id, endpoint, feed = item
            started = time.perf_counter()
            try:
                outputs = self.model.run(feed)
            except Exception:  # the shadow must never affect serving; counted, logged
                self.failed_requests += 1
                log.exception("shadow v%s failed on request %s", self.model.version, request_id)
                continue
            self.prediction_log.submit(
                ScoredBatch(
                    request_id=request_id,
                    served_at=utcnow(),
                    model_version=self.model.version,
                    endpoint=endpoint,
                    inputs=feed,
                    outputs=outputs,
                    latency_ms=(time.perf_counter() - started) * 1000,
                    shadow=True,
                )
            )

    def close(self) -> None:
        """Score what is queued, then stop (call before closing the prediction log)."""
        self._queue.put(_STOP)
        self._thread.join()
