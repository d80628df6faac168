"""Stages 3-6 end to end: prepare, train every candidate, evaluate, register.

Each stage run is recorded. A candidate that fails is recorded and the others go
on. When there is no champion, the best promotable version of the run becomes
champion; otherwise the best promotable new version that beats the champion on
the primary metric becomes the challenger.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.core.answers import CandidateAnswer, CandidateStatus, ModelKind, TrainAnswer
from engine.core.config import Candidate
from engine.core.errors import EngineStopping, MldeckError, TrainingError
from engine.core.events import EventSink, StageFinished, StageStarted, ignore_events
from engine.core.project import Project
from engine.data.dataset import Dataset, prepare_dataset
from engine.data.features import FeatureSpec, feature_spec
from engine.models.base import TrainedModel, Trainer
from engine.models.evaluate import (
    GateResult,
    apply_gates,
    better,
    classification_metrics,
    regression_metrics,
)
from engine.models.scoring import score_version
from engine.models.training import train_candidate
from engine.monitoring.monitor import record_reference_profile
from engine.pipeline.register import register_version
from engine.records.provenance import record_provenance
from engine.records.registry import (
    CHAMPION,
    alias_version,
    get_version,
    promote,
    set_challenger,
)
from engine.records.stage_runs import stage_run
from storage.catalog import Catalog, utcnow


@dataclass
class CandidateOutcome:
    name: str
    kind: ModelKind
    status: CandidateStatus
    version: int | None = None
    metrics: dict[str, float | None] = field(default_factory=dict)
    promotable: bool = False
    device: str | None = None
    parity: float | None = None
    duration_s: float = 0.0
    error: str | None = None


@dataclass
class TrainResult:
    dataset_id: int
    train_rows: int
    holdout_rows: int
    feature_hash: str
    primary_metric: str
    outcomes: list[CandidateOutcome]
    champion_before: int | None
    champion: int | None
    challenger: int | None
    champion_holdout_metrics: dict[str, float | None] | None


def holdout_metrics(dataset: Dataset, output: np.ndarray) -> dict[str, float | None]:
    y = dataset.holdout[dataset.target].to_numpy()
    if dataset.task == "classification":
        assert dataset.classes is not None
        return classification_metrics(y, output, dataset.classes)
    return regression_metrics(y, output)


def train(
    project: Project,
    events: EventSink = ignore_events,
    actor: str = "mldeck",
    only: list[str] | None = None,
    trainer: Trainer | None = None,
    promote_challenger: str | None = None,
) -> TrainResult:
    """Prepare the dataset, then train, evaluate and register each configured candidate.

    Args:
        promote_challenger: set by a retrain under the `auto` policy: the run's challenger
            is promoted in the run's registration transaction, with this as the reason's
            head (a crash never leaves an automatic retrain registered but unpromoted).
        trainer: what fits and exports a candidate: None for `train_candidate` in this
            process; an engine service passes its child process (`engine.service.training_worker`).
    """
    config = project.config
    catalog = project.catalog
    if config.contract is None:
        raise TrainingError("no data ingested yet: run `mldeck ingest data/incoming/` first")
    candidates = list(config.candidates)
    if only:
        unknown = [n for n in only if n not in {c.name for c in candidates}]
        if unknown:
            raise TrainingError(
                f"unknown candidate(s) {', '.join(unknown)}; configured: "
                + ", ".join(c.name for c in candidates)
            )
        candidates = [c for c in candidates if c.name in only]
    # The config as it was when training started, for lineage and `mldeck reproduce`.
    config_hash = project.objects.put_bytes(config.path.read_bytes())
    spec = feature_spec(config)
    events(StageStarted("prepare", "dataset"))
    with stage_run(catalog, "prepare", {"feature_hash": spec.hash}) as run:
        dataset = prepare_dataset(project, spec)
        run.outputs = {
            "dataset_id": dataset.dataset_id,
            "train_rows": dataset.train.height,
            "holdout_rows": dataset.holdout.height,
        }
    events(
        StageFinished(
            "prepare",
            "dataset",
            "succeeded",
            f"{dataset.train.height} train / {dataset.holdout.height} holdout rows",
        )
    )
    primary = config.evaluation.primary_for(dataset.task)

    champion = alias_version(catalog, CHAMPION)
    champion_metrics = None
    if champion is not None:
        try:
            output = score_version(project, get_version(catalog, champion), dataset.holdout)
            champion_metrics = holdout_metrics(dataset, output)
        except MldeckError as exc:
            events(StageFinished("evaluate", f"champion v{champion}", "failed", exc.msg))

    trained_runs = [
        _train_one(
            project,
            candidate,
            dataset,
            feature_spec(config, candidate.kind),
            champion,
            champion_metrics,
            events,
            trainer or train_candidate,
        )
        for candidate in candidates
    ]
    outcomes = [candidate_run.outcome for candidate_run in trained_runs]
    for candidate_run in trained_runs:
        if candidate_run.trained is not None:
            events(StageStarted("register", candidate_run.outcome.name))
    challenger = _register_run(
        project,
        trained_runs,
        dataset,
        primary,
        (champion, champion_metrics),
        config_hash,
        actor,
        promote_challenger,
    )
    for candidate_run in trained_runs:
        if candidate_run.outcome.version is None or candidate_run.trained is None:
            continue
        # Stage 8's reference profile (holdout rows + the holdout output already computed);
        # a failure is recorded as a failed "profile" stage run, the version stays registered.
        record_reference_profile(
            project,
            candidate_run.outcome.version,
            dataset.holdout,
            candidate_run.spec,
            candidate_run.trained.holdout_output,
            task=dataset.task,
            classes=dataset.classes,
            dataset_id=dataset.dataset_id,
            events=events,
        )
        events(
            StageFinished(
                "register",
                candidate_run.outcome.name,
                "succeeded",
                f"version {candidate_run.outcome.version}",
            )
        )
    if not any(o.status == "registered" for o in outcomes):
        errors = "; ".join(f"{o.name}: {o.error}" for o in outcomes)
        raise TrainingError(f"every candidate failed: {errors}")
    return TrainResult(
        dataset_id=dataset.dataset_id,
        train_rows=dataset.train.height,
        holdout_rows=dataset.holdout.height,
        feature_hash=spec.hash,
        primary_metric=primary,
        outcomes=outcomes,
        champion_before=champion,
        champion=alias_version(catalog, CHAMPION),
        challenger=challenger,
        champion_holdout_metrics=champion_metrics,
    )


@dataclass
class TrainedRun:
    """One candidate of a training run, trained and evaluated, not yet registered."""

    outcome: CandidateOutcome
    spec: FeatureSpec
    trained: TrainedModel | None = None
    gates: GateResult | None = None
    stage_run_id: int | None = None
    started_at: Any = None
    onnx_hash: str = ""
    native_hash: str = ""


def _train_one(
    project: Project,
    candidate: Candidate,
    dataset: Dataset,
    spec: FeatureSpec,
    champion: int | None,
    champion_metrics: dict[str, float | None] | None,
    events: EventSink,
    trainer: Trainer,
) -> TrainedRun:
    """Train, evaluate and store one candidate's bytes; the catalog learns of it in
    `_register_run`, with the rest of its run."""
    config = project.config
    catalog = project.catalog
    catalog.execute(
        "INSERT INTO feature_definitions VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
        [spec.hash, spec.to_json(), utcnow()],
    )
    seed = config.training_seed
    outcome = CandidateOutcome(name=candidate.name, kind=candidate.kind, status="failed")
    result = TrainedRun(outcome=outcome, spec=spec, started_at=utcnow())
    started = time.perf_counter()
    events(StageStarted("train", candidate.name))
    try:
        with stage_run(
            catalog,
            "train",
            {"candidate": candidate.name, "kind": candidate.kind, "dataset_id": dataset.dataset_id},
        ) as run:
            result.stage_run_id = run.run_id
            trained = trainer(candidate, dataset, spec, seed, events)
            run.outputs = {
                "device": trained.device,
                "duration_s": round(trained.duration_s, 3),
                "parity": trained.parity_max_abs_diff,
                "pid": trained.pid,
            }
        events(StageStarted("evaluate", candidate.name))
        with stage_run(catalog, "evaluate", {"candidate": candidate.name}) as run:
            metrics = holdout_metrics(dataset, trained.holdout_output)
            gates = apply_gates(
                config.evaluation, dataset.task, metrics, champion, champion_metrics
            )
            run.outputs = {"metrics": metrics, "promotable": gates.promotable}
        # Content-addressed: a run cut short leaves unreferenced objects, never a version.
        result.onnx_hash = project.objects.put_bytes(trained.onnx_bytes)
        result.native_hash = project.objects.put_bytes(trained.native_bytes)
    except EngineStopping:  # not the candidate's failure: the whole job runs again
        raise
    except Exception as exc:  # one candidate's failure must not stop the others
        message = exc.msg if isinstance(exc, MldeckError) else f"{type(exc).__name__}: {exc}"
        outcome.error = message
        if result.stage_run_id is not None:
            _record_training_run(
                project,
                result.stage_run_id,
                dataset,
                spec.hash,
                candidate,
                candidate.params,
                seed,
                "cpu",
                "failed",
                message,
                result.started_at,
                time.perf_counter() - started,
            )
        events(StageFinished("train", candidate.name, "failed", message))
        return result
    result.trained, result.gates = trained, gates
    outcome.metrics = metrics
    outcome.promotable = gates.promotable
    outcome.device = trained.device
    outcome.parity = trained.parity_max_abs_diff
    outcome.duration_s = time.perf_counter() - started
    return result


def _register_run(
    project: Project,
    runs: list[TrainedRun],
    dataset: Dataset,
    primary: str,
    champion_before: tuple[int | None, dict[str, float | None] | None],
    config_hash: str,
    actor: str,
    promote_challenger: str | None,
) -> int | None:
    """Register every trained candidate of a run, and move the aliases, in one transaction:
    a run cut short (kill -9, power loss) leaves no version at all. Returns the challenger."""
    catalog = project.catalog
    done = [r for r in runs if r.trained is not None and r.gates is not None]
    if not done:
        return None
    challenger = None
    with stage_run(catalog, "register", {"candidates": [r.outcome.name for r in done]}) as stage:
        with catalog.transaction():
            for run in done:
                assert run.trained is not None and run.gates is not None
                training_run_id = _record_training_run(
                    project,
                    run.stage_run_id,
                    dataset,
                    run.spec.hash,
                    run.trained.candidate,
                    run.trained.params,
                    project.config.training_seed,
                    run.trained.device,
                    "succeeded",
                    None,
                    run.started_at,
                    run.outcome.duration_s,
                )
                version = register_version(
                    catalog,
                    trained=run.trained,
                    training_run_id=training_run_id,
                    dataset_id=dataset.dataset_id,
                    feature_hash=run.spec.hash,
                    task=dataset.task,
                    target=dataset.target,
                    classes=dataset.classes,
                    seed=project.config.training_seed,
                    onnx_hash=run.onnx_hash,
                    native_hash=run.native_hash,
                    metrics=run.outcome.metrics,
                    gates=run.gates,
                )
                record_provenance(catalog, version, config_hash=config_hash, root=project.root)
                run.outcome.version = version
            champion, champion_metrics = champion_before
            challenger = _move_aliases(
                catalog, [r.outcome for r in done], primary, champion, champion_metrics, actor
            )
            if challenger is not None and promote_challenger is not None:
                promote(
                    catalog,
                    challenger,
                    actor=actor,
                    reason=f"{promote_challenger}: passed its gates and beats v{champion} on "
                    f"{primary} on the same holdout",
                )
        for run in done:  # only once the transaction committed
            run.outcome.status = "registered"
        stage.outputs = {"versions": [r.outcome.version for r in done]}
    return challenger


def _move_aliases(
    catalog: Catalog,
    outcomes: list[CandidateOutcome],
    primary: str,
    champion: int | None,
    champion_metrics: dict[str, float | None] | None,
    actor: str,
) -> int | None:
    """The run's best promotable version becomes champion (the first) or challenger."""
    best = None
    for outcome in outcomes:
        if not outcome.promotable:
            continue
        if best is None or better(primary, outcome.metrics.get(primary), best.metrics.get(primary)):
            best = outcome
    if best is None or best.version is None:
        return None
    if champion is None:
        promote(
            catalog,
            best.version,
            actor=actor,
            reason=f"first promotable version (best {primary} of its training run)",
        )
        return None
    if champion_metrics is None or better(
        primary, best.metrics.get(primary), champion_metrics.get(primary)
    ):
        set_challenger(
            catalog,
            best.version,
            actor=actor,
            reason=f"best {primary} of its training run, beats champion v{champion}",
        )
        return best.version
    return None


