"""`mldeck serve` against hostile clients: limits, 4xx never 5xx, /metrics that cannot be
forged, what a browser cannot reach, exposure beyond loopback, slow and broken clients.

One project is trained once for the module and served by a real `mldeck serve`
process (granian) on 127.0.0.1; one more process is started bound to 0.0.0.0
(requests stay on 127.0.0.1) for the token rules. The body decoders are also
fuzzed in-process with hypothesis.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.core.project import open_project
from engine.records.registry import CHAMPION, alias_version
from engine.serving.decode import (
    HttpError,
    columns_from_csv,
    columns_from_mlflow_json,
    columns_from_oip,
    parse_json,
    prepare_columns,
)
from engine.serving.model_slot import LoadedModel, load_model
from tests.conftest import REPO, TWO_LINEAR, build_trained, free_port, stop_server

JSON = {"Content-Type": "application/json"}


def request(
    port: int, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        answer = conn.getresponse()
        return answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read()
    finally:
        conn.close()


def post(
    port: int, path: str, payload: Any, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    status, _, answer = request(port, "POST", path, body, {**JSON, **(headers or {})})
    return status, json.loads(answer)


def launch(root: Path, *args: str) -> tuple[subprocess.Popen[str], int]:
    """`mldeck serve` with extra arguments, once it answers on 127.0.0.1."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "app", "serve", "--port", str(port), *args],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            if request(port, "GET", "/v2/health/ready")[0] == 200:
                return server, port
        except OSError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            out, err = server.communicate(timeout=5)
            pytest.fail(f"server did not start: {out} {err}")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, small_reference: Path) -> Path:
    root = tmp_path_factory.mktemp("hostile") / "loans"
    build_trained(root, small_reference, TWO_LINEAR)
    config = root / "mldeck.toml"
    config.write_text(
        config.read_text().replace(
            "[serving]\n", "[serving]\nbody_timeout_s = 2\nheader_timeout_s = 1\n"
        )
    )
    return root


@pytest.fixture(scope="module")
def rows(small_reference: Path) -> list[dict[str, Any]]:
    return pl.read_csv(small_reference).head(5).drop("default").to_dicts()


@pytest.fixture(scope="module")
def served(trained: Path) -> Iterator[dict[str, Any]]:
    root = trained.parent / "served"
    shutil.copytree(trained, root)
    with open_project(root) as project:
        name = project.config.name
    server, port = launch(root)
    try:
        yield {"port": port, "name": name, "root": root, "server": server}
    finally:
        stop_server(server)


@pytest.fixture(scope="module")
def model(trained: Path) -> Iterator[LoadedModel]:
    root = trained.parent / "in-process"
    shutil.copytree(trained, root)
    with open_project(root) as project:
        champion = alias_version(project.catalog, CHAMPION)
        assert champion is not None
        yield load_model(project, champion)


# ------------------------------------------------------------------ decode limits, off the loop


def test_records_bringing_new_keys_are_refused_past_max_columns(served: dict[str, Any]) -> None:
    port = served["port"]
    for keys in (1_600, 16_000):
        status, answer = post(
            port, "/invocations", {"dataframe_records": [{f"k{i}": 1} for i in range(keys)]}
        )
        assert status == 400, answer
        assert "max_columns" in answer["error"] and "1000" in answer["error"]


def test_many_extra_keys_within_the_limit_are_ignored(
    served: dict[str, Any], rows: list[dict[str, Any]]
) -> None:
    records = [{**rows[i % len(rows)], f"extra{i % 900}": i} for i in range(16_000)]
    status, answer = post(served["port"], "/invocations", {"dataframe_records": records})
    assert status == 200 and len(answer["predictions"]) == 16_000


