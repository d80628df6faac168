"""`mldeck reproduce`: retrain a version from its recorded inputs and compare.

The rebuild reads the version's snapshots (hash-verified), the config file as it
was (from the object store), its feature definition, seed and device, and trains
the same candidate again. It compares the rebuilt ONNX graph with the registered
one: the bytes' hash, the outputs on the recorded holdout (max |Δ|) and the
holdout metrics. The verdict is

- identical: the same ONNX bytes;
- equivalent: other bytes, outputs and metrics within `TOLERANCE`;
- different: anything else, or an input that can no longer be read exactly
  (a snapshot that does not verify), with the reasons found.

The rebuilt model is discarded: nothing is registered and nothing is added to
the object store. The check itself is recorded as a `reproduce` audit entry.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from engine.core.answers import ReproduceAnswer
from engine.core.config import Config
from engine.core.config_parse import parse_config
from engine.core.errors import MldeckError
from engine.core.events import EventSink, ignore_events
from engine.core.onnx_tools import make_session, run_model
from engine.core.project import Project
from engine.data.dataset import Dataset, dataset_hash_of, load_dataset, split_frame
from engine.data.dataset_snapshots import snapshot_of_batches
from engine.data.features import FeatureSpec, onnx_feed
from engine.records.provenance import version_provenance
from engine.records.registry import get_version, library_versions, version_metrics
from engine.records.stage_runs import stage_run
from storage.audit import append_entry
from storage.errors import StorageError

if TYPE_CHECKING:
    from engine.models.base import Trainer

TOLERANCE = 1e-6
IDENTICAL = "identical"
EQUIVALENT = "equivalent"
DIFFERENT = "different"


@dataclass
class Reproduction:
    version: int
    verdict: str
    """identical | equivalent | different"""
    reasons: list[str] = field(default_factory=list)
    """Why it is different, or what was found that could make it so."""
    notes: list[str] = field(default_factory=list)
    """What the rebuild used or could not use, for the reader."""
    recorded_onnx_hash: str | None = None
    rebuilt_onnx_hash: str | None = None
    max_abs_diff: float | None = None
    """Largest |recorded - rebuilt| ONNX output on the recorded holdout."""
    holdout_rows: int | None = None
    metrics: dict[str, dict[str, float | None]] = field(default_factory=dict)
    """name -> {"recorded", "rebuilt", "diff"}"""
    library_changes: dict[str, dict[str, str]] = field(default_factory=dict)
    """name -> {"recorded", "now"} for each library whose version changed."""
    audit_entry_id: int | None = None
    registered: bool = False
    """Always False: a reproduction never registers the rebuilt model."""

    def to_dict(self) -> ReproduceAnswer:
        return cast("ReproduceAnswer", asdict(self))


def _library_changes(recorded: dict[str, str]) -> dict[str, dict[str, str]]:
    now = library_versions()
    return {
        name: {"recorded": old, "now": now.get(name, "not tracked")}
        for name, old in sorted(recorded.items())
        if now.get(name) != old
    }


def _recorded_config(project: Project, version: int, result: Reproduction) -> Config:
    provenance = version_provenance(project.catalog, version)
    if not provenance["recorded"]:
        result.notes.append(
            "the config was not recorded for this version: used mldeck.toml as it is now"
        )
        result.reasons.append("config not recorded (the current mldeck.toml was used)")
        return project.config
    text = project.objects.read_bytes(provenance["config_hash"]).decode("utf-8")
    try:
        return parse_config(tomllib.loads(text), project.config.path)
    except tomllib.TOMLDecodeError as exc:
        raise MldeckError(
            f"the recorded config {provenance['config_hash'][:12]} is not TOML: {exc}"
        ) from exc


def _rebuild_inputs(
    project: Project, row: dict[str, Any], result: Reproduction
) -> tuple[Config, Dataset, FeatureSpec, Any] | None:
    """Everything the training needs, read back exactly; None (with reasons) if it cannot be."""
    from engine.core.config import Candidate

    catalog = project.catalog
    version = int(row["version"])
    dataset_row = catalog.row("SELECT * FROM datasets WHERE dataset_id = ?", [row["dataset_id"]])
    if dataset_row is None:
        result.reasons.append(f"dataset {row['dataset_id']} is missing from the catalog")
        return None
    batch_ids = [int(b) for b in json.loads(dataset_row["batch_ids_json"])]
    hashes = [str(h) for h in json.loads(dataset_row["snapshot_hashes_json"])]
    batches = catalog.rows(
        "SELECT batch_id, source_name, snapshot_hash FROM batches WHERE list_contains(?, batch_id)",
        [batch_ids],
    )
    names = {int(b["batch_id"]): b["source_name"] for b in batches}
    own = {int(b["batch_id"]): b["snapshot_hash"] for b in batches}
    checked: set[str] = set()
    for batch_id, digest in snapshot_of_batches(batch_ids, hashes, own):
        if digest in checked:  # one joined snapshot holds several batches
            continue
        checked.add(digest)
        try:
            project.objects.verified_path(digest)
        except StorageError as exc:
            result.reasons.append(
                f"snapshot {digest[:12]} of batch {batch_id} ({names.get(batch_id, '?')}) "
                f"does not verify: {exc.msg}"
            )
    try:
        project.objects.verified_path(row["onnx_hash"])
    except StorageError as exc:
        result.reasons.append(f"the registered ONNX model does not verify: {exc.msg}")
    if result.reasons:
        return None

    try:
        config = _recorded_config(project, version, result)
    except (StorageError, MldeckError) as exc:
        result.reasons.append(f"the recorded config cannot be read: {getattr(exc, 'msg', exc)}")
        return None
    candidate = next((c for c in config.candidates if c.name == row["name"]), None)
    if candidate is None:
        result.reasons.append(f"the config has no candidate {row['name']!r}")
        return None
    if candidate.kind == "mlp":
        # The recorded device, not "auto": a GPU machine must not silently rebuild on CUDA.
        candidate = Candidate(
            candidate.name, candidate.kind, {**candidate.params, "device": row["device"]}
        )
    spec_json = catalog.scalar(
        "SELECT spec_json FROM feature_definitions WHERE feature_hash = ?", [row["feature_hash"]]
    )
    if spec_json is None:
        result.reasons.append(f"feature definition {row['feature_hash'][:12]} is missing")
        return None
    spec = FeatureSpec.from_json(spec_json)

    frame, meta = load_dataset(replace(project, config=config), spec, batch_ids, hashes)
    rebuilt_hash = dataset_hash_of(meta)
    if rebuilt_hash != dataset_row["dataset_hash"]:
        result.reasons.append(
            f"the dataset reads back as {rebuilt_hash[:12]}, recorded {dataset_row['dataset_hash'][:12]}"
            " (its columns or split settings changed)"
        )
    train, holdout, classes = split_frame(frame, row["target"], row["task"])
    dataset = Dataset(
        dataset_id=int(dataset_row["dataset_id"]),
        dataset_hash=rebuilt_hash,
        batch_ids=batch_ids,
        snapshot_hashes=hashes,
        train=train,
        holdout=holdout,
        task=row["task"],
        target=row["target"],
        classes=classes,
    )
    return config, dataset, spec, candidate


def _compare(
    project: Project,
    row: dict[str, Any],
    dataset: Dataset,
    spec: FeatureSpec,
    trained: Any,
    result: Reproduction,
) -> None:
    from engine.pipeline.training_run import holdout_metrics

    version = int(row["version"])
    result.rebuilt_onnx_hash = hashlib.sha256(trained.onnx_bytes).hexdigest()
    recorded_model = make_session(project.objects.read_bytes(row["onnx_hash"]))
    recorded_out = run_model(recorded_model, onnx_feed(dataset.holdout, spec), dataset.task)
    rebuilt_out = trained.holdout_output
    result.holdout_rows = dataset.holdout.height
    if recorded_out.shape != rebuilt_out.shape:
        result.max_abs_diff = float("inf")
        result.reasons.append(f"output shapes differ: {recorded_out.shape} vs {rebuilt_out.shape}")
    else:
        result.max_abs_diff = (
            float(np.max(np.abs(recorded_out.astype(np.float64) - rebuilt_out.astype(np.float64))))
            if recorded_out.size
            else 0.0
        )
    recorded_metrics = version_metrics(project.catalog, version)
    rebuilt_metrics = holdout_metrics(dataset, rebuilt_out)
    worst_metric = 0.0
    metric_went_missing = False
    for name in sorted(set(recorded_metrics) | set(rebuilt_metrics)):
        old, new = recorded_metrics.get(name), rebuilt_metrics.get(name)
        diff = None if old is None or new is None else abs(float(old) - float(new))
        result.metrics[name] = {"recorded": old, "rebuilt": new, "diff": diff}
        if diff is None and (old is None) != (new is None):
            metric_went_missing = True
            result.reasons.append(f"metric {name}: recorded {old}, rebuilt {new}")
        elif diff is not None:
            worst_metric = max(worst_metric, diff)

    if result.rebuilt_onnx_hash == result.recorded_onnx_hash:
        result.verdict = IDENTICAL
        return
    close = result.max_abs_diff <= TOLERANCE and worst_metric <= TOLERANCE
    if close and not metric_went_missing:
        result.verdict = EQUIVALENT
        result.notes.append(
            f"the ONNX bytes differ, but outputs agree within {TOLERANCE:g} "
            f"(max |Δ| {result.max_abs_diff:.3g}) and so do the metrics"
        )
        return
    result.verdict = DIFFERENT
    if result.max_abs_diff > TOLERANCE:
        result.reasons.append(
            f"outputs on the holdout differ by up to {result.max_abs_diff:.3g} (tolerance {TOLERANCE:g})"
        )
    if worst_metric > TOLERANCE:
        worst = max(
            (n for n, m in result.metrics.items() if m["diff"] is not None),
            key=lambda n: result.metrics[n]["diff"] or 0.0,
        )
        result.reasons.append(f"metric {worst} differs by {worst_metric:.3g}")


def reproduce_version(
    project: Project,
    version: int,
    *,
    actor: str,
    events: EventSink = ignore_events,
    trainer: Trainer | None = None,
) -> Reproduction:
    """Retrain `version` from its recorded inputs, compare, and record the check.

    Args:
        trainer: see `engine.pipeline.training_run.train`.

    Raises:
        NotFoundError: no such version.
        EngineStopping: the engine stopped during the rebuild.
    """
    from engine.core.errors import EngineStopping
    from engine.models.training import train_candidate

    catalog = project.catalog
    row = get_version(catalog, version)
    result = Reproduction(version=version, verdict=DIFFERENT, recorded_onnx_hash=row["onnx_hash"])
    result.library_changes = _library_changes(json.loads(row["library_versions_json"]))
    with stage_run(catalog, "reproduce", {"version": version}) as run:
        inputs = _rebuild_inputs(project, row, result)
        if inputs is not None:
            _config, dataset, spec, candidate = inputs
            try:
                trained = (trainer or train_candidate)(
                    candidate, dataset, spec, int(row["seed"]), events
                )
            except EngineStopping:  # no verdict: the rebuild was cut short
                raise
            except MldeckError as exc:
                result.reasons.append(f"the rebuild failed: {exc.msg}")
            else:
                _compare(project, row, dataset, spec, trained, result)
        if result.verdict == DIFFERENT:
            for name, change in result.library_changes.items():
                result.reasons.append(f"{name} changed: {change['recorded']} -> {change['now']}")
            if not result.reasons:
                result.reasons.append("no recorded input changed that would explain it")
        elif result.library_changes:
            changed = ", ".join(
                f"{n} {c['recorded']} -> {c['now']}" for n, c in result.library_changes.items()
            )
            result.notes.append(f"library versions changed since ({changed}); the model did not")
        run.outputs = {"verdict": result.verdict, "max_abs_diff": result.max_abs_diff}
    result.audit_entry_id = append_entry(
        catalog,
        actor=actor,
        action="reproduce",
        to_version=version,
        reason=result.verdict if result.verdict != DIFFERENT else f"different: {result.reasons[0]}",
        details={
            "verdict": result.verdict,
            "max_abs_diff": result.max_abs_diff,
            "rebuilt_onnx_hash": result.rebuilt_onnx_hash,
            "reasons": result.reasons,
        },
    )
    return result
