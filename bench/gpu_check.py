"""GPU check: the MLP on CUDA (a captured CUDA graph) against the CPU, side by side.

Part (a), the sample data through the real code path in a temporary project
(init_project -> ingest_file -> prepare_dataset -> feature_spec -> train_mlp): once on
CUDA (when torch sees one) and once on the CPU (train_mlp's one thread). For each: the
device, the batch and lr used, the training-loop time, the first epoch (data upload,
warm-up, graph capture) against the steady epochs, the whole train_mlp time (loop + ONNX
export + parity check), the ONNX parity and the holdout ROC AUC; then the speed-up
(target >= 3x on CUDA). It also prints what `device = "auto"` would choose, and why.

Part (b), an MLP [256, 256] for 5 epochs on synthetic data (seeded numpy, 40 features,
1M rows by default, 80/20 train/holdout), through `engine.models.mlp.fit_network`: on
CUDA with the device rule (`device_batch`) and on the CPU on all the machine's cores
(batch 256, lr 0.002, torch's own thread count); the loop times, first epoch vs steady,
the holdout AUC of each (target: within 0.005) and the speed-up (target >= 30x).

Usage:
    .venv/bin/python bench/gpu_check.py                  # (a) and (b), 1M rows
    .venv/bin/python bench/gpu_check.py --big-rows 1000000 --big-epochs 5
    .venv/bin/python bench/gpu_check.py --quick          # small sizes (CPU machines)
    .venv/bin/python bench/gpu_check.py --cpu            # CPU only, (a) at full size
    .venv/bin/python bench/gpu_check.py --epochs 50 --batch-size 1024
    .venv/bin/python bench/gpu_check.py --cpu-threads 1   # see RESULTS.md

Without CUDA it says so, runs the CPU measurements ((b) at --quick's size unless
--big-rows is given) and exits 0. Nothing is written anywhere but a temporary project.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SAMPLE = ROOT / "sample_data" / "reference" / "loans_reference.csv"
PARITY_TOLERANCE = 1e-4
QUICK_BIG_ROWS = 20_000


class EpochClock:
    """Times the loop from the Progress events (or fit_network's report calls)."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.epochs: list[float] = []
        self.notes: list[str] = []

    def mark(self, note: str = "") -> None:
        self.epochs.append(time.perf_counter())
        self.notes.append(note)

    def summary(self) -> dict[str, float]:
        marks = [self.start, *self.epochs]
        spans = [b - a for a, b in zip(marks, marks[1:], strict=False)]
        if not spans:
            return {"loop_s": 0.0, "first_s": 0.0, "steady_s": 0.0}
        steady = sorted(spans[1:])[len(spans[1:]) // 2] if len(spans) > 1 else spans[0]
        return {"loop_s": marks[-1] - marks[0], "first_s": spans[0], "steady_s": steady}


def train_once(project: Any, dataset: Any, spec: Any, device: str, args: Any) -> dict[str, Any]:
    from engine.core.config import Candidate
    from engine.core.events import Progress
    from engine.models.mlp import train_mlp
    from engine.pipeline.training_run import holdout_metrics

    clock = EpochClock()

    def events(event: Any) -> None:
        # The loop starts where train_mlp announces the device (after the preprocessing).
        if isinstance(event, Progress) and event.detail.startswith("training on "):
            clock.start = time.perf_counter()
        elif isinstance(event, Progress) and event.detail.startswith("epoch "):
            clock.mark(event.detail)

    params: dict[str, Any] = {"hidden": args.hidden, "epochs": args.epochs, "device": device}
    if args.batch_size:
        params["batch_size"] = args.batch_size
    candidate = Candidate(name=f"mlp_{device}", kind="mlp", params=params)
    started = time.perf_counter()
    model = train_mlp(candidate, dataset, spec, args.seed, events)
    total = time.perf_counter() - started
    metrics = holdout_metrics(dataset, model.holdout_output)
    return {
        "device": model.device,
        "batch": model.params["batch_size"],
        "lr": model.params["lr"],
        "path": model.params.get("cuda_path") or "eager, 1 thread",
        **clock.summary(),
        "total_s": total,
        "parity": model.parity_max_abs_diff,
        "roc_auc": metrics.get("roc_auc"),
    }


def sample_part(args: Any, cuda: bool) -> None:
    from engine.core.project import init_project, open_project
    from engine.data.dataset import prepare_dataset
    from engine.data.features import build_preprocessor, feature_spec, model_frame
    from engine.models.mlp import choose_device, device_batch
    from engine.pipeline.intake import ingest_file

    print("== (a) sample data: train_mlp on CUDA (graph) vs one CPU thread ==")
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="mldeck-gpu-check-") as tmp:
        root = Path(tmp) / "project"
        init_project(root, target=args.target, id_column=args.id_column)
        with open_project(root) as project:
            ingested = ingest_file(project, args.csv)
            spec = feature_spec(project.config, "mlp")
            dataset = prepare_dataset(project, spec)
            in_dim = build_preprocessor(spec).fit_transform(model_frame(dataset.train, spec))
            rows, width = dataset.train.height, int(in_dim.shape[1])
            out_dim = len(dataset.classes or []) or 1
            print(
                f"data: {args.csv.name} ({ingested.status}), train {rows} rows x {width} "
                f"inputs, holdout {dataset.holdout.height}; epochs {args.epochs}, "
                f"batch {args.batch_size or 'per device (cpu 256, cuda ' + str(device_batch(rows, 0.002)[0]) + ')'}, "
                f"hidden {args.hidden}"
            )
            for available in (True, False):
                _, why = choose_device(
                    "auto",
                    rows,
                    width,
                    args.hidden,
                    out_dim,
                    args.epochs,
                    args.batch_size,
                    available,
                )
                label = "with CUDA" if available else "without CUDA"
                print(f"device = 'auto' {label}: {why}")
            print()
            if cuda:
                # Twice: the first CUDA training in a process also loads the kernels it uses
                # (CUDA's lazy module loading); the engine trains in a warm child process
                # (engine.service.training_worker), where every training after the first is
                # the second kind.
                first = train_once(project, dataset, spec, "cuda", args)
                results.append({**first, "device": "cuda", "path": first["path"] + ", 1st"})
                results.append(train_once(project, dataset, spec, "cuda", args))
            results.append(train_once(project, dataset, spec, "cpu", args))

    print(
        f"{'device':7} {'path':16} {'batch':>6} {'lr':>8} {'loop s':>8} {'1st ep s':>9} "
        f"{'steady ep s':>11} {'train_mlp s':>11} {'parity':>9} {'':3} {'roc_auc':>8}"
    )
    for r in results:
        auc = f"{r['roc_auc']:.4f}" if r["roc_auc"] is not None else "-"
        ok = "ok" if r["parity"] <= PARITY_TOLERANCE else "OVER"
        print(
            f"{r['device']:7} {r['path']:16} {r['batch']:>6} {r['lr']:>8.4g} {r['loop_s']:8.3f} "
            f"{r['first_s']:9.3f} {r['steady_s']:11.4f} {r['total_s']:11.2f} "
            f"{r['parity']:9.2e} {ok:3} {auc:>8}"
        )
    if cuda:
        first, gpu, cpu = results
        for label, run in (("first CUDA training in the process", first), ("warm process", gpu)):
            loop = cpu["loop_s"] / run["loop_s"]
            print(
                f"speed-up CPU thread / CUDA, {label}: train loop {loop:.2f}x (target >= 3x: "
                f"{'met' if loop >= 3 else 'NOT met'}), steady epoch "
                f"{cpu['steady_s'] / run['steady_s']:.1f}x, whole train_mlp "
                f"{cpu['total_s'] / run['total_s']:.2f}x; capture + upload (1st epoch - steady) "
                f"{run['first_s'] - run['steady_s']:.3f} s"
            )
    else:
        print("speed-up CPU/GPU: n/a (no CUDA)")


def synthetic(rows: int, features: int, seed: int) -> tuple[Any, Any]:
    import numpy as np

    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, features), dtype=np.float32)
    w = rng.standard_normal(features).astype(np.float32) * (1.5 / features**0.5)
    logit = x @ w + 0.8 * x[:, 0] * x[:, 1] - 0.5 * (x[:, 2] ** 2 - 1) + np.sin(2 * x[:, 3])
    y = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    return x, y


