"""`mldeck serve` as a real process: granian over the app's RSGI adapter.

The in-process tests (test_serving, test_triton) drive the ASGI adapter; this
module checks that the adapter `mldeck serve` really runs answers the same:
tritonclient end to end, MLflow scoring, every kind of bad request (a declared
and a chunked body over the limit included), metrics, and the control API's
token and event stream, with the server still serving afterwards.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
import tritonclient.http as httpclient

from engine.core.project import open_project
from engine.records.registry import CHAMPION, alias_version
from engine.serving.decode import MAX_BODY_BYTES
from tests.conftest import TrainedTemplates
from tests.helpers import TWO_LINEAR, start_server, stop_server
from tests.serving.test_triton import assert_matches_onnx, client_inputs, onnx_outputs


@pytest.fixture(scope="module")
def rows(small_reference: Path) -> pl.DataFrame:
    return pl.read_csv(small_reference).slice(10, 7).drop("default")


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory,
    trained_templates: TrainedTemplates,
    rows: pl.DataFrame,
) -> Iterator[dict[str, Any]]:
    """The running server's port, the project's name and token, and what onnxruntime
    answers for `rows` on the champion (computed before the server holds the catalog)."""
    root = tmp_path_factory.mktemp("rsgi") / "loans"
    shutil.copytree(trained_templates.get(TWO_LINEAR)[0], root)
    with open_project(root) as project:
        champion = alias_version(project.catalog, CHAMPION)
        assert champion is not None
        info = {
            "name": project.config.name,
            "champion": champion,
            "want": onnx_outputs(project, champion, rows),
            "inputs": client_inputs(project, champion, rows),
        }
    server, port = start_server(root)
    info["port"] = port
    info["token"] = (root / ".mldeck" / "token").read_text().strip()
    try:
        yield info
    finally:
        stop_server(server)


def request(
    port: int,
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        answer = conn.getresponse()
        return answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read()
    finally:
        conn.close()


def post_json(port: int, path: str, payload: Any) -> tuple[int, dict[str, str], Any]:
    status, headers, body = request(
        port, "POST", path, json.dumps(payload), {"Content-Type": "application/json"}
    )
    return status, headers, json.loads(body)


def test_tritonclient_end_to_end(served: dict[str, Any]) -> None:
    with httpclient.InferenceServerClient(url=f"127.0.0.1:{served['port']}") as client:
        assert client.is_server_ready() and client.is_model_ready(served["name"])
        meta = client.get_model_metadata(served["name"])
        assert meta["platform"] == "onnxruntime_onnx"
        result = client.infer(served["name"], served["inputs"])
    assert_matches_onnx(result, served["want"])
    assert result.get_response()["model_version"] == str(served["champion"])


def test_invocations_answer_with_id_and_version(served: dict[str, Any], rows: pl.DataFrame) -> None:
    split = {"columns": rows.columns, "data": [list(r) for r in rows.rows()]}
    status, headers, body = post_json(served["port"], "/invocations", {"dataframe_split": split})
    assert status == 200
    assert headers["x-model-version"] == str(served["champion"]) and headers["x-request-id"]
    assert headers["content-type"] == "application/json"
    got = np.array([p["probabilities"] for p in body["predictions"]])
    np.testing.assert_allclose(got, served["want"]["probabilities"], rtol=0, atol=1e-6)


def test_bad_requests_get_4xx_and_serving_goes_on(
    served: dict[str, Any], rows: pl.DataFrame
) -> None:
    port, name = served["port"], served["name"]
    one_row = {"dataframe_records": rows.head(1).to_dicts()}

    status, _, body = request(
        port, "POST", "/invocations", b"{not json", {"Content-Type": "application/json"}
    )
    assert status == 400 and "malformed JSON" in json.loads(body)["error"]
    status, _, answer = post_json(
        port, "/invocations", {"dataframe_records": rows.drop("region").head(1).to_dicts()}
    )
    assert status == 400 and "region" in answer["error"]
    status, _, answer = post_json(port, "/v2/models/nope/infer", {"inputs": []})
    assert status == 404 and "nope" in answer["error"]
    status, _, body = request(port, "GET", "/invocations")
    assert status == 405 and "POST" in json.loads(body)["error"]

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:  # a declared length over the limit is refused before any of the body is sent
        conn.putrequest("POST", "/invocations")
        conn.putheader("Content-Length", str(MAX_BODY_BYTES + 1))
        conn.endheaders()
        answer = conn.getresponse()
        assert answer.status == 413 and "limit" in json.loads(answer.read())["error"]
    finally:
        conn.close()

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:  # no content-length (chunked): the limit is applied while reading
        conn.putrequest("POST", "/invocations")
        conn.putheader("Transfer-Encoding", "chunked")
        conn.endheaders()
        chunk = b"x" * (1 << 20)
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # refused mid-way
            for _ in range(MAX_BODY_BYTES // len(chunk) + 2):
                conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            conn.send(b"0\r\n\r\n")
        answer = conn.getresponse()
        assert answer.status == 413 and "limit" in json.loads(answer.read())["error"]
    finally:
        conn.close()

    status, _, answer = post_json(port, f"/v2/models/{name}/infer", {"inputs": "x"})
    assert status == 400
    status, _, answer = post_json(port, "/invocations", one_row)
    assert status == 200 and len(answer["predictions"]) == 1


def test_metrics_and_health(served: dict[str, Any]) -> None:
    status, headers, body = request(served["port"], "GET", "/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain")
    assert f"mldeck_champion_version {served['champion']}" in body.decode()
    assert request(served["port"], "GET", "/ping")[0] == 200


def test_control_api_needs_the_token_and_streams_events(served: dict[str, Any]) -> None:
    port, auth = served["port"], {"Authorization": f"Bearer {served['token']}"}
    assert request(port, "GET", "/control/status")[0] == 401
    status, _, body = request(port, "GET", "/control/status", headers=auth)
    assert status == 200 and json.loads(body)["champion"]["version"] == served["champion"]
    assert request(port, "GET", "/control/events")[0] == 401

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/control/events", headers=auth)
        answer = conn.getresponse()
        assert answer.status == 200
        assert answer.getheader("content-type") == "text/event-stream"
        assert answer.readline() == b": events\n"
    finally:
        conn.close()


def test_the_process_is_the_granian_rsgi_server(served: dict[str, Any]) -> None:
    """Guard that these tests exercise what they claim: granian answers, not uvicorn."""
    _, headers, _ = request(served["port"], "GET", "/v2/health/ready")
    assert "granian" in headers.get("server", "")
