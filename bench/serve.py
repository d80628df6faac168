"""Serving throughput and latency: `mldeck serve` under wrk vs in-process onnxruntime.

Builds a temp project from sample_data (target `default`, id `loan_id`; the
champion a gradient_boosting model trained on the 20,000 reference rows), then
for each server starts it on 127.0.0.1 with the prediction log on and drives it
with wrk over keep-alive connections on loopback:

- `mldeck` (the default): the real `mldeck serve` command, what a user runs
  (granian, the engine service, the control API and the prediction log);
- `granian-child`, `uvicorn`: the serving app alone in a child process of this
  script on that server (how this bench ran before; `--disable` needs it).

wrk runs with `--wrk-threads` threads (2, as a user's `wrk -t2 -c32` would);
1-row and 100-row requests (real rows of sample_data/stream/week_01.csv), at 1
and 32 connections, over /invocations (dataframe_split JSON) and
/v2/models/{name}/infer (JSON). In the same run it times onnxruntime in
process on the same rows (session.run with a prebuilt feed) as the ceiling.
After each server stops it checks that the catalog's predictions table holds
one row per row the server scored (the predictions already there are counted
first, so a reused project's log does not count). For each wrk run it also reports the CPU time
per request of the server process and of wrk, and the requests/s this machine's
cores would allow at that cost with every core busy: the ceiling of one
serving process sharing the machine with its load generator. Always exits 0.

    .venv/bin/python bench/serve.py                    # ~1 minute
    .venv/bin/python bench/serve.py --duration 8 --servers mldeck,granian-child,uvicorn
    .venv/bin/python bench/serve.py --only invocations:1:32 --project /tmp/p

Diagnosis only (never the product's defaults): `--only` runs just the named
cells (endpoint:rows:connections, comma-separated); `--project DIR` builds the
project there once and reuses it on later runs; `--disable log,flush,metrics,batching,gc`
switches those parts off in the served app by patching the child process, to
price what each one costs (child servers only). Figures taken with `--disable` do not count toward
the targets (the targets are with logging on).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

SAMPLE = REPO / "sample_data"
MODELS = """
[models.boost]
kind = "gradient_boosting"
n_estimators = 60
max_depth = 3
"""
TARGET_RPS_1ROW_32 = 5000
TARGET_P99_MS = 20.0
TARGET_ROWS_S_100ROW = 100_000


def build_project(root: Path) -> None:
    from engine.core.project import init_project, open_project
    from engine.pipeline.intake import ingest_file
    from engine.pipeline.training_run import train

    init_project(root, target="default", id_column="loan_id")
    config = root / "mldeck.toml"
    config.write_text(config.read_text() + MODELS)
    with open_project(root) as project:
        ingest_file(project, SAMPLE / "reference" / "loans_reference.csv")
        train(project)


def request_bodies(root: Path, rows: int) -> tuple[bytes, bytes, str]:
    """(/invocations body, /infer body, model name) for the first `rows` stream rows."""
    import polars as pl

    from engine.core.project import open_project
    from engine.records.registry import CHAMPION, alias_version
    from engine.serving.model_slot import load_model

    frame = pl.read_csv(SAMPLE / "stream" / "week_01.csv").head(rows)
    with open_project(root) as project:
        model = load_model(project, alias_version(project.catalog, CHAMPION) or 0)
        name = project.config.name
    columns = [spec.name for spec in model.inputs]
    split = {"dataframe_split": {"columns": columns, "data": frame.select(columns).rows()}}
    inputs = []
    for spec in model.inputs:
        values = frame[spec.name].to_list()
        datatype = "BYTES" if spec.is_string else "FP64"
        inputs.append({"name": spec.name, "datatype": datatype, "shape": [rows], "data": values})
    return json.dumps(split).encode(), json.dumps({"inputs": inputs}).encode(), name


def in_process(root: Path, rows: int, seconds: float = 1.5) -> dict[str, Any]:
    """onnxruntime session.run on a prebuilt feed of the same rows: per-call latency, rows/s."""
    import polars as pl

    from engine.core.project import open_project
    from engine.models.scoring import feed_for
    from engine.records.registry import CHAMPION, alias_version
    from engine.serving.model_slot import load_model

    frame = pl.read_csv(SAMPLE / "stream" / "week_01.csv").head(rows)
    with open_project(root) as project:
        model = load_model(project, alias_version(project.catalog, CHAMPION) or 0)
    feed = feed_for(frame, json.loads(model.row["inputs_json"]))
    names = [o.name for o in model.outputs]
    for _ in range(200):
        model.session.run(names, feed)
    calls, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        for _ in range(100):
            model.session.run(names, feed)
        calls += 100
    elapsed = time.perf_counter() - started
    return {
        "us_per_call": elapsed / calls * 1e6,
        "rows_s": calls * rows / elapsed,
        "provider": model.provider,
    }


DISABLE_CHOICES = ("log", "flush", "metrics", "batching", "gc", "threads")


def disable_parts(app: Any, parts: list[str]) -> None:
    """Diagnosis only: switch parts of the served app off to price them."""
    import asyncio

    if "log" in parts:
        app.prediction_log.submit = lambda batch: True
    if "flush" in parts:  # requests still queue their rows; the writer drops them
        app.prediction_log._flush = lambda batches: None
    if "threads" in parts:  # the log writer's DuckDB work on one thread, not both cores
        app.prediction_log._cursor.execute("SET threads = 1")
    if "gc" in parts:
        import gc

        gc.disable()  # serve_app's gc.collect() + gc.freeze() still run; only prices the collector
    if "metrics" in parts:
        app.metrics.observe = lambda *args, **kwargs: None
    if "batching" in parts:
        from engine.serving.batching import ScoredRun, build_feed

        batcher = app.slot.model.batcher

        async def score_alone(columns: Any, rows: int, tag: Any = None) -> Any:
            await asyncio.sleep(0)
            feed = build_feed(batcher._inputs, [columns])
            outputs = batcher._run_model(feed)
            return outputs, ScoredRun(feed, outputs, [tag], [rows], [0.0])

        batcher.score = score_alone


def child(root: Path, port: int, server: str, stats: Path, disable: list[str]) -> None:
    """The server process: the real app, the prediction log on, until SIGTERM."""
    from engine.core.project import open_project
    from engine.serving.app import create_app
    from engine.serving.server import serve_app

    project = open_project(root)
    app = create_app(project)
    disable_parts(app, disable)
    flushes: list[tuple[float, float, int]] = []  # (wall s, thread cpu s, batches) per flush
    flush = app.prediction_log._flush

    def timed_flush(batches: Any) -> None:
        wall, cpu = time.perf_counter(), time.thread_time()
        flush(batches)
        flushes.append((time.perf_counter() - wall, time.thread_time() - cpu, len(batches)))

    setattr(app.prediction_log, "_flush", timed_flush)  # noqa: B010 (a method, replaced)
    try:
        serve_app(app, "127.0.0.1", port, server)  # type: ignore[arg-type]
    finally:
        app.close()
        log = app.prediction_log
        scored = sum(app.metrics.rows.values())
        info: dict[str, Any] = {
            "scored": scored,
            "written": log.written_rows,
            "dropped": log.dropped_rows,
        }
        info["flushes"] = len(flushes)
        info["flush_wall_s"] = sum(f[0] for f in flushes)
        info["flush_cpu_s"] = sum(f[1] for f in flushes)
        info["flush_max_wall_s"] = max((f[0] for f in flushes), default=0.0)
        stats.write_text(json.dumps({**info, "failed_flushes": log.failed_flushes}))
        project.close()


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(port: int, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/ready", timeout=1):
                return True
        except OSError:
            time.sleep(0.1)
    return False


def parse_ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[unit]


def run_wrk(
    url: str, body_file: Path, connections: int, duration: int, threads: int
) -> dict[str, float]:
    script = body_file.with_suffix(".lua")
    script.write_text(
        'wrk.method = "POST"\n'
        f'local f = io.open("{body_file}", "rb"); wrk.body = f:read("*all"); f:close()\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
    )
    out = subprocess.run(
        ["wrk", f"-t{min(threads, connections)}", f"-c{connections}", f"-d{duration}s"]
        + ["--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    result: dict[str, float] = {"non_2xx": 0.0, "errors": 0.0}
    if m := re.search(r"(\d+) requests in", out):
        result["requests"] = float(m.group(1))
    if m := re.search(r"Requests/sec:\s+([\d.]+)", out):
        result["rps"] = float(m.group(1))
    for pct in ("50", "99"):
        if m := re.search(rf"^\s+{pct}(?:\.000)?%\s+(\S+)", out, re.M):
            result[f"p{pct}"] = parse_ms(m.group(1))
    if m := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        result["non_2xx"] = float(m.group(1))
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out):
        result["errors"] = float(sum(int(g) for g in m.groups()))
    if "rps" not in result:
        print(out)
    return result


def process_cpu_s(pid: int) -> float:
    """CPU seconds (user + system, all threads) a live process has used so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def waited_children_cpu_s() -> float:
    """CPU seconds of the child processes this one has waited for (wrk's runs)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def scraped_metric(port: int, name: str) -> float:
    """The sum of a /metrics series over its labels."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return sum(
        float(m.group(1)) for m in re.finditer(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M)
    )


