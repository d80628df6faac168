"""The OpenAPI 3 description of the engine's HTTP API, served at `GET /openapi.json`.

One static document for every project: the OIP v2 routes, MLflow scoring,
/metrics, /ping, /health and the control API (bearer token). A model's input
names, datatypes and shapes depend on the project, so the infer and
/invocations bodies are described in their generic shapes; a client reads the
actual inputs from `GET /v2/models/{name}` (or `/config`). `tests/serving/test_fuzz.py`
and `bench/harden.py` fuzz the server from this document with schemathesis.

It is over 500 lines because it is one declarative document: its length is the API's.
"""

from __future__ import annotations

import copy
from functools import cache
from typing import Any

import orjson

JSON = "application/json"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json(_ref("Error"), description)


def _path_param(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": {"type": "string"},
        "description": description,
    }


def _query_param(
    name: str, schema: dict[str, Any], description: str, required: bool = False
) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "schema": schema,
        "description": description,
    }


VALUE = {
    "description": "One cell: a number, a string, a boolean or null (null is a missing value).",
    "nullable": True,
    "oneOf": [{"type": "number"}, {"type": "string"}, {"type": "boolean"}],
}
"""A cell of an input column (OpenAPI 3.0: `nullable` stands for JSON null)."""

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {"type": "string", "description": "What was wrong, naming the field."},
            "title": {"type": "string"},
        },
    },
    "Value": VALUE,
    "Record": {
        "type": "object",
        "description": "One row: column name -> value. The model's inputs are its columns.",
        "additionalProperties": _ref("Value"),
    },
    "MlflowRequest": {
        "description": "MLflow scoring input: exactly one of the four keys.",
        "oneOf": [
            {
                "type": "object",
                "required": ["dataframe_split"],
                "properties": {
                    "dataframe_split": {
                        "type": "object",
                        "required": ["columns", "data"],
                        "properties": {
                            "columns": {"type": "array", "items": {"type": "string"}},
                            "data": {
                                "type": "array",
                                "items": {"type": "array", "items": _ref("Value")},
                            },
                        },
                    }
                },
            },
            {
                "type": "object",
                "required": ["dataframe_records"],
                "properties": {"dataframe_records": {"type": "array", "items": _ref("Record")}},
            },
            {
                "type": "object",
                "required": ["instances"],
                "properties": {
                    "instances": {
                        "oneOf": [
                            {"type": "array", "items": _ref("Record")},
                            {
                                "type": "object",
                                "additionalProperties": {"type": "array", "items": _ref("Value")},
                            },
                        ]
                    }
                },
            },
            {
                "type": "object",
                "required": ["inputs"],
                "properties": {
                    "inputs": {
                        "oneOf": [
                            {"type": "array", "items": _ref("Record")},
                            {
                                "type": "object",
                                "additionalProperties": {"type": "array", "items": _ref("Value")},
                            },
                        ]
                    }
                },
            },
        ],
    },
    "MlflowResponse": {
        "type": "object",
        "required": ["predictions"],
        "properties": {
            "predictions": {
                "type": "array",
                "description": "Classification: {label, probabilities} per row; regression: a number per row.",
                "items": {
                    "oneOf": [
                        {"type": "number"},
                        {
                            "type": "object",
                            "properties": {
                                "label": {},
                                "probabilities": {"type": "array", "items": {"type": "number"}},
                            },
                        },
                    ]
                },
            }
        },
    },
    "Datatype": {
        "type": "string",
        "enum": [
            "BOOL",
            "UINT8",
            "UINT16",
            "UINT32",
            "UINT64",
            "INT8",
            "INT16",
            "INT32",
            "INT64",
            "FP16",
            "FP32",
            "FP64",
            "BYTES",
        ],  # fmt: skip
    },
    "InferInput": {
        "type": "object",
        "required": ["name", "shape", "datatype"],
        "description": "One input column: shape [N] or [N, 1]; strings are BYTES. Either `data` "
        "or, with the binary tensor data extension, parameters.binary_data_size.",
        "properties": {
            "name": {"type": "string", "description": "An input of the model (see its metadata)."},
            "shape": {"type": "array", "items": {"type": "integer"}, "minItems": 1, "maxItems": 2},
            "datatype": _ref("Datatype"),
            "parameters": {
                "type": "object",
                "properties": {"binary_data_size": {"type": "integer", "minimum": 0}},
            },
            "data": {
                "type": "array",
                "items": {
                    "nullable": True,
                    "oneOf": [
                        _ref("Value"),
                        {"type": "array", "items": _ref("Value")},
                    ],
                },
            },
        },
    },
    "InferRequestedOutput": {
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": {"type": "string"},
            "parameters": {"type": "object", "properties": {"binary_data": {"type": "boolean"}}},
        },
    },
    "InferRequest": {
        "type": "object",
        "required": ["inputs"],
        "properties": {
            "id": {"type": "string", "description": "Echoed back, and the logged request id."},
            "parameters": {
                "type": "object",
                "properties": {"binary_data_output": {"type": "boolean"}},
            },
            "inputs": {"type": "array", "items": _ref("InferInput")},
            "outputs": {"type": "array", "items": _ref("InferRequestedOutput")},
        },
    },
    "InferResponse": {
        "type": "object",
        "required": ["model_name", "model_version", "id", "outputs"],
        "properties": {
            "model_name": {"type": "string"},
            "model_version": {"type": "string"},
            "id": {"type": "string"},
            "outputs": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name", "datatype", "shape"],
                    "properties": {
                        "name": {"type": "string"},
                        "datatype": _ref("Datatype"),
                        "shape": {"type": "array", "items": {"type": "integer"}},
                        "data": {"type": "array"},
                        "parameters": {"type": "object"},
                    },
                },
            },
        },
    },
    "TensorMetadata": {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "datatype": _ref("Datatype"),
            "shape": {"type": "array", "items": {"type": "integer"}},
        },
    },
    "ModelMetadata": {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "versions": {"type": "array", "items": {"type": "string"}},
            "platform": {"type": "string"},
            "model_version": {"type": "string"},
            "task": {"type": "string", "enum": ["classification", "regression"]},
            "provider": {"type": "string"},
            "inputs": {"type": "array", "items": _ref("TensorMetadata")},
            "outputs": {"type": "array", "items": _ref("TensorMetadata")},
        },
    },
    "ControlAnswer": {
        "description": "The engine call's JSON answer (what the command prints with --json).",
    },
}

