"""The engine's operations, each declared once: its name, whether it is a job on the pipeline
queue, its control route and its typed arguments and answer.

`EngineClient` is that declaration. Each method's decorator is the operation's row, and its
body hands the call to `_invoke`, which every client implements once:

- `LocalEngine` (engine.service.client) overrides each method with the implementation, on a
  project this process has open;
- `RemoteEngine` sends any operation to the owning engine's control API (route, query or body
  built from the row and the signature);
- `EngineService` answers reads under its read lock and runs writes as jobs on its pipeline
  queue, whose dispatch calls the `LocalEngine` method of the job's name;
- `ControlApi` (engine.service.control) builds its routes from `OPERATIONS` and decodes each
  argument by its annotation.

Adding an operation is its `LocalEngine` implementation plus one decorated method here.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, TypeVar

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

if TYPE_CHECKING:
    from engine.core.events import Event

F = TypeVar("F", bound=Callable[..., Any])

ArgKind = Literal["int", "str", "bool", "strs", "time"]


@dataclass(frozen=True)
class Arg:
    """One argument of an operation, as it travels."""

    name: str
    """The keyword of the `EngineClient` method."""
    kind: ArgKind
    wire: str
    """Its key in the query string (GET) or the JSON body (POST)."""
    optional: bool
    """Absent on the wire means None (or the method's default)."""
    default: Any = None


@dataclass(frozen=True)
class Operation:
    name: str
    method: Literal["GET", "POST"]
    path: str
    """The control route; with `variants`, the routes are `path` + each variant's suffix."""
    job: bool
    """A write: while an engine runs, a job on its pipeline queue (the call waits for it)."""
    args: tuple[Arg, ...] = ()
    variants: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """Route suffix -> the arguments it fixes (`/control/proposals/accept` fixes accept=True)."""
    project_paths: tuple[str, ...] = ()
    """Arguments that are paths: the control API takes only paths inside the project."""

    def routes(self) -> dict[str, Mapping[str, Any]]:
        if not self.variants:
            return {self.path: {}}
        return {self.path + suffix: fixed for suffix, fixed in self.variants.items()}

    def route_for(self, kwargs: Mapping[str, Any]) -> str:
        for route, fixed in self.routes().items():
            if all(kwargs.get(k) == v for k, v in fixed.items()):
                return route
        raise ValueError(f"{self.name}: no route for {dict(kwargs)}")


OPERATIONS: dict[str, Operation] = {}
"""Every operation by name, in declaration order (filled by `EngineClient`'s decorators)."""

_KINDS: dict[Any, ArgKind] = {
    int: "int",
    str: "str",
    bool: "bool",
    list[str]: "strs",
    datetime: "time",
}


def _arg(parameter: inspect.Parameter, annotation: Any, wire: str) -> Arg:
    optional = False
    if isinstance(annotation, types.UnionType) and type(None) in annotation.__args__:
        (annotation,) = [a for a in annotation.__args__ if a is not type(None)]
        optional = True
    kind = _KINDS[annotation]
    has_default = parameter.default is not inspect.Parameter.empty
    default = parameter.default if has_default else None
    return Arg(parameter.name, kind, wire, optional or has_default, default)


def operation(
    method: Literal["GET", "POST"],
    path: str,
    *,
    job: bool = False,
    wire: Mapping[str, str] | None = None,
    variants: Mapping[str, Mapping[str, Any]] | None = None,
    project_paths: tuple[str, ...] = (),
) -> Callable[[F], F]:
    """Declare the decorated `EngineClient` method an operation (its row)."""

    def declare(func: F) -> F:
        hints = typing.get_type_hints(func)
        params = list(inspect.signature(func).parameters.values())[1:]  # self
        fixed = set().union(*(v.keys() for v in (variants or {}).values()))
        args = tuple(
            _arg(p, hints[p.name], (wire or {}).get(p.name, p.name))
            for p in params
            if p.name not in fixed
        )
        OPERATIONS[func.__name__] = Operation(
            func.__name__, method, path, job, args, dict(variants or {}), project_paths
        )
        return func

    return declare


class EngineClient:
    """The calls the CLI and the UI make, answered in JSON data whichever client answers.

    Every method is an operation (see the module docstring); a client implements `_invoke`.
    """

    def _invoke(self, name: str, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not implement {name}")

    def events(self) -> Iterator[Event]:
        """The engine's events as they happen."""
        raise NotImplementedError

    # ------------------------------------------------------------------ reads

    @operation("GET", "/control/status")
    def status(self) -> StatusAnswer:
        return self._invoke("status")

    @operation("GET", "/control/models")
    def models(self) -> list[VersionRow]:
        return self._invoke("models")

    @operation("GET", "/control/drift", wire={"batch_id": "batch"})
    def drift(self, span: str | None = None, batch_id: int | None = None) -> DriftAnswer:
        return self._invoke("drift", span=span, batch_id=batch_id)

    @operation("GET", "/control/proposals")
    def proposals(self) -> list[Proposal]:
        return self._invoke("proposals")

    @operation("GET", "/control/doctor")
    def doctor(self) -> DoctorAnswer:
        return self._invoke("doctor")

    @operation("GET", "/control/batches")
    def batches(self) -> list[BatchRow]:
        return self._invoke("batches")

    @operation("GET", "/control/batch-issues", wire={"batch_id": "batch"})
    def batch_issues(self, batch_id: int) -> list[BatchIssue]:
        return self._invoke("batch_issues", batch_id=batch_id)

    @operation("GET", "/control/quarantine")
    def quarantined(self) -> list[QuarantinedBatch]:
        return self._invoke("quarantined")

    @operation("GET", "/control/lanes")
    def stage_lanes(self) -> StageLanesAnswer:
        return self._invoke("stage_lanes")

    @operation("GET", "/control/lineage-summary")
    def lineage_summary(self, version: int) -> LineageSummaryAnswer:
        return self._invoke("lineage_summary", version=version)

    @operation("GET", "/control/drift-history")
    def drift_history(self) -> list[DriftHistoryWindow]:
        return self._invoke("drift_history")

    @operation("GET", "/control/drift-histogram", wire={"window_id": "window"})
    def drift_histogram(self, window_id: int, feature: str) -> DriftHistogramAnswer:
        return self._invoke("drift_histogram", window_id=window_id, feature=feature)

    @operation("GET", "/control/serving")
    def serving_stats(self) -> ServingStatsAnswer:
        return self._invoke("serving_stats")

    @operation("GET", "/control/audit-entries")
    def audit_entries(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        kinds: list[str] | None = None,
        text: str | None = None,
        limit: int | None = None,
    ) -> list[AuditEntry]:
        return self._invoke(
            "audit_entries", since=since, until=until, kinds=kinds, text=text, limit=limit
        )

    @operation("GET", "/control/audit-verify")
    def audit_verify(self) -> AuditVerifyAnswer:
        return self._invoke("audit_verify")

    @operation("POST", "/control/report", project_paths=("path",))
    def report(self, path: str) -> ReportAnswer:
        return self._invoke("report", path=path)

    @operation("GET", "/control/explain", wire={"prediction_id": "id"})
    def explain(self, prediction_id: str) -> ExplainAnswer:
        return self._invoke("explain", prediction_id=prediction_id)

    @operation("GET", "/control/lineage")
    def lineage(self, version: int) -> LineageAnswer:
        return self._invoke("lineage", version=version)

    @operation("GET", "/control/alerts")
    def alerts(self, status: str | None = None) -> list[AlertAnswer]:
        return self._invoke("alerts", status=status)

    @operation("GET", "/control/performance")
    def performance(self) -> list[PerformanceWindow]:
        return self._invoke("performance")

    # ------------------------------------------------------------------ writes (jobs)

    @operation("POST", "/control/ingest", job=True, project_paths=("paths",))
    def ingest(self, paths: list[str]) -> list[IngestAnswer]:
        return self._invoke("ingest", paths=paths)

    @operation("POST", "/control/train", job=True)
    def train(self, *, actor: str, only: list[str]) -> TrainAnswer:
        return self._invoke("train", actor=actor, only=only)

    @operation("POST", "/control/promote", job=True)
    def promote(self, version: int, *, actor: str, reason: str, force: bool) -> PromoteAnswer:
        return self._invoke("promote", version=version, actor=actor, reason=reason, force=force)

    @operation("POST", "/control/rollback", job=True)
    def rollback(self, *, actor: str, reason: str) -> PromoteAnswer:
        return self._invoke("rollback", actor=actor, reason=reason)

    @operation("POST", "/control/retrain", job=True)
    def retrain(self, *, actor: str, reason: str) -> RetrainAnswer:
        return self._invoke("retrain", actor=actor, reason=reason)

    @operation(
        "POST",
        "/control/proposals/",
        job=True,
        variants={"accept": {"accept": True}, "dismiss": {"accept": False}},
    )
    def decide(self, proposal_id: int, *, accept: bool, actor: str, reason: str) -> DecideAnswer:
        return self._invoke(
            "decide", proposal_id=proposal_id, accept=accept, actor=actor, reason=reason
        )

    @operation("POST", "/control/proposals/snooze", job=True)
    def snooze(self, proposal_id: int, *, actor: str, reason: str) -> SnoozeAnswer:
        return self._invoke("snooze", proposal_id=proposal_id, actor=actor, reason=reason)

    @operation("POST", "/control/archive", job=True)
    def archive(self, version: int, *, actor: str, reason: str) -> ArchiveAnswer:
        return self._invoke("archive", version=version, actor=actor, reason=reason)

    @operation("POST", "/control/alerts/ack", job=True)
    def acknowledge_alert(self, alert_id: int) -> AcknowledgeAnswer:
        return self._invoke("acknowledge_alert", alert_id=alert_id)

    @operation("POST", "/control/log-drift", job=True)
    def log_drift(self, span: str) -> DriftAnswer:
        return self._invoke("log_drift", span=span)

    @operation("POST", "/control/reproduce", job=True)
    def reproduce(self, version: int, *, actor: str) -> ReproduceAnswer:
        return self._invoke("reproduce", version=version, actor=actor)

    @operation("POST", "/control/revalidate", job=True)
    def revalidate(self, batch_id: int, *, actor: str, reason: str) -> RevalidateAnswer:
        return self._invoke("revalidate", batch_id=batch_id, actor=actor, reason=reason)