def start_server(root: Path, server: str, port: int, disable: list[str]) -> subprocess.Popen[bytes]:
    """`mldeck serve` itself, or the serving app alone in a child of this script."""
    if server == "mldeck":
        env = {**os.environ, "PYTHONPATH": str(REPO), "MLDECK_NO_UPDATE_CHECK": "1"}
        command = [sys.executable, "-m", "app", "serve", "--port", str(port)]
        return subprocess.Popen(command, cwd=root, env=env, stdout=subprocess.DEVNULL)
    kind = "granian" if server == "granian-child" else server
    return subprocess.Popen(
        [sys.executable, __file__, "--child", str(root), "--port", str(port), "--server", kind]
        + ["--stats", str(root.parent / f"{server}.stats.json")]
        + (["--disable", ",".join(disable)] if disable else [])
    )


def logged_rows(root: Path) -> int:
    from engine.core.project import open_project

    with open_project(root) as project:
        return int(project.catalog.rows("SELECT count(*) AS n FROM predictions")[0]["n"])


def bench_server(
    root: Path,
    server: str,
    bodies: dict[tuple[str, int], Path],
    name: str,
    duration: int,
    only: set[tuple[str, int, int]] | None = None,
    disable: list[str] | None = None,
    wrk_threads: int = 2,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    before = logged_rows(root)
    port = free_port()
    proc = start_server(root, server, port, disable or [])
    results: list[dict[str, Any]] = []
    served: dict[str, float] = {}
    try:
        if not wait_ready(port):
            print(f"{server}: did not start")
            return results, {}
        paths = {"invocations": "/invocations", "infer": f"/v2/models/{name}/infer"}
        for (endpoint, rows), body_file in bodies.items():
            for connections in (1, 32):
                if only is not None and (endpoint, rows, connections) not in only:
                    continue
                url = f"http://127.0.0.1:{port}{paths[endpoint]}"
                run_wrk(url, body_file, connections, 1, wrk_threads)  # warm-up
                server_cpu, wrk_cpu = process_cpu_s(proc.pid), waited_children_cpu_s()
                r: dict[str, Any] = dict(
                    run_wrk(url, body_file, connections, duration, wrk_threads)
                )
                done = max(r.get("requests", 0.0), 1.0)
                r["server_cpu_us"] = (process_cpu_s(proc.pid) - server_cpu) / done * 1e6
                r["wrk_cpu_us"] = (waited_children_cpu_s() - wrk_cpu) / done * 1e6
                r.update(server=server, endpoint=endpoint, rows=rows, connections=connections)
                r["rows_s"] = r.get("rps", 0.0) * rows
                results.append(r)
                print(
                    f"  {server:8} {endpoint:12} {rows:>3} rows c={connections:<2} "
                    f"{r.get('rps', 0):>8.0f} req/s {r['rows_s']:>9.0f} rows/s "
                    f"p50 {r.get('p50', 0):6.2f} ms p99 {r.get('p99', 0):6.2f} ms "
                    f"non-2xx {r['non_2xx']:.0f} CPU/req server {r['server_cpu_us']:.0f} us "
                    f"wrk {r['wrk_cpu_us']:.0f} us",
                    flush=True,
                )
        if server == "mldeck":  # its own counts; a child writes them to its stats file
            served["scored"] = scraped_metric(port, "mldeck_rows_scored_total")
            served["dropped"] = scraped_metric(port, "mldeck_prediction_log_dropped_rows_total")
    finally:
        proc.send_signal(signal.SIGINT)  # uvicorn re-raises SIGTERM after its shutdown
        proc.wait(timeout=120)
    if server == "mldeck":
        stats: dict[str, Any] = {**served, "failed_flushes": "-"}
    else:
        stats = json.loads((root.parent / f"{server}.stats.json").read_text())
    logged = logged_rows(root) - before
    return results, {**stats, "logged": logged}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=4, help="seconds per wrk run")
    parser.add_argument(
        "--servers",
        default="mldeck",
        help="comma-separated: mldeck (the `mldeck serve` command), granian-child, uvicorn",
    )
    parser.add_argument("--wrk-threads", type=int, default=2, help="wrk's -t")
    parser.add_argument(
        "--only", help="run only these cells: endpoint:rows:conns[,...], e.g. invocations:1:32"
    )
    parser.add_argument("--project", type=Path, help="build the project here once, then reuse it")
    parser.add_argument(
        "--disable",
        default="",
        help=f"diagnosis only: switch off parts of the served app ({', '.join(DISABLE_CHOICES)})",
    )
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--server", default="granian", help=argparse.SUPPRESS)
    parser.add_argument("--stats", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    disable = [part for part in args.disable.split(",") if part]
    unknown = set(disable) - set(DISABLE_CHOICES)
    if unknown:
        parser.error(f"--disable: unknown part(s) {sorted(unknown)}; choose from {DISABLE_CHOICES}")
    only = None
    if args.only:
        only = set()
        for cell in args.only.split(","):
            endpoint, rows, conns = cell.split(":")
            only.add((endpoint, int(rows), int(conns)))
    if args.child:
        child(args.child, args.port, args.server, args.stats, disable)
        return
    # "granian": the name the app-in-a-child server had before (bench/gpu_serve.py's docs)
    servers = ["granian-child" if s == "granian" else s for s in args.servers.split(",")]
    if set(servers) - {"mldeck", "granian-child", "uvicorn"}:
        parser.error(f"--servers: choose from mldeck, granian-child, uvicorn, not {servers}")
    if disable and "mldeck" in servers:
        parser.error("--disable patches a child server: use --servers granian-child or uvicorn")
    if shutil.which("wrk") is None:
        print("wrk is not installed: `sudo apt-get install -y wrk` (or build it from")
        print("https://github.com/wg/wrk), then run this again.")
        return
    os.environ.setdefault("MLDECK_NO_UPDATE_CHECK", "1")
    tmp = Path(tempfile.mkdtemp(prefix="mldeck-bench-serve-"))
    try:
        root = tmp / "loans"
        if args.project is not None:
            root = args.project.resolve()
        if not (root / "mldeck.toml").exists():
            started = time.perf_counter()
            build_project(root)
            print(f"project built and trained in {time.perf_counter() - started:.1f} s")
        else:
            print(f"reusing the project at {root}")
        bodies: dict[tuple[str, int], Path] = {}
        name = ""
        for rows in (1, 100):
            invocations, infer, name = request_bodies(root, rows)
            for endpoint, body in (("invocations", invocations), ("infer", infer)):
                path = tmp / f"{endpoint}_{rows}.json"
                path.write_bytes(body)
                bodies[(endpoint, rows)] = path
        from engine.core.project import open_project
        from engine.records.registry import CHAMPION, alias_version, get_version

        with open_project(root) as project:
            row = get_version(project.catalog, alias_version(project.catalog, CHAMPION) or 0)
        print(f"champion: v{row['version']} {row['name']} ({row['kind']})")
        if disable:
            print(f"DIAGNOSIS ONLY, not the product: disabled {', '.join(disable)}")
        ceiling = {rows: in_process(root, rows) for rows in (1, 100)}
        for rows, c in ceiling.items():
            print(
                f"  in-process onnxruntime {rows:>3} rows: {c['us_per_call']:8.1f} us/call "
                f"{c['rows_s']:>10.0f} rows/s on {c['provider']}"
            )
        all_results: list[dict[str, Any]] = []
        logs: dict[str, dict[str, Any]] = {}
        print(
            f"wrk -t{args.wrk_threads}, keep-alive; prediction log rows before: {logged_rows(root):,}"
        )
        for server in servers:
            results, log = bench_server(
                root, server, bodies, name, args.duration, only, disable, args.wrk_threads
            )
            all_results += results
            logs[server] = log
            ceiling_again = {rows: in_process(root, rows, 1.0) for rows in (1, 100)}
            for rows in ceiling:
                ceiling[rows]["rows_s_after_" + server] = ceiling_again[rows]["rows_s"]
        report(all_results, ceiling, logs)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def report(
    results: list[dict[str, Any]],
    ceiling: dict[int, dict[str, Any]],
    logs: dict[str, dict[str, Any]],
) -> None:
    print()
    print(
        "| server | endpoint | rows/req | conns | req/s | rows/s | p50 ms | p99 ms | non-2xx "
        "| served / in-process rows/s | CPU/req server µs | CPU/req wrk µs | req/s the cores allow |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    cores = os.cpu_count() or 1
    for r in results:
        ratio = r["rows_s"] / ceiling[r["rows"]]["rows_s"]
        print(
            f"| {r['server']} | {r['endpoint']} | {r['rows']} | {r['connections']} | "
            f"{r.get('rps', 0):,.0f} | {r['rows_s']:,.0f} | {r.get('p50', 0):.2f} | "
            f"{r.get('p99', 0):.2f} | {r['non_2xx'] + r['errors']:.0f} | {ratio:.1%} | "
            f"{r['server_cpu_us']:.0f} | {r['wrk_cpu_us']:.0f} | "
            f"{cores * 1e6 / (r['server_cpu_us'] + r['wrk_cpu_us']):,.0f} |"
        )
    for rows, c in ceiling.items():
        print(
            f"| in-process onnxruntime | session.run | {rows} | - | {1e6 / c['us_per_call']:,.0f} "
            f"| {c['rows_s']:,.0f} | {c['us_per_call'] / 1000:.3f} | - | - | 100% | - | - | - |"
        )
    print()
    for server, log in logs.items():
        if not log:
            continue
        missing = log["scored"] - log["logged"]
        print(
            f"prediction log ({server}): rows scored {log['scored']:,.0f}, logged {log['logged']:,.0f}, "
            f"dropped {log['dropped']:,.0f}, failed flushes {log['failed_flushes']}, "
            f"difference {missing:,.0f}; {log.get('flushes', 0):.0f} flushes, "
            f"{log.get('flush_wall_s', 0):.2f} s wall / {log.get('flush_cpu_s', 0):.2f} s "
            f"writer-thread CPU in all, longest {log.get('flush_max_wall_s', 0) * 1000:.0f} ms -> "
            + ("PASS" if missing == 0 and log["dropped"] == 0 else "FAIL")
        )
    print()
    for server in logs:
        rs = [r for r in results if r["server"] == server]
        if not rs:
            continue
        one = [r for r in rs if r["rows"] == 1 and r["connections"] == 32]
        hundred = [r for r in rs if r["rows"] == 100 and r["connections"] == 32]
        ok_rps = all(r.get("rps", 0) >= TARGET_RPS_1ROW_32 for r in one)
        ok_p99 = all(r.get("p99", 1e9) <= TARGET_P99_MS for r in one)
        ok_rows = all(r["rows_s"] >= TARGET_ROWS_S_100ROW for r in hundred)
        clean = all(r["non_2xx"] + r["errors"] == 0 for r in rs)
        print(f"{server}:")
        print(
            f"  1-row @32 >= {TARGET_RPS_1ROW_32} req/s: "
            + ", ".join(f"{r['endpoint']} {r.get('rps', 0):,.0f}" for r in one)
            + (" PASS" if ok_rps else " FAIL")
        )
        print(
            f"  1-row @32 p99 <= {TARGET_P99_MS} ms: "
            + ", ".join(f"{r['endpoint']} {r.get('p99', 0):.1f}" for r in one)
            + (" PASS" if ok_p99 else " FAIL")
        )
        print(
            f"  100-row @32 >= {TARGET_ROWS_S_100ROW} rows/s: "
            + ", ".join(f"{r['endpoint']} {r['rows_s']:,.0f}" for r in hundred)
            + (" PASS" if ok_rows else " FAIL")
        )
        print(f"  no errors: {'PASS' if clean else 'FAIL'}")


if __name__ == "__main__":
    main()
