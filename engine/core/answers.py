"""The typed answers of the engine's operations and the fixed sets of values they carry.

Every `EngineClient` operation (engine.service.operations) answers JSON data; the shapes the
CLI's `--json` and the UI read are declared here as `TypedDict`s, so they stay plain dicts at
run time (what is printed does not change) while the type checker knows their keys. The fixed
sets of values (statuses, severities, policies, kinds) are `Literal`s; the catalog columns that
hold them are listed in storage/migrations.py.

Timestamps are `Timestamp`: ISO-8601 text in every client's answer (`engine.core.jsonable`).
An engine-side producer that reads them from the catalog may still hold a `datetime` there
until the client turns its answer into JSON data.

It is over 500 lines because it holds only declarations, one per answer, so that a reader finds
every shape the CLI and the UI rely on in one place.

Nested parts whose shape is open (evidence, details, parameters, drift statistics, provenance)
stay `dict[str, Any]`. This module is layer 1: it imports nothing of the engine.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, NotRequired, TypeAlias, TypedDict

# ------------------------------------------------------------------ fixed sets of values

Timestamp: TypeAlias = str
"""A moment as ISO-8601 text (see the module docstring)."""

Task = Literal["classification", "regression"]
"""[data] task and model_versions.task."""

ColumnType = Literal["integer", "float", "string", "boolean", "date", "timestamp"]
"""A contract column's type (engine.core.config.COLUMN_TYPES; engine.data.contract.column_type)."""

ModelKind = Literal["linear", "random_forest", "gradient_boosting", "mlp"]
"""A candidate's kind (engine.core.config.MODEL_KINDS; model_versions.kind)."""

RetrainPolicy = Literal["prompt", "auto", "off"]
"""[retrain] policy: prompt stores a proposal, auto retrains and promotes, off only logs."""

ServingAuth = Literal["auto", "token", "none"]
"""[serving] auth."""

BatchKind = Literal["data", "labels"]
"""batches.kind: a data file or a labels file."""

BatchStatus = Literal["accepted", "warned", "quarantined", "duplicate", "revalidated"]
"""batches.status; a quarantined batch that later passes becomes `revalidated` (its new batch
is accepted or warned)."""

IngestStatus = Literal["accepted", "warned", "quarantined", "duplicate", "skipped", "refused"]
"""What ingesting one file did (engine.data.ingest.IngestResult.status): a batch status, or
skipped (this path and content seen before), or refused (never read)."""

IssueSeverity = Literal["error", "warning"]
"""batch_issues.severity: an error quarantines the batch."""

StageRunStatus = Literal["running", "succeeded", "quarantined", "failed", "interrupted"]
"""stage_runs.status (the migration's comment leaves out `quarantined`, which the ingest,
validate, labels and revalidate stages record for a batch they quarantine)."""

Stage = Literal[
    "ingest",
    "validate",
    "labels",
    "prepare",
    "train",
    "evaluate",
    "register",
    "profile",
    "monitor",
    "performance",
    "reproduce",
    "revalidate",
]
"""stage_runs.stage: the stages that record a run (engine.records.stage_runs.stage_run)."""

VersionStatus = Literal["registered", "archived"]
"""model_versions.status."""

CandidateStatus = Literal["registered", "failed"]
"""A candidate's outcome in a training run."""

Alias = Literal["champion", "challenger"]
"""aliases.alias."""

AlertSeverity = Literal["warn", "alert"]
"""alerts.severity."""

AlertStatus = Literal["open", "acknowledged"]
"""alerts.status."""

AlertWindowKind = Literal["batch", "labels", "log", "serving"]
"""alerts.window_kind: what the alert's rule looked at."""

DriftStatus = Literal["ok", "warn", "alert", "no data"]
"""A feature's or a window's drift verdict (engine.monitoring.drift.stats)."""

