"""Loaded model versions and the slot that holds the one being served.

A `LoadedModel` is immutable once built: a registered version's row, its
onnxruntime session and its input specs. `ModelSlot` holds the champion; a swap
is one reference assignment under a lock, so a request that already grabbed the
old model finishes on it and every later request gets the new one.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.core.project import Project
from engine.models.scoring import load_session, version_inputs
from engine.records.registry import get_version
from engine.serving.batching import MicroBatcher

if TYPE_CHECKING:
    import onnxruntime

CUDA_PROVIDER = "CUDAExecutionProvider"
CPU_PROVIDER = "CPUExecutionProvider"

# onnxruntime element types -> Open Inference Protocol datatypes.
OIP_DATATYPES = {
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
    "tensor(int64)": "INT64",
    "tensor(int32)": "INT32",
    "tensor(bool)": "BOOL",
    "tensor(string)": "BYTES",
}


def pick_providers() -> list[str]:
    """CUDA first when this onnxruntime build offers it, CPU always as the fallback."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    return [CUDA_PROVIDER, CPU_PROVIDER] if CUDA_PROVIDER in available else [CPU_PROVIDER]


@dataclass(frozen=True)
class InputSpec:
    """One model input: a raw feature column, fed as an [N, 1] tensor."""

    name: str
    """The raw column name: what clients send (both protocols), the metadata lists and
    the prediction log records."""
    is_string: bool
    datatype: str
    """The Open Inference Protocol datatype: BYTES for strings, FP32 for numbers."""
    onnx_name: str = ""
    """The ONNX graph's input name (`engine.data.input_names`); "" when it is `name`."""


@dataclass(frozen=True)
class OutputSpec:
    name: str
    datatype: str
    shape: list[int]
    """-1 for the batch dimension (and any other dynamic one)."""


@dataclass(frozen=True)
class LoadedModel:
    """A registered version ready to score."""

    version: int
    row: dict[str, Any]
    session: onnxruntime.InferenceSession
    inputs: list[InputSpec]
    outputs: list[OutputSpec]
    provider: str
    """The execution provider onnxruntime actually uses for this session."""
    batcher: MicroBatcher = field(init=False, compare=False, repr=False)
    """Scores this version's concurrent requests together (never mixed with another version's)."""

    input_names: tuple[str, ...] = field(init=False, compare=False, repr=False)
    """The input names, in the model's order."""
    input_specs: dict[str, InputSpec] = field(init=False, compare=False, repr=False)
    """The inputs by name."""
    string_positions: tuple[int, ...] = field(init=False, compare=False, repr=False)
    """Positions in `input_names` of the string inputs."""
    number_positions: tuple[int, ...] = field(init=False, compare=False, repr=False)
    """Positions in `input_names` of the number inputs."""
    _onnx_names: tuple[tuple[str, str], ...] | None = field(init=False, compare=False, repr=False)
    """(column, ONNX input name) of every input, or None when all are the same."""

    def __post_init__(self) -> None:
        batcher = MicroBatcher([(s.name, s.is_string) for s in self.inputs], self.run)
        object.__setattr__(self, "batcher", batcher)
        object.__setattr__(self, "input_names", tuple(s.name for s in self.inputs))
        object.__setattr__(self, "input_specs", {s.name: s for s in self.inputs})
        positions = list(enumerate(self.inputs))
        strings = tuple(i for i, s in positions if s.is_string)
        numbers = tuple(i for i, s in positions if not s.is_string)
        object.__setattr__(self, "string_positions", strings)
        object.__setattr__(self, "number_positions", numbers)
        renamed = tuple((s.name, s.onnx_name or s.name) for s in self.inputs)
        same = all(column == name for column, name in renamed)
        object.__setattr__(self, "_onnx_names", None if same else renamed)

    @property
    def task(self) -> str:
        return str(self.row["task"])

    def run(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Every output of the model for `feed` ([N, 1] tensors by column name)."""
        names = [o.name for o in self.outputs]
        if self._onnx_names is not None:
            feed = {name: feed[column] for column, name in self._onnx_names}
        return dict(zip(names, self.session.run(names, feed), strict=True))


def _dims(shape: list[Any]) -> list[int]:
    return [int(d) if str(d).isdigit() else -1 for d in shape]


def load_model(project: Project, version: int, providers: list[str] | None = None) -> LoadedModel:
    """Load a registered version (hash-verified ONNX) on CUDA when available, else CPU.

    Raises:
        NotFoundError: no such version.
        MldeckError: its ONNX object is missing or corrupt.
    """
    row = get_version(project.catalog, version)
    chosen = providers or pick_providers()
    session = load_session(project, row, chosen)
    used = session.get_providers()
    inputs = [
        InputSpec(
            name=i.column,
            is_string=i.is_string,
            datatype="BYTES" if i.is_string else "FP32",
            onnx_name=i.name,
        )
        for i in version_inputs(project, row)
    ]
    outputs = [
        OutputSpec(
            name=o.name,
            datatype=OIP_DATATYPES.get(o.type, "BYTES"),
            shape=_dims(list(o.shape)),
        )
        for o in session.get_outputs()
    ]
    return LoadedModel(
        version=int(row["version"]),
        row=row,
        session=session,
        inputs=inputs,
        outputs=outputs,
        provider=used[0] if used else CPU_PROVIDER,
    )


class ModelSlot:
    """The model being served; swapped atomically."""

    def __init__(self, model: LoadedModel) -> None:
        self._model = model
        self._lock = threading.Lock()

    @property
    def model(self) -> LoadedModel:
        """The current model; a caller keeps the object it got even across a swap."""
        return self._model

    def swap(self, model: LoadedModel) -> LoadedModel:
        """Serve `model` from now on; returns the model it replaced."""
        with self._lock:
            old, self._model = self._model, model
        return old
