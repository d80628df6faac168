"""The endpoint against hostile clients (issue 14): fuzzing, the quadratic body, hot swaps.

Prints three parts, each against a real `mldeck serve` on 127.0.0.1 serving a
temp project (3,000 reference rows, two linear candidates v1 and v2):

1. Fuzzing from /openapi.json (schemathesis, positive and negative cases, a few
   hundred per operation): cases tried, 5xx answers seen (by operation and
   message), and whether the server still answered a good request after every
   case; then the hostile requests of issue 14 one by one, with their status.
2. The `dataframe_records` body whose records each bring a new key, at 1,600 and
   16,000 keys: the request's time, the server's peak RSS, and how long a /ping
   sent meanwhile waited. Linear decoding means 10x the keys ≈ 10x the time.
3. Hot swaps under load (`tests/serving/test_hot_swap_load.py`'s driver): promotions and
   rollbacks done, requests sent, failed, counted in /metrics and logged.

    .venv/bin/python bench/harden.py                    # ~3 minutes
    .venv/bin/python bench/harden.py --examples 50 --swaps 100 --parts fuzz,swaps

Always exits 0; the figures are the result.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("MLDECK_NO_UPDATE_CHECK", "1")
os.environ.setdefault("MLDECK_ACTOR", "bench")


def small_reference(folder: Path, rows: int = 3000) -> Path:
    from tests.conftest import REFERENCE

    path = folder / "loans_small.csv"
    with open(REFERENCE) as src, open(path, "w") as dst:
        for i, line in enumerate(src):
            if i > rows:
                break
            dst.write(line)
    return path


def request(
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 120,
) -> tuple[int, bytes, float]:
    """(status, body, seconds) of one request on a new connection."""
    started = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    conn.request(method, path, body=body, headers=headers or {})
    response = conn.getresponse()
    payload = response.read()
    conn.close()
    return response.status, payload, time.perf_counter() - started


def good_record(data: Path) -> dict[str, str]:
    import csv

    with open(data) as f:
        record = next(csv.DictReader(f))
    record.pop("default")
    return record


def good_body(data: Path) -> bytes:
    return json.dumps({"dataframe_records": [good_record(data)]}).encode()


JSON = {"Content-Type": "application/json"}

# ------------------------------------------------------------------ 1. fuzzing


def fuzz(root: Path, port: int, data: Path, examples: int) -> None:
    import schemathesis
    from hypothesis import HealthCheck, Phase, Verbosity, given, settings
    from hypothesis.errors import Unsatisfiable

    from engine.core.owner import project_token
    from tests.serving.test_fuzz import UNAUTHENTICATED, fuzz_spec

    schema = schemathesis.openapi.from_dict(fuzz_spec())
    token = project_token(root / ".mldeck")
    good = good_body(data)
    tried = 0
    server_errors: Counter[tuple[str, str]] = Counter()
    not_serving: list[str] = []

    def call(label: str, case: Any, headers: dict[str, str]) -> None:
        nonlocal tried
        tried += 1
        try:
            response = case.call(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=60)
        except Exception as exc:  # the connection broke: as bad as a 5xx
            server_errors[(label, f"no answer: {type(exc).__name__}")] += 1
            return
        if response.status_code >= 500:
            message = response.text[:160].replace("\n", " ")
            server_errors[(label, f"{response.status_code} {message}")] += 1
        status, _, _ = request(port, "POST", "/invocations", good, JSON)
        if status != 200:
            not_serving.append(f"{label}: good request answered {status}")

    def runner(label: str, headers: dict[str, str]) -> Any:
        def run(case: Any) -> None:
            call(label, case, headers)

        return run

    started = time.perf_counter()
    for result in schema.get_all_operations():
        operation = result.ok()
        authorized = (
            operation.path.startswith("/control/") and operation.path not in UNAUTHENTICATED
        )
        headers = {"Authorization": f"Bearer {token}"} if authorized else {}
        for mode in schemathesis.GenerationMode:
            test = settings(
                max_examples=examples,
                deadline=None,
                database=None,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
                verbosity=Verbosity.quiet,
            )(
                given(case=operation.as_strategy(generation_mode=mode))(
                    runner(operation.label, headers)
                )
            )
            try:
                test()
            except Unsatisfiable:  # no negative case exists for an operation without inputs
                pass
    elapsed = time.perf_counter() - started
    print(
        f"fuzz: {tried:,} cases over {len(list(schema.get_all_operations()))} operations in "
        f"{elapsed:.0f} s (max {examples} per operation and mode); "
        f"5xx seen: {sum(server_errors.values())}; "
        f"a good request failed after a case: {len(not_serving)}"
    )
    for (label, message), n in sorted(server_errors.items()):
        print(f"  5xx x{n}: {label}: {message}")
    for line in not_serving[:5]:
        print(f"  not serving: {line}")
    hostile(port, good_record(data))


def with_age(record: dict[str, str], literal: bytes) -> bytes:
    """A 1-row /invocations body whose `age` is the raw JSON `literal`."""
    body = json.dumps({"dataframe_records": [{**record, "age": "@AGE@"}]}).encode()
    return body.replace(b'"@AGE@"', literal)


def hostile(port: int, record: dict[str, str]) -> None:
    """The hostile requests of issue 14, each with the status it gets (want: 4xx)."""
    deep = b'{"dataframe_records": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    probes: list[tuple[str, str, str, bytes, dict[str, str]]] = [
        ("Infinity in a number column", "POST", "/invocations", with_age(record, b"Infinity"), JSON),
        ("1e999 in a number column", "POST", "/invocations", with_age(record, b"1e999"), JSON),
        ("JSON nested 100,000 deep", "POST", "/invocations", deep, JSON),
        ("the integer 10**400", "POST", "/invocations", with_age(record, b"1" + b"0" * 400), JSON),
        ("a version of 4,000 digits", "GET", "/v2/models/loans/versions/" + "9" * 4000, b"", {}),
        ("a version of 20 digits (infer)", "POST", "/v2/models/loans/versions/" + "9" * 20 + "/infer",
         b'{"inputs": []}', JSON),
        ("text/plain infer body", "POST", "/v2/models/loans/infer", b'{"inputs": []}',
         {"Content-Type": "text/plain"}),
        ("form-encoded /invocations", "POST", "/invocations", b"a=1",
         {"Content-Type": "application/x-www-form-urlencoded"}),
        ("/invocations without a content type", "POST", "/invocations", with_age(record, b"1"), {}),
        ("a foreign Host header", "GET", "/ping", b"", {"Host": "evil.example"}),
        ("a metrics-injecting version", "GET",
         "/v2/models/loans/versions/x%22%7D%201%0Aevil%201%0A/ready", b"", {}),
        ("CSV with a stray carriage return", "POST", "/invocations", b"age\r1\r\n",
         {"Content-Type": "text/csv"}),
    ]  # fmt: skip
    print("hostile requests (want 4xx; 5xx or 200 is a finding):")
    for what, method, path, body, headers in probes:
        try:
            status, payload, seconds = request(port, method, path, body or None, headers)
            answer = payload[:90].decode("utf-8", "replace").replace("\n", " ")
        except Exception as exc:  # noqa: BLE001 (what the client saw is the figure)
            status, answer, seconds = 0, f"no answer: {exc!r}", 0.0
        print(f"  {status:>3} {seconds * 1000:7.1f} ms  {what}: {answer}")
    metrics = request(port, "GET", "/metrics")[1].decode()
    forged = [line for line in metrics.splitlines() if line.startswith("evil")]
    print(f"  /metrics: {len(metrics.splitlines())} lines, forged lines: {forged}")


# ------------------------------------------------------------------ 2. the quadratic body


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def ping_until(port: int, done: threading.Event, waits: list[float]) -> None:
    """GET /ping every 50 ms until `done`, each one's wait into `waits`."""
    time.sleep(0.05)  # the big request is on its way
    while not done.is_set():
        waits.append(request(port, "GET", "/ping", timeout=600)[2])
        time.sleep(0.05)