def test_ping_answers_while_a_large_body_is_decoded_and_scored(
    served: dict[str, Any], rows: list[dict[str, Any]]
) -> None:
    port = served["port"]
    body = json.dumps({"dataframe_records": [rows[i % len(rows)] for i in range(20_000)]}).encode()
    assert len(body) < 10 * 1024 * 1024
    big: dict[str, Any] = {}

    def send() -> None:
        big["status"] = request(port, "POST", "/invocations", body, JSON)[0]
        big["done"] = time.monotonic()

    thread = threading.Thread(target=send)
    thread.start()
    answered: list[float] = []
    while thread.is_alive():
        try:
            if request(port, "GET", "/ping")[0] == 200:
                answered.append(time.monotonic())
        except OSError:
            pass
    thread.join()
    assert big["status"] == 200
    assert [t for t in answered if t < big["done"]], "no /ping was answered during the request"


@pytest.mark.parametrize(
    ("payload", "status", "names"),
    [
        ({"dataframe_records": [{}] * 100_001}, 413, "max_rows"),
        (
            {"dataframe_split": {"columns": [f"c{i}" for i in range(1001)], "data": []}},
            400,
            "max_columns",
        ),
        ({"inputs": {f"c{i}": [1] for i in range(1001)}}, 400, "max_columns"),
        (b"[" * 33 + b"]" * 33, 400, "max_depth"),
        (b"[" * 100_000 + b"]" * 100_000, 400, "max_depth"),
    ],
)
def test_each_limit_is_answered_naming_it(
    served: dict[str, Any], payload: Any, status: int, names: str
) -> None:
    got, answer = post(served["port"], "/invocations", payload)
    assert got == status and names in answer["error"], answer


def test_body_over_the_limit_and_csv_over_the_columns(served: dict[str, Any]) -> None:
    port = served["port"]
    headers = {**JSON, "Content-Length": str(10 * 1024 * 1024 + 1)}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.putrequest("POST", "/invocations")
        for key, value in headers.items():
            conn.putheader(key, value)
        conn.endheaders()
        answer = conn.getresponse()
        assert answer.status == 413 and "max_body_mb" in json.loads(answer.read())["error"]
    finally:
        conn.close()
    csv = (",".join(f"c{i}" for i in range(1001)) + "\n").encode()
    status, _, body = request(port, "POST", "/invocations", csv, {"Content-Type": "text/csv"})
    assert status == 400 and "max_columns" in json.loads(body)["error"]


# ------------------------------------------------------------------ 4xx, never 5xx


@pytest.mark.parametrize(
    "value", [b"Infinity", b"-Infinity", b"1e999", b"1e300", b"1" + b"0" * 400, b'"inf"']
)
def test_non_finite_and_out_of_range_numbers_name_column_and_row(
    served: dict[str, Any], rows: list[dict[str, Any]], value: bytes
) -> None:
    records = [dict(rows[0]), dict(rows[1])]
    column = next(k for k, v in rows[1].items() if isinstance(v, float))
    records[1][column] = "PLACEHOLDER"
    body = json.dumps({"dataframe_records": records}).encode()
    body = body.replace(b'"PLACEHOLDER"', value)
    status, answer = post(served["port"], "/invocations", body)
    assert status == 400, answer
    assert repr(column) in answer["error"] and "row 1" in answer["error"]


def test_unknown_versions_are_404_whatever_their_length(served: dict[str, Any]) -> None:
    port, name = served["port"], served["name"]
    for version in ("9" * 4000, "99", "-1", "x", "%D9%A1%D9%A2"):
        status, answer = post(port, f"/v2/models/{name}/versions/{version}/infer", {"inputs": []})
        assert status == 404, (version[:10], answer)
        assert request(port, "GET", f"/v2/models/{name}/versions/{version}")[0] == 404


# ------------------------------------------------------------------ /metrics


def test_metrics_cannot_be_forged_or_grown_by_made_up_versions(served: dict[str, Any]) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    port, name = served["port"], served["name"]
    forged = "x%22%7D%201%0Aevil%201%0A"
    for i in range(200):
        request(port, "GET", f"/v2/models/{name}/versions/{forged}{i}/ready")
        post(port, f"/v2/models/{name}/versions/{1000 + i}/infer", {"inputs": []})
    text = request(port, "GET", "/metrics")[2].decode()
    assert "evil" not in text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    versions = {s.labels.get("model_version") for s in families["mldeck_requests"].samples}
    assert "unknown" in versions and len(versions) <= 3
    (unknown,) = [
        s.value
        for s in families["mldeck_request_errors"].samples
        if s.labels == {"endpoint": "infer", "model_version": "unknown", "status": "404"}
    ]
    assert unknown >= 200  # earlier tests of this module sent a few more