INFER_BINARY_HEADER = {
    "name": "Inference-Header-Content-Length",
    "in": "header",
    "required": False,
    "schema": {"type": "integer", "minimum": 0},
    "description": "Binary tensor data extension: the length of the JSON header at the start "
    "of the body; the input tensors' bytes follow it.",
}

MODEL_ERRORS = {
    "400": _error("A malformed request: the message names the input and the problem."),
    "404": _error("No such model or version."),
    "405": _error("Wrong method."),
}


def _model_ops(versioned: bool) -> dict[str, Any]:
    """The /v2/models/{name}[/versions/{version}] paths."""
    base = "/v2/models/{name}" + ("/versions/{version}" if versioned else "")
    params = [_path_param("name", "The model: the project's `name` in mldeck.toml.")]
    if versioned:
        params.append(_path_param("version", "A registered model version number."))
    which = "a given version" if versioned else "the champion"
    suffix = "_version" if versioned else ""
    return {
        base: {
            "parameters": params,
            "get": {
                "operationId": f"model_metadata{suffix}",
                "tags": ["oip"],
                "summary": f"Metadata of {which}: inputs, outputs, versions.",
                "responses": {
                    "200": _json(_ref("ModelMetadata"), "Model metadata."),
                    **MODEL_ERRORS,
                },
            },
        },
        base + "/ready": {
            "parameters": params,
            "get": {
                "operationId": f"model_ready{suffix}",
                "tags": ["oip"],
                "summary": f"Whether {which} is ready.",
                "responses": {
                    "200": _json({"type": "object"}, "{name, version, ready}."),
                    **MODEL_ERRORS,
                },
            },
        },
        base + "/config": {
            "parameters": params,
            "get": {
                "operationId": f"model_config{suffix}",
                "tags": ["oip"],
                "summary": f"A minimal Triton-style model config of {which}.",
                "responses": {"200": _json({"type": "object"}, "The config."), **MODEL_ERRORS},
            },
        },
        base + "/infer": {
            "parameters": params,
            "post": {
                "operationId": f"infer{suffix}",
                "tags": ["oip"],
                "summary": f"Score rows with {which} (OIP v2 inference).",
                "parameters": [INFER_BINARY_HEADER],
                "requestBody": {
                    "required": True,
                    "content": {
                        JSON: {"schema": _ref("InferRequest")},
                        "application/octet-stream": {
                            "schema": {"type": "string", "format": "binary"},
                            "description": "The binary tensor data extension: the JSON "
                            "InferRequest, then the tensors' bytes.",
                        },
                    },
                },
                "responses": {
                    "200": {
                        "description": "The outputs (binary when asked for).",
                        "headers": {"x-request-id": {"schema": {"type": "string"}}},
                        "content": {
                            JSON: {"schema": _ref("InferResponse")},
                            "application/octet-stream": {
                                "schema": {"type": "string", "format": "binary"}
                            },
                        },
                    },
                    "413": _error("The body is over the size limit."),
                    "415": _error("A content type other than JSON or octet-stream."),
                    **MODEL_ERRORS,
                },
            },
        },
    }