def _record_training_run(
    project: Project,
    stage_run_id: int | None,
    dataset: Dataset,
    feature_hash: str,
    candidate: Candidate,
    params: dict[str, Any],
    seed: int,
    device: str,
    status: str,
    error: str | None,
    started_at: Any,
    duration: float,
) -> int:
    return int(
        project.catalog.scalar(
            "INSERT INTO training_runs (stage_run_id, dataset_id, feature_hash, candidate, kind,"
            " params_json, seed, device, status, error, started_at, ended_at, duration_s)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING training_run_id",
            [
                stage_run_id,
                dataset.dataset_id,
                feature_hash,
                candidate.name,
                candidate.kind,
                json.dumps(params, sort_keys=True, default=str),
                seed,
                device,
                status,
                error,
                started_at,
                utcnow(),
                duration,
            ],
        )
    )


def candidate_answer(outcome: CandidateOutcome) -> CandidateAnswer:
    """One candidate's outcome as JSON data, its fields in declaration order."""
    return {
        "name": outcome.name,
        "kind": outcome.kind,
        "status": outcome.status,
        "version": outcome.version,
        "metrics": outcome.metrics,
        "promotable": outcome.promotable,
        "device": outcome.device,
        "parity": outcome.parity,
        "duration_s": outcome.duration_s,
        "error": outcome.error,
    }


def train_result_dict(result: TrainResult) -> TrainAnswer:
    """A training run's answer as JSON data (what `mldeck train --json` prints)."""
    return {
        "dataset_id": result.dataset_id,
        "train_rows": result.train_rows,
        "holdout_rows": result.holdout_rows,
        "feature_hash": result.feature_hash,
        "primary_metric": result.primary_metric,
        "candidates": [candidate_answer(o) for o in result.outcomes],
        "champion_before": result.champion_before,
        "champion": result.champion,
        "challenger": result.challenger,
        "champion_holdout_metrics": result.champion_holdout_metrics,
    }