def quadratic(template: Path, folder: Path) -> None:
    from tests.conftest import start_server, stop_server

    print("dataframe_records, each record a new key (issue 14's body):")
    times: dict[int, float] = {}
    for keys in (1_600, 16_000):
        root = folder / f"quadratic-{keys}"
        shutil.copytree(template, root)
        server, port = start_server(root)
        try:
            body = json.dumps({"dataframe_records": [{f"k{i}": 1} for i in range(keys)]}).encode()
            before = rss_mb(server.pid)
            pings: list[float] = []
            done = threading.Event()
            pinger = threading.Thread(target=ping_until, args=(port, done, pings))
            pinger.start()
            status, payload, seconds = request(port, "POST", "/invocations", body, JSON, 600)
            done.set()
            pinger.join()
            times[keys] = seconds
            print(
                f"  {keys:>6,} keys ({len(body) / 1024:,.0f} KB): {status} in {seconds:.2f} s, "
                f"server RSS {before:.0f} MB -> peak {peak_rss_mb(server.pid):.0f} MB; "
                f"/ping waited up to {max(pings, default=0) * 1000:.0f} ms "
                f"({len(pings)} pings); {payload[:70].decode('utf-8', 'replace')}"
            )
        finally:
            stop_server(server)
    ratio = times[16_000] / max(times[1_600], 1e-9)
    print(f"  10x the keys took {ratio:.1f}x the time (linear: ~10x; quadratic: ~100x)")