def big_once(device: str, x: Any, y: Any, hx: Any, hy: Any, args: Any) -> dict[str, Any]:
    import numpy as np
    import torch
    from sklearn.metrics import roc_auc_score

    from engine.models.mlp import _module, device_batch, fit_network

    hidden = args.big_hidden
    if device == "cuda":
        batch, lr = device_batch(len(x), 0.002)
    else:
        batch, lr = 256, 0.002
    torch.manual_seed(args.seed)
    module = _module(x.shape[1], hidden, 2, "classification", 0.0, 1.0).to(device)
    clock = EpochClock()
    path = fit_network(
        module,
        x,
        torch.from_numpy(y),
        "classification",
        device=device,
        epochs=args.big_epochs,
        batch_size=batch,
        lr=lr,
        weight_decay=0.0,
        seed=args.seed,
        report=lambda epoch, epochs, loss, note: clock.mark(f"{loss:.4f}"),
        cpu_threads=None,
    )
    summary = clock.summary()
    module = module.eval()
    with torch.no_grad():
        dev = next(module.parameters()).device
        proba = np.concatenate(
            [
                module(torch.from_numpy(hx[i : i + 65536]).to(dev))[:, 1].cpu().numpy()
                for i in range(0, len(hx), 65536)
            ]
        )
    return {
        "device": device,
        "path": path or f"eager, {torch.get_num_threads()} threads",
        "batch": batch,
        "lr": lr,
        **summary,
        "loss": clock.notes[-1] if clock.notes else "-",
        "auc": float(roc_auc_score(hy, proba)),
    }


