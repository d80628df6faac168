"""The PyTorch MLP candidate: CUDA when available, CPU otherwise (recorded).

The sklearn preprocessor (impute, scale, one-hot) is fitted on the training rows
and converted with skl2onnx; the network is exported with torch.onnx; the two
graphs are merged so the ONNX model takes raw columns like every other model.
"""

from __future__ import annotations

import io
import logging
import time
import warnings
from typing import Any

import numpy as np

from engine.core.config import Candidate
from engine.core.errors import ConfigError, TrainingError
from engine.core.events import EventSink, Progress
from engine.core.onnx_tools import add_label_output, make_session, model_bytes, run_model
from engine.data.dataset import Dataset
from engine.data.features import (
    FeatureSpec,
    build_preprocessor,
    model_frame,
    onnx_feed,
    onnx_input_types,
)
from engine.models.base import TrainedModel, check_parity

DEFAULTS: dict[str, Any] = {
    "hidden": [64, 32],
    "epochs": 25,
    "batch_size": 256,
    "lr": 0.002,
    "weight_decay": 0.0,
    "device": "auto",
}
EXPORT_OPSET = 18


def resolve_device(requested: str) -> str:
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise TrainingError("models.mlp.device = 'cuda' but CUDA is not available here")
    return requested


def _params(candidate: Candidate) -> dict[str, Any]:
    params = dict(DEFAULTS)
    for key, value in candidate.params.items():
        if key not in DEFAULTS:
            raise ConfigError(
                f"models.{candidate.name}.{key}: not a parameter of mlp "
                f"(known: {', '.join(DEFAULTS)})"
            )
        params[key] = value
    hidden = params["hidden"]
    if (
        not isinstance(hidden, list)
        or not hidden
        or not all(isinstance(h, int) and not isinstance(h, bool) and h > 0 for h in hidden)
    ):
        raise ConfigError(f"models.{candidate.name}.hidden: must be a list of positive integers")
    for key in ("epochs", "batch_size"):
        value = params[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"models.{candidate.name}.{key}: must be a positive integer")
    for key, positive in (("lr", True), ("weight_decay", False)):
        value = params[key]
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or (value <= 0 if positive else value < 0)
        ):
            need = "a number > 0" if positive else "a number >= 0"
            raise ConfigError(f"models.{candidate.name}.{key}: must be {need}, not {value!r}")
    if params["device"] not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"models.{candidate.name}.device: must be auto, cpu or cuda")
    return params