def _simple_get(op_id: str, tag: str, summary: str, content: dict[str, Any]) -> dict[str, Any]:
    return {
        "get": {
            "operationId": op_id,
            "tags": [tag],
            "summary": summary,
            "responses": {"200": {"description": summary, "content": content}},
        }
    }


CONTROL_GETS: dict[str, tuple[str, list[dict[str, Any]]]] = {
    "status": ("The project's status (what `mldeck status --json` prints).", []),
    "models": ("Registered model versions and their aliases.", []),
    "drift": (
        "Drift of a span of served requests or of one batch.",
        [
            _query_param("span", {"type": "string"}, "A window such as 7d."),
            _query_param("batch", {"type": "string"}, "A batch number."),
        ],
    ),
    "proposals": ("Open retrain proposals.", []),
    "doctor": ("The project's health checks.", []),
    "batches": ("Ingested batches.", []),
    "batch-issues": (
        "Validation issues of one batch.",
        [_query_param("batch", {"type": "integer"}, "A batch number.", True)],
    ),
    "quarantine": ("Quarantined inputs.", []),
    "lanes": ("Stage runs, by stage.", []),
    "lineage-summary": (
        "Lineage of a version, in short.",
        [_query_param("version", {"type": "integer"}, "A model version.", True)],
    ),
    "drift-history": ("Drift scores over time.", []),
    "drift-histogram": (
        "One feature's histogram in one drift window.",
        [
            _query_param("window", {"type": "integer"}, "A drift window id.", True),
            _query_param("feature", {"type": "string"}, "A feature name.", True),
        ],
    ),
    "serving": ("Serving traffic from the prediction log.", []),
    "audit-entries": (
        "Audit log entries.",
        [
            _query_param("since", {"type": "string", "format": "date-time"}, "ISO time."),
            _query_param("until", {"type": "string", "format": "date-time"}, "ISO time."),
            _query_param("kinds", {"type": "string"}, "Comma-separated actions."),
            _query_param("text", {"type": "string"}, "Text to look for."),
            _query_param("limit", {"type": "integer"}, "At most this many."),
        ],
    ),
    "audit-verify": ("Verify the audit log's hash chain.", []),
    "alerts": (
        "Alerts.",
        [_query_param("status", {"type": "string"}, "e.g. open.")],
    ),
    "performance": ("Live performance windows (once labels arrived).", []),
    "explain": (
        "Which model, data and features answered one prediction.",
        [_query_param("id", {"type": "string"}, "A request id.", True)],
    ),
    "lineage": (
        "Full lineage of a version.",
        [_query_param("version", {"type": "integer"}, "A model version.", True)],
    ),
}