WindowSource = Literal["batch", "predictions"]
"""drift_windows.source: an ingested batch or the served prediction log."""

PerformanceSource = Literal["batch", "log"]
"""performance_windows.source."""

ProposalTrigger = Literal["schedule", "alert", "labels", "person"]
"""retrain_proposals.trigger: what fired the retrain."""

ProposalStatus = Literal["pending", "accepted", "dismissed"]
"""retrain_proposals.status."""

ProposeAction = Literal["proposed", "pending", "retrained", "ignored"]
"""What the retrain policy did with a trigger (engine.pipeline.retrain.propose)."""

JobKind = Literal["train", "retrain", "decide"]
"""engine_jobs.kind: the journaled jobs that run again after an engine stopped mid-job."""

JobStatus = Literal["queued", "running", "succeeded", "failed"]
"""engine_jobs.status."""

AuditAction = Literal[
    "promote",
    "rollback",
    "set_challenger",
    "archive",
    "quarantine",
    "refuse",
    "revalidate",
    "reproduce",
    "retrain_started",
    "retrain_finished",
    "retrain_failed",
    "retrain_accepted",
    "retrain_dismissed",
    "retrain_snoozed",
]
"""audit_log.action as the engine writes it today. Read back as `str`: the log is append-only
and may hold kinds an older or newer mldeck wrote (engine.records.audit.audit_kinds)."""


# ------------------------------------------------------------------ batches and runs


class BatchRow(TypedDict):
    """One batch in `batches`, with its issue counts (engine.views.tables.batches)."""

    batch_id: int
    kind: BatchKind
    source_name: str
    content_hash: str
    size_bytes: int | None
    format: str | None
    status: BatchStatus
    duplicate_of: int | None
    row_count: int | None
    labelled: bool | None
    ingested_at: Timestamp
    revalidated_from: int | None
    errors: int
    warnings: int


class BatchIssue(TypedDict):
    """One validation issue in `batch_issues` (engine.views.tables.batch_issues)."""

    severity: IssueSeverity
    column_name: str | None
    code: str
    message: str


class QuarantinedBatch(TypedDict):
    """One quarantined batch in `quarantined` and in `StatusAnswer.quarantine`
    (engine.views.tables.quarantined)."""

    batch_id: int
    kind: BatchKind
    source_name: str
    content_hash: str
    quarantine_path: str | None
    ingested_at: Timestamp
    reason: str | None
    """Its error messages, joined with "; "."""


class RecentBatch(TypedDict):
    """One of the newest batches in `StatusAnswer.recent_batches`."""

    batch_id: int
    kind: BatchKind
    source_name: str
    status: BatchStatus
    row_count: int | None
    duplicate_of: int | None
    ingested_at: Timestamp


class RecentRun(TypedDict):
    """One of the newest stage runs in `StatusAnswer.recent_runs`."""

    run_id: int
    stage: str
    """A `Stage`, or one an older mldeck recorded."""
    status: StageRunStatus
    started_at: Timestamp
    ended_at: Timestamp | None
    duration_s: float | None
    error: str | None


class PendingProposal(TypedDict):
    """A pending retrain proposal in `StatusAnswer.retrain_proposals`."""

    proposal_id: int
    trigger: ProposalTrigger
    created_at: Timestamp


# ------------------------------------------------------------------ status


class AliasInfo(TypedDict):
    """The champion or challenger in `StatusAnswer` (engine.views.status.project_status)."""

    version: int
    name: str
    kind: ModelKind
    device: str
    metrics: dict[str, float | None]


class StatusAnswer(TypedDict):
    """`status`: batches, quarantine, recent runs, champion and challenger
    (engine.views.status.project_status)."""

    name: str
    root: str
    target: str | None
    task: Task | None
    batches: dict[str, int]
    """Batch count by `BatchStatus`."""
    rows: int
    labelled_rows: int
    quarantine: list[QuarantinedBatch]
    recent_batches: list[RecentBatch]
    recent_runs: list[RecentRun]
    retrain_proposals: list[PendingProposal]
    champion: AliasInfo | None
    challenger: AliasInfo | None
    model_versions: int
    serving: dict[str, Any] | None
    engine: dict[str, Any] | None