# ------------------------------------------------------------------ what a browser cannot reach


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/invocations", "text/plain"),
        ("/invocations", "application/x-www-form-urlencoded"),
        ("/invocations", None),
        ("/v2/models/{name}/infer", "text/plain"),
        ("/v2/models/{name}/infer", "multipart/form-data; boundary=x"),
    ],
)
def test_other_content_types_are_415(
    served: dict[str, Any], rows: list[dict[str, Any]], path: str, content_type: str | None
) -> None:
    headers = {} if content_type is None else {"Content-Type": content_type}
    body = json.dumps({"dataframe_records": rows[:1]}).encode()
    status, _, answer = request(
        served["port"], "POST", path.format(name=served["name"]), body, headers
    )
    assert status == 415 and "content type" in json.loads(answer)["error"]


def test_foreign_host_and_origin_are_refused(
    served: dict[str, Any], rows: list[dict[str, Any]]
) -> None:
    port = served["port"]
    body = json.dumps({"dataframe_records": rows[:1]}).encode()
    for host in ("evil.example", "evil.example:8765", "127.0.0.1.nip.io", "[::2]"):
        status, _, _ = request(port, "POST", "/invocations", body, {**JSON, "Host": host})
        assert status == 421, host
        assert request(port, "GET", "/metrics", headers={"Host": host})[0] == 421
    for host in ("localhost", "localhost:8765", "127.0.0.1:1", "[::1]:8765"):
        status, _, _ = request(port, "POST", "/invocations", body, {**JSON, "Host": host})
        assert status == 200, host
    status, _, _ = request(
        port, "POST", "/invocations", body, {**JSON, "Origin": "https://evil.example"}
    )
    assert status == 403
    status, _, _ = request(
        port, "POST", "/invocations", body, {**JSON, "Origin": "http://localhost:3000"}
    )
    assert status == 200


def test_request_ids_are_bounded_and_unique(served: dict[str, Any], model: LoadedModel) -> None:
    port, name = served["port"], served["name"]
    inputs = [
        {
            "name": s.name,
            "datatype": s.datatype,
            "shape": [1],
            "data": ["a" if s.is_string else 1.0],
        }
        for s in model.inputs
    ]
    status, answer = post(port, f"/v2/models/{name}/infer", {"id": "x" * 129, "inputs": inputs})
    assert status == 400 and "max_id_length" in answer["error"]
    first = post(port, f"/v2/models/{name}/infer", {"id": "same-id", "inputs": inputs})[1]["id"]
    second = post(port, f"/v2/models/{name}/infer", {"id": "same-id", "inputs": inputs})[1]["id"]
    assert first == "same-id" and second.startswith("same-id~") and second != first


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    payload=st.deferred(lambda: json_values),
    wrapper=st.sampled_from(["dataframe_records", "dataframe_split", "instances", "inputs", None]),
    oip=st.booleans(),
)
def test_the_server_answers_random_json_with_a_4xx_or_200(
    served: dict[str, Any], payload: Any, wrapper: str | None, oip: bool
) -> None:
    document = payload if wrapper is None else {wrapper: payload}
    path = f"/v2/models/{served['name']}/infer" if oip else "/invocations"
    body = json.dumps(document, allow_nan=True).encode()
    status, _, _ = request(served["port"], "POST", path, body, JSON)
    assert status == 200 or 400 <= status < 500, (status, body[:200])


# ------------------------------------------------------------------ slow and broken clients


