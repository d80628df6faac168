"""Fuzzing the HTTP API from its own OpenAPI description, and the body decoders directly.

schemathesis generates requests for every operation of `/openapi.json` and sends
them to a real `mldeck serve` on 127.0.0.1: no answer may be a 5xx, and after
each case the server still scores a good 1-row request. The control routes are
fuzzed with the token for the read-only ones and without it for the ones that
change the project (they must answer 401, never 5xx). Budget: a few dozen
examples per operation, the whole module well under a minute; `bench/harden.py`
runs the longer campaign.

hypothesis drives the decoders (`engine.serving.bodies`, the MLflow, CSV and OIP
column decoders, `prepare_columns`) with arbitrary JSON values and bytes: each
either decodes or raises the 4xx `HttpError`, nothing else.
"""

from __future__ import annotations

import asyncio
import csv
import http.client
import io
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error

from engine.core.owner import project_token
from engine.serving import oip_binary
from engine.serving.bodies import BodyTooLarge, read_asgi_body, read_rsgi_body
from engine.serving.decode import (
    HttpError,
    columns_from_csv,
    columns_from_mlflow_json,
    columns_from_oip,
    prepare_columns,
)
from engine.serving.model_slot import LoadedModel, load_model
from engine.serving.openapi import openapi_spec
from tests.conftest import TWO_LINEAR, build_trained, start_server, stop_server

MODEL_NAME = "loans"

# Operations whose cases change the project or never end: fuzzed without the token.
UNAUTHENTICATED = {"/control/events"} | {
    path
    for path, item in openapi_spec()["paths"].items()
    if path.startswith("/control/") and "post" in item
}


def fuzz_spec() -> dict[str, Any]:
    """The served document, with the model name pinned so that cases reach the model."""
    spec = openapi_spec()
    for item in spec["paths"].values():
        for param in item.get("parameters", []):
            if param["name"] == "name":
                param["schema"] = {"type": "string", "enum": [MODEL_NAME]}
    return spec


schema = schemathesis.openapi.from_dict(fuzz_spec())


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory, small_reference: Path) -> Path:
    root = tmp_path_factory.mktemp("fuzz-template") / MODEL_NAME
    assert build_trained(root, small_reference, TWO_LINEAR) == [1, 2]
    return root


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, template: Path) -> Iterator[tuple[Path, int]]:
    root = tmp_path_factory.mktemp("fuzz") / MODEL_NAME
    shutil.copytree(template, root)
    server, port = start_server(root)
    yield root, port
    stop_server(server)


@pytest.fixture(scope="module")
def good_body(small_reference: Path) -> bytes:
    with open(small_reference) as f:
        record = next(csv.DictReader(f))
    record.pop("default")
    return json.dumps({"dataframe_records": [record]}).encode()


def still_serves(port: int, good_body: bytes) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request(
        "POST", "/invocations", body=good_body, headers={"Content-Type": "application/json"}
    )
    response = conn.getresponse()
    assert response.status == 200, response.read()[:300]
    assert json.loads(response.read())["predictions"]


def test_openapi_is_served_and_names_every_route(served: tuple[Path, int]) -> None:
    _, port = served
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/openapi.json")
    response = conn.getresponse()
    assert response.status == 200
    assert response.getheader("content-type") == "application/json"
    document = json.loads(response.read())
    assert document == json.loads(json.dumps(openapi_spec()))
    paths = document["paths"]
    for route in ("/invocations", "/v2/models/{name}/infer", "/metrics", "/ping", "/health"):
        assert route in paths
    assert document["components"]["securitySchemes"]["controlToken"]["scheme"] == "bearer"
    assert paths["/control/promote"]["post"]["security"] == [{"controlToken": []}]