# ------------------------------------------------------------------ registry


class VersionRow(TypedDict):
    """One registered model version in `models` (engine.records.registry.list_versions)."""

    version: int
    name: str
    kind: ModelKind
    task: Task
    device: str
    parity_max_abs_diff: float
    promotable: bool
    status: VersionStatus
    created_at: Timestamp
    dataset_id: int
    feature_hash: str
    onnx_hash: str
    metrics: dict[str, float | None]
    """Holdout metrics by name."""
    aliases: list[str]


class PromoteAnswer(TypedDict):
    """`promote` and `rollback`: the new champion and the one it replaced
    (engine.records.registry.promote / rollback)."""

    champion: int
    previous: int | None


class ArchiveAnswer(TypedDict):
    """`archive` (engine.records.registry.archive)."""

    archived: int


# ------------------------------------------------------------------ training


class CandidateAnswer(TypedDict):
    """One candidate's outcome in `TrainAnswer` (engine.pipeline.training_run.CandidateOutcome)."""

    name: str
    kind: ModelKind
    status: CandidateStatus
    version: int | None
    metrics: dict[str, float | None]
    promotable: bool
    device: str | None
    parity: float | None
    duration_s: float
    error: str | None


class TrainAnswer(TypedDict):
    """`train`: what a training run registered (engine.pipeline.training_run.train_result_dict)."""

    dataset_id: int
    train_rows: int
    holdout_rows: int
    feature_hash: str
    primary_metric: str
    candidates: list[CandidateAnswer]
    champion_before: int | None
    champion: int | None
    challenger: int | None
    champion_holdout_metrics: dict[str, float | None] | None


# ------------------------------------------------------------------ ingest


class IssueAnswer(TypedDict):
    """One contract finding in `IngestAnswer` (engine.data.contract.Issue)."""

    severity: IssueSeverity
    column: str | None
    code: str
    message: str


class IngestAnswer(TypedDict):
    """`ingest`: one file's outcome (engine.data.ingest.ingest_result_dict)."""

    path: str
    kind: BatchKind
    status: IngestStatus
    sha256: str
    batch_id: int | None
    rows: int | None
    labelled: bool | None
    snapshot: str | None
    duplicate_of: int | None
    previous_status: BatchStatus | None
    """For a skipped file: what happened when it was first ingested."""
    quarantine_path: str | None
    issues: list[IssueAnswer]


class RevalidateAnswer(TypedDict):
    """`revalidate`: a quarantined batch validated again under the current contract
    (engine.data.quarantine.revalidate)."""

    batch_id: int
    source_name: str
    kind: BatchKind
    status: BatchStatus
    """accepted or warned (a new batch was recorded) or quarantined (it stays so)."""
    new_batch_id: int | None
    rows: int
    snapshot: str | None
    issues: list[IssueAnswer]


# ------------------------------------------------------------------ retrain


class RetrainAnswer(TypedDict):
    """`retrain`: a retrain run (engine.pipeline.retrain.run_retrain)."""

    trigger: ProposalTrigger
    reason: str
    dataset_id: int
    versions: list[int]
    champion_before: int | None
    champion: int | None
    challenger: int | None
    promoted: int | None
    """The version promoted by this run, if any."""
    train: TrainAnswer


class ProposeAnswer(TypedDict):
    """What the retrain policy did with a trigger (engine.pipeline.retrain.propose)."""

    policy: RetrainPolicy
    trigger: ProposalTrigger
    action: ProposeAction
    proposal_id: NotRequired[int]
    """proposed or pending: the proposal that waits for a person."""
    retrain: NotRequired[RetrainAnswer]
    """retrained: the run."""


