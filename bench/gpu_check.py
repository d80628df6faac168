"""GPU check: train the MLP candidate on CUDA (when there is one) and on CPU.

Runs the real code path on the sample data in a temporary project:
init_project -> ingest_file -> prepare_dataset -> feature_spec -> train_mlp,
once with device = "cpu" and, when torch.cuda.is_available(), once with
device = "cuda". For each it prints the device, the training-loop time, the
whole train_mlp time (loop + ONNX export + parity check), the ONNX parity
(TrainedModel.parity_max_abs_diff) and the holdout ROC AUC, then the CPU/GPU
speed-up. Nothing is written anywhere but the temporary project.

Usage:
    .venv/bin/python bench/gpu_check.py                  # 25 epochs, batch 256
    .venv/bin/python bench/gpu_check.py --epochs 50 --batch-size 1024
    .venv/bin/python bench/gpu_check.py --cpu-threads 1   # see RESULTS.md

Without CUDA it says so, runs the CPU measurement and exits 0.
"""

from __future__ import annotations

import argparse
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


def train_once(project: Any, dataset: Any, spec: Any, device: str, args: Any) -> dict[str, Any]:
    from engine.core.config import Candidate
    from engine.core.events import Progress
    from engine.models.mlp import train_mlp
    from engine.pipeline.training_run import holdout_metrics

    marks: dict[str, float] = {}

    def events(event: Any) -> None:
        # The loop ends where train_mlp announces the ONNX export.
        if isinstance(event, Progress) and event.detail == "exporting to ONNX":
            marks["loop_end"] = time.perf_counter()

    params = {
        "hidden": args.hidden,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "device": device,
    }
    candidate = Candidate(name=f"mlp_{device}", kind="mlp", params=params)
    started = time.perf_counter()
    model = train_mlp(candidate, dataset, spec, args.seed, events)
    total = time.perf_counter() - started
    metrics = holdout_metrics(dataset, model.holdout_output)
    return {
        "device": model.device,
        "loop_s": marks.get("loop_end", started + total) - started,
        "total_s": total,
        "parity": model.parity_max_abs_diff,
        "roc_auc": metrics.get("roc_auc"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--batch-size", type=int, default=256)
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
    args = parser.parse_args()

    import torch

    if args.cpu_threads:
        torch.set_num_threads(args.cpu_threads)

    from engine.core.project import init_project, open_project
    from engine.data.dataset import prepare_dataset
    from engine.data.features import feature_spec
    from engine.pipeline.intake import ingest_file

    cuda = torch.cuda.is_available()
    print(
        f"python {platform.python_version()}, torch {torch.__version__} "
        f"(built for CUDA: {torch.version.cuda or 'no'}), cpu threads {torch.get_num_threads()}"
    )
    if cuda:
        print(f"CUDA available: {torch.cuda.get_device_name(0)}")
    else:
        print("CUDA is not available here: measuring the CPU only")

    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="mldeck-gpu-check-") as tmp:
        root = Path(tmp) / "project"
        init_project(root, target=args.target, id_column=args.id_column)
        with open_project(root) as project:
            ingested = ingest_file(project, args.csv)
            spec = feature_spec(project.config, "mlp")
            dataset = prepare_dataset(project, spec)
            print(
                f"data: {args.csv.name} ({ingested.status}), train {dataset.train.height} rows, "
                f"holdout {dataset.holdout.height}, {len(spec.numeric)} numeric + "
                f"{len(spec.categorical)} categorical features; epochs {args.epochs}, "
                f"batch {args.batch_size}, hidden {args.hidden}\n"
            )
            if cuda:
                t0 = time.perf_counter()
                torch.zeros(1, device="cuda")
                torch.cuda.synchronize()
                print(
                    f"CUDA context start (excluded from timings): {time.perf_counter() - t0:.2f} s"
                )
                results.append(train_once(project, dataset, spec, "cuda", args))
            results.append(train_once(project, dataset, spec, "cpu", args))

    print(
        f"{'device':8} {'train loop s':>13} {'train_mlp s':>12} {'parity max|diff|':>17} {'roc_auc':>8}"
    )
    for r in results:
        auc = f"{r['roc_auc']:.4f}" if r["roc_auc"] is not None else "-"
        ok = "ok" if r["parity"] <= PARITY_TOLERANCE else "OVER"
        print(
            f"{r['device']:8} {r['loop_s']:13.2f} {r['total_s']:12.2f} "
            f"{r['parity']:13.2e} {ok:>3} {auc:>8}"
        )
    by_device = {r["device"]: r for r in results}
    if "cuda" in by_device:
        cpu, gpu = by_device["cpu"], by_device["cuda"]
        print(
            f"\nspeed-up CPU/GPU: train loop {cpu['loop_s'] / gpu['loop_s']:.2f}x, "
            f"whole train_mlp {cpu['total_s'] / gpu['total_s']:.2f}x"
        )
    else:
        print("\nspeed-up CPU/GPU: n/a (no CUDA)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
