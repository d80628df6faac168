"""tritonclient's `InferenceServerClient`, unmodified and with its defaults, against our server.

The server runs behind uvicorn on 127.0.0.1 (a free port) over a trained project
with two registered versions. Answers are checked against onnxruntime run
directly on each version's stored ONNX bytes. The client's defaults use the
binary tensor data extension for inputs and outputs; the pure JSON form is
checked too.
"""

from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import polars as pl
import pytest
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from engine.core.project import Project, open_project
from engine.records.registry import CHAMPION, alias_version, get_version
from engine.serving.app import ServingApp, create_app
from tests.conftest import TrainedTemplates
from tests.helpers import TWO_LINEAR, serve_in_thread, wait_until


@pytest.fixture(scope="module")
def project(
    tmp_path_factory: pytest.TempPathFactory, trained_templates: TrainedTemplates
) -> Iterator[Project]:
    """One copy of the trained project for the module: its tests share one server."""
    root = tmp_path_factory.mktemp("triton") / "loans"
    shutil.copytree(trained_templates.get(TWO_LINEAR)[0], root)
    with open_project(root) as opened:
        yield opened


@pytest.fixture(scope="module")
def served(project: Project) -> Iterator[tuple[ServingApp, str]]:
    """The app and its "127.0.0.1:PORT" address, served by uvicorn in a thread."""
    app = create_app(project)
    try:
        with serve_in_thread(app) as port:
            yield app, f"127.0.0.1:{port}"
    finally:
        app.close()


@pytest.fixture
def client(served: tuple[ServingApp, str]) -> Iterator[Any]:
    with httpclient.InferenceServerClient(url=served[1]) as opened:
        yield opened


@pytest.fixture(scope="module")
def rows(small_reference: Path) -> pl.DataFrame:
    return pl.read_csv(small_reference).slice(10, 7).drop("default")


def model_inputs(project: Project, version: int) -> list[dict[str, Any]]:
    inputs: list[dict[str, Any]] = json.loads(get_version(project.catalog, version)["inputs_json"])
    return inputs


def onnx_outputs(project: Project, version: int, frame: pl.DataFrame) -> dict[str, np.ndarray]:
    """What onnxruntime itself answers for these rows, from the version's stored ONNX bytes."""
    row = get_version(project.catalog, version)
    session = ort.InferenceSession(
        project.objects.read_bytes(row["onnx_hash"]), providers=["CPUExecutionProvider"]
    )
    feed: dict[str, np.ndarray] = {}
    for spec in model_inputs(project, version):
        values = frame[spec["name"]]
        if "string" in spec["type"]:
            feed[spec["name"]] = np.array(values.to_list(), dtype=object).reshape(-1, 1)
        else:
            feed[spec["name"]] = values.cast(pl.Float32).to_numpy().reshape(-1, 1)
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feed), strict=True))


def client_inputs(
    project: Project, version: int, frame: pl.DataFrame, binary_data: bool = True
) -> list[Any]:
    """One InferInput per raw column: BYTES [N] for strings, FP32 [N, 1] for numbers."""
    inputs = []
    n = frame.height
    for spec in model_inputs(project, version):
        values = frame[spec["name"]]
        if "string" in spec["type"]:
            tensor = np.array(values.to_list(), dtype=object)
            infer_input = httpclient.InferInput(spec["name"], [n], "BYTES")
        else:
            tensor = values.cast(pl.Float32).to_numpy().reshape(n, 1)
            infer_input = httpclient.InferInput(spec["name"], [n, 1], "FP32")
        if binary_data:
            infer_input.set_data_from_numpy(tensor)  # the default: binary_data=True
        else:
            infer_input.set_data_from_numpy(tensor, binary_data=False)
        inputs.append(infer_input)
    return inputs


def assert_matches_onnx(result: Any, want: dict[str, np.ndarray]) -> None:
    label, probabilities = result.as_numpy("label"), result.as_numpy("probabilities")
    assert label.dtype == np.int64 and probabilities.dtype == np.float32
    np.testing.assert_array_equal(label.reshape(-1), want["label"].reshape(-1))
    assert probabilities.shape == want["probabilities"].shape
    np.testing.assert_allclose(probabilities, want["probabilities"], rtol=1e-6)


