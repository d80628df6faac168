"""Score a registered model version: load its ONNX (hash-verified) and build its feed."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from engine.errors import MldeckError, as_mldeck_error
from engine.features import MISSING_CATEGORY
from engine.onnx_tools import make_session, run_model
from engine.project import Project
from storage.errors import StorageError

if TYPE_CHECKING:
    import onnxruntime


def load_session(
    project: Project, version_row: dict[str, Any], providers: list[str] | None = None
) -> onnxruntime.InferenceSession:
    """The version's ONNX model (its bytes checked against their hash) as a session."""
    try:
        model_bytes = project.objects.read_bytes(version_row["onnx_hash"])
    except StorageError as exc:
        raise as_mldeck_error(exc) from exc
    return make_session(model_bytes, providers)


def feed_for(frame: pl.DataFrame, inputs: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """Build the [N, 1] input tensors a model's recorded inputs ask for."""
    feed: dict[str, np.ndarray] = {}
    for spec in inputs:
        name = spec["name"]
        if name not in frame.columns:
            raise MldeckError(f"column {name!r} is missing", title="Missing column")
        column = frame[name]
        if "string" in spec["type"]:
            values = column.cast(pl.Utf8).fill_null(MISSING_CATEGORY).to_numpy()
            feed[name] = values.astype(object).reshape(-1, 1)
        else:
            values = column.cast(pl.Float32).fill_null(float("nan")).to_numpy()
            feed[name] = values.astype(np.float32).reshape(-1, 1)
    return feed


def score_version(project: Project, version_row: dict[str, Any], frame: pl.DataFrame) -> np.ndarray:
    session = load_session(project, version_row)
    feed = feed_for(frame, json.loads(version_row["inputs_json"]))
    return run_model(session, feed, version_row["task"])
