"""The PyTorch MLP candidate, on the CPU or CUDA (`choose_device`; choice and reason recorded).

The sklearn preprocessor is fitted on the training rows and converted with skl2onnx; the
network is exported with torch.onnx; the two graphs are merged so the ONNX model takes raw
columns like every other model. On CUDA the step runs as a CUDA graph (`fit_network`).
"""

from __future__ import annotations

import io
import logging
import time
import warnings
from typing import Any, Protocol

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


# Calibration of `choose_device`, from the H200 measurements of issue 16 (torch 2.11):
# hidden [64, 32] on the sample data (~33 inputs after one-hot, 4.2k multiply-adds a row),
# batch 256: one CPU thread 0.69 ms a step, the CUDA graph step 0.11 ms; 1M rows x 40,
# hidden [256, 256] (76k multiply-adds a row), batch 4096 as a graph: 0.05 s an epoch
# (244 steps, 0.2 ms a step).
CPU_S_PER_ROW_MAC = 0.69e-3 / (256 * 4224)
"""One CPU thread: seconds per row per multiply-add of the network (forward + backward + Adam)."""
GPU_STEP_FLOOR_S = 0.11e-3
"""A replayed CUDA-graph step never costs less than this: launch-bound, whatever the batch."""
GPU_S_PER_ROW_MAC = 0.05 / (1_000_000 * 76_288)
"""The CUDA graph step once arithmetic dominates (the 1M x 40, [256, 256] epoch)."""
GPU_FIXED_S = 0.5
"""Per training on CUDA: moving the data, three warm-up steps on a side stream, the capture,
the ONNX export's copy back. An estimate (the CUDA context itself is paid once per process
and not counted); bench/gpu_check.py prints the measured capture time to check it."""
DEVICE_BATCH_MIN, DEVICE_BATCH_MAX, DEVICE_ROWS_PER_BATCH = 256, 4096, 64
DEVICE_MEMORY_SHARE = 0.5
"""The data goes resident on the device only when it takes at most this share of the free
memory (the rest is the network, its gradients, Adam's state and the graph's pool)."""


def network_macs(in_dim: int, hidden: list[int], out_dim: int) -> int:
    """Multiply-adds of one row's forward pass through the network's linear layers."""
    widths = [in_dim, *hidden, out_dim]
    return sum(a * b for a, b in zip(widths, widths[1:], strict=False))


