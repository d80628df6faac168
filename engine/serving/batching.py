"""Micro-batching: concurrent requests for one model version scored in one `session.run`.

Each request's columns are validated and converted to plain values *before* it
joins a batch (see `app.prepare_columns`), so a batch run fails only for a real
model error. The first request to arrive while the batcher is idle schedules the
batch with `loop.call_soon`; every request that arrives before the event loop
gets there (typically the other connections' requests parsed in the same loop
turn) joins it. The batch builds one feed across all its requests, runs the
session once and hands each request its own slice of the inputs and outputs.

A `MicroBatcher` belongs to one `LoadedModel`, so versions never mix in a batch.
If a batch run raises, each of its requests is run alone, so only the request
the model rejects fails (with `ModelRunError`).

Each request gets its own outputs and the `ScoredRun` it was part of: the whole
feed and outputs and every request's tag, so the caller logs a batch with one
hand-off instead of one per request (`ScoredRun.claim`).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

Feed = dict[str, np.ndarray]
PreparedColumns = dict[str, list[Any] | np.ndarray]
"""Input name -> values already checked for the input's type: a list of floats
(NaN for missing) or strings, or an [N, 1] array of the right dtype."""

MAX_BATCH_ROWS = 4096
"""A batch closes once it holds this many rows; later requests start the next one."""


class ModelRunError(Exception):
    """The model itself failed on a request's (already validated) input."""


def column_array(values: list[Any] | np.ndarray, is_string: bool) -> np.ndarray:
    """One prepared column as the [N, 1] tensor onnxruntime takes."""
    if isinstance(values, np.ndarray):
        return values.reshape(-1, 1)
    dtype: Any = object if is_string else np.float32
    return np.array(values, dtype=dtype).reshape(-1, 1)


def build_feed(inputs: Sequence[tuple[str, bool]], requests: Sequence[PreparedColumns]) -> Feed:
    """One feed across `requests`, their rows stacked in order."""
    feed: Feed = {}
    for name, is_string in inputs:
        parts = [request[name] for request in requests]
        if len(parts) == 1:
            feed[name] = column_array(parts[0], is_string)
        elif set(map(type, parts)) == {list}:
            feed[name] = column_array(list(itertools.chain.from_iterable(parts)), is_string)
        else:
            feed[name] = np.concatenate([column_array(part, is_string) for part in parts])
    return feed


class ScoredRun:
    """One session run: its feed and outputs, and the requests it answered, in row order."""

    __slots__ = ("feed", "outputs", "tags", "rows", "waits_s", "_claimed")

    def __init__(
        self,
        feed: Feed,
        outputs: dict[str, np.ndarray],
        tags: list[Any],
        rows: list[int],
        waits_s: list[float],
    ) -> None:
        self.feed, self.outputs, self.tags, self.rows = feed, outputs, tags, rows
        self.waits_s = waits_s
        """Per request: from joining the batch to the batch's outputs."""
        self._claimed = False

    def claim(self) -> bool:
        """True for the first caller only: that request logs the run for all of them
        (requests resume one at a time on the event loop, so no lock is needed)."""
        if self._claimed:
            return False
        self._claimed = True
        return True


class _Pending:
    __slots__ = ("columns", "rows", "tag", "joined", "future")

    def __init__(
        self, columns: PreparedColumns, rows: int, tag: Any, future: asyncio.Future[Any]
    ) -> None:
        self.columns, self.rows, self.tag, self.future = columns, rows, tag, future
        self.joined = time.perf_counter()


class MicroBatcher:
    """Collects one model version's requests and scores each loop turn's worth at once."""

    def __init__(
        self, inputs: Sequence[tuple[str, bool]], run: Callable[[Feed], dict[str, np.ndarray]]
    ) -> None:
        self._inputs = list(inputs)
        self._run_model = run
        self._pending: list[_Pending] = []
        self._pending_rows = 0
        self.batches = 0
        """Session runs so far (a batch run that had to be split counts once)."""
        self.requests = 0

    async def score(
        self, columns: PreparedColumns, rows: int, tag: Any = None
    ) -> tuple[dict[str, np.ndarray], ScoredRun]:
        """This request's outputs, scored in the next batch, and that batch's run.

        Args:
            tag: the caller's record of the request, handed back in `ScoredRun.tags`.

        Raises:
            ModelRunError: the model failed on this request's rows.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[tuple[dict[str, np.ndarray], ScoredRun]] = loop.create_future()
        if not self._pending:
            loop.call_soon(self._run_batch)
        elif self._pending_rows + rows > MAX_BATCH_ROWS:
            self._run_batch()  # close the full batch now; this request starts the next
        self._pending.append(_Pending(columns, rows, tag, future))
        self._pending_rows += rows
        return await future

    async def score_in_thread(
        self, columns: PreparedColumns, rows: int, tag: Any = None
    ) -> tuple[dict[str, np.ndarray], ScoredRun]:
        """A large request scored alone on a worker thread: the event loop keeps
        answering the others meanwhile (onnxruntime releases the GIL while it runs).

        Raises:
            ModelRunError: the model failed on this request's rows.
        """
        joined = time.perf_counter()

        def run() -> tuple[Feed, dict[str, np.ndarray]]:
            feed = build_feed(self._inputs, [columns])
            return feed, self._run_model(feed)

        try:
            feed, outputs = await asyncio.to_thread(run)
        except Exception as exc:
            raise ModelRunError(str(exc)) from None
        self.batches += 1
        self.requests += 1
        waited = time.perf_counter() - joined
        return outputs, ScoredRun(feed, outputs, [tag], [rows], [waited])

    def _run_batch(self) -> None:
        pending, self._pending, self._pending_rows = self._pending, [], 0
        live = [p for p in pending if not p.future.done()]  # a cancelled request is skipped
        if not live:
            return
        self.batches += 1
        self.requests += len(live)
        try:
            feed = build_feed(self._inputs, [p.columns for p in live])
            outputs = self._run_model(feed)
        except Exception as exc:
            if len(live) == 1:
                live[0].future.set_exception(ModelRunError(str(exc)))
                return
            for one in live:  # find the request(s) the model rejects; the rest still succeed
                self._run_alone(one)
            return
        done = time.perf_counter()
        run = ScoredRun(
            feed,
            outputs,
            [p.tag for p in live],
            [p.rows for p in live],
            [done - p.joined for p in live],
        )
        if len(live) == 1:
            live[0].future.set_result((outputs, run))
            return
        start = 0
        for p in live:
            stop = start + p.rows
            p.future.set_result(({name: t[start:stop] for name, t in outputs.items()}, run))
            start = stop

    def _run_alone(self, pending: _Pending) -> None:
        try:
            feed = build_feed(self._inputs, [pending.columns])
            outputs = self._run_model(feed)
        except Exception as exc:
            pending.future.set_exception(ModelRunError(str(exc)))
            return
        waited = time.perf_counter() - pending.joined
        run = ScoredRun(feed, outputs, [pending.tag], [pending.rows], [waited])
        pending.future.set_result((outputs, run))