# ------------------------------------------------------------------ 3. hot swaps


def swaps(template: Path, folder: Path, data: Path, count: int) -> None:
    from tests.serving.test_hot_swap_load import run_swaps_under_load, version_changes

    root = folder / "swaps" / "loans"
    shutil.copytree(template, root)
    started = time.perf_counter()
    run = run_swaps_under_load(root, data, swaps=count)
    elapsed = time.perf_counter() - started
    answered = run.answered.versions
    sent = len(answered) + len(run.answered.failures)
    counted = sum(n for (e, _), n in run.metrics.items() if e in ("infer", "invocations"))
    wrong = sum(
        1
        for request_id, (version, _) in run.logged.items()
        if request_id in answered and int(answered[request_id][1]) != version
    )
    by_endpoint = Counter(endpoint for endpoint, _, _ in answered.values())
    print(
        f"hot swaps: {run.swaps} promotions/rollbacks in {elapsed:.0f} s under load; "
        f"requests sent {sent:,} ({by_endpoint['invocations']:,} /invocations, "
        f"{by_endpoint['infer']:,} infer), failed {len(run.answered.failures)}, "
        f"counted in /metrics {counted:,}, logged {len(run.logged):,} "
        f"({run.serving_totals['total_rows']:,} rows), logged under another version than "
        f"answered: {wrong}; the answering version changed {version_changes(run.answered)} "
        "times in the order answers arrived"
    )
    for failure in run.answered.failures[:5]:
        print(f"  failed: {failure}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--examples", type=int, default=100, help="fuzz cases per operation and mode"
    )
    parser.add_argument("--swaps", type=int, default=400, help="promotions + rollbacks")
    parser.add_argument("--parts", default="fuzz,quadratic,swaps")
    args = parser.parse_args()
    parts = args.parts.split(",")

    from tests.conftest import TWO_LINEAR, build_trained, start_server, stop_server

    folder = Path(tempfile.mkdtemp(prefix="mldeck-bench-harden-"))
    try:
        data = small_reference(folder)
        template = folder / "template" / "loans"
        build_trained(template, data, TWO_LINEAR)
        if "fuzz" in parts:
            root = folder / "fuzz" / "loans"
            shutil.copytree(template, root)
            server, port = start_server(root)
            try:
                fuzz(root, port, data, args.examples)
            finally:
                stop_server(server)
        if "quadratic" in parts:
            quadratic(template, folder)
        if "swaps" in parts:
            swaps(template, folder, data, args.swaps)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
