"""Stage 6, register: a trained and evaluated candidate becomes a model version.

The version row records its lineage (dataset, feature definition, params, seed, device,
library versions), its ONNX graph's inputs and outputs, its holdout metrics and its gate
results; the aliases and their audit entries are engine.records.registry's.
"""

from __future__ import annotations

import json
from typing import Any

from engine.models.base import TrainedModel
from engine.models.evaluate import GateResult
from engine.records.registry import library_versions
from storage.catalog import Catalog, utcnow


def register_version(
    catalog: Catalog,
    *,
    trained: TrainedModel,
    training_run_id: int,
    dataset_id: int,
    feature_hash: str,
    task: str,
    target: str,
    classes: list[Any] | None,
    seed: int,
    onnx_hash: str,
    native_hash: str,
    metrics: dict[str, float | None],
    gates: GateResult,
) -> int:
    """Record a new model version and its metrics; returns the version number."""
    from engine.core.onnx_tools import describe_io, make_session

    inputs, outputs = describe_io(make_session(trained.onnx_bytes))
    with catalog.transaction():
        version = int(catalog.scalar("SELECT coalesce(max(version), 0) + 1 FROM model_versions"))
        catalog.execute(
            "INSERT INTO model_versions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,"
            " ?, ?, ?, 'registered', ?)",
            [
                version,
                trained.candidate.name,
                trained.candidate.kind,
                task,
                target,
                training_run_id,
                dataset_id,
                feature_hash,
                onnx_hash,
                native_hash,
                json.dumps(trained.params, sort_keys=True, default=str),
                seed,
                trained.device,
                json.dumps(classes) if classes is not None else None,
                json.dumps(inputs),
                json.dumps(outputs),
                trained.parity_max_abs_diff,
                gates.promotable,
                json.dumps({"checks": gates.checks, "champion": gates.champion}, default=str),
                json.dumps(library_versions(), sort_keys=True),
                utcnow(),
            ],
        )
        for name, value in metrics.items():
            catalog.execute(
                "INSERT INTO metrics VALUES (?, 'holdout', ?, ?)", [version, name, value]
            )
    return version