def test_health_and_readiness(client: Any, project: Project) -> None:
    name = project.config.name
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready(name)
    assert client.is_model_ready(name, model_version="1")
    assert client.is_model_ready(name, model_version="2")
    assert not client.is_model_ready("no-such-model")
    assert not client.is_model_ready(name, model_version="99")


def test_server_and_model_metadata(client: Any, project: Project) -> None:
    name = project.config.name
    server = client.get_server_metadata()
    assert server["name"] == "mldeck"
    assert "binary_tensor_data" in server["extensions"]
    champion = alias_version(project.catalog, CHAMPION)
    meta = client.get_model_metadata(name)
    assert meta["name"] == name
    assert meta["versions"] == ["1", "2"]
    assert meta["platform"] == "onnxruntime_onnx"
    assert meta["model_version"] == str(champion)
    datatypes = {i["name"]: i["datatype"] for i in meta["inputs"]}
    for spec in model_inputs(project, champion or 1):
        assert datatypes[spec["name"]] == ("BYTES" if "string" in spec["type"] else "FP32")
    assert datatypes["region"] == "BYTES" and datatypes["age"] == "FP32"
    assert [(o["name"], o["datatype"]) for o in meta["outputs"]] == [
        ("label", "INT64"),
        ("probabilities", "FP32"),
    ]
    assert client.get_model_metadata(name, model_version="1")["model_version"] == "1"
    config = client.get_model_config(name)
    assert config["name"] == name and config["platform"] == "onnxruntime_onnx"
    assert {i["name"]: i["data_type"] for i in config["input"]}["region"] == "TYPE_STRING"
    assert client.get_model_config(name, model_version="1")["version"] == "1"


def test_infer_with_client_defaults_is_binary(
    client: Any, project: Project, rows: pl.DataFrame
) -> None:
    champion = alias_version(project.catalog, CHAMPION)
    assert champion is not None
    inputs = client_inputs(project, champion, rows)
    assert all("binary_data_size" in i._get_tensor()["parameters"] for i in inputs)
    result = client.infer(project.config.name, inputs, request_id="triton-1")
    response = result.get_response()
    assert response["model_version"] == str(champion) and response["id"] == "triton-1"
    # the outputs came back as binary data, not JSON lists
    assert all(
        "data" not in o and o["parameters"]["binary_data_size"] > 0 for o in response["outputs"]
    )
    assert_matches_onnx(result, onnx_outputs(project, champion, rows))
    # the binary request is logged like any other: every row, with its decoded inputs
    logged: list[dict[str, Any]] = wait_until(
        lambda: (
            found
            if len(
                found := project.catalog.rows(
                    "SELECT row_index, inputs_json, output_json FROM predictions"
                    " WHERE request_id = 'triton-1' ORDER BY row_index"
                )
            )
            >= rows.height
            else None
        ),
        10,
        "the binary request's rows logged",
    )
    assert [r["row_index"] for r in logged] == list(range(rows.height))
    first = json.loads(logged[0]["inputs_json"])
    assert first["region"] == rows["region"][0] and first["age"] == rows["age"][0]
    assert json.loads(logged[0]["output_json"])["label"] == int(result.as_numpy("label")[0])
    # named outputs, binary by default
    only = client.infer(
        project.config.name, inputs, outputs=[httpclient.InferRequestedOutput("probabilities")]
    )
    assert [o["name"] for o in only.get_response()["outputs"]] == ["probabilities"]
    assert only.as_numpy("label") is None
    np.testing.assert_allclose(
        only.as_numpy("probabilities"), result.as_numpy("probabilities"), rtol=0
    )


def test_infer_pure_json(client: Any, project: Project, rows: pl.DataFrame) -> None:
    champion = alias_version(project.catalog, CHAMPION)
    assert champion is not None
    inputs = client_inputs(project, champion, rows, binary_data=False)
    assert all("data" in i._get_tensor() for i in inputs)
    outputs = [
        httpclient.InferRequestedOutput("label", binary_data=False),
        httpclient.InferRequestedOutput("probabilities", binary_data=False),
    ]
    result = client.infer(project.config.name, inputs, outputs=outputs)
    assert all("data" in o for o in result.get_response()["outputs"])
    assert_matches_onnx(result, onnx_outputs(project, champion, rows))
    # binary inputs, one output in JSON and one in binary
    mixed = client.infer(
        project.config.name,
        client_inputs(project, champion, rows),
        outputs=[
            httpclient.InferRequestedOutput("label", binary_data=False),
            httpclient.InferRequestedOutput("probabilities"),
        ],
    )
    by_name = {o["name"]: o for o in mixed.get_response()["outputs"]}
    assert "data" in by_name["label"] and "data" not in by_name["probabilities"]
    assert_matches_onnx(mixed, onnx_outputs(project, champion, rows))