def big_part(args: Any, cuda: bool, rows: int) -> None:
    print(
        f"\n== (b) MLP {args.big_hidden}, {args.big_epochs} epochs, {rows} rows x "
        f"{args.big_features} synthetic features: CUDA graph vs CPU on all cores =="
    )
    t0 = time.perf_counter()
    x_all, y_all = synthetic(rows, args.big_features, args.seed)
    cut = int(rows * 0.8)
    x, y, hx, hy = x_all[:cut], y_all[:cut], x_all[cut:], y_all[cut:]
    print(
        f"data: train {len(x)}, holdout {len(hx)}, positives {y_all.mean():.3f} "
        f"(generated in {time.perf_counter() - t0:.1f} s)"
    )
    results = []
    if cuda:
        results.append(big_once("cuda", x, y, hx, hy, args))
    results.append(big_once("cpu", x, y, hx, hy, args))
    print(
        f"{'device':7} {'path':18} {'batch':>6} {'lr':>8} {'loop s':>8} {'1st ep s':>9} "
        f"{'steady ep s':>11} {'last loss':>9} {'holdout auc':>11}"
    )
    for r in results:
        print(
            f"{r['device']:7} {r['path']:18} {r['batch']:>6} {r['lr']:>8.4g} {r['loop_s']:8.2f} "
            f"{r['first_s']:9.3f} {r['steady_s']:11.4f} {r['loss']:>9} {r['auc']:11.4f}"
        )
    if cuda:
        gpu, cpu = results
        speed = cpu["loop_s"] / gpu["loop_s"]
        gap = abs(cpu["auc"] - gpu["auc"])
        print(
            f"speed-up CPU ({os.cpu_count()} cores) / CUDA: loop {speed:.1f}x (target >= 30x: "
            f"{'met' if speed >= 30 else 'NOT met'}), steady epoch "
            f"{cpu['steady_s'] / gpu['steady_s']:.1f}x; AUC gap {gap:.4f} (target <= 0.005: "
            f"{'met' if gap <= 0.005 else 'NOT met'}); capture + upload "
            f"{gpu['first_s'] - gpu['steady_s']:.3f} s"
        )


def warm_process() -> None:
    """One eager Adam step on the CPU before any timing: torch's lazy imports and first-call
    set-up (about a second on these machines) would otherwise land in whichever run is
    first, which is the CUDA one."""
    import torch

    t0 = time.perf_counter()
    net = torch.nn.Linear(4, 2)
    optimizer = torch.optim.Adam(net.parameters())
    torch.nn.functional.cross_entropy(
        net(torch.zeros(8, 4)), torch.zeros(8, dtype=torch.long)
    ).backward()
    optimizer.step()
    print(f"process warm-up (torch's lazy set-up, excluded): {time.perf_counter() - t0:.2f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="(a)'s batch on both devices (default: each device's own: 256 on the CPU, "
        "the device rule on CUDA, which is 256 for the sample data)",
    )
    parser.add_argument("--hidden", type=int, nargs="+", default=[64, 32])
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--csv", type=Path, default=SAMPLE)
    parser.add_argument("--target", default="default")
    parser.add_argument("--id", dest="id_column", default="loan_id")
    parser.add_argument(
        "--cpu-threads",
        type=int,
        help="torch.set_num_threads for the whole run (default: torch's own choice)",
    )
    parser.add_argument("--cpu", action="store_true", help="measure the CPU only")
    parser.add_argument(
        "--quick", action="store_true", help=f"(b) on {QUICK_BIG_ROWS} rows, 2 epochs"
    )
    parser.add_argument("--big-rows", type=int, default=None, help="(b)'s rows (0: skip (b))")
    parser.add_argument("--big-epochs", type=int, default=5)
    parser.add_argument("--big-features", type=int, default=40)
    parser.add_argument("--big-hidden", type=int, nargs="+", default=[256, 256])
    parser.add_argument("--skip-sample", action="store_true", help="skip (a)")
    args = parser.parse_args()

    import torch

    if args.cpu_threads:
        torch.set_num_threads(args.cpu_threads)

    cuda = torch.cuda.is_available() and not args.cpu
    print(
        f"python {platform.python_version()}, torch {torch.__version__} "
        f"(built for CUDA: {torch.version.cuda or 'no'}, cuDNN "
        f"{torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else 'no'}), "
        f"{os.cpu_count()} cpus, torch threads {torch.get_num_threads()}"
    )
    if cuda:
        t0 = time.perf_counter()
        torch.zeros(1, device="cuda")
        torch.cuda.synchronize()
        free, total = torch.cuda.mem_get_info()
        print(
            f"CUDA device: {torch.cuda.get_device_name(0)}, {free / 2**30:.0f} of "
            f"{total / 2**30:.0f} GiB free; context start (excluded from timings) "
            f"{time.perf_counter() - t0:.2f} s"
        )
    elif args.cpu:
        print("--cpu: measuring the CPU only")
    else:
        print("CUDA is not available here: measuring the CPU only")
    warm_process()
    print()

    if not args.skip_sample:
        sample_part(args, cuda)
    big_rows = args.big_rows
    if big_rows is None:
        big_rows = QUICK_BIG_ROWS if args.quick or not cuda else 1_000_000
    if args.quick:
        args.big_epochs = min(args.big_epochs, 2)
    if big_rows:
        big_part(args, cuda, big_rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
