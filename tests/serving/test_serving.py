"""Serving: OIP v2 and MLflow scoring over real ONNX sessions, the prediction log, swaps.

One project is trained once per module (two linear candidates -> v1, v2) and
copied for each test. The ASGI app is driven in-process by a small driver; one
test runs it behind uvicorn on a real socket.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from engine.core.project import Project
from engine.models.scoring import feed_for, version_inputs
from engine.records.registry import CHAMPION, alias_version
from engine.serving.app import ServingApp, create_app
from engine.serving.model_slot import load_model
from tests.helpers import TWO_LINEAR, run_cli, serve_in_thread


@pytest.fixture
def project(trained_project: Callable[..., Path], open_proj: Callable[[Path], Project]) -> Project:
    return open_proj(trained_project(TWO_LINEAR))


@pytest.fixture
def app(project: Project) -> Iterator[ServingApp]:
    served = create_app(project, max_body_bytes=200_000)
    yield served
    served.close()


@pytest.fixture(scope="module")
def rows(small_reference: Path) -> pl.DataFrame:
    return pl.read_csv(small_reference).head(5).drop("default")


class Response:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    def json(self) -> Any:
        return json.loads(self.body)


def call(
    app: ServingApp,
    method: str,
    path: str,
    body: bytes | Any = b"",
    content_type: str = "application/json",
) -> Response:
    """Drive one HTTP request through the ASGI app in-process."""
    if not isinstance(body, bytes):
        body = json.dumps(body).encode()
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "headers": [(b"content-type", content_type.encode())],
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    start, end = sent
    headers = {k.decode(): v.decode() for k, v in start["headers"]}
    return Response(start["status"], headers, end["body"])


def records(frame: pl.DataFrame) -> list[dict[str, Any]]:
    return frame.to_dicts()


def expected(app: ServingApp, frame: pl.DataFrame) -> dict[str, np.ndarray]:
    model = app.slot.model
    feed = feed_for(frame, version_inputs(app.project, model.row))
    return dict(
        zip(
            ["label", "probabilities"],
            model.session.run(["label", "probabilities"], feed),
            strict=True,
        )
    )


def oip_request(app: ServingApp, frame: pl.DataFrame, **extra: Any) -> dict[str, Any]:
    inputs = []
    for spec in app.slot.model.inputs:
        values = frame[spec.name].to_list()
        if spec.is_string:
            inputs.append(
                {"name": spec.name, "datatype": "BYTES", "shape": [len(values)], "data": values}
            )
        else:
            inputs.append(
                {"name": spec.name, "datatype": "FP64", "shape": [len(values), 1], "data": values}
            )
    return {"inputs": inputs, **extra}


def test_health_and_metadata(app: ServingApp, project: Project) -> None:
    name = project.config.name
    champion = alias_version(project.catalog, CHAMPION)
    for path in ("/ping", "/health", "/v2/health/live", "/v2/health/ready", "/v2"):
        assert call(app, "GET", path).status == 200, path
    meta = call(app, "GET", f"/v2/models/{name}").json()
    assert meta["platform"] == "onnxruntime_onnx"
    assert meta["versions"] == ["1", "2"]
    assert meta["model_version"] == str(champion)
    assert meta["provider"] in ("CPUExecutionProvider", "CUDAExecutionProvider")
    inputs = {i["name"]: i["datatype"] for i in meta["inputs"]}
    assert inputs["age"] == "FP32" and inputs["region"] == "BYTES"
    assert [(o["name"], o["datatype"]) for o in meta["outputs"]] == [
        ("label", "INT64"),
        ("probabilities", "FP32"),
    ]
    ready = call(app, "GET", f"/v2/models/{name}/ready").json()
    assert ready["ready"] is True
    other = 1 if champion == 2 else 2
    assert call(app, "GET", f"/v2/models/{name}/versions/{other}").json()["model_version"] == str(
        other
    )
    assert call(app, "GET", f"/v2/models/{name}/versions/{other}/ready").status == 200


def test_oip_infer_matches_onnx(app: ServingApp, project: Project, rows: pl.DataFrame) -> None:
    want = expected(app, rows)
    response = call(
        app, "POST", f"/v2/models/{project.config.name}/infer", oip_request(app, rows, id="req-1")
    )
    assert response.status == 200, response.body
    body = response.json()
    assert body["id"] == "req-1" and body["model_version"] == str(app.slot.model.version)
    outputs = {o["name"]: o for o in body["outputs"]}
    assert outputs["label"]["data"] == want["label"].tolist()
    assert outputs["probabilities"]["shape"] == [5, 2]
    np.testing.assert_allclose(
        outputs["probabilities"]["data"], want["probabilities"].reshape(-1), rtol=1e-6
    )
    only = call(
        app,
        "POST",
        f"/v2/models/{project.config.name}/infer",
        oip_request(app, rows, outputs=[{"name": "label"}]),
    ).json()
    assert [o["name"] for o in only["outputs"]] == ["label"]


@pytest.mark.parametrize(
    "fmt", ["dataframe_split", "dataframe_records", "instances", "inputs", "csv"]
)
def test_invocations_formats_match_onnx(app: ServingApp, rows: pl.DataFrame, fmt: str) -> None:
    want = expected(app, rows)
    if fmt == "dataframe_split":
        response = call(
            app,
            "POST",
            "/invocations",
            {"dataframe_split": {"columns": rows.columns, "data": [list(r) for r in rows.rows()]}},
        )
    elif fmt == "dataframe_records":
        response = call(app, "POST", "/invocations", {"dataframe_records": records(rows)})
    elif fmt == "instances":
        response = call(app, "POST", "/invocations", {"instances": records(rows)})
    elif fmt == "inputs":
        response = call(app, "POST", "/invocations", {"inputs": rows.to_dict(as_series=False)})
    else:
        response = call(app, "POST", "/invocations", rows.write_csv().encode(), "text/csv")
    assert response.status == 200, response.body
    assert response.headers["x-model-version"] == str(app.slot.model.version)
    assert len(response.headers["x-request-id"]) == 32
    predictions = response.json()["predictions"]
    assert [p["label"] for p in predictions] == want["label"].tolist()
    np.testing.assert_allclose(
        [p["probabilities"] for p in predictions], want["probabilities"], rtol=1e-6
    )


def test_prediction_log_rows(app: ServingApp, project: Project, rows: pl.DataFrame) -> None:
    first = call(app, "POST", "/invocations", {"dataframe_records": records(rows)})
    second = call(
        app,
        "POST",
        f"/v2/models/{project.config.name}/infer",
        oip_request(app, rows.head(2), id="oip-7"),
    )
    assert first.status == second.status == 200
    app.close()
    logged = project.catalog.rows(
        "SELECT request_id, row_index, model_version, endpoint, inputs_json, output_json, shadow"
        " FROM predictions ORDER BY endpoint, row_index"
    )
    assert len(logged) == 7
    version = app.slot.model.version
    assert {(r["request_id"], r["endpoint"]) for r in logged} == {
        (first.headers["x-request-id"], "invocations"),
        ("oip-7", "infer"),
    }
    assert all(r["model_version"] == version and r["shadow"] is False for r in logged)
    invocations = [r for r in logged if r["endpoint"] == "invocations"]
    assert [r["row_index"] for r in invocations] == [0, 1, 2, 3, 4]
    assert json.loads(invocations[0]["inputs_json"])["region"] == rows["region"][0]
    assert (
        json.loads(invocations[0]["output_json"])["label"]
        == first.json()["predictions"][0]["label"]
    )


def test_concurrent_requests_share_a_run_and_are_logged_each_under_its_id(
    app: ServingApp, project: Project, rows: pl.DataFrame
) -> None:
    """Requests that arrive together are scored in one session run and logged with one
    hand-off; every row still carries its own request's id, row index, endpoint and,
    where the request sent it, the project's id column."""
    frame = rows.head(3)
    with_ids = {"dataframe_records": records(frame)}  # loan_id included
    without_ids = {"dataframe_records": records(frame.drop("loan_id"))}

    async def one(path: str, payload: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
        body = json.dumps(payload).encode()
        scope = {
            "type": "http",
            "method": "POST",
            "path": path,
            "headers": [(b"content-type", b"application/json")],
        }
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await app(scope, receive, send)
        start, end = sent
        headers = {k.decode(): v.decode() for k, v in start["headers"]}
        return start["status"], headers, json.loads(end["body"])

    infer_path = f"/v2/models/{project.config.name}/infer"

    async def together() -> list[tuple[int, dict[str, str], Any]]:
        return await asyncio.gather(
            one("/invocations", with_ids),
            one("/invocations", without_ids),
            one(infer_path, oip_request(app, frame.head(2), id="oip-a")),
            one("/invocations", with_ids),
        )

    answers = asyncio.run(together())
    batcher = app.slot.model.batcher
    assert (batcher.requests, batcher.batches) == (4, 1)  # one session run for all four
    app.close()
    mine = expected(app, frame)
    ids = [h["x-request-id"] for _, h, _ in answers]
    assert ids[2] == "oip-a" and len(set(ids)) == 4
    for status, _, body in answers[:2] + answers[3:]:
        assert status == 200
        got = np.array([p["probabilities"] for p in body["predictions"]])
        np.testing.assert_allclose(got, mine["probabilities"], rtol=0, atol=1e-6)

    logged = project.catalog.rows(
        "SELECT request_id, row_index, endpoint, inputs_json FROM predictions"
        " ORDER BY request_id, row_index"
    )
    by_id: dict[str, list[dict[str, Any]]] = {}
    for row in logged:
        by_id.setdefault(row["request_id"], []).append(row)
    assert sorted(by_id) == sorted(ids)
    for position, request_id in enumerate(ids):
        mine_rows = by_id[request_id]
        n = 2 if request_id == "oip-a" else 3
        assert [r["row_index"] for r in mine_rows] == list(range(n))
        endpoint = "infer" if request_id == "oip-a" else "invocations"
        assert {r["endpoint"] for r in mine_rows} == {endpoint}
        inputs = [json.loads(r["inputs_json"]) for r in mine_rows]
        assert [i["region"] for i in inputs] == frame["region"].to_list()[:n]
        sent_ids = position in (0, 3)
        assert [i.get("loan_id") for i in inputs] == (
            [str(v) for v in frame["loan_id"].to_list()] if sent_ids else [None] * n
        )


def test_bad_requests_get_4xx_and_serving_goes_on(
    app: ServingApp, project: Project, rows: pl.DataFrame
) -> None:
    name = project.config.name
    infer = f"/v2/models/{name}/infer"
    good = oip_request(app, rows)
    wrong_type = json.loads(json.dumps(good))
    next(i for i in wrong_type["inputs"] if i["datatype"] == "BYTES")["datatype"] = "FP32"
    wrong_shape = json.loads(json.dumps(good))
    wrong_shape["inputs"][0]["shape"] = [2, 3]
    miscount = json.loads(json.dumps(good))
    miscount["inputs"][0]["shape"] = [4]
    bad_shapes = []
    for shape in ([-1], [1.5], "5", [], [5, 1.0], [5, 2], [5, 1, 1]):
        case = json.loads(json.dumps(good))
        case["inputs"][0]["shape"] = shape
        bad_shapes.append(case)
    missing = {
        "dataframe_records": [{k: v for k, v in r.items() if k != "age"} for r in records(rows)]
    }
    bad_number = {"dataframe_records": [{**records(rows)[0], "age": "old"}]}
    cases: list[tuple[str, str, Any, str, int, str]] = [
        ("GET", "/v2/models/nope", b"", "application/json", 404, "unknown model"),
        (
            "GET",
            f"/v2/models/{name}/versions/99",
            b"",
            "application/json",
            404,
            "no model version 99",
        ),
        (
            "POST",
            f"/v2/models/{name}/versions/x/infer",
            good,
            "application/json",
            404,
            "unknown model version",
        ),
        ("POST", infer, b"{not json", "application/json", 400, "malformed JSON"),
        ("POST", "/invocations", b"[1,", "application/json", 400, "malformed JSON"),
        ("POST", "/invocations", missing, "application/json", 400, "missing column(s): age"),
        ("POST", "/invocations", bad_number, "application/json", 400, "expected a number"),
        ("POST", infer, wrong_type, "application/json", 400, "expected BYTES"),
        ("POST", infer, wrong_shape, "application/json", 400, "shape"),
        ("POST", infer, miscount, "application/json", 400, "data holds 5"),
        *[
            ("POST", infer, case, "application/json", 400, "expected [N] or [N, 1]")
            for case in bad_shapes
        ],
        (
            "POST",
            "/invocations",
            {"dataframe_records": []},
            "application/json",
            400,
            "empty batch",
        ),
        ("POST", "/invocations", {"what": 1}, "application/json", 400, "unknown payload"),
        ("POST", "/invocations", b"x" * 300_000, "application/json", 413, "over the limit"),
        ("POST", "/invocations", b"a,b", "text/plain", 415, "content type"),
        ("GET", "/nowhere", b"", "application/json", 404, "no route"),
    ]
    for method, path, body, content_type, status, text in cases:
        response = call(app, method, path, body, content_type)
        assert response.status == status, (path, text, response.body)
        assert text in response.json()["error"], (text, response.body)
        assert call(app, "POST", infer, good).status == 200
    metrics = call(app, "GET", "/metrics").body.decode()
    champion = app.slot.model.version
    assert (
        f'mldeck_request_errors_total{{endpoint="invocations",model_version="{champion}",status="400"}} 5'
        in metrics
    )
    assert (
        f'mldeck_request_errors_total{{endpoint="infer",model_version="{champion}",status="400"}} '
        f"{4 + len(bad_shapes)}" in metrics
    )
    assert "mldeck_champion_version " + str(app.slot.model.version) in metrics


def test_metrics(app: ServingApp, rows: pl.DataFrame) -> None:
    call(app, "POST", "/invocations", {"dataframe_records": records(rows)})
    response = call(app, "GET", "/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    text = response.body.decode()
    version = app.slot.model.version
    assert f'mldeck_requests_total{{endpoint="invocations",model_version="{version}"}} 1' in text
    assert f'mldeck_rows_scored_total{{model_version="{version}"}} 5' in text
    assert 'mldeck_request_duration_seconds_count{endpoint="invocations"} 1' in text
    assert f"mldeck_champion_version {version}" in text


def test_swap_serves_the_new_version(app: ServingApp, project: Project, rows: pl.DataFrame) -> None:
    before = app.slot.model
    other = load_model(project, 1 if before.version == 2 else 2)
    assert app.slot.swap(other) is before
    response = call(app, "POST", "/invocations", {"dataframe_records": records(rows)})
    assert response.headers["x-model-version"] == str(other.version)
    body = call(
        app, "POST", f"/v2/models/{project.config.name}/infer", oip_request(app, rows)
    ).json()
    assert body["model_version"] == str(other.version)
    assert f"mldeck_champion_version {other.version}" in call(app, "GET", "/metrics").body.decode()


def test_real_socket(app: ServingApp, rows: pl.DataFrame) -> None:
    with serve_in_thread(app) as port:
        base = f"http://127.0.0.1:{port}"
        with urllib.request.urlopen(f"{base}/v2/health/ready", timeout=5) as ready:
            assert ready.status == 200
        request = urllib.request.Request(
            f"{base}/invocations",
            data=json.dumps({"dataframe_records": records(rows)}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=5) as answer:
            assert answer.headers["x-model-version"] == str(app.slot.model.version)
            assert len(json.loads(answer.read())["predictions"]) == 5


def test_serve_without_a_champion_says_so(make_project: Callable[..., Path]) -> None:
    root = make_project(models=None)
    result = run_cli(["-C", str(root), "serve"])
    assert result.exit_code == 1
    assert "no champion to serve" in result.stderr


def test_shadow_is_logged_and_never_returned(project: Project, rows: pl.DataFrame) -> None:
    champion = alias_version(project.catalog, CHAMPION)
    other = 2 if champion == 1 else 1
    app = create_app(project, shadow_version=other)
    try:
        answers = [
            call(app, "POST", "/invocations", {"dataframe_records": records(rows)})
            for _ in range(3)
        ]
        mine = expected(app, rows)
    finally:
        app.close()
    for answer in answers:
        assert answer.status == 200
        assert answer.headers["x-model-version"] == str(champion)
        got = np.array([p["probabilities"] for p in answer.json()["predictions"]])
        np.testing.assert_allclose(got, mine["probabilities"], rtol=0, atol=1e-6)

    shadow_model = load_model(project, other)
    theirs = shadow_model.session.run(
        ["probabilities"], feed_for(rows, version_inputs(project, shadow_model.row))
    )[0]
    assert not np.allclose(theirs, mine["probabilities"])  # v1 and v2 really differ
    logged = project.catalog.rows(
        "SELECT request_id, row_index, model_version, shadow, output_json FROM predictions"
        " ORDER BY request_id, shadow, row_index"
    )
    ids = {a.headers["x-request-id"] for a in answers}
    assert {r["request_id"] for r in logged} == ids
    for request_id in ids:
        served = [r for r in logged if r["request_id"] == request_id and not r["shadow"]]
        shadowed = [r for r in logged if r["request_id"] == request_id and r["shadow"]]
        assert [r["model_version"] for r in served] == [champion] * rows.height
        assert [r["model_version"] for r in shadowed] == [other] * rows.height
        shadow_probs = np.array([json.loads(r["output_json"])["probabilities"] for r in shadowed])
        np.testing.assert_allclose(shadow_probs, theirs, rtol=0, atol=1e-6)


def test_shadow_must_be_another_registered_version(project: Project) -> None:
    from engine.core.errors import MldeckError

    champion = alias_version(project.catalog, CHAMPION)
    with pytest.raises(MldeckError, match="is the champion"):
        create_app(project, shadow_version=champion)
    with pytest.raises(MldeckError, match="no model version 9"):
        create_app(project, shadow_version=9)