_ACTOR = {"actor": {"type": "string"}}
_REASON = {"reason": {"type": "string"}}
_VERSION = {"version": {"type": "integer"}}

CONTROL_POSTS: dict[str, tuple[str, dict[str, Any], list[str]]] = {
    "ingest": ("Ingest files (paths inside the project).", {"paths": {"type": "array", "items": {"type": "string"}}}, ["paths"]),
    "train": ("Train the configured candidates.", {**_ACTOR, "only": {"type": "array", "items": {"type": "string"}}}, ["actor"]),
    "promote": ("Make a version the champion; the server swaps it in.", {**_VERSION, **_ACTOR, **_REASON, "force": {"type": "boolean"}}, ["version", "actor", "reason"]),
    "rollback": ("Make the previous champion the champion again.", {**_ACTOR, **_REASON}, ["actor", "reason"]),
    "retrain": ("Retrain now.", {**_ACTOR, **_REASON}, ["actor", "reason"]),
    "archive": ("Archive a version.", {**_VERSION, **_ACTOR, **_REASON}, ["version", "actor", "reason"]),
    "reproduce": ("Retrain a version from its recorded inputs and compare.", {**_VERSION, **_ACTOR}, ["version", "actor"]),
    "alerts/ack": ("Acknowledge an alert.", {"alert_id": {"type": "integer"}}, ["alert_id"]),
    "log-drift": ("A new drift window over the prediction log.", {"span": {"type": "string"}}, ["span"]),
    "report": ("Write the HTML report (a path inside the project).", {"path": {"type": "string"}}, ["path"]),
    "revalidate": ("Validate a quarantined batch again.", {"batch_id": {"type": "integer"}, **_ACTOR, **_REASON}, ["batch_id", "actor", "reason"]),
    **{
        f"proposals/{answer}": (
            f"{answer.capitalize()} a retrain proposal.",
            {"proposal_id": {"type": "integer"}, **_ACTOR, **_REASON},
            ["proposal_id", "actor", "reason"],
        )
        for answer in ("accept", "dismiss", "snooze")
    },
}  # fmt: skip

CONTROL_ERRORS = {
    "400": _error("A malformed control request."),
    "401": _error("Missing or wrong token."),
    "404": _error("Nothing of that id."),
    "409": _error("The engine refused the action (the message says why)."),
    "503": _error("The engine is stopping."),
}


def _control_paths() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for name, (summary, params) in CONTROL_GETS.items():
        paths[f"/control/{name}"] = {
            "get": {
                "operationId": "control_get_" + name.replace("-", "_"),
                "tags": ["control"],
                "summary": summary,
                "parameters": params,
                "security": [{"controlToken": []}],
                "responses": {"200": _json(_ref("ControlAnswer"), summary), **CONTROL_ERRORS},
            }
        }
    for name, (summary, properties, required) in CONTROL_POSTS.items():
        paths[f"/control/{name}"] = {
            "post": {
                "operationId": "control_" + name.replace("-", "_").replace("/", "_"),
                "tags": ["control"],
                "summary": summary,
                "security": [{"controlToken": []}],
                "requestBody": {
                    "required": True,
                    "content": {
                        JSON: {
                            "schema": {
                                "type": "object",
                                "properties": properties,
                                "required": required,
                            }
                        }
                    },
                },
                "responses": {"200": _json(_ref("ControlAnswer"), summary), **CONTROL_ERRORS},
            }
        }
    paths["/control/events"] = {
        "get": {
            "operationId": "control_events",
            "tags": ["control"],
            "summary": "The engine's events as server-sent events, one JSON object each.",
            "security": [{"controlToken": []}],
            "responses": {
                "200": {
                    "description": "An event stream (never ends while the engine runs).",
                    "content": {"text/event-stream": {"schema": {"type": "string"}}},
                },
                "401": _error("Missing or wrong token."),
            },
        }
    }
    return paths