def test_a_stalled_body_gets_408_and_an_aborted_one_no_traceback(
    served: dict[str, Any], rows: list[dict[str, Any]]
) -> None:
    port = served["port"]
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(
            b"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b'Content-Length: 1000\r\n\r\n{"dataframe'
        )
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:100]
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(b"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # never ends
        data = sock.recv(65536)  # granian closes it after header_timeout_s (1 s), not 30 s
        assert data == b"" or data.startswith(b"HTTP/1.1 408"), data[:100]
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(
                b"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b'Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"data'
            )
    body = json.dumps({"dataframe_records": rows[:1]}).encode()
    assert request(port, "POST", "/invocations", body, JSON)[0] == 200
    # stop this module's server here and read what it logged
    server = served["server"]
    stop_server(server)
    _, err = server.communicate(timeout=10)
    assert "Traceback" not in err, err[-2000:]
    # the made-up versions of the metrics test (and every other failure of this module)
    # are counted per window in serving_errors, not a row each
    with open_project(served["root"]) as project:
        rows_written, failures = project.catalog.conn.execute(
            "SELECT count(*), sum(requests) FROM serving_errors"
        ).fetchone()
        unknown = project.catalog.conn.execute(
            "SELECT sum(requests) FROM serving_errors WHERE model_version IS NULL"
        ).fetchone()[0]
    assert unknown >= 200 and failures > unknown
    assert rows_written <= 40, rows_written  # a few (endpoint, version, status) per window


# ------------------------------------------------------------------ exposure beyond loopback


def test_a_non_loopback_bind_needs_the_token_and_says_what_is_open(
    trained: Path, rows: list[dict[str, Any]]
) -> None:
    root = trained.parent / "exposed"
    shutil.copytree(trained, root)
    token_file = root / ".mldeck" / "token"
    token_file.write_text("a-token-of-32-characters-or-so-x")
    token_file.chmod(0o644)  # readable by others: set to 0600 at start
    server, port = launch(root, "--host", "0.0.0.0")
    try:
        token = token_file.read_text().strip()
        assert token == "a-token-of-32-characters-or-so-x"
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        body = json.dumps({"dataframe_records": rows[:1]}).encode()
        assert request(port, "POST", "/invocations", body, JSON)[0] == 401
        assert request(port, "GET", "/metrics")[0] == 401
        assert request(port, "GET", "/ping")[0] == 200
        auth = {"Authorization": f"Bearer {token}"}
        assert request(port, "POST", "/invocations", body, {**JSON, **auth})[0] == 200
        assert request(port, "GET", "/metrics", headers=auth)[0] == 200
    finally:
        stop_server(server)
    _, err = server.communicate(timeout=10)
    err = " ".join(err.split())  # the console wraps long lines
    assert "Exposed beyond loopback" in err and "/metrics" in err
    assert "mode 0644" in err and "0600" in err


def test_an_empty_token_file_is_replaced(tmp_path: Path) -> None:
    from engine.core.owner import check_token_file

    (tmp_path / "token").write_text("")
    notes = check_token_file(tmp_path)
    assert len(notes) == 1 and "no usable token" in notes[0]
    assert len((tmp_path / "token").read_text()) >= 32
    assert stat.S_IMODE((tmp_path / "token").stat().st_mode) == 0o600
    assert check_token_file(tmp_path) == []


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ("max_rows = 0", "serving.max_rows"),
        ("max_depth = 2", "serving.max_depth"),
        ('auth = "maybe"', "serving.auth"),
        ("max_body_mb = -1", "serving.max_body_mb"),
        ("max_colums = 5", "serving.max_colums"),
    ],
)
def test_serving_limits_are_validated(tmp_path: Path, line: str, key: str) -> None:
    from engine.core.config_parse import load_config
    from engine.core.errors import MldeckError
    from engine.core.project import init_project

    init_project(tmp_path / "p", target="default")
    config = tmp_path / "p" / "mldeck.toml"
    config.write_text(config.read_text().replace("[serving]\n", f"[serving]\n{line}\n"))
    with pytest.raises(MldeckError, match=key.replace(".", r"\.")):
        load_config(config)


# ------------------------------------------------------------------ the decoders, fuzzed

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=40,
)


