"""The engine clients: the operations of `engine.service.operations`, either on the catalog
directly or through the control API of the engine that owns the project.

`LocalEngine` implements each operation on an open project. `RemoteEngine` sends any of them
to the owning engine over HTTP on its loopback address with the project's token, and raises
the same `MldeckError`s with the same messages. Every call answers JSON
data (`engine.core.jsonable.jsonable`), so the CLI prints the same thing either way.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

from engine.core.answers import (
    AcknowledgeAnswer,
    AlertAnswer,
    ArchiveAnswer,
    AuditEntry,
    AuditVerifyAnswer,
    BatchIssue,
    BatchRow,
    DecideAnswer,
    DoctorAnswer,
    DriftAnswer,
    DriftHistogramAnswer,
    DriftHistoryWindow,
    ExplainAnswer,
    IngestAnswer,
    LineageAnswer,
    LineageSummaryAnswer,
    PerformanceWindow,
    PromoteAnswer,
    Proposal,
    QuarantinedBatch,
    ReportAnswer,
    ReproduceAnswer,
    RetrainAnswer,
    RevalidateAnswer,
    ServingStatsAnswer,
    SnoozeAnswer,
    StageLanesAnswer,
    StatusAnswer,
    TrainAnswer,
    VersionRow,
)
from engine.core.errors import MldeckError, ProjectError
from engine.core.jsonable import jsonable
from engine.core.owner import project_token, read_owner
from engine.core.project import STATE_DIR, Project, find_root
from engine.service.operations import OPERATIONS, EngineClient

if TYPE_CHECKING:
    from engine.core.events import Event, EventHub, EventSink
    from engine.models.base import Trainer
    from engine.service import loopback

CONTROL_TIMEOUT_S = 30.0
CONNECT_RETRY_S = 5.0
"""An engine that just claimed the project may not listen yet: connection refusals are retried this long."""
EVENTS_TIMEOUT_S = 60.0
"""The event stream sends a keep-alive comment well within this."""


class LocalEngine(EngineClient):
    """Calls on a project this process has open.

    Args:
        hub: where the calls' events go; `events()` iterates over it.
        trainer: what trains a candidate (see `engine.pipeline.training_run.train`): None trains in
            this process, which is what a one-shot command wants.
    """

    def __init__(
        self, project: Project, hub: EventHub | None = None, trainer: Trainer | None = None
    ) -> None:
        from engine.core.events import EventHub

        self.project = project
        self.hub = hub or EventHub()
        self.trainer = trainer

    @property
    def _sink(self) -> EventSink:
        return self.hub.publish

    def status(self) -> StatusAnswer:
        from engine.views.status import project_status

        return project_status(self.project)

    def models(self) -> list[VersionRow]:
        from engine.records.registry import list_versions

        versions: list[VersionRow] = jsonable(list_versions(self.project.catalog))
        return versions

    def drift(self, span: str | None = None, batch_id: int | None = None) -> DriftAnswer:
        from engine.core.spans import parse_span
        from engine.monitoring.monitor import batch_window, latest_window, merged_window

        if span is not None:
            found = merged_window(self.project, parse_span(span))
            where = f"in the last {span}"
        elif batch_id is not None:
            found = batch_window(self.project, batch_id)
            where = f"for batch {batch_id}"
        else:
            found = latest_window(self.project)
            where = "yet"
        if found is None:
            raise MldeckError(
                f"no drift window {where}: drift is checked when a data batch is ingested while "
                "the champion has a reference profile (mldeck train, then mldeck ingest)",
                title="No drift window",
            )
        info = found.to_dict()
        report = info.pop("report")
        answer: DriftAnswer = jsonable({**report, "window": info})
        return answer

    def ingest(self, paths: list[str]) -> list[IngestAnswer]:
        """Ingest files, or every candidate file in folders (default: incoming, then labels)."""
        from engine.data.ingest import ingest_result_dict
        from engine.data.read import expand_paths
        from engine.pipeline.intake import ingest_dropped

        project = self.project
        default = [project.incoming_dir] + (
            [project.labels_dir] if project.labels_dir.is_dir() else []
        )
        files = expand_paths([Path(p) for p in paths] or default)
        return [
            jsonable(ingest_result_dict(project, ingest_dropped(project, path, self._sink)))
            for path in files
        ]

    def train(self, *, actor: str, only: list[str]) -> TrainAnswer:
        from engine.pipeline.training_run import train, train_result_dict

        result = train(
            self.project, events=self._sink, actor=actor, only=only, trainer=self.trainer
        )
        answer: TrainAnswer = jsonable(train_result_dict(result))
        return answer

    def promote(self, version: int, *, actor: str, reason: str, force: bool) -> PromoteAnswer:
        from engine.records.registry import promote

        return promote(self.project.catalog, version, actor=actor, reason=reason, force=force)

    def rollback(self, *, actor: str, reason: str) -> PromoteAnswer:
        from engine.records.registry import rollback

        return rollback(self.project.catalog, actor=actor, reason=reason)

    def retrain(self, *, actor: str, reason: str) -> RetrainAnswer:
        """A person asks for a retrain: it runs now, whatever the policy (the person decided)."""
        from engine.pipeline.retrain import run_retrain

        answer: RetrainAnswer = jsonable(
            run_retrain(
                self.project,
                actor=actor,
                reason=reason,
                on_event=self._sink,
                trainer=self.trainer,
            )
        )
        return answer

    def proposals(self) -> list[Proposal]:
        from engine.pipeline.retrain import list_proposals

        return list_proposals(self.project)

    def decide(self, proposal_id: int, *, accept: bool, actor: str, reason: str) -> DecideAnswer:
        from engine.pipeline.retrain import decide

        answer: DecideAnswer = jsonable(
            decide(
                self.project,
                proposal_id,
                accept=accept,
                actor=actor,
                reason=reason,
                on_event=self._sink,
                trainer=self.trainer,
            )
        )
        return answer

    def doctor(self) -> DoctorAnswer:
        from engine.views.doctor import check_project

        return check_project(self.project)

    def archive(self, version: int, *, actor: str, reason: str) -> ArchiveAnswer:
        from engine.records.registry import archive

        return archive(self.project.catalog, version, actor=actor, reason=reason)

    def snooze(self, proposal_id: int, *, actor: str, reason: str) -> SnoozeAnswer:
        from engine.pipeline.retrain import snooze

        return snooze(self.project, proposal_id, actor=actor, reason=reason)

    def batches(self) -> list[BatchRow]:
        from engine.views import tables as views

        return views.batches(self.project)

    def batch_issues(self, batch_id: int) -> list[BatchIssue]:
        from engine.views import tables as views

        return views.batch_issues(self.project, batch_id)

    def quarantined(self) -> list[QuarantinedBatch]:
        from engine.views import tables as views

        return views.quarantined(self.project)

    def stage_lanes(self) -> StageLanesAnswer:
        from engine.views import tables as views

        return views.stage_lanes(self.project)

    def lineage_summary(self, version: int) -> LineageSummaryAnswer:
        from engine.views import tables as views

        return views.lineage_summary(self.project, version)

    def drift_history(self) -> list[DriftHistoryWindow]:
        from engine.views import tables as views

        return views.drift_history(self.project)

    def drift_histogram(self, window_id: int, feature: str) -> DriftHistogramAnswer:
        from engine.views import tables as views

        return views.drift_histogram(self.project, window_id, feature)

    def serving_stats(self) -> ServingStatsAnswer:
        from engine.views import tables as views

        return views.serving_stats(self.project)

    def audit_entries(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        kinds: list[str] | None = None,
        text: str | None = None,
        limit: int | None = None,
    ) -> list[AuditEntry]:
        from engine.records.audit import audit_entries

        return audit_entries(
            self.project.catalog, since=since, until=until, kinds=kinds, text=text, limit=limit
        )

    def audit_verify(self) -> AuditVerifyAnswer:
        from engine.records.audit import verify_audit

        answer: AuditVerifyAnswer = jsonable(verify_audit(self.project.catalog))
        return answer

    def acknowledge_alert(self, alert_id: int) -> AcknowledgeAnswer:
        from engine.monitoring.alerts import acknowledge_alert

        acknowledge_alert(self.project.catalog, alert_id)
        return {"acknowledged": alert_id}

    def log_drift(self, span: str) -> DriftAnswer:
        """A new drift window over the prediction log of the last `span`, with serving figures."""
        from engine.core.spans import parse_span
        from engine.monitoring.log_monitor import monitor_log

        result = monitor_log(self.project, parse_span(span), events=self._sink)
        if result.window is None:
            raise MldeckError(
                f"no drift window in the log of the last {span} (the champion served no rows): "
                "serve the champion (mldeck serve) and send requests",
                title="No drift window",
            )
        info = result.window.to_dict()
        answer: DriftAnswer = jsonable(
            {**info.pop("report"), "window": info, "serving": result.serving}
        )
        return answer

    def report(self, path: str) -> ReportAnswer:
        from engine.views.report import write_report

        written = write_report(self.project, Path(path))
        return {"path": str(written.resolve()), "bytes": written.stat().st_size}

    def explain(self, prediction_id: str) -> ExplainAnswer:
        from engine.views.lineage import explain_prediction

        answer: ExplainAnswer = jsonable(explain_prediction(self.project.catalog, prediction_id))
        return answer

    def lineage(self, version: int) -> LineageAnswer:
        from engine.views.lineage import version_lineage

        answer: LineageAnswer = jsonable(version_lineage(self.project.catalog, version))
        return answer

    def reproduce(self, version: int, *, actor: str) -> ReproduceAnswer:
        from engine.pipeline.reproduce import reproduce_version

        answer: ReproduceAnswer = jsonable(
            reproduce_version(self.project, version, actor=actor, trainer=self.trainer).to_dict()
        )
        return answer

    def alerts(self, status: str | None = None) -> list[AlertAnswer]:
        from engine.monitoring.alerts import list_alerts

        found: list[AlertAnswer] = jsonable(list_alerts(self.project.catalog, status=status))
        return found

    def performance(self) -> list[PerformanceWindow]:
        from engine.monitoring.performance import performance_windows

        found: list[PerformanceWindow] = jsonable(performance_windows(self.project))
        return found

    def events(self) -> Iterator[Event]:
        return self.hub.iterate()

    def revalidate(self, batch_id: int, *, actor: str, reason: str) -> RevalidateAnswer:
        """Validate a quarantined file again under the current contract (engine.data.quarantine)."""
        from engine.pipeline.intake import revalidate

        return revalidate(self.project, batch_id, actor=actor, reason=reason, events=self._sink)


class RemoteEngine(EngineClient):
    """Calls sent to the engine that owns the project."""

    def __init__(self, url: str, token: str, root: Path | None = None) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.root = None if root is None else root.resolve()
        """The project folder: the engine reads and writes only inside it, so files
        outside it are staged there by this client (same user, same machine)."""

    def _staging(self) -> Path | None:
        if self.root is None:
            return None
        import tempfile

        inbox = self.root / STATE_DIR / "inbox"
        inbox.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(dir=inbox))

    def _outside(self, path: Path) -> bool:
        return self.root is not None and not path.resolve().is_relative_to(self.root)

    def _request(
        self, path: str, payload: dict[str, Any] | None, timeout: float | None
    ) -> loopback.Response:
        """The engine's 2xx answer, unread (the caller reads and closes it)."""
        from engine.service import loopback

        body = None if payload is None else json.dumps(payload).encode()
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {self.token}"}
        address = urlsplit(self.url)
        deadline = time.monotonic() + CONNECT_RETRY_S
        while True:
            try:
                response = loopback.request(
                    address.hostname or "127.0.0.1",
                    address.port or 80,
                    "GET" if payload is None else "POST",
                    path,
                    body,
                    headers,
                    timeout,
                )
            except OSError as exc:
                if isinstance(exc, ConnectionRefusedError) and time.monotonic() < deadline:
                    time.sleep(0.1)
                    continue
                raise ProjectError(f"the engine at {self.url} does not answer: {exc}") from exc
            if response.status < 400:
                return response
            with response:
                try:
                    answer = json.loads(response.read())
                except (OSError, ValueError):
                    answer = None
            error = answer if isinstance(answer, dict) else {}
            raise MldeckError(
                error.get("error", f"the engine at {self.url} answered HTTP {response.status}"),
                title=error.get("title"),
            )

    def _call(
        self, path: str, payload: dict[str, Any] | None, timeout: float | None = CONTROL_TIMEOUT_S
    ) -> Any:
        """One control call's JSON answer; `timeout` None waits for a job however long it runs."""
        try:
            with self._request(path, payload, timeout) as response:
                return json.loads(response.read())
        except (OSError, ValueError) as exc:  # the engine went away mid-answer
            raise ProjectError(f"the engine at {self.url} stopped answering: {exc}") from exc

    def _invoke(self, name: str, **kwargs: Any) -> Any:
        """Any operation: its route, with its arguments in the query (GET) or the body (POST)."""
        op = OPERATIONS[name]
        route = op.route_for(kwargs)
        values = {arg.wire: kwargs.get(arg.name, arg.default) for arg in op.args}
        if op.method == "POST":
            return self._call(route, values, None)  # a job: wait however long it runs
        query = {key: _query_value(v) for key, v in values.items() if v is not None}
        return self._call(route + (f"?{urlencode(query)}" if query else ""), None)

    def ingest(self, paths: list[str]) -> list[IngestAnswer]:
        """Files outside the project are copied (same name) into .mldeck/inbox/ first
        and answered under their own path."""
        import shutil

        sent: list[str] = []
        originals: dict[str, str] = {}
        staging: Path | None = None
        for text in paths:
            path = Path(text)
            if path.is_file() and self._outside(path):
                staging = staging or self._staging()
                assert staging is not None
                copy = staging / path.name
                shutil.copyfile(path, copy)
                originals[str(copy.resolve())] = str(path)
                sent.append(str(copy.resolve()))
            else:
                sent.append(str(path.resolve()) if self.root is not None else text)
        try:
            answer: list[IngestAnswer] = self._invoke("ingest", paths=sent)
        finally:
            if staging is not None:
                shutil.rmtree(staging, ignore_errors=True)
        for item in answer:
            item["path"] = originals.get(str(item.get("path")), item.get("path"))
        return answer

    def report(self, path: str) -> ReportAnswer:
        """A report outside the project is written inside it, then moved into place."""
        import shutil

        target = Path(path)
        if not self._outside(target):
            sent = str(target.resolve()) if self.root is not None else path
            answer: ReportAnswer = self._invoke("report", path=sent)
            return answer
        staging = self._staging()
        assert staging is not None
        try:
            answer = self._invoke("report", path=str(staging / target.name))
            written = Path(answer["path"])
            if target.is_dir():
                target = target / written.name
            shutil.move(written, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return {**answer, "path": str(target.resolve())}

    def events(self) -> Iterator[Event]:
        """The engine's events as they happen (server-sent events), until it stops."""
        from engine.core.events import event_from_dict

        with self._request("/control/events", None, EVENTS_TIMEOUT_S) as response:
            for raw in response:
                line = raw.decode("utf-8").rstrip("\r\n")
                if not line.startswith("data:"):
                    continue  # keep-alive comments and blank separators
                event = event_from_dict(json.loads(line[5:]))
                if event is not None:
                    yield event


def _query_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list):
        return ",".join(value)
    return value


def remote_engine(start: Path) -> RemoteEngine | None:
    """The owning engine's client when a live engine holds the project, else None."""
    state_dir = find_root(start) / STATE_DIR
    owner = read_owner(state_dir)
    if owner is None:
        return None
    return RemoteEngine(owner.url, project_token(state_dir), state_dir.parent)
