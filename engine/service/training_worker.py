"""Training in a child process, for an engine service that lives on.

Much of a training holds the GIL: the MLP's training loop is Python, so is
skl2onnx's export, and sklearn's fitting in part. On the pipeline thread of an
engine service (`mldeck daemon`, `mldeck serve`, the UI's in-process engine)
that slows the UI's event loop, the endpoint and the control API of the same
process (and they slow the training). `TrainingWorker` runs `train_candidate`
in one child process instead, started on the first training and kept warm for
the next, at a lower CPU priority than the engine; the parent keeps all
catalog and object store work (DuckDB allows one writer, and that is the
engine).

The child is spawned, never forked: the engine has DuckDB, onnxruntime and
watchdog threads whose locks a fork would copy mid-use (spawn is also what
CUDA needs). Spawn imports the parent's main module again in the child, so a
script that starts an engine service needs the `if __name__ == "__main__"`
guard. Requests, progress events and answers go over one pipe (pickled:
it is an anonymous pipe between the engine and the child it spawned, which no
other process can write to; nothing read from a file or the network crosses it): the parent's
waiting thread publishes the child's events to the engine's sink, and an
exception raised in the child (a `ConfigError`, a `TrainingError`) is raised
again in the parent with its class and message. A child that dies (killed,
out of memory) fails that candidate with a `TrainingError` and the next
training starts a new one; `close` ends the child even mid-training, and the
training cut short raises `EngineStopping` (a journaled train job runs again
at the next start). A child whose engine was killed ends itself.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import pickle
import signal
import sys
import threading
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import TYPE_CHECKING, Any

from engine.core.errors import EngineStopping, TrainingError
from engine.core.events import EventSink

if TYPE_CHECKING:  # numpy, polars, duckdb: not for an engine that has not trained yet
    from engine.core.config import Candidate
    from engine.data.dataset import Dataset
    from engine.data.features import FeatureSpec
    from engine.models.base import TrainedModel

NICENESS = 10
"""The child's niceness: where the engine's own threads (UI, endpoint) and the training
want the same cores, the kernel runs the engine's first."""
STOP_WAIT_S = 2.0
"""How long `close` waits for the child to end after SIGTERM before it sends SIGKILL."""