@pytest.mark.parametrize("version", [1, 2])
def test_infer_a_specific_version(
    client: Any, project: Project, rows: pl.DataFrame, version: int
) -> None:
    result = client.infer(
        project.config.name, client_inputs(project, version, rows), model_version=str(version)
    )
    assert result.get_response()["model_version"] == str(version)
    assert_matches_onnx(result, onnx_outputs(project, version, rows))


def test_errors_reach_the_client(client: Any, project: Project, rows: pl.DataFrame) -> None:
    name = project.config.name
    inputs = client_inputs(project, 1, rows)
    with pytest.raises(InferenceServerException) as unknown_model:
        client.infer("no-such-model", inputs)
    assert unknown_model.value.status() == "404"
    assert f"unknown model 'no-such-model'; this server serves {name!r}" in str(unknown_model.value)
    with pytest.raises(InferenceServerException, match="no model version 99"):
        client.infer(name, inputs, model_version="99")
    with pytest.raises(InferenceServerException, match="unknown model"):
        client.get_model_metadata("no-such-model")
    missing = [i for i in inputs if i.name() != "age"]
    with pytest.raises(InferenceServerException, match=r"missing column\(s\): age") as exc:
        client.infer(name, missing)
    assert exc.value.status() == "400"
    with pytest.raises(InferenceServerException, match="classification extension"):
        client.infer(
            name, inputs, outputs=[httpclient.InferRequestedOutput("label", class_count=2)]
        )
    assert client.infer(name, inputs).as_numpy("label").shape == (rows.height,)


def post(address: str, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
    request = urllib.request.Request(f"http://{address}{path}", data=body, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_bad_binary_payloads_get_400(
    served: tuple[ServingApp, str], project: Project, rows: pl.DataFrame
) -> None:
    """Hand-built requests in the client's own layout, broken in each way, over the socket."""
    address = served[1]
    infer = f"/v2/models/{project.config.name}/infer"
    good_inputs = client_inputs(project, 1, rows)
    header = json.dumps({"inputs": [i._get_tensor() for i in good_inputs]}).encode()
    blob = b"".join(i._get_binary_data() for i in good_inputs)
    region = next(i for i, t in enumerate(good_inputs) if t.datatype() == "BYTES")
    broken_lengths = json.loads(header)
    regions = good_inputs[region]._get_binary_data()
    lying = (99).to_bytes(4, "little") + regions[4:]
    offset = sum(len(i._get_binary_data()) for i in good_inputs[:region])
    cases = [
        ({"Inference-Header-Content-Length": str(len(header))}, header + blob, 200, None),
        (
            {"Inference-Header-Content-Length": str(len(header))},
            header + blob[:-3],
            400,
            "runs past the end",
        ),
        (
            {"Inference-Header-Content-Length": str(len(header))},
            header + blob + b"xx",
            400,
            "belong to no input",
        ),
        ({"Content-Type": "application/json"}, header + blob, 400, "malformed JSON"),
        (
            {"Inference-Header-Content-Length": "lots"},
            header + blob,
            400,
            "expected a number of bytes",
        ),
        (
            {"Inference-Header-Content-Length": str(len(header) + len(blob) + 1)},
            header + blob,
            400,
            "the body holds",
        ),
        (
            {"Inference-Header-Content-Length": str(len(header))},
            header + blob[:offset] + lying + blob[offset + len(regions) :],
            400,
            "says 99 bytes",
        ),
        (
            {"Inference-Header-Content-Length": str(len(json.dumps(broken_lengths)))},
            json.dumps(broken_lengths).encode(),
            400,
            "runs past the end",
        ),
    ]
    for headers, body, status, message in cases:
        got_status, got = post(address, infer, body, headers)
        assert got_status == status, (message, got)
        if message is not None:
            assert message in got["error"], (message, got)
    # the JSON-only form, no header, still works as before
    plain = {"inputs": [i._get_tensor() for i in client_inputs(project, 1, rows, False)]}
    json_only = {"Content-Type": "application/json"}  # urllib's default is form-encoded: 415
    assert post(address, infer, json.dumps(plain).encode(), json_only)[0] == 200
