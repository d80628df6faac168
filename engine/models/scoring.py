"""Score a registered model version: load its ONNX (hash-verified) and build its feed.

A version's inputs are recorded twice over: `inputs_json` describes the ONNX
graph's inputs, and the feature definition names the raw column behind each
(`FeatureSpec.input_names`). `version_inputs` joins the two; frames, requests
and logs use the columns, only the session sees the input names.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from engine.core.errors import MldeckError, as_mldeck_error
from engine.core.onnx_tools import make_session, run_model
from engine.core.project import Project
from engine.data.features import FeatureSpec, tensor_feed
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


@dataclass(frozen=True)
class ModelInput:
    """One input of a registered version."""

    column: str
    """The raw column name: what frames, requests and the prediction log use."""
    name: str
    """The ONNX graph's input name."""
    is_string: bool


def version_inputs(project: Project, version_row: dict[str, Any]) -> list[ModelInput]:
    """The version's inputs in the graph's order, each with its raw column."""
    spec_json = project.catalog.scalar(
        "SELECT spec_json FROM feature_definitions WHERE feature_hash = ?",
        [version_row["feature_hash"]],
    )
    column_of: dict[str, str] = {}
    if spec_json is not None:
        column_of = {
            name: column for column, name in FeatureSpec.from_json(spec_json).inputs.items()
        }
    return [
        ModelInput(column_of.get(i["name"], i["name"]), i["name"], "string" in i["type"])
        for i in json.loads(version_row["inputs_json"])
    ]


def feed_for(frame: pl.DataFrame, inputs: list[ModelInput]) -> dict[str, np.ndarray]:
    """Build the [N, 1] input tensors (by input name) from a frame of raw columns."""
    for i in inputs:
        if i.column not in frame.columns:
            raise MldeckError(f"column {i.column!r} is missing", title="Missing column")
    strings = [i.column for i in inputs if i.is_string]
    numbers = [i.column for i in inputs if not i.is_string]
    feed = tensor_feed(frame, numbers, strings)
    return {i.name: feed[i.column] for i in inputs}


def score_version(project: Project, version_row: dict[str, Any], frame: pl.DataFrame) -> np.ndarray:
    session = load_session(project, version_row)
    feed = feed_for(frame, version_inputs(project, version_row))
    return run_model(session, feed, version_row["task"])