def _module(
    in_dim: int, hidden: list[int], out_dim: int, task: str, y_mean: float, y_std: float
) -> Any:
    import torch
    from torch import nn

    class MLP(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            layers: list[nn.Module] = []
            width = in_dim
            for h in hidden:
                layers += [nn.Linear(width, h), nn.ReLU()]
                width = h
            layers.append(nn.Linear(width, out_dim))
            self.net = nn.Sequential(*layers)
            self.register_buffer("y_mean", torch.tensor(y_mean, dtype=torch.float32))
            self.register_buffer("y_std", torch.tensor(y_std, dtype=torch.float32))

        def forward(self, features: torch.Tensor) -> torch.Tensor:
            out = self.net(features)
            if task == "classification":
                return torch.softmax(out, dim=1)
            scaled: torch.Tensor = out * self.y_std + self.y_mean
            return scaled

    return MLP()


def train_mlp(
    candidate: Candidate, dataset: Dataset, spec: FeatureSpec, seed: int, events: EventSink
) -> TrainedModel:
    import torch

    started = time.perf_counter()
    params = _params(candidate)
    device = resolve_device(params["device"])
    task = dataset.task
    preprocessor = build_preprocessor(spec)
    x = preprocessor.fit_transform(model_frame(dataset.train, spec)).astype(np.float32)
    y_raw = dataset.train[dataset.target].to_numpy()
    classes = dataset.classes or []
    if task == "classification":
        index = {c: i for i, c in enumerate(classes)}
        y = torch.tensor([index[v] for v in y_raw.tolist()], dtype=torch.long)
        out_dim, y_mean, y_std = len(classes), 0.0, 1.0
    else:
        y_float = y_raw.astype(np.float64)
        y_mean, y_std = float(y_float.mean()), float(y_float.std() or 1.0)
        y = torch.tensor((y_float - y_mean) / y_std, dtype=torch.float32).reshape(-1, 1)
        out_dim = 1

    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    module = _module(x.shape[1], params["hidden"], out_dim, task, y_mean, y_std).to(device)
    optimizer = torch.optim.Adam(
        module.parameters(), lr=float(params["lr"]), weight_decay=float(params["weight_decay"])
    )
    x_all = torch.from_numpy(x).to(device)
    y_all = y.to(device)
    loss_fn = torch.nn.CrossEntropyLoss() if task == "classification" else torch.nn.MSELoss()
    epochs, batch_size = int(params["epochs"]), int(params["batch_size"])
    threads_before = torch.get_num_threads()
    if device == "cpu":
        # Small dense layers: thread hand-offs cost more than they save here
        # (bench/gpu_check.py measured a step at 10.3 ms with 2 threads, 2.0 ms with 1).
        torch.set_num_threads(1)
    try:
        module.train()
        for epoch in range(epochs):
            order = torch.randperm(len(x_all), generator=generator).to(device)
            # Summed on the device and read once an epoch: reading each step's loss
            # waits for the GPU every step (bench/gpu_check.py, bench/RESULTS.md).
            total = torch.zeros((), device=device)
            for start in range(0, len(order), batch_size):
                idx = order[start : start + batch_size]
                optimizer.zero_grad()
                loss = loss_fn(module.net(x_all[idx]), y_all[idx])
                loss.backward()
                optimizer.step()
                total += loss.detach() * len(idx)
            events(
                Progress(
                    "train",
                    candidate.name,
                    epoch + 1,
                    epochs,
                    f"epoch {epoch + 1}/{epochs} loss {float(total) / len(order):.4f} on {device}",
                )
            )
    finally:
        torch.set_num_threads(threads_before)
    module = module.cpu().eval()

    events(Progress("train", candidate.name, epochs, epochs, "exporting to ONNX"))
    onnx_bytes = _export(module, preprocessor, spec, x.shape[1], task, classes)
    holdout_x = preprocessor.transform(model_frame(dataset.holdout, spec)).astype(np.float32)
    with torch.no_grad():
        native = module(torch.from_numpy(holdout_x)).numpy()
    if task == "regression":
        native = native.reshape(-1)
    onnx_out = run_model(make_session(onnx_bytes), onnx_feed(dataset.holdout, spec), task)
    parity = check_parity(native, onnx_out, task, candidate.name)

    buffer = io.BytesIO()
    torch.save(
        {
            "state_dict": module.state_dict(),
            "params": params,
            "in_dim": x.shape[1],
            "out_dim": out_dim,
        },
        buffer,
    )
    return TrainedModel(
        candidate=candidate,
        params={**params, "device": device},
        device=device,
        onnx_bytes=onnx_bytes,
        native_bytes=buffer.getvalue(),
        holdout_output=onnx_out,
        parity_max_abs_diff=parity,
        duration_s=time.perf_counter() - started,
    )


def _export(
    module: Any, preprocessor: Any, spec: FeatureSpec, in_dim: int, task: str, classes: list[Any]
) -> bytes:
    import onnx
    import torch
    from onnx import compose, version_converter
    from skl2onnx import convert_sklearn
    from torch.export import Dim

    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    output_name = "probabilities" if task == "classification" else "prediction"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            module,
            (torch.zeros(2, in_dim),),
            input_names=["features"],
            output_names=[output_name],
            dynamic_shapes=({0: Dim("batch")},),
            external_data=False,
            opset_version=EXPORT_OPSET,
            verbose=False,
        )
    assert program is not None
    network = program.model_proto
    prep = convert_sklearn(
        preprocessor,
        name="preprocessor",  # not skl2onnx's default random uuid: reproducible bytes
        initial_types=onnx_input_types(spec),
        target_opset={"": EXPORT_OPSET, "ai.onnx.ml": 3},
    )
    opset = next(o.version for o in network.opset_import if o.domain in ("", "ai.onnx"))
    prep = version_converter.convert_version(prep, opset)
    prep.ir_version = network.ir_version
    merged = compose.merge_models(prep, network, io_map=[(prep.graph.output[0].name, "features")])
    if task == "classification":
        add_label_output(merged, classes)
    onnx.checker.check_model(merged)
    return model_bytes(merged)
