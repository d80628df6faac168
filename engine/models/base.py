"""What every model kind gives back: a trained model with its ONNX graph, and the parity
check between the native model and its graph that every kind passes before registration."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.core.config import Candidate
from engine.core.errors import TrainingError
from engine.core.events import EventSink
from engine.data.dataset import Dataset
from engine.data.features import FeatureSpec

PARITY_TOLERANCE = 1e-4


@dataclass
class TrainedModel:
    candidate: Candidate
    params: dict[str, Any]
    """The effective parameters (config over defaults)."""
    device: str
    onnx_bytes: bytes
    native_bytes: bytes
    holdout_output: np.ndarray
    """The ONNX model's probabilities (or predictions) on the holdout."""
    parity_max_abs_diff: float
    duration_s: float
    pid: int = field(default_factory=os.getpid)
    """The process that trained it: the engine's, or its training worker's."""


Trainer = Callable[[Candidate, Dataset, FeatureSpec, int, EventSink], TrainedModel]
"""`train_candidate` or a stand-in with its signature (`engine.service.training_worker`)."""


def check_parity(native: np.ndarray, onnx_out: np.ndarray, task: str, name: str) -> float:
    """Max |native - ONNX|; regression is measured relative to the prediction scale."""
    diff = (
        float(np.max(np.abs(native.astype(np.float64) - onnx_out.astype(np.float64))))
        if len(native)
        else 0.0
    )
    scale = 1.0 if task == "classification" else max(1.0, float(np.mean(np.abs(native))))
    if diff / scale > PARITY_TOLERANCE:
        raise TrainingError(
            f"{name}: ONNX output differs from the native model by {diff:.3g} on the holdout "
            f"(tolerance {PARITY_TOLERANCE:g}{' x scale' if scale != 1.0 else ''}); not registered"
        )
    return diff