def _serving_paths() -> dict[str, Any]:
    health = {"type": "object", "additionalProperties": {"type": "boolean"}}
    return {
        "/v2": _simple_get(
            "server_metadata",
            "oip",
            "Server metadata and extensions.",
            {JSON: {"schema": {"type": "object"}}},
        ),
        "/v2/health/live": _simple_get(
            "health_live", "oip", "Whether the server is live.", {JSON: {"schema": health}}
        ),
        "/v2/health/ready": _simple_get(
            "health_ready", "oip", "Whether the server is ready.", {JSON: {"schema": health}}
        ),
        **_model_ops(versioned=False),
        **_model_ops(versioned=True),
        "/ping": _simple_get(
            "ping", "mlflow", "MLflow health check.", {JSON: {"schema": {"type": "object"}}}
        ),
        "/health": _simple_get(
            "health", "mlflow", "MLflow health check.", {JSON: {"schema": {"type": "object"}}}
        ),
        "/invocations": {
            "post": {
                "operationId": "invocations",
                "tags": ["mlflow"],
                "summary": "Score rows with the champion (MLflow scoring protocol).",
                "requestBody": {
                    "required": True,
                    "content": {
                        JSON: {"schema": _ref("MlflowRequest")},
                        "text/csv": {
                            "schema": {"type": "string"},
                            "description": "A header row naming the columns, then one line per row.",
                        },
                    },
                },
                "responses": {
                    "200": {
                        "description": "One prediction per row.",
                        "headers": {
                            "x-request-id": {"schema": {"type": "string"}},
                            "x-model-version": {"schema": {"type": "string"}},
                        },
                        "content": {JSON: {"schema": _ref("MlflowResponse")}},
                    },
                    "400": _error("A malformed request: the message names the column and row."),
                    "405": _error("Wrong method."),
                    "413": _error("The body is over the size limit."),
                    "415": _error("A content type other than JSON or CSV."),
                },
            }
        },
        "/metrics": _simple_get(
            "metrics",
            "metrics",
            "Prometheus text format: requests, errors, rows, latency, champion, dropped log rows.",
            {"text/plain": {"schema": {"type": "string"}}},
        ),
        "/openapi.json": _simple_get(
            "openapi", "meta", "This document.", {JSON: {"schema": {"type": "object"}}}
        ),
    }


def openapi_spec() -> dict[str, Any]:
    """The OpenAPI 3.0 document (a new dict each call: callers may adapt it)."""
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "mldeck engine",
            "version": "1",
            "description": "The model endpoint of `mldeck serve` / `mldeck daemon`: Open Inference "
            "Protocol v2 (KServe, Triton), MLflow scoring, Prometheus /metrics, and the control "
            "API that other mldeck commands use (bearer token from .mldeck/token). A model's "
            "inputs are the project's columns: read them from GET /v2/models/{name}.",
        },
        "servers": [{"url": "http://127.0.0.1:8765"}],
        "tags": [
            {"name": "oip", "description": "Open Inference Protocol v2."},
            {"name": "mlflow", "description": "MLflow scoring protocol."},
            {"name": "metrics", "description": "Prometheus."},
            {"name": "control", "description": "The engine's control API (token required)."},
            {"name": "meta", "description": "This description."},
        ],
        "paths": {**_serving_paths(), **_control_paths()},
        "components": {
            "schemas": copy.deepcopy(SCHEMAS),
            "securitySchemes": {
                "controlToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The project's token: the contents of .mldeck/token (0600).",
                }
            },
        },
    }


@cache
def openapi_json() -> bytes:
    """The document as JSON bytes, encoded once."""
    return orjson.dumps(openapi_spec())
