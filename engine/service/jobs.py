"""The engine's pipeline queue: jobs run one at a time, in order, on one thread.

Every catalog write of an engine service is a job on this queue (ingest,
train, retrain, promote, rollback, proposals), so writes never interleave and
the order of dropped files is the order of their batches. Train and retrain
jobs are also journaled in the `jobs` table before they run: one that the
engine did not finish (a crash, a stop that could not wait for it, or a
training cut short by a stop) is run again when the engine next starts.
Ingest needs no journal: the watcher reads the watched folders at start-up
and ingest is idempotent by content hash.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, get_args

from engine.core.answers import JobKind
from engine.core.errors import EngineStopping
from engine.core.events import EventSink, JobFinished, JobQueued, JobStarted, ignore_events
from engine.data.arrivals import utf8_text
from storage.catalog import Catalog, utcnow

JOURNALED_KINDS: frozenset[JobKind] = frozenset(get_args(JobKind))
"""Jobs that run again at the next start when an engine stopped or died during them
(`decide`: the retrain of an accepted proposal)."""


@dataclass
class Job:
    job_id: int
    kind: str
    args: dict[str, Any]
    subject: str
    key: str | None = None
    """Jobs with the same key are not queued twice (a file seen by two events)."""
    journal_id: int | None = None
    resumed: bool = False
    """Queued again from the journal: a previous engine started it and did not finish."""
    interrupted_start: Any = None
    """When that previous engine last started it (None if it never did)."""
    status: str = "queued"
    submitted_at: str = field(default_factory=lambda: utcnow().isoformat(timespec="seconds") + "Z")
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: BaseException | None = None

    def describe(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "kind": self.kind,
            "subject": self.subject,
            "status": self.status,
            "submitted_at": self.submitted_at,
        }


class PipelineQueue:
    """A FIFO of jobs and the thread that runs them.

    Args:
        journal: a catalog connection for the `jobs` table only (used under this queue's lock).
        run: runs one job on the pipeline thread and returns its JSON-ready result.
    """

    def __init__(
        self,
        journal: Catalog,
        run: Callable[[Job], Any],
        events: EventSink = ignore_events,
    ) -> None:
        self._journal = journal
        self._run = run
        self._events = events
        self._cond = threading.Condition()
        self._pending: deque[Job] = deque()
        self._current: Job | None = None
        self._ids = itertools.count(1)
        self._stopping = False
        self._thread = threading.Thread(target=self._work, name="pipeline", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def resume_journal(self) -> list[Job]:
        """Queue the journaled jobs a previous engine left queued or running, in order."""
        with self._cond:
            rows = self._journal.rows(
                "SELECT job_id, kind, args_json, started_at FROM jobs"
                " WHERE status IN ('queued', 'running') "
                "ORDER BY job_id"
            )
            jobs = []
            for row in rows:
                args = json.loads(row["args_json"])
                job = Job(next(self._ids), row["kind"], args, _subject(row["kind"], args))
                job.journal_id = int(row["job_id"])
                job.resumed = True
                job.interrupted_start = row["started_at"]
                self._journal.execute(
                    "UPDATE jobs SET status = 'queued' WHERE job_id = ?", [job.journal_id]
                )
                self._pending.append(job)
                jobs.append(job)
            self._cond.notify()
        return jobs

    def submit(self, kind: str, args: dict[str, Any], key: str | None = None) -> Job:
        """Queue a job; a queued job with the same key is returned instead of a new one."""
        with self._cond:
            if self._stopping:
                raise EngineStopping("the engine is stopping and takes no new jobs")
            if key is not None:
                for queued in self._pending:
                    if queued.key == key:
                        return queued
            job = Job(next(self._ids), kind, args, _subject(kind, args), key=key)
            if kind in JOURNALED_KINDS:
                job.journal_id = int(
                    self._journal.scalar(
                        "INSERT INTO jobs (kind, args_json, status, submitted_at, attempts) "
                        "VALUES (?, ?, 'queued', ?, 0) RETURNING job_id",
                        [kind, json.dumps(args), utcnow()],
                    )
                )
            self._pending.append(job)
            self._cond.notify()
        self._events(JobQueued(job.job_id, kind, job.subject))
        return job

    def wait(self, job: Job) -> Any:
        """The job's result once it ran; raises what it raised.

        Raises:
            EngineStopping: the engine began to stop before the job finished.
        """
        while not job.done.wait(0.2):
            if self._stopping:
                raise EngineStopping(
                    f"the engine is stopping while job {job.job_id} ({job.kind} {job.subject}) "
                    "runs"
                    + (
                        "; if it cannot finish, it runs again at the next start"
                        if job.journal_id
                        else ""
                    )
                )
        if job.error is not None:
            raise job.error
        return job.result

    def run(self, kind: str, args: dict[str, Any]) -> Any:
        return self.wait(self.submit(kind, args))

    def snapshot(self) -> list[dict[str, Any]]:
        """The running job, then the queued ones, in order."""
        with self._cond:
            jobs = ([self._current] if self._current else []) + list(self._pending)
            return [job.describe() for job in jobs]

    def idle(self) -> bool:
        with self._cond:
            return self._current is None and not self._pending

    @property
    def stopping(self) -> bool:
        return self._stopping

    def stop(self, grace_s: float) -> bool:
        """Take no more jobs and let the running one finish; whether it did within `grace_s`.

        Queued jobs stay queued (journaled ones run at the next start); whoever
        waits on them gets `EngineStopping`.
        """
        with self._cond:
            self._stopping = True
            waiting = list(self._pending)
            self._pending.clear()
            self._cond.notify_all()
        for job in waiting:
            job.error = EngineStopping(
                f"the engine stopped before job {job.job_id} ({job.kind} {job.subject}) ran"
                + ("; it runs when the engine starts again" if job.journal_id else "")
            )
            job.done.set()
        if self._thread.is_alive():
            self._thread.join(grace_s)
        return not self._thread.is_alive()

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                job = self._current = self._pending.popleft()
                job.status = "running"
                if job.journal_id is not None:
                    self._journal.execute(
                        "UPDATE jobs SET status = 'running', started_at = ?, attempts = attempts + 1"
                        " WHERE job_id = ?",
                        [utcnow(), job.journal_id],
                    )
            self._events(JobStarted(job.job_id, job.kind, job.subject))
            try:
                job.result = self._run(job)
                job.status = "succeeded"
            except EngineStopping as exc:  # cut short by a stop: not finished, not failed
                job.error = exc
                job.status = "interrupted"
            except Exception as exc:  # the job failed; the queue goes on
                job.error = exc
                job.status = "failed"
            detail = (
                getattr(job.error, "msg", str(job.error)) if job.error else _outcome(job.result)
            )
            with self._cond:
                # An interrupted job stays `running` in the journal: the next start runs it again.
                if job.journal_id is not None and job.status != "interrupted":
                    self._journal.execute(
                        "UPDATE jobs SET status = ?, ended_at = ?, result_json = ?, error = ?"
                        " WHERE job_id = ?",
                        [
                            job.status,
                            utcnow(),
                            json.dumps(job.result, default=str),
                            detail or None,
                            job.journal_id,
                        ],
                    )
                self._current = None
            job.done.set()
            self._events(JobFinished(job.job_id, job.kind, job.subject, job.status, detail))


def _outcome(result: Any) -> str:
    """A short word on a finished job: the ingest statuses (a refusal with its reason), or nothing."""
    if isinstance(result, list):
        return ", ".join(_ingest_outcome(r) for r in result if isinstance(r, dict))
    return ""


def _ingest_outcome(result: dict[str, Any]) -> str:
    if result.get("status") == "refused" and result.get("issues"):
        return f"refused: {result['issues'][0]['message']}"
    return str(result.get("status"))


def _subject(kind: str, args: dict[str, Any]) -> str:
    # A file name's bytes that are not UTF-8 become \xNN: the subject goes out as JSON.
    return utf8_text(_raw_subject(kind, args))


def _raw_subject(kind: str, args: dict[str, Any]) -> str:
    if "path" in args:
        return str(args["path"]).rsplit("/", 1)[-1]
    if "paths" in args:
        paths = args["paths"]
        if len(paths) == 1:
            return str(paths[0]).rsplit("/", 1)[-1]
        return f"{len(paths)} paths" if paths else "the incoming folder"
    if "version" in args:
        return f"v{args['version']}"
    if "proposal_id" in args:
        return f"proposal {args['proposal_id']}"
    if "trigger" in args:
        return str(args["trigger"])
    if "batch_id" in args:
        return f"batch {args['batch_id']}"
    return str(args.get("reason", ""))[:60]