class Proposal(TypedDict):
    """One retrain proposal in `proposals` (engine.pipeline.retrain.list_proposals)."""

    proposal_id: int
    created_at: Timestamp
    trigger: ProposalTrigger
    status: ProposalStatus
    decided_at: Timestamp | None
    decided_by: str | None
    decision_reason: str | None
    evidence: dict[str, Any]


class DecideAnswer(TypedDict):
    """`decide`: the decision and, for an accepted proposal, its retrain
    (engine.pipeline.retrain.decide)."""

    proposal_id: int
    status: ProposalStatus
    retrain: RetrainAnswer | None


class SnoozeAnswer(TypedDict):
    """`snooze`: the proposal stays pending (engine.pipeline.retrain.snooze)."""

    proposal_id: int
    status: ProposalStatus
    snoozed: bool


# ------------------------------------------------------------------ monitoring


class AcknowledgeAnswer(TypedDict):
    """`acknowledge_alert` (engine.service.client.LocalEngine.acknowledge_alert)."""

    acknowledged: int


class AlertAnswer(TypedDict):
    """One stored alert in `alerts` (engine.monitoring.alerts.list_alerts)."""

    alert_id: int
    raised_at: Timestamp
    rule: str
    severity: AlertSeverity
    model_version: int | None
    window_kind: AlertWindowKind
    window_ref: str
    message: str
    status: AlertStatus
    evidence: dict[str, Any]


class PerformanceWindow(TypedDict):
    """One live performance window in `performance`
    (engine.monitoring.performance.performance_windows)."""

    source: PerformanceSource
    window_ref: str
    model_version: int
    window_start: Timestamp
    window_end: Timestamp
    n_rows: int
    n_labelled: int
    metrics: dict[str, float | None]
    """Live metrics on the labelled rows."""
    holdout: dict[str, float | None]
    """The version's registered holdout metrics."""
    updated_at: Timestamp


class DriftWindowInfo(TypedDict):
    """The window a `DriftAnswer` was computed over (engine.monitoring.monitor.DriftWindow)."""

    model_version: int
    source: str
    """A `WindowSource`, or how merged windows' sources combine."""
    window_ids: list[int]
    batch_ids: list[int]
    window_start: Timestamp
    window_end: Timestamp
    row_count: int
    skipped_windows: int


class DriftAnswer(TypedDict):
    """`drift` and `log_drift`: a drift report and its window (engine.service.client.LocalEngine.drift;
    the report is engine.monitoring.drift.DriftReport.to_dict)."""

    status: DriftStatus
    dataset_drift: bool
    share_drifted: float | None
    """None when no feature has data."""
    dataset_share: float
    n_reference: int
    n_current: int
    drifted: list[str]
    warned: list[str]
    missing: list[str]
    features: list[dict[str, Any]]
    """Per feature: engine.monitoring.drift.FeatureDrift.to_dict."""
    prediction: dict[str, Any] | None
    window: DriftWindowInfo
    prediction_error: NotRequired[str]
    """Why the model output's drift was not computed, when it could not be."""
    serving: NotRequired[ServingWindowStats | None]
    """`log_drift` only: the serving figures of the same span (None when nothing was served)."""


# ------------------------------------------------------------------ audit, doctor, lineage


class AuditEntry(TypedDict):
    """One audit log entry (engine.records.audit.audit_entries; lineage's history)."""

    entry_id: int
    recorded_at: Timestamp
    actor: str
    action: str
    """An `AuditAction`, or a kind another mldeck wrote."""
    alias: str | None
    from_version: int | None
    to_version: int | None
    reason: str | None
    details: dict[str, Any] | None


class BrokenAuditEntry(AuditEntry):
    """The first entry that does not fit the hash chain, and why (`AuditVerifyAnswer`)."""

    problem: str