class TrainingWorker:
    """One spawned process that trains candidates, one at a time (`train` has
    `train_candidate`'s signature, so it is a `engine.models.training.Trainer`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process: BaseProcess | None = None
        self._conn: Connection | None = None
        self._busy = False
        self._closed = False

    @property
    def pid(self) -> int | None:
        """The child's pid while there is one."""
        process = self._process
        return process.pid if process is not None else None

    def train(
        self,
        candidate: Candidate,
        dataset: Dataset,
        spec: FeatureSpec,
        seed: int,
        events: EventSink,
    ) -> TrainedModel:
        """`train_candidate` in the child; its events are passed to `events` here.

        Raises:
            ConfigError, TrainingError: what the training raised in the child.
            TrainingError: the child died.
            EngineStopping: `close` was called (before or during the training).
        """
        # A child killed between two trainings can still look alive for a moment (a
        # multi-threaded process is not reapable until its last thread has exited), so
        # the request may go to a dead child: one that never took it is replaced and
        # the request sent again, once.
        for attempt in (1, 2):
            process, taken, answer = self._attempt(candidate, dataset, spec, seed, events)
            if answer is not None:
                return answer
            if taken or attempt == 2:
                break
            self._forget(process)
        raise self._lost(process, candidate.name)

    def _attempt(
        self,
        candidate: Candidate,
        dataset: Dataset,
        spec: FeatureSpec,
        seed: int,
        events: EventSink,
    ) -> tuple[BaseProcess, bool, TrainedModel | None]:
        """Send one request to the child (started if needed) and read its answer.

        Returns:
            The child, whether it took the request, and the model (None if the child died).
        """
        with self._lock:
            if self._closed:
                raise EngineStopping(f"the engine is stopping: {candidate.name} was not trained")
            if self._process is not None and not self._process.is_alive():
                self._drop()  # it died between two trainings
            if self._process is None:
                self._start()
            process, conn = self._process, self._conn
            assert process is not None and conn is not None
            self._busy = True
        pending = False  # a request is out, its answer unread: only a dead child is left so
        taken = False  # the child said it took the request
        try:
            try:
                conn.send((candidate, dataset, spec, seed))
                pending = True
            except OSError:  # it died before the request went out
                pass
            while True:
                ready = wait([conn, process.sentinel])
                if conn not in ready:
                    break
                try:
                    kind, payload = conn.recv()
                except (EOFError, OSError):
                    break
                if kind == "taken":
                    taken = True
                    continue
                if kind == "event":
                    events(payload)
                    continue
                pending = False
                if kind == "error":
                    raise payload
                trained: TrainedModel = payload
                return process, taken, trained
        finally:
            with self._lock:
                self._busy = False
            if pending and process.is_alive():  # left early (the sink raised): its late
                process.kill()  # answer would be read as the next training's
        return process, taken, None

    def close(self) -> None:
        """End the child, waiting for no training; later trainings raise `EngineStopping`."""
        with self._lock:
            self._closed = True
            process, busy = self._process, self._busy
        if process is None:
            return
        if process.is_alive():
            process.terminate()
            if not wait([process.sentinel], STOP_WAIT_S):
                process.kill()
        if not busy:  # otherwise the training thread reaps it (one joiner per process)
            self._forget(process)

    def _start(self) -> None:
        context = multiprocessing.get_context("spawn")
        parent_end, child_end = context.Pipe()
        # Under a Textual app sys.stderr is a capture whose fileno() is -1: multiprocessing
        # would pass that on to its resource tracker (ValueError), and the child, which
        # inherits the terminal's descriptors, would write on the UI's screen.
        captured = _fileno(sys.stderr) is None
        process = context.Process(
            target=_serve, args=(child_end, captured), name="mldeck-training", daemon=True
        )
        with contextlib.redirect_stderr(sys.__stderr__) if captured else contextlib.nullcontext():
            process.start()
        child_end.close()
        self._process, self._conn = process, parent_end

    def _forget(self, process: BaseProcess) -> None:
        process.join(STOP_WAIT_S)
        with self._lock:
            if self._process is process:
                self._drop()

    def _drop(self) -> None:
        """Let go of the (ended) child; under the lock."""
        if self._process is not None:
            self._process.join(STOP_WAIT_S)
        if self._conn is not None:
            self._conn.close()
        self._process = self._conn = None

    def _lost(self, process: BaseProcess, name: str) -> Exception:
        """The error for a training whose child ended; the next training starts a new one."""
        self._forget(process)
        if self._closed:
            return EngineStopping(
                f"the engine stopped while {name} trained: the training was cut short"
            )
        code = process.exitcode
        if code is not None and code < 0:
            how = f"killed by {signal.Signals(-code).name}"
            if -code == signal.SIGKILL:
                how += ", e.g. out of memory"
        else:
            how = f"exit code {code}"
        return TrainingError(
            f"the training process (pid {process.pid}) died ({how}) while {name} trained; "
            "nothing was registered, the next training starts a new process"
        )


# ------------------------------------------------------------------ the child


def _fileno(stream: Any) -> int | None:
    try:
        fileno = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return None
    return fileno if isinstance(fileno, int) and fileno >= 0 else None


def _serve(conn: Connection, quiet: bool) -> None:
    """The child's loop: train each request, answer with the model or the exception.

    Args:
        quiet: the engine's output is captured (a terminal UI): write nothing on the terminal.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C is the engine's: it stops us
    os.nice(NICENESS)
    if quiet:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        os.close(devnull)
    threading.Thread(target=_exit_with_parent, name="parent-watch", daemon=True).start()
    from engine.models.training import train_candidate

    def send_event(event: Any) -> None:
        conn.send(("event", event))

    while True:
        try:
            candidate, dataset, spec, seed = conn.recv()
        except EOFError:  # the engine closed the pipe (or ended)
            return
        conn.send(("taken", None))
        try:
            answer: tuple[str, Any] = (
                "done",
                train_candidate(candidate, dataset, spec, seed, send_event),
            )
        except Exception as exc:
            answer = ("error", _portable(exc))
        try:
            conn.send(answer)
        except (pickle.PicklingError, TypeError, AttributeError) as exc:  # nothing was sent
            conn.send(("error", TrainingError(f"{candidate.name}: cannot send the model: {exc}")))


def _portable(exc: Exception) -> Exception:
    """`exc` if it survives pickling with its class and message, else a TrainingError saying it."""
    try:
        again = pickle.loads(pickle.dumps(exc))
        if type(again) is type(exc) and str(again) == str(exc):
            return exc
    except Exception:
        pass
    return TrainingError(f"{type(exc).__name__}: {exc}")


def _exit_with_parent() -> None:
    """An engine killed with SIGKILL cannot end its child: the child ends itself."""
    parent = multiprocessing.parent_process()
    if parent is not None and parent.sentinel is not None:
        wait([parent.sentinel])
        os._exit(1)