def _decode_all(model: LoadedModel, body: bytes) -> None:
    """Every decoder on one body: a client error (HttpError 4xx) or a result, nothing else."""
    for decode in (
        lambda: prepare_columns(
            model, columns_from_mlflow_json(parse_json(body), model.input_names)
        ),
        lambda: prepare_columns(model, columns_from_oip(model, parse_json(body))),
        lambda: prepare_columns(model, columns_from_csv(body)),
    ):
        try:
            decode()
        except HttpError as exc:
            assert 400 <= exc.status < 500


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    payload=json_values,
    wrapper=st.sampled_from(["dataframe_records", "dataframe_split", "instances", "inputs", None]),
)
def test_decoders_answer_random_json_with_a_client_error_or_columns(
    model: LoadedModel, payload: Any, wrapper: str | None
) -> None:
    document = payload if wrapper is None else {wrapper: payload}
    body = json.dumps(document, allow_nan=True).encode()
    _decode_all(model, body)


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(rows_=st.lists(st.dictionaries(st.sampled_from(["a", "b"]), json_values), max_size=4))
def test_decoders_on_records_with_the_models_columns(
    model: LoadedModel, rows_: list[dict[str, Any]]
) -> None:
    names = [s.name for s in model.inputs]
    records = [{names[i % len(names)]: v for i, v in enumerate(r.values())} for r in rows_]
    body = json.dumps({"dataframe_records": records}, allow_nan=True).encode()
    _decode_all(model, body)


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=st.binary(max_size=200))
def test_decoders_on_random_bytes(model: LoadedModel, body: bytes) -> None:
    _decode_all(model, body)


# ------------------------------------------------------------------ control paths


def test_control_paths_stay_inside_the_project(
    trained: Path, small_reference: Path, tmp_path: Path
) -> None:
    from tests.conftest import run_cli

    root = trained.parent / "control"
    shutil.copytree(trained, root)
    server, port = launch(root)
    try:
        token = (root / ".mldeck" / "token").read_text().strip()
        auth = {"Authorization": f"Bearer {token}"}
        outside = tmp_path / "evil.html"
        for path in (str(outside), "../evil.html", "data/../../evil.html"):
            status, answer = post(port, "/control/report", {"path": path}, auth)
            assert status == 403 and "outside the project" in answer["error"], (path, answer)
        status, answer = post(port, "/control/ingest", {"paths": ["/etc/hostname"]}, auth)
        assert status == 403
        assert not outside.exists()
        # the CLI, same user and machine, still reads and writes outside files: it stages
        # them inside the project (and moves a report into place)
        batch = tmp_path / "batch.csv"
        batch.write_text("".join(small_reference.read_text().splitlines(True)[:50]))
        ingested = run_cli(["ingest", str(batch), "--json"], cwd=root)
        assert ingested.exit_code == 0, ingested.stderr
        (answer,) = json.loads(ingested.stdout)
        assert answer["path"] == str(batch) and answer["status"] == "accepted"
        assert not any((root / ".mldeck" / "inbox").iterdir())
        status, answer = post(port, "/control/report", {"path": "report.html"}, auth)
        assert status == 200 and (root / "report.html").is_file(), answer
        written = run_cli(["report", "--out", str(outside), "--json"], cwd=root)
        assert written.exit_code == 0, written.stderr
        assert json.loads(written.stdout)["path"] == str(outside.resolve()) and outside.is_file()
    finally:
        stop_server(server)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("localhost:8765", True),
        ("127.0.0.1:1", True),
        ("127.0.0.2", True),
        ("[::1]:8765", True),
        ("::1:8765", True),  # what engine.service.loopback sends for an IPv6 engine
        ("evil.example", False),
        ("127.0.0.1.nip.io", False),
        ("[::2]", False),
        ("localhost:x", False),
        ("", False),
    ],
)
def test_host_names_taken_as_loopback(host: str, loopback: bool) -> None:
    from engine.serving.access import host_is_loopback

    assert host_is_loopback(host) is loopback