class AuditVerifyAnswer(TypedDict):
    """`audit_verify`: the hash chain recomputed (engine.records.audit.verify_audit)."""

    entries: int
    intact: bool
    head_hash: str | None
    first_broken: BrokenAuditEntry | None


class DoctorAnswer(TypedDict):
    """`doctor`: the project's consistency checks (engine.views.doctor.check_project)."""

    ok: bool
    problems: list[str]
    checked: dict[str, int]
    """What was checked, and how many of each."""


class PredictionsOnDay(TypedDict):
    """A version's logged predictions on one day (`LineageAnswer.predictions_by_day`)."""

    day: str
    served: int
    shadow: int


class VersionRecord(TypedDict):
    """A version's lineage: what it was trained on and how, and its history
    (engine.views.lineage.version_record)."""

    version: int
    name: str
    kind: ModelKind
    task: Task
    target: str
    status: VersionStatus
    aliases: list[str]
    created_at: Timestamp
    params: dict[str, Any]
    seed: int
    device: str
    classes: list[Any] | None
    onnx_hash: str
    native_hash: str | None
    parity_max_abs_diff: float
    promotable: bool
    metrics: dict[str, float | None]
    training_run: dict[str, Any] | None
    dataset: dict[str, Any] | None
    snapshots: list[dict[str, Any]]
    feature_definition: dict[str, Any]
    library_versions: dict[str, Any]
    provenance: dict[str, Any]
    history: list[AuditEntry]


class LineageAnswer(VersionRecord):
    """`lineage`: a version's record plus its logged predictions counted by day
    (engine.views.lineage.version_lineage)."""

    predictions_by_day: list[PredictionsOnDay]


# ------------------------------------------------------------------ UI views, report, explain


class StageLane(TypedDict):
    """One stage's lane in `StageLanesAnswer`: its latest run (all None before its first)."""

    stage: str
    run_id: int | None
    """None for deploy (an alias move) and for a stage that never ran."""
    status: str | None
    """A `StageRunStatus`; None for a stage that never ran."""
    started_at: Timestamp | None
    duration_s: float | None
    output: str
    """A short line of what the run produced ("batch_id=3 rows=1447 ...")."""
    error: str | None


class QueuedRun(TypedDict):
    """A stage run still going (`StageLanesAnswer.queue`)."""

    run_id: int
    stage: Stage
    started_at: Timestamp
    inputs_json: str | None


class StageLanesAnswer(TypedDict):
    """`stage_lanes`: the nine stages with each one's latest run, and the runs still going
    (engine.views.tables.stage_lanes)."""

    lanes: list[StageLane]
    queue: list[QueuedRun]


class SummaryDataset(TypedDict):
    """The dataset a version was trained on (`LineageSummaryAnswer.dataset`)."""

    dataset_id: int
    dataset_hash: str
    batch_ids: list[int]
    snapshot_hashes: list[Any]
    rows: int
    train_rows: int
    holdout_rows: int


class AliasMove(TypedDict):
    """An audit entry that moved a version in or out of an alias (`LineageSummaryAnswer.history`)."""

    entry_id: int
    recorded_at: Timestamp
    actor: str
    action: str
    from_version: int | None
    to_version: int | None
    reason: str | None


class LineageSummaryAnswer(TypedDict):
    """`lineage_summary`: where a version came from, its metrics beside the champion's, and its
    alias moves (engine.views.tables.lineage_summary)."""

    version: int
    name: str
    kind: ModelKind
    status: VersionStatus
    created_at: Timestamp
    dataset: SummaryDataset | None
    feature_hash: str
    onnx_hash: str
    params: dict[str, Any]
    seed: int
    device: str
    parity_max_abs_diff: float
    promotable: bool
    training_s: float | None
    library_versions: dict[str, Any]
    metrics: dict[str, float | None]
    champion: int | None
    champion_metrics: dict[str, float | None] | None
    history: list[AliasMove]


