"""One engine service on a project: `mldeck serve` and `mldeck daemon` are this
service with different parts switched on.

Always there: the pipeline queue (every catalog write is a job on it, run one
at a time, in order) and the control API. Parts: `serve` (the champion's
endpoint, swapped when the champion changes), `watcher` (the watched folders
feed ingest jobs), `scheduler` (retrain triggers).

DuckDB wants one connection per thread, so each user of the catalog has its
own: the pipeline thread the project's connection, control reads one cursor
(under a lock), the serving app, the queue's journal and the prediction log
one cursor each.

On start the service recovers what a previous engine left unfinished: stage
runs left `running` were marked interrupted when the catalog was opened; an
interrupted ingest whose file is still there is ingested again (by content hash,
so at most once), an interrupted drift check or live-performance update is run
again, and journaled jobs
(train, retrain, an accepted proposal's retrain) that did not finish run again.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from engine.core.answers import DoctorAnswer, DriftAnswer, ServingStatsAnswer, StatusAnswer
from engine.core.errors import EngineStopping
from engine.core.events import Event, EventHub
from engine.core.owner import project_token, read_owner
from engine.core.project import Project
from engine.records.registry import CHAMPION, alias_version, champion_history
from engine.service.client import LocalEngine
from engine.service.control import ControlApi
from engine.service.front import EngineFront
from engine.service.jobs import JOURNALED_KINDS, Job, PipelineQueue
from engine.service.operations import OPERATIONS, EngineClient
from engine.service.training_worker import TrainingWorker
from engine.views.status import project_status
from storage.catalog import Catalog, utcnow

if TYPE_CHECKING:
    from engine.service.watcher import Watcher
    from engine.serving.app import ServingApp
    from engine.serving.model_slot import LoadedModel

log = logging.getLogger(__name__)

PARTS = ("serve", "watcher", "scheduler")
STOP_GRACE_S = 7.0
"""How long a stop waits for the running job; a job cut short is redone at the next start."""
SCHEDULE_TICK_S = 1.0
T = TypeVar("T")


def _cursor_project(project: Project) -> Project:
    """The same project over its own cursor (a connection for another thread)."""
    catalog = Catalog(project.catalog.conn.cursor(), project.catalog.path)
    return Project(
        root=project.root, config=project.config, catalog=catalog, objects=project.objects
    )


class EngineService(EngineClient):
    """The engine that owns a project while `mldeck serve` or `mldeck daemon` runs.

    It is an `EngineClient`: reads answer from the catalog, writes wait for
    their job on the pipeline queue. The control API calls it.
    """

    def __init__(
        self, project: Project, parts: tuple[str, ...], shadow_version: int | None = None
    ) -> None:
        unknown = set(parts) - set(PARTS)
        if unknown:
            raise ValueError(f"unknown engine parts: {sorted(unknown)}")
        self.project = project
        self.parts = parts
        self.shadow_version = shadow_version
        self.hub = EventHub()
        # This engine lives on beside a UI, an endpoint and a control API in its process, so
        # the CPU-heavy part of training runs in a child that holds its own GIL. One-shot
        # commands (LocalEngine's default) train in process: a fresh interpreter importing
        # sklearn and torch costs 1-3 s, more than a small training.
        self.training = TrainingWorker()
        self._pipeline = LocalEngine(project, self.hub, trainer=self.training.train)
        self._reader = LocalEngine(_cursor_project(project), self.hub)
        self._read_lock = threading.Lock()
        self._serving_project = _cursor_project(project)
        self._journal = Catalog(project.catalog.conn.cursor(), project.catalog.path)
        self.queue = PipelineQueue(self._journal, self._run_job, self.hub.publish)
        self.front = EngineFront(
            ControlApi(self, project_token(project.state_dir), project.root), self.hub
        )
        self.watcher: Watcher | None = None
        self._stop = threading.Event()
        self._scheduler: threading.Thread | None = None
        self.schedule_ticks = 0
        """Scheduler passes finished: a caller can wait for one instead of sleeping."""

    # ------------------------------------------------------------ life cycle

    def open_endpoint(self) -> ServingApp | None:
        """Put the champion's serving app in place (when `serve` is a part and there is one).

        Raises:
            NotFoundError: no such shadow version.
        """
        from engine.serving.app import create_app

        if "serve" not in self.parts or alias_version(self.project.catalog, CHAMPION) is None:
            return None
        self.front.serving = create_app(self._serving_project, shadow_version=self.shadow_version)
        return self.front.serving

    def start(self) -> None:
        """Recover what a previous engine left, then start the queue and the parts."""
        self.queue.submit("recover", {})
        self.queue.resume_journal()
        self.queue.start()
        if "watcher" in self.parts:
            from engine.service.watcher import Watcher

            config = self.project.config
            self.watcher = Watcher(
                [self.project.incoming_dir, self.project.labels_dir],
                self._file_ready,
                polling=config.watch.polling,
                quiet_seconds=config.watch.quiet_seconds,
            )
            self.watcher.start()
        if "scheduler" in self.parts:
            self._scheduler = threading.Thread(target=self._schedule, name="scheduler", daemon=True)
            self._scheduler.start()

    def begin_stop(self) -> None:
        """The first step of a stop (safe on the event loop): take no more work, end event streams."""
        self._stop.set()
        self.queue.stop(grace_s=0)
        self.hub.close()

    def close(self, grace_s: float = STOP_GRACE_S) -> bool:
        """Stop the parts, let the running job finish (up to `grace_s`), flush the prediction log.

        Returns:
            Whether the pipeline finished; if not, its connection is left open
            (the caller exits the process; the journal redoes the job).
        """
        self.begin_stop()
        if self.watcher is not None:
            self.watcher.stop()
        if self._scheduler is not None:
            self._scheduler.join(timeout=5)
        # A training cut short ends its job with EngineStopping; a journaled one runs again.
        self.training.close()
        finished = self.queue.stop(grace_s)
        if self.front.serving is not None:
            self.front.serving.close()
        if finished:
            for catalog in (
                self._reader.project.catalog,
                self._serving_project.catalog,
                self._journal,
            ):
                catalog.close()
            self.project.close()
        return finished

    # ------------------------------------------------------------ EngineClient: reads

    def status(self) -> StatusAnswer:
        with self._read_lock:
            project = self._reader.project
            project.reload_config()
            owner = read_owner(project.state_dir)
            url = owner.url if owner else None
            serving = None
            if self.front.serving is not None:
                model = self.front.serving.slot.model
                serving = {
                    "url": url,
                    "version": model.version,
                    "name": project.config.name,
                    "provider": model.provider,
                }
            engine = {
                "pid": os.getpid(),
                "parts": list(self.parts),
                "url": url,
                "queue": self.queue.snapshot(),
                "schedule_ticks": self.schedule_ticks,
            }
            return project_status(project, serving=serving, engine=engine)

    def drift(self, span: str | None = None, batch_id: int | None = None) -> DriftAnswer:
        with self._read_lock:
            self._reader.project.reload_config()
            return self._reader.drift(span, batch_id)

    def doctor(self) -> DoctorAnswer:
        from engine.views.doctor import check_project

        with self._read_lock:
            return check_project(self._reader.project, idle=self.queue.idle())

    def _read(self, call: Callable[[LocalEngine], T]) -> T:
        with self._read_lock:
            return call(self._reader)

    def serving_stats(self) -> ServingStatsAnswer:
        """The prediction log's figures plus this engine's endpoint and its live counters."""
        stats = self._read(lambda r: r.serving_stats())
        serving = self.front.serving
        if serving is not None:
            owner = read_owner(self.project.state_dir)
            model = serving.slot.model
            stats["endpoint"] = {
                "url": owner.url if owner else None,
                "version": model.version,
                "provider": model.provider,
                **serving.live_traffic(),
            }
        return stats

    def events(self) -> Iterator[Event]:
        return self.hub.iterate()

    def _invoke(self, name: str, **kwargs: Any) -> Any:
        """A read answers under the read lock; a write waits for its job on the queue."""
        if OPERATIONS[name].job:
            return self.queue.run(name, kwargs)
        return self._read(lambda reader: getattr(reader, name)(**kwargs))

    # ------------------------------------------------------------ the pipeline thread

    def _run_job(self, job: Job) -> Any:
        from engine.pipeline import retrain

        self.project.reload_config()
        args = job.args
        pipeline = self._pipeline
        result: Any
        if job.resumed and job.kind in JOURNALED_KINDS:
            from engine.records.crash_recovery import registered_since

            # The engine died after the run's one registration transaction committed
            # and before the journal heard of it: training again would register twice.
            versions = registered_since(self.project.catalog, job.interrupted_start)
            if versions:
                return {"recovered": True, "versions": versions}
        if job.kind == "promote":
            incoming = self._preload(int(args["version"]))
            result = pipeline.promote(**args)
            self._serve(incoming)
        elif job.kind == "rollback":
            stack = champion_history(self.project.catalog)
            incoming = self._preload(stack[-2]) if len(stack) >= 2 else None
            result = pipeline.rollback(**args)
            self._serve(incoming)
        elif job.kind == "decide" and job.resumed:
            # The interrupted run may have recorded the decision: what follows it (an
            # accepted proposal's retrain) runs again; nobody waits for this answer.
            result = retrain.decide(
                self.project,
                args["proposal_id"],
                accept=args["accept"],
                actor=args["actor"],
                reason=args["reason"],
                on_event=self.hub.publish,
                trainer=self.training.train,
                resumed=True,
            )
        elif job.kind == "propose":
            result = retrain.propose(
                self.project,
                args["trigger"],
                args["evidence"],
                self.hub.publish,
                trainer=self.training.train,
            )
        elif job.kind == "recover":
            result = self._recover()
        elif job.kind in OPERATIONS and OPERATIONS[job.kind].job:
            result = getattr(pipeline, job.kind)(**args)
        else:
            raise ValueError(f"unknown job kind {job.kind!r}")
        self._sync_endpoint()
        return result

    def _preload(self, version: int) -> LoadedModel | None:
        """Load a version before it becomes champion: one that cannot load is never promoted."""
        from engine.serving.model_slot import load_model

        if self.front.serving is None:
            return None
        return load_model(self.project, version)

    def _serve(self, model: LoadedModel | None) -> None:
        if model is not None and self.front.serving is not None:
            if model.version == alias_version(self.project.catalog, CHAMPION):
                self.front.serving.slot.swap(model)

    def _sync_endpoint(self) -> None:
        """Serve the champion: open the endpoint for the first one, swap for a new one."""
        if "serve" not in self.parts:
            return
        from engine.serving.model_slot import load_model  # polars, onnxruntime: when serving

        champion = alias_version(self.project.catalog, CHAMPION)
        if champion is None:
            return
        serving = self.front.serving
        try:
            if serving is None:
                self.open_endpoint()
            elif serving.slot.model.version != champion:
                serving.slot.swap(load_model(self.project, champion))
        except Exception:  # the old model goes on serving; the failure is logged
            log.exception("cannot serve the champion v%s", champion)

    def _recover(self) -> dict[str, Any]:
        """Redo the ingests, drift checks and live-performance updates that an earlier
        engine left interrupted."""
        from engine.pipeline.intake import ingest_dropped

        catalog = self.project.catalog
        reingested = []
        for row in catalog.rows(
            "SELECT DISTINCT inputs_json FROM stage_runs WHERE stage = 'ingest'"
            " AND status = 'interrupted'"
        ):
            inputs = json.loads(row["inputs_json"])
            source = Path(inputs["source"])
            done = catalog.scalar(
                "SELECT count(*) FROM batches WHERE source_path = ? AND content_hash = ?",
                [str(source), inputs.get("sha256")],
            )
            if not done and source.is_file():
                ingest_dropped(self.project, source, self.hub.publish)
                reingested.append(str(source))
        rechecked = []
        for row in catalog.rows(
            "SELECT DISTINCT CAST(json_extract(s.inputs_json, '$.batch_id') AS BIGINT) AS batch_id"
            " FROM stage_runs s WHERE s.stage = 'monitor' AND s.status = 'interrupted'"
            " AND NOT EXISTS (SELECT 1 FROM drift_windows w"
            "   WHERE w.batch_id = CAST(json_extract(s.inputs_json, '$.batch_id') AS BIGINT))"
            " ORDER BY 1"
        ):
            from engine.pipeline.intake import monitor_batch

            monitor_batch(self.project, int(row["batch_id"]), self.hub.publish)
            rechecked.append(int(row["batch_id"]))
        refreshed = []
        for row in catalog.rows(
            "SELECT DISTINCT CAST(json_extract(s.inputs_json, '$.labels_batch_id') AS BIGINT) AS b"
            " FROM stage_runs s WHERE s.stage = 'performance' AND s.status = 'interrupted'"
            " AND NOT EXISTS (SELECT 1 FROM stage_runs d WHERE d.stage = 'performance'"
            "   AND d.status = 'succeeded' AND d.run_id > s.run_id"
            "   AND json_extract(d.inputs_json, '$.labels_batch_id')"
            "     = json_extract(s.inputs_json, '$.labels_batch_id'))"
            " ORDER BY 1"
        ):
            from engine.pipeline.intake import refresh_performance

            refresh_performance(self.project, int(row["b"]), self.hub.publish)
            refreshed.append(int(row["b"]))
        return {
            "reingested": reingested,
            "rechecked_batches": rechecked,
            "refreshed_labels_batches": refreshed,
        }

    # ------------------------------------------------------------ watcher and scheduler threads

    def _file_ready(self, path: Path) -> None:
        try:
            self.queue.submit("ingest", {"paths": [str(path)]}, key=f"ingest:{path}")
        except EngineStopping:
            pass  # picked up at the next start

    def _schedule(self) -> None:
        from engine.pipeline.retrain import due_triggers

        last_fired: dict[str, datetime] = {}
        while not self._stop.wait(SCHEDULE_TICK_S):
            try:
                with self._read_lock:
                    self._reader.project.reload_config()
                    now = utcnow()
                    due = due_triggers(self._reader.project, now, last_fired)
                for trigger, evidence in due:
                    last_fired[trigger] = now
                    self.queue.submit(
                        "propose",
                        {"trigger": trigger, "evidence": evidence},
                        key=f"propose:{trigger}",
                    )
            except EngineStopping:
                return
            except Exception:  # a bad tick (e.g. a config being edited) must not stop the loop
                log.exception("scheduler: a tick failed")
            self.schedule_ticks += 1
