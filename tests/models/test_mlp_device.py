"""The MLP's device rules (pure functions) and its training paths.

The CPU path is covered here and by test_training.py; the CUDA paths (the captured
graph, the pinned-host stream) run only where torch sees an NVIDIA GPU.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from engine.core.config import Candidate
from engine.core.errors import TrainingError
from engine.core.project import Project
from engine.data.dataset import prepare_dataset
from engine.data.features import feature_spec
from engine.models import mlp
from engine.models.mlp import choose_device, device_batch, fit_network, network_macs, train_mlp
from engine.pipeline.intake import ingest_file

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs an NVIDIA GPU (CUDA)")

SAMPLE_IN = 33  # the sample data's columns after one-hot (12 numeric + 21 categories)


# ----------------------------------------------------------------- the rules


def test_network_macs() -> None:
    assert network_macs(SAMPLE_IN, [64, 32], 2) == 33 * 64 + 64 * 32 + 32 * 2
    assert network_macs(40, [256, 256], 2) == 40 * 256 + 256 * 256 + 256 * 2


def test_device_batch_rule() -> None:
    # rows / 64 as a power of two in [256, 4096]; lr x sqrt(batch / 256).
    assert device_batch(16_000, 0.002) == (256, pytest.approx(0.002))
    assert device_batch(40_000, 0.002) == (512, pytest.approx(0.002 * 2**0.5))
    assert device_batch(1_000_000, 0.002) == (4096, pytest.approx(0.008))
    assert device_batch(50_000_000, 0.002)[0] == 4096
    batch, lr = device_batch(100, 0.002)  # fewer rows than the smallest batch: one batch
    assert batch == 100 and lr == pytest.approx(0.002 * (100 / 256) ** 0.5)
    for rows in (300, 17_000, 123_456, 999_999):
        batch = device_batch(rows, 1.0)[0]
        assert batch & (batch - 1) == 0 and 256 <= batch <= 4096


def test_configured_devices_are_taken_as_asked() -> None:
    args = (16_000, SAMPLE_IN, [64, 32], 2, 25, None)
    assert choose_device("cpu", *args, cuda_available=True) == ("cpu", "cpu (configured)")
    assert choose_device("cuda", *args, cuda_available=True) == ("cuda", "cuda (configured)")
    with pytest.raises(TrainingError, match="CUDA is not available"):
        choose_device("cuda", *args, cuda_available=False)
    assert choose_device("auto", *args, cuda_available=False) == (
        "cpu",
        "auto -> cpu: no CUDA device",
    )


def test_auto_keeps_small_work_on_the_cpu() -> None:
    # The tests' 3k-row project, [16], 3 epochs: milliseconds of CPU work.
    device, reason = choose_device("auto", 2_400, SAMPLE_IN, [16], 2, 3, None, True)
    assert device == "cpu"
    assert reason.startswith("auto -> cpu: 2.4k rows x ") and "3 epochs" in reason
    # A configured small batch on a mid-sized job: launch-bound steps, still the CPU.
    device, _ = choose_device("auto", 5_000, SAMPLE_IN, [64, 32], 2, 25, 32, True)
    assert device == "cpu"


def test_auto_sends_the_sample_data_and_large_jobs_to_cuda() -> None:
    # The sample data: 16k rows, [64, 32], 25 epochs: ~1.1 s on a thread vs ~0.7 s.
    device, reason = choose_device("auto", 16_000, SAMPLE_IN, [64, 32], 2, 25, None, True)
    assert device == "cuda"
    assert reason.startswith("auto -> cuda: 16k rows x 4.2k MACs x 25 epochs, est. cpu ")
    device, reason = choose_device("auto", 1_000_000, 40, [256, 256], 2, 5, None, True)
    assert device == "cuda" and reason.startswith("auto -> cuda: 1M rows x 76.3k MACs x 5")


# ----------------------------------------------------------------- training paths


def synthetic(rows: int, features: int = 8, seed: int = 0) -> tuple[np.ndarray, torch.Tensor]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, features)).astype(np.float32)
    logit = x[:, 0] - 0.7 * x[:, 1] + 0.5 * x[:, 2] * x[:, 3]
    y = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    return x, torch.from_numpy(y)


def fit(
    device: str, x: np.ndarray, y: torch.Tensor, **kw: Any
) -> tuple[Any, str | None, list[float]]:
    torch.manual_seed(7)
    module = mlp._module(x.shape[1], [32, 16], 2, "classification", 0.0, 1.0).to(device)
    losses: list[float] = []
    args: dict[str, Any] = {"epochs": 4, "batch_size": 256, "lr": 0.005, "weight_decay": 0.0}
    args.update(kw)
    path = fit_network(
        module,
        x,
        y,
        "classification",
        device=device,
        seed=3,
        report=lambda epoch, epochs, loss, note: losses.append(loss),
        **args,
    )
    return module.cpu().eval(), path, losses


def holdout_proba(module: Any, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return module(torch.from_numpy(x)).numpy()[:, 1]  # type: ignore[no-any-return]


def test_cpu_path_learns_and_is_deterministic() -> None:
    x, y = synthetic(3_000)
    first, path, losses = fit("cpu", x, y)
    second, _, _ = fit("cpu", x, y)
    assert path is None and len(losses) == 4 and losses[-1] < losses[0]
    for a, b in zip(first.state_dict().values(), second.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_train_mlp_records_the_choice_on_cpu(
    make_project: Callable[..., Path],
    open_proj: Callable[[Path], Project],
    small_reference: Path,
) -> None:
    project = open_proj(make_project(models=None))
    ingest_file(project, small_reference)
    spec = feature_spec(project.config, "mlp")
    dataset = prepare_dataset(project, spec)
    candidate = Candidate("net", "mlp", {"hidden": [8], "epochs": 2, "device": "cpu"})
    model = train_mlp(candidate, dataset, spec, 42, lambda event: None)
    again = train_mlp(candidate, dataset, spec, 42, lambda event: None)
    assert model.onnx_bytes == again.onnx_bytes  # the repo's reproduce check relies on it
    # ... and from any checkout: no source path or stack trace in the graph's metadata
    assert b"pkg.torch.onnx.stack_trace" not in model.onnx_bytes
    assert str(Path(mlp.__file__).resolve().parent).encode() not in model.onnx_bytes
    assert model.device == "cpu"
    assert model.params["device_choice"] == "cpu (configured)"
    assert model.params["batch_size"] == 256 and model.params["lr"] == 0.002
    assert "cuda_path" not in model.params
    json.dumps(model.params)  # goes into params_json as it is


@needs_cuda
def test_graph_path_matches_the_eager_path() -> None:
    x, y = synthetic(20_000)
    hx, hy = synthetic(5_000, seed=1)
    eager, eager_path, _ = fit("cpu", x, y)
    graph, graph_path, losses = fit("cuda", x, y)
    assert eager_path is None and graph_path == "graph"
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]
    p_eager, p_graph = holdout_proba(eager, hx), holdout_proba(graph, hx)
    # Other shuffles (device generator), batch and lr (the device rule), last partial batch
    # dropped: another model of the same quality, not the same probabilities (measured on an
    # H200: AUC within 0.01, mean |p_eager - p_graph| 0.08 after 2 epochs).
    assert abs(roc_auc_score(hy, p_eager) - roc_auc_score(hy, p_graph)) < 0.01
    # Reproducible on the device with its seed.
    again, _, _ = fit("cuda", x, y)
    np.testing.assert_allclose(holdout_proba(again, hx), p_graph, atol=1e-5)


@needs_cuda
def test_streamed_path_when_the_data_does_not_fit(monkeypatch: pytest.MonkeyPatch) -> None:
    x, y = synthetic(20_000)
    hx, hy = synthetic(5_000, seed=1)
    eager, _, _ = fit("cpu", x, y)
    monkeypatch.setattr(mlp, "DEVICE_MEMORY_SHARE", 0.0)
    streamed, path, losses = fit("cuda", x, y)
    assert path == "stream" and losses[-1] < losses[0]
    auc_eager = roc_auc_score(hy, holdout_proba(eager, hx))
    assert abs(roc_auc_score(hy, holdout_proba(streamed, hx)) - auc_eager) < 0.01


@needs_cuda
def test_train_mlp_on_cuda_records_batch_lr_and_path(
    make_project: Callable[..., Path],
    open_proj: Callable[[Path], Project],
    small_reference: Path,
) -> None:
    project = open_proj(make_project(models=None))
    ingest_file(project, small_reference)
    spec = feature_spec(project.config, "mlp")
    dataset = prepare_dataset(project, spec)
    candidate = Candidate("net", "mlp", {"hidden": [16], "epochs": 3, "device": "cuda"})
    model = train_mlp(candidate, dataset, spec, 42, lambda event: None)
    rows = dataset.train.height
    batch, lr = device_batch(rows, 0.002)
    assert model.device == "cuda" and model.params["cuda_path"] == "graph"
    assert (model.params["batch_size"], model.params["lr"]) == (batch, pytest.approx(lr))
    assert model.params["device_choice"] == "cuda (configured)"
    assert model.parity_max_abs_diff <= 1e-4


def test_lineage_prints_the_device_choice() -> None:
    from app.commands.lineage import _device

    record: Any = {"device": "cuda", "params": {"device_choice": "auto -> cuda: 1M rows x 76.3k"}}
    assert _device(record) == "cuda (auto -> cuda: 1M rows x 76.3k)"
    sklearn: Any = {"device": "cpu", "params": {"C": 1.0}}
    assert _device(sklearn) == "cpu"