class DriftHistoryFeature(TypedDict):
    """One feature's (or the model output's, "prediction") verdict in a `DriftHistoryWindow`."""

    feature: str
    kind: str
    status: DriftStatus
    method: str | None
    score: float | None
    threshold: float | None
    chart: dict[str, Any] | None
    """The charted test (PSI or Jensen-Shannon with its levels): its shape is the drift test's."""


class DriftHistoryWindow(TypedDict):
    """One stored drift window in `drift_history` (engine.views.tables.drift_history)."""

    window_id: int
    model_version: int
    source: str
    batch_id: int | None
    window_end: Timestamp
    row_count: int
    dataset_drift: bool
    drifted_features: int
    status: DriftStatus
    share_drifted: float | None
    features: list[DriftHistoryFeature]


class DriftHistogramAnswer(TypedDict):
    """`drift_histogram`: reference vs window shares per bin of one feature in a drift window
    (engine.views.tables.drift_histogram)."""

    window_id: int
    feature: str
    kind: str
    bins: list[str]
    reference: list[float]
    current: list[float]


class VersionTraffic(TypedDict):
    """One answering (or shadow) version's traffic in `ServingStatsAnswer.versions`."""

    version: int
    shadow: bool
    requests: int
    rows: int
    p50_ms: float | None
    p99_ms: float | None


class ServingStatsAnswer(TypedDict):
    """`serving_stats`: the prediction log's recent traffic and totals
    (engine.views.tables.serving_stats), and the serving engine's endpoint."""

    window_s: float
    requests: int
    requests_per_s: float
    p50_ms: float | None
    p99_ms: float | None
    versions: list[VersionTraffic]
    shadow_versions: list[int]
    total_requests: int
    total_rows: int
    last_served_at: Timestamp | None
    endpoint: dict[str, Any] | None
    """The engine's serving endpoint and its live counters (EngineService.serving_stats);
    None when no engine serves. Its counters are the server's, an open set."""


class ServingWindowStats(TypedDict):
    """The serving figures of a span (engine.monitoring.log_monitor.serving_stats;
    `DriftAnswer.serving`)."""

    model_version: int | None
    window_start: datetime | Timestamp
    """A datetime in the engine (the alert rules read it), ISO text in a client's answer."""
    window_end: datetime | Timestamp
    requests: int
    errors: int
    error_rate: float | None
    p50_latency_ms: float | None
    p99_latency_ms: float | None


class ReportAnswer(TypedDict):
    """`report`: the written report."""

    path: str
    bytes: int


class ExplainedRow(TypedDict):
    """One served row of an explained prediction: its inputs and the model's output."""

    row: int
    inputs: dict[str, Any]
    output: Any


class ShadowRow(TypedDict):
    """A shadow version's output for one row of an explained prediction."""

    row: int
    model_version: int
    output: Any


class ExplainAnswer(TypedDict):
    """`explain`: everything behind one served prediction
    (engine.views.lineage.explain_prediction)."""

    prediction_id: str
    request_id: str
    served_at: Timestamp
    endpoint: str
    latency_ms: float | None
    model_version: int
    champion_at_the_time: int | None
    promoted_by: AuditEntry | None
    rows: list[ExplainedRow]
    shadow: list[ShadowRow]
    model: VersionRecord


class ReproduceAnswer(TypedDict):
    """`reproduce`: a version rebuilt from its record and compared
    (engine.pipeline.reproduce.Reproduction.to_dict)."""

    version: int
    verdict: str
    """identical | equivalent | different"""
    reasons: list[str]
    notes: list[str]
    recorded_onnx_hash: str | None
    rebuilt_onnx_hash: str | None
    max_abs_diff: float | None
    holdout_rows: int | None
    metrics: dict[str, dict[str, float | None]]
    library_changes: dict[str, dict[str, str]]
    audit_entry_id: int | None
    registered: bool