def device_batch(rows: int, lr: float) -> tuple[int, float]:
    """The batch size and learning rate of a CUDA training whose batch is not configured.

    batch = rows / 64 rounded down to a power of two, clamped to [256, 4096] (never more
    than the rows); lr = the configured lr x sqrt(batch / 256). Why: a graph step costs
    about the same 0.1-0.2 ms from batch 256 to 4096 on an H200 (launch-bound, issue 16:
    0.54 s an epoch at 256 vs 0.05 s at 4096 on 1M rows), so a larger batch is nearly free
    per row; 64 steps an epoch at least keeps enough updates for 25 epochs to converge on
    small data, and 4096 is where the measured gain stopped being a launch-overhead gain.
    The square-root scaling keeps the gradient noise per step about constant for Adam
    (the linear rule overshoots with Adam at 16x the batch).
    """
    batch = DEVICE_BATCH_MIN
    while batch * 2 <= min(DEVICE_BATCH_MAX, rows // DEVICE_ROWS_PER_BATCH):
        batch *= 2
    batch = max(1, min(batch, rows))
    return batch, lr * (batch / DEVICE_BATCH_MIN) ** 0.5


def _count(n: float) -> str:
    for unit, size in (("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.1f}".rstrip("0").rstrip(".") + unit
    return str(int(n))


def choose_device(
    requested: str,
    rows: int,
    in_dim: int,
    hidden: list[int],
    out_dim: int,
    epochs: int,
    batch_size: int | None,
    cuda_available: bool,
) -> tuple[str, str]:
    """(device, reason): where the MLP trains, and why, as recorded in the version's params.

    "cpu" and "cuda" are taken as asked ("cuda" without a device is an error). "auto" picks
    CUDA when the estimated CPU loop (rows x multiply-adds x epochs at one thread's measured
    rate) is longer than the estimated CUDA-graph loop (steps x max(launch floor, arithmetic))
    plus a fixed 0.5 s for capture and transfers. With those figures that means: the
    sample data (16k rows, [64, 32], 25 epochs: ~1.1 s on a CPU thread against ~0.7 s) goes
    to CUDA; a few thousand rows or a handful of epochs (under ~0.5 s of CPU work) stay on
    the CPU, where starting the device costs more than the whole training.
    `batch_size` is the configured one, or None for the device rule (`device_batch`).
    """
    if requested == "cpu":
        return "cpu", "cpu (configured)"
    if requested == "cuda":
        if not cuda_available:
            raise TrainingError("models.mlp.device = 'cuda' but CUDA is not available here")
        return "cuda", "cuda (configured)"
    if not cuda_available:
        return "cpu", "auto -> cpu: no CUDA device"
    macs = network_macs(in_dim, hidden, out_dim)
    cpu_s = rows * macs * epochs * CPU_S_PER_ROW_MAC
    batch = batch_size or device_batch(rows, 1.0)[0]
    batch = max(1, min(batch, rows))
    step_s = max(GPU_STEP_FLOOR_S, batch * macs * GPU_S_PER_ROW_MAC)
    gpu_s = GPU_FIXED_S + (rows // batch or 1) * epochs * step_s
    shape = f"{_count(rows)} rows x {_count(macs)} MACs x {epochs} epochs"
    if cpu_s > gpu_s:
        return "cuda", f"auto -> cuda: {shape}, est. cpu {cpu_s:.2g} s > cuda {gpu_s:.2g} s"
    return "cpu", f"auto -> cpu: {shape}, est. cpu {cpu_s:.2g} s <= cuda {gpu_s:.2g} s"


def train_mlp(
    candidate: Candidate, dataset: Dataset, spec: FeatureSpec, seed: int, events: EventSink
) -> TrainedModel:
    import torch

    started = time.perf_counter()
    params = _params(candidate)
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
    configured_batch = "batch_size" in candidate.params
    device, reason = choose_device(
        params["device"],
        len(x),
        x.shape[1],
        params["hidden"],
        out_dim,
        int(params["epochs"]),
        int(params["batch_size"]) if configured_batch else None,
        torch.cuda.is_available(),
    )
    batch_size, lr = int(params["batch_size"]), float(params["lr"])
    if device == "cuda" and not configured_batch:
        batch_size, lr = device_batch(len(x), lr)

    torch.manual_seed(seed)
    module = _module(x.shape[1], params["hidden"], out_dim, task, y_mean, y_std).to(device)

    def report(epoch: int, epochs: int, loss: float, path: str) -> None:
        detail = f"epoch {epoch + 1}/{epochs} loss {loss:.4f} on {device}"
        events(Progress("train", candidate.name, epoch + 1, epochs, detail + path))

    epochs = int(params["epochs"])
    events(Progress("train", candidate.name, 0, epochs, f"training on {device} ({reason})"))
    cuda_path = fit_network(
        module,
        x,
        y,
        task,
        device=device,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        weight_decay=float(params["weight_decay"]),
        seed=seed,
        report=report,
    )
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
    recorded = {**params, "device": device, "device_choice": reason}
    if device == "cuda":
        recorded.update(batch_size=batch_size, lr=lr, cuda_path=cuda_path)
    return TrainedModel(
        candidate=candidate,
        params=recorded,
        device=device,
        onnx_bytes=onnx_bytes,
        native_bytes=buffer.getvalue(),
        holdout_output=onnx_out,
        parity_max_abs_diff=parity,
        duration_s=time.perf_counter() - started,
    )


class Report(Protocol):
    """report(epoch, epochs, mean loss, note): called once an epoch, after the loss is read."""

    def __call__(self, epoch: int, epochs: int, loss: float, note: str, /) -> None: ...


def fit_network(
    module: Any,
    x: np.ndarray,
    y: Any,
    task: str,
    *,
    device: str,
    epochs: int,
    batch_size: int,
    lr: float,
    weight_decay: float,
    seed: int,
    report: Report,
    cpu_threads: int | None = 1,
) -> str | None:
    """Train `module.net` in place on (x, y); returns the CUDA path taken ("graph" or
    "stream") or None on the CPU.

    CPU: the eager loop, shuffled by a CPU generator seeded with `seed`, on `cpu_threads`
    threads (1 by default: small dense layers lose to thread hand-offs; None leaves torch's
    own setting, as bench/gpu_check.py does for "all cores").
    CUDA: when the data fits in `DEVICE_MEMORY_SHARE` of the free device memory, the graph
    path (`_fit_graph`); otherwise the eager loop fed from pinned host buffers (`_fit_streamed`),
    which is also the fallback, from the same initial weights, if the capture itself fails.
    """
    import torch

    loss_fn = torch.nn.CrossEntropyLoss() if task == "classification" else torch.nn.MSELoss()
    if device != "cpu":
        need = x.nbytes + y.element_size() * y.nelement()
        free, _ = torch.cuda.mem_get_info(torch.device(device))
        path = "stream"
        if need <= DEVICE_MEMORY_SHARE * free:
            failed = _fit_graph(
                module, x, y, loss_fn, epochs, batch_size, lr, weight_decay, seed, report
            )
            if failed is None:
                return "graph"
            path = f"stream (graph capture failed: {failed})"
        _fit_streamed(module, x, y, loss_fn, epochs, batch_size, lr, weight_decay, seed, report)
        return path

    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(module.parameters(), lr=lr, weight_decay=weight_decay)
    x_all = torch.from_numpy(x)
    y_all = y
    threads_before = torch.get_num_threads()
    if cpu_threads is not None:
        # Small dense layers: thread hand-offs cost more than they save here
        # (bench/gpu_check.py measured a step at 10.3 ms with 2 threads, 2.0 ms with 1).
        torch.set_num_threads(cpu_threads)
    try:
        module.train()
        for epoch in range(epochs):
            order = torch.randperm(len(x_all), generator=generator)
            # Summed as a tensor and read once an epoch (bench/RESULTS.md).
            total = torch.zeros(())
            for start in range(0, len(order), batch_size):
                idx = order[start : start + batch_size]
                optimizer.zero_grad()
                loss = loss_fn(module.net(x_all[idx]), y_all[idx])
                loss.backward()
                optimizer.step()
                total += loss.detach() * len(idx)
            report(epoch, epochs, float(total) / len(order), "")
    finally:
        torch.set_num_threads(threads_before)
    return None


def _fit_graph(
    module: Any,
    x: np.ndarray,
    y: Any,
    loss_fn: Any,
    epochs: int,
    batch_size: int,
    lr: float,
    weight_decay: float,
    seed: int,
    report: Report,
) -> str | None:
    """The whole step captured once as a CUDA graph and replayed per batch; None when
    trained, or why the warm-up or capture failed (nothing trained then, weights put back).

    The data is copied to the device once and shuffled there (`torch.randperm` with a
    device generator seeded with `seed`); a static index tensor is refilled with `copy_`
    before each replay, and the step gathers its batch from it. The last partial batch of
    each epoch is dropped, not padded: a graph has fixed shapes, padding would train on
    repeated rows (or need a mask in the loss), and as the order is drawn afresh each epoch
    the dropped rows differ from epoch to epoch (under 1/64 of the rows with
    `device_batch`'s rule). Three warm-up steps run on a side stream (as capture requires),
    then the weights and Adam's state are put back, so the graph trains from the same
    initial weights as the eager loop. The loss is summed on the device inside the graph
    and read once an epoch.
    """
    import torch

    dev = next(module.parameters()).device
    x_dev = torch.from_numpy(x).to(dev)
    y_dev = y.to(dev)
    rows = len(x_dev)
    batch = max(1, min(batch_size, rows))
    steps = rows // batch
    optimizer = torch.optim.Adam(
        module.parameters(), lr=lr, weight_decay=weight_decay, fused=True, capturable=True
    )
    static_idx = torch.arange(batch, device=dev)
    total = torch.zeros((), device=dev)
    initial = [p.detach().clone() for p in module.parameters()]
    module.train()

    def step() -> None:
        out = module.net(x_dev.index_select(0, static_idx))
        loss = loss_fn(out, y_dev.index_select(0, static_idx))
        loss.backward()
        optimizer.step()
        total.add_(loss.detach())

    def put_back() -> None:
        with torch.no_grad():
            for param, first in zip(module.parameters(), initial, strict=True):
                param.copy_(first)
            for state in optimizer.state.values():
                for value in state.values():
                    if isinstance(value, torch.Tensor):
                        value.zero_()
        optimizer.zero_grad(set_to_none=True)

    try:
        side = torch.cuda.Stream(device=dev)  # type: ignore[no-untyped-call]
        side.wait_stream(torch.cuda.current_stream(dev))
        with torch.cuda.stream(side):
            for _ in range(3):
                optimizer.zero_grad(set_to_none=True)
                step()
        torch.cuda.current_stream(dev).wait_stream(side)
        put_back()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            step()
    except RuntimeError as exc:
        torch.cuda.synchronize(dev)
        put_back()
        return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__

    generator = torch.Generator(device=dev)
    generator.manual_seed(seed)
    for epoch in range(epochs):
        total.zero_()
        order = torch.randperm(rows, device=dev, generator=generator)
        for i in range(steps):
            static_idx.copy_(order[i * batch : (i + 1) * batch])
            graph.replay()
        report(epoch, epochs, float(total) / steps, f" (graph, batch {batch})")
    return None


def _fit_streamed(
    module: Any,
    x: np.ndarray,
    y: Any,
    loss_fn: Any,
    epochs: int,
    batch_size: int,
    lr: float,
    weight_decay: float,
    seed: int,
    report: Report,
) -> None:
    """The eager step on CUDA, for data larger than the device's free memory: each batch
    is gathered on the host into one of two pinned buffers and copied with
    `non_blocking=True`, so the copy of one batch overlaps the step of the previous one;
    an event per buffer keeps it from being refilled before its copy has finished."""
    import torch

    dev = next(module.parameters()).device
    x_host = torch.from_numpy(x)
    rows = len(x_host)
    batch = max(1, min(batch_size, rows))
    optimizer = torch.optim.Adam(module.parameters(), lr=lr, weight_decay=weight_decay, fused=True)
    buffers = [
        (
            torch.empty((batch, x_host.shape[1]), dtype=x_host.dtype).pin_memory(),
            torch.empty((batch, *y.shape[1:]), dtype=y.dtype).pin_memory(),
        )
        for _ in range(2)
    ]
    copied: list[Any] = [None, None]
    generator = torch.Generator().manual_seed(seed)
    module.train()
    for epoch in range(epochs):
        order = torch.randperm(rows, generator=generator)
        total = torch.zeros((), device=dev)
        for k, start in enumerate(range(0, rows, batch)):
            idx = order[start : start + batch]
            slot, size = k % 2, len(idx)
            if copied[slot] is not None:
                copied[slot].synchronize()
            x_buf, y_buf = buffers[slot]
            torch.index_select(x_host, 0, idx, out=x_buf[:size])
            torch.index_select(y, 0, idx, out=y_buf[:size])
            xb = x_buf[:size].to(dev, non_blocking=True)
            yb = y_buf[:size].to(dev, non_blocking=True)
            event = torch.cuda.Event()  # type: ignore[no-untyped-call]
            event.record()
            copied[slot] = event
            optimizer.zero_grad()
            loss = loss_fn(module.net(xb), yb)
            loss.backward()
            optimizer.step()
            total += loss.detach() * size
        report(epoch, epochs, float(total) / rows, f" (streamed from host, batch {batch})")


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
    _drop_stack_traces(network)
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


STACK_TRACE = "pkg.torch.onnx.stack_trace"


def _drop_stack_traces(model: Any) -> None:
    """Remove the Python stack trace torch.onnx writes into each node's metadata: it holds the
    absolute paths and line numbers of torch's and mldeck's source, so the same network's bytes
    would differ between checkouts, or after an edit above `forward`, and `mldeck reproduce`
    compares bytes."""
    graphs = [model.graph, *(f for f in model.functions)]
    for graph in graphs:
        for node in graph.node:
            kept = [prop for prop in node.metadata_props if prop.key != STACK_TRACE]
            del node.metadata_props[:]
            node.metadata_props.extend(kept)