@pytest.mark.slow
@schema.parametrize()
@settings(
    max_examples=20,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
    database=None,
)
def test_no_server_error_and_still_serving(
    case: schemathesis.Case, served: tuple[Path, int], good_body: bytes
) -> None:
    root, port = served
    headers = {}
    if case.path.startswith("/control/") and case.path not in UNAUTHENTICATED:
        headers["Authorization"] = f"Bearer {project_token(root / '.mldeck')}"
    response = case.call(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=30)
    if case.path in UNAUTHENTICATED:
        assert response.status_code == 401, response.text[:300]
    case.validate_response(response, checks=[not_a_server_error])
    still_serves(port, good_body)


# ------------------------------------------------------------------ known hostile cases


def with_age(good_body: bytes, literal: bytes) -> bytes:
    """The good 1-row body with its `age` replaced by the raw JSON `literal`."""
    record = json.loads(good_body)["dataframe_records"][0]
    body = json.dumps({"dataframe_records": [{**record, "age": "@AGE@"}]}).encode()
    return body.replace(b'"@AGE@"', literal)


@pytest.mark.parametrize(
    ("method", "path", "literal"),
    [
        pytest.param("POST", "/invocations", b"Infinity", id="infinity"),
        pytest.param("POST", "/invocations", b"1e999", id="1e999"),
        pytest.param("POST", "/invocations", b"1" + b"0" * 400, id="int-10**400"),
        pytest.param("POST", "/invocations", b"[" * 100_000 + b"]" * 100_000, id="nested-100000"),
        pytest.param("GET", "/v2/models/loans/versions/" + "9" * 4000, b"", id="version-4000-digits"),
        pytest.param("POST", "/invocations", b"", id="csv-stray-cr"),
    ],
)  # fmt: skip
def test_hostile_requests_known_from_issue_14_answer_4xx(
    served: tuple[Path, int], good_body: bytes, method: str, path: str, literal: bytes
) -> None:
    """The 5xx (and 200) answers issue 14 lists, which the fuzzer's budget rarely reaches."""
    _, port = served
    headers = {"Content-Type": "application/json"}
    body = with_age(good_body, literal) if literal else None
    if path == "/invocations" and not literal:
        headers, body = {"Content-Type": "text/csv"}, b"age\r1\r\n"
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request(method, path, body=body, headers=headers)
    response = conn.getresponse()
    answer = response.read()
    assert 400 <= response.status < 500, answer[:300]
    assert json.loads(answer)["error"]
    still_serves(port, good_body)


# ------------------------------------------------------------------ the decoders


@pytest.fixture(scope="module")
def model(template: Path) -> LoadedModel:
    """The champion as the server loads it."""
    from engine.core.project import open_project

    with open_project(template) as project:
        return load_model(project, 1)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=30,
)
"""Arbitrary JSON values (finite numbers: non-finite ones are h14-harden's item 2)."""


def mlflow_shaped() -> st.SearchStrategy[Any]:
    """Objects with one of the MLflow keys and arbitrary values under it."""
    key = st.sampled_from(["dataframe_split", "dataframe_records", "instances", "inputs"])
    return st.dictionaries(key, json_values, min_size=1, max_size=1) | json_values


@given(payload=mlflow_shaped())
@settings(max_examples=150, deadline=None, database=None)
def test_mlflow_decoder_decodes_or_answers_400(payload: Any) -> None:
    try:
        columns = columns_from_mlflow_json(payload)
    except HttpError as exc:
        assert exc.status == 400 and exc.msg
        return
    assert all(isinstance(name, str) for name in columns)
    assert all(isinstance(values, list) for values in columns.values())


@given(
    records=st.lists(
        st.dictionaries(st.sampled_from("abcd"), st.integers() | st.none(), max_size=4),
        min_size=1,
        max_size=20,
    )
)
@settings(max_examples=100, deadline=None, database=None)
def test_records_decode_to_columns_with_a_value_per_record(records: list[dict[str, Any]]) -> None:
    columns = columns_from_mlflow_json({"dataframe_records": records})
    assert set(columns) == {key for record in records for key in record}
    for name, values in columns.items():
        assert values == [record.get(name) for record in records]


