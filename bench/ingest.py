"""Ingest benchmark: mldeck's `ingest_file` against a plain DuckDB CSV load.

Generates a seeded CSV (default 1,000,000 rows x 20 columns, about 300 MB),
then measures, each in a fresh child process so that memory figures do not mix:

  baseline (in-memory)  CREATE TABLE t AS SELECT * FROM read_csv(file), duckdb.connect()
  baseline (file db)    the same into a fresh .duckdb file, including close()
  mldeck                ingest_file(project, csv) on a fresh project (init_project
                        with a target and an id column): hash, load, infer the
                        contract, validate, Parquet snapshot, catalog record

Wall time is the operation alone (imports and init_project are outside the
timer); peak RSS is the child's VmHWM. The ratio is mldeck / in-memory baseline
(best of N each). Targets: ratio <= 2.0x, mldeck peak RSS <= 1536 MB.

Usage:
    .venv/bin/python bench/ingest.py                 # 1M x 20, 3 repetitions
    .venv/bin/python bench/ingest.py --rows 200000 --repeat 2
    .venv/bin/python bench/ingest.py --csv some.csv --target label --id rec_id

Exits 0 whatever the verdict: it is a measurement.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

TARGET_RATIO = 2.0
TARGET_RSS_MB = 1536.0
CATEGORIES = [
    ["north", "south", "east", "west", "central"],
    ["RENT", "MORTGAGE", "OWN", "OTHER"],
    ["full_time", "part_time", "self_employed", "unemployed", "retired", "student"],
    ["credit_card", "debt_consolidation", "home_improvement", "car", "medical", "other"],
    ["bronze", "silver", "gold", "platinum"],
]


# --------------------------------------------------------------------------- data


def generate_csv(path: Path, rows: int, cols: int, seed: int) -> tuple[str, str]:
    """Write a seeded CSV; returns (target column, id column).

    Layout: one unique string id, ~1/4 string categoricals, the rest numeric
    (two floats for each int, two float columns with ~2% nulls), the last
    numeric column being the 0/1 target `label`.
    """
    import numpy as np
    import polars as pl

    if cols < 4:
        raise SystemExit("--cols must be at least 4 (id, a categorical, a number, the target)")
    rng = np.random.default_rng(seed)
    n_cat = max(1, round(cols / 4))
    n_num = cols - 1 - n_cat  # includes the target
    data: dict[str, Any] = {}
    ids = pl.int_range(1, rows + 1, eager=True).cast(pl.Utf8).str.zfill(8)
    data["rec_id"] = "REC-" + ids
    for i in range(n_num - 1):
        name = f"num_{i:02d}"
        if i % 3 != 2:  # two floats in three, full float64 precision
            values = rng.normal(loc=100.0 * i, scale=1000.0, size=rows)
            series = pl.Series(name, values)
            if i in (0, 4):
                series = series.scatter(np.flatnonzero(rng.random(rows) < 0.02), None)
        else:  # wide integers (amounts in cents, epoch milliseconds...)
            series = pl.Series(name, rng.integers(0, 10 ** (9 + i % 4), size=rows))
        data[name] = series
    for i in range(n_cat):
        choices = CATEGORIES[i % len(CATEGORIES)]
        idx = rng.integers(0, len(choices), size=rows)
        data[f"cat_{i}"] = pl.Series(choices)[idx]
    data["label"] = pl.Series(rng.integers(0, 2, size=rows))
    frame = pl.DataFrame({k: v.alias(k) for k, v in data.items()})
    frame.write_csv(path)
    os.sync()  # no writeback of the new file during the first measurement
    return "label", "rec_id"


# --------------------------------------------------------------------------- children


def _vm_hwm_mb() -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _vm_rss_mb() -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _child_baseline(csv: str, db_file: str | None) -> dict[str, Any]:
    import duckdb

    rss_before = _vm_rss_mb()
    started = time.perf_counter()
    con = duckdb.connect(db_file) if db_file else duckdb.connect()
    con.execute("CREATE TABLE t AS SELECT * FROM read_csv($p)", {"p": csv})
    rows = con.execute("SELECT count(*) FROM t").fetchone()[0]  # type: ignore[index]
    con.close()
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "rows": rows, "rss_before_mb": rss_before, "peak_mb": _vm_hwm_mb()}


def _timed(store: dict[str, float], label: str, fn: Any) -> Any:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            store[label] = store.get(label, 0.0) + time.perf_counter() - t0

    return wrapper


def _child_mldeck(
    csv: str, workdir: str, target: str, id_column: str, later_batch: bool = False
) -> dict[str, Any]:
    """Time ingest_file on a fresh project.

    later_batch: first ingest the file's first 10,000 rows as their own batch, so
    the measured ingest runs against an existing contract (all soft checks run),
    as every batch after a project's first does.
    """
    import engine.data.ingest as stage
    import engine.data.read as read
    import engine.pipeline.intake as ingest
    import storage.objects as objects
    from engine.core.project import init_project, open_project

    # Wrap the stages (module attributes, looked up at call time) to get a
    # breakdown of this very run; the wrappers cost microseconds.
    parts: dict[str, float] = {}
    read.sha256_file = _timed(parts, "sha256 source (thread, overlaps load)", read.sha256_file)
    read.sniff = _timed(parts, "sniff", read.sniff)
    read.load_batch = _timed(parts, "load_batch (read_csv)", read.load_batch)
    stage.infer_contract = _timed(parts, "  infer_contract", stage.infer_contract)
    stage.write_inferred = _timed(parts, "  write_inferred (toml)", stage.write_inferred)
    stage.validate_batch = _timed(parts, "  validate_batch", stage.validate_batch)
    stage.validate_loaded = _timed(
        parts, "validate_loaded (infer + write + validate)", stage.validate_loaded
    )
    stage.store_snapshot = _timed(
        parts, "store_snapshot (COPY parquet + adopt)", stage.store_snapshot
    )
    objects.sha256_file = _timed(parts, "  sha256 of the parquet (adopt)", objects.sha256_file)
    adopt = objects.ObjectStore.adopt
    objects.ObjectStore.adopt = _timed(parts, "  adopt (hash + fsync + rename)", adopt)  # type: ignore[method-assign]

    root = Path(workdir) / "project"
    t0 = time.perf_counter()
    init_project(root, target=target, id_column=id_column)
    project = open_project(root)
    init_s = time.perf_counter() - t0
    if later_batch:
        seed_csv = Path(workdir) / "first_batch.csv"
        with open(csv) as src, open(seed_csv, "w") as dst:
            for i, line in enumerate(src):
                if i > 10_000:
                    break
                dst.write(line)
        ingest.ingest_file(project, seed_csv)
        project.reload_config()
        parts.clear()
    rss_before = _vm_rss_mb()
    started = time.perf_counter()
    result = ingest.ingest_file(project, Path(csv))
    seconds = time.perf_counter() - started
    project.close()
    snapshot = project.objects.path(result.snapshot_hash) if result.snapshot_hash else None
    return {
        "seconds": seconds,
        "init_s": init_s,
        "status": result.status,
        "rows": result.rows,
        "issues": [i.message for i in result.issues],
        "snapshot_mb": snapshot.stat().st_size / 2**20 if snapshot else None,
        "rss_before_mb": rss_before,
        "peak_mb": _vm_hwm_mb(),
        "parts": parts,
    }


def _child_pieces(csv: str, workdir: str, id_column: str) -> dict[str, Any]:
    """Single steps on their own, uncontended: sha256, read_csv, Parquet COPY variants."""
    import duckdb

    from engine.data.contract import quote

    quote_id = quote(id_column)
    from storage.objects import sha256_file

    out: dict[str, float] = {}
    t0 = time.perf_counter()
    sha256_file(Path(csv))
    out["sha256 of the CSV alone"] = time.perf_counter() - t0
    con = duckdb.connect()
    t0 = time.perf_counter()
    con.execute("CREATE TABLE t AS SELECT * FROM read_csv($p)", {"p": csv})
    out["read_csv into memory alone"] = time.perf_counter() - t0
    target = Path(workdir) / "plain.parquet"
    t0 = time.perf_counter()
    con.execute(f"COPY t TO '{target}' (FORMAT parquet, COMPRESSION zstd)")
    out["COPY t TO parquet (zstd) alone"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    sha256_file(target)
    out["sha256 of that parquet alone"] = time.perf_counter() - t0
    for label, options in [
        ("COPY t TO parquet (zstd level 1)", "COMPRESSION zstd, COMPRESSION_LEVEL 1"),
        ("COPY t TO parquet (snappy)", "COMPRESSION snappy"),
    ]:
        other = Path(workdir) / "other.parquet"
        t0 = time.perf_counter()
        con.execute(f"COPY t TO '{other}' (FORMAT parquet, {options})")
        out[f"{label} alone"] = time.perf_counter() - t0
        out[f"  -> size MiB ({label})"] = other.stat().st_size / 2**20
        other.unlink()
    out["  -> size MiB (zstd default)"] = target.stat().st_size / 2**20
    t0 = time.perf_counter()
    con.execute(
        f"COPY (SELECT * FROM read_csv('{csv}')) TO '{target}' (FORMAT parquet, COMPRESSION zstd)"
    )
    out["read_csv straight to parquet (zstd), no table"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    con.execute(f"SELECT count(*) FROM read_parquet('{target}') ").fetchone()
    con.execute(f"SELECT count(DISTINCT {quote_id}) FROM read_parquet('{target}')").fetchone()
    out["  then count(DISTINCT id) on that parquet"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    con.execute(f"SELECT count(DISTINCT {quote_id}) FROM t").fetchone()
    out["count(DISTINCT id) on the table"] = time.perf_counter() - t0
    con.close()
    return out


def _entry(conn: Any, fn_name: str, args: tuple[Any, ...]) -> None:
    try:
        conn.send(("ok", globals()[fn_name](*args)))
    except BaseException as exc:  # report, don't hang the parent
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()


def run_child(fn_name: str, *args: Any) -> dict[str, Any]:
    """Run one measurement in a fresh (spawned) interpreter and return its dict."""
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_entry, args=(child, fn_name, args))
    proc.start()
    child.close()
    kind, payload = parent.recv()
    proc.join()
    if kind != "ok":
        raise RuntimeError(f"{fn_name} failed in the child: {payload}")
    return payload  # type: ignore[no-any-return]


# --------------------------------------------------------------------------- report


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


BREAKDOWN_ORDER = [
    "sniff",
    "sha256 source (thread, overlaps load)",
    "load_batch (read_csv)",
    "_validate (infer + write + validate)",
    "  infer_contract",
    "  write_inferred (toml)",
    "  validate_batch",
    "_snapshot (COPY parquet + adopt)",
    "  adopt (hash + fsync + rename)",
    "  sha256 of the parquet (adopt)",
]


def _breakdown(key: str, run: dict[str, Any]) -> None:
    order = BREAKDOWN_ORDER
    which = "first batch" if key == "mldeck" else "later batch"
    print(f"\n-- where the time goes (best mldeck {which} run, {run['seconds']:.2f} s) --")
    parts = run["parts"]
    for label in sorted(parts, key=lambda k: order.index(k) if k in order else len(order)):
        print(f"  {label:46} {parts[label]:6.2f} s")
    accounted = sum(parts.get(k, 0.0) for k in order if not k.startswith((" ", "sha256")))
    print(f"  {'rest (catalog, counts, DESCRIBE, events)':46} {run['seconds'] - accounted:6.2f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--cols", type=int, default=20)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each measurement (best of)")
    parser.add_argument("--csv", type=Path, help="use this CSV instead of generating one")
    parser.add_argument("--target", default="label", help="target column (with --csv)")
    parser.add_argument("--id", dest="id_column", default="rec_id", help="id column (with --csv)")
    parser.add_argument("--no-file-db", action="store_true", help="skip the file-db baseline")
    parser.add_argument("--no-pieces", action="store_true", help="skip the single-step timings")
    args = parser.parse_args()

    import duckdb

    print(
        f"machine: {os.cpu_count()} cores, {cpu_model()}; python {platform.python_version()}, "
        f"duckdb {duckdb.__version__}"
    )
    with tempfile.TemporaryDirectory(prefix="mldeck-bench-") as tmp:
        tmpdir = Path(tmp)
        if args.csv:
            csv = args.csv.resolve()
            target, id_column = args.target, args.id_column
        else:
            csv = tmpdir / f"bench_{args.rows}x{args.cols}.csv"
            t0 = time.perf_counter()
            target, id_column = generate_csv(csv, args.rows, args.cols, args.seed)
            print(f"generated {csv.name} in {time.perf_counter() - t0:.1f} s")
        size_mb = csv.stat().st_size / 2**20
        print(f"csv: {size_mb:.0f} MiB, target={target!r}, id={id_column!r}\n")

        runs: dict[str, list[dict[str, Any]]] = {
            "mem": [],
            "file": [],
            "mldeck": [],
            "later": [],
        }
        for rep in range(args.repeat):
            # Interleaved, so drift on a shared machine hits all three alike.
            r = run_child("_child_baseline", str(csv), None)
            runs["mem"].append(r)
            print(
                f"run {rep + 1} baseline in-memory : {r['seconds']:6.2f} s  peak {r['peak_mb']:6.0f} MB"
            )
            if not args.no_file_db:
                db = tmpdir / f"baseline_{rep}.duckdb"
                r = run_child("_child_baseline", str(csv), str(db))
                runs["file"].append(r)
                db.unlink(missing_ok=True)
                print(
                    f"run {rep + 1} baseline file db   : {r['seconds']:6.2f} s  peak {r['peak_mb']:6.0f} MB"
                )
            work = tmpdir / f"mldeck_{rep}"
            work.mkdir()
            r = run_child("_child_mldeck", str(csv), str(work), target, id_column)
            runs["mldeck"].append(r)
            print(
                f"run {rep + 1} mldeck ingest_file: {r['seconds']:6.2f} s  peak {r['peak_mb']:6.0f} MB"
                f"  ({r['status']}, {r['rows']} rows, snapshot {r['snapshot_mb']:.0f} MiB,"
                f" init_project {r['init_s']:.2f} s)"
            )
            for msg in r["issues"]:
                print(f"    issue: {msg}")
            import shutil

            shutil.rmtree(work, ignore_errors=True)
            work.mkdir()
            r = run_child("_child_mldeck", str(csv), str(work), target, id_column, True)
            runs["later"].append(r)
            print(
                f"run {rep + 1} mldeck later batch: {r['seconds']:6.2f} s  peak {r['peak_mb']:6.0f} MB"
                f"  ({r['status']}, {r['rows']} rows, {len(r['issues'])} issue(s))"
            )
            shutil.rmtree(work, ignore_errors=True)

        pieces = (
            None if args.no_pieces else run_child("_child_pieces", str(csv), str(tmpdir), id_column)
        )

    best = {k: min(v, key=lambda r: r["seconds"]) for k, v in runs.items() if v}
    base_s = best["mem"]["seconds"]
    ml_s = best["mldeck"]["seconds"]
    ratio = ml_s / base_s
    later_ratio = best["later"]["seconds"] / base_s
    peak = max(r["peak_mb"] for r in runs["mldeck"] + runs["later"])
    ratio_ok = ratio <= TARGET_RATIO and later_ratio <= TARGET_RATIO
    rss_ok = peak <= TARGET_RSS_MB

    print(f"\n== ingest benchmark: {csv.name}, {size_mb:.0f} MiB, best of {args.repeat} ==")
    print(f"{'measurement':34} {'best s':>8} {'all runs (s)':>24} {'peak RSS MB':>12}")
    labels = {
        "mem": "baseline duckdb in-memory",
        "file": "baseline duckdb file db",
        "mldeck": "mldeck ingest_file (first batch)",
        "later": "mldeck ingest_file (later batch)",
    }
    for key, label in labels.items():
        if not runs[key]:
            continue
        all_s = ", ".join(f"{r['seconds']:.2f}" for r in runs[key])
        peak_k = max(r["peak_mb"] for r in runs[key])
        print(f"{label:34} {best[key]['seconds']:8.2f} {all_s:>24} {peak_k:12.0f}")
    print()
    print(f"{'check':34} {'value':>10} {'target':>10}  verdict")
    for label, value in (
        ("first batch / in-memory baseline", ratio),
        ("later batch / in-memory baseline", later_ratio),
    ):
        print(
            f"{label:34} {value:9.2f}x {'<= ' + str(TARGET_RATIO) + 'x':>10}"
            f"  {'PASS' if value <= TARGET_RATIO else 'FAIL'}"
        )
    print(
        f"{'mldeck peak RSS':34} {peak:8.0f}MB {'<= ' + str(int(TARGET_RSS_MB)) + 'MB':>10}"
        f"  {'PASS' if rss_ok else 'FAIL'}"
    )
    if runs["file"]:
        print(f"{'(ratio vs file-db baseline)':34} {ml_s / best['file']['seconds']:9.2f}x")
    print(f"overall: {'PASS' if ratio_ok and rss_ok else 'FAIL'}")

    for key in ("mldeck", "later"):
        _breakdown(key, best[key])

    if pieces:
        print("-- single steps, uncontended --")
        for label, value in pieces.items():
            unit = "MiB" if "MiB" in label else "s"
            print(f"  {label:46} {value:6.2f} {unit}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
