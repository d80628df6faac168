"""Score a registered model version: load its ONNX (hash-verified) and build its feed."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from engine.core.errors import MldeckError, as_mldeck_error
from engine.core.onnx_tools import make_session, run_model
from engine.core.project import Project
from engine.data.features import tensor_feed
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
    for spec in inputs:
        if spec["name"] not in frame.columns:
            raise MldeckError(f"column {spec['name']!r} is missing", title="Missing column")
    strings = [s["name"] for s in inputs if "string" in s["type"]]
    numbers = [s["name"] for s in inputs if "string" not in s["type"]]
    feed = tensor_feed(frame, numbers, strings)
    return {s["name"]: feed[s["name"]] for s in inputs}


def score_version(project: Project, version_row: dict[str, Any], frame: pl.DataFrame) -> np.ndarray:
    session = load_session(project, version_row)
    feed = feed_for(frame, json.loads(version_row["inputs_json"]))
    return run_model(session, feed, version_row["task"])