@given(text=st.text(max_size=200))
@settings(max_examples=150, deadline=None, database=None)
def test_csv_decoder_decodes_or_answers_400(text: str) -> None:
    try:
        columns = columns_from_csv(text.encode())
    except HttpError as exc:
        assert exc.status == 400
        return
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert list(columns) == list(dict.fromkeys(rows[0]))


@given(body=st.binary(max_size=200))
@settings(max_examples=100, deadline=None, database=None)
def test_csv_decoder_takes_any_bytes(body: bytes) -> None:
    try:
        columns_from_csv(body)
    except HttpError as exc:
        assert exc.status == 400


def oip_shaped(model: LoadedModel) -> st.SearchStrategy[Any]:
    names = st.sampled_from([spec.name for spec in model.inputs]) | st.text(max_size=5)
    tensor = st.fixed_dictionaries(
        {
            "name": names,
            "datatype": st.sampled_from(["FP32", "FP64", "INT64", "BYTES", "BOOL", "X"]),
            "shape": st.lists(st.integers(-2, 4), max_size=3) | json_values,
            "data": st.lists(json_values, max_size=4) | json_values,
        }
    )
    return st.fixed_dictionaries({"inputs": st.lists(tensor, max_size=4) | json_values})


@given(data=st.data())
@settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
def test_oip_decoder_and_prepare_decode_or_answer_400(model: LoadedModel, data: Any) -> None:
    payload = data.draw(oip_shaped(model))
    try:
        columns, rows = prepare_columns(model, columns_from_oip(model, payload))
    except HttpError as exc:
        assert exc.status == 400 and exc.msg
        return
    assert rows > 0 and set(columns) == {spec.name for spec in model.inputs}


@given(data=st.data())
@settings(
    max_examples=100,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
def test_binary_extension_decodes_or_answers_400(model: LoadedModel, data: Any) -> None:
    header = data.draw(oip_shaped(model))
    for tensor in header.get("inputs", []) if isinstance(header.get("inputs"), list) else []:
        if isinstance(tensor, dict) and data.draw(st.booleans()):
            tensor.pop("data", None)
            tensor["parameters"] = {"binary_data_size": data.draw(st.integers(-1, 40))}
    head = json.dumps(header).encode()
    body = head + data.draw(st.binary(max_size=60))
    declared = data.draw(st.sampled_from([str(len(head)), None, "-1", "x", str(len(body) + 1)]))
    try:
        length = oip_binary.parse_header_length(declared, len(body))
        json_part, binary_part = oip_binary.split_body(body, length)
        payload = json.loads(json_part)
        oip_binary.attach_binary_inputs(payload, binary_part)
        prepare_columns(model, columns_from_oip(model, payload))
    except (oip_binary.BinaryDataError, HttpError, ValueError):
        return


@given(
    chunks=st.lists(st.binary(max_size=50), max_size=10),
    limit=st.integers(0, 300),
)
@settings(max_examples=150, deadline=None, database=None)
def test_body_readers_join_chunks_and_stop_past_the_limit(chunks: list[bytes], limit: int) -> None:
    whole = b"".join(chunks)
    fits = len(whole) <= limit

    async def read_both() -> tuple[Any, Any]:
        messages = [
            {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
            for i, c in enumerate(chunks or [b""])
        ]

        async def receive() -> dict[str, Any]:
            return messages.pop(0)

        class Protocol:
            def __aiter__(self) -> Any:
                return self._chunks()

            async def _chunks(self) -> Any:
                for chunk in chunks:
                    yield chunk

        answers = []
        for read in (
            lambda: read_asgi_body(receive, limit),
            lambda: read_rsgi_body(Protocol(), limit),
        ):
            try:
                answers.append(await read())
            except BodyTooLarge:
                answers.append(BodyTooLarge)
        return answers[0], answers[1]

    asgi, rsgi = asyncio.run(read_both())
    expected = whole if fits else BodyTooLarge
    assert asgi == expected and rsgi == expected
