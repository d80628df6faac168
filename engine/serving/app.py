"""The serving endpoint: no web framework, one request handler behind two thin
adapters: RSGI (granian's own interface, what `mldeck serve` runs: ~20% less
per-request overhead than ASGI on granian) and ASGI 3 (uvicorn, the tests'
in-thread servers).

Routes (the model name is the project's `name` in mldeck.toml):

    Open Inference Protocol v2 (KServe / Triton REST)
      GET  /v2  /v2/health/live  /v2/health/ready
      GET  /v2/models/{name}[/versions/{v}]          metadata
      GET  /v2/models/{name}[/versions/{v}]/ready
      GET  /v2/models/{name}[/versions/{v}]/config   a minimal Triton-style model config
      POST /v2/models/{name}[/versions/{v}]/infer    JSON, or the binary tensor data extension
    MLflow scoring
      GET  /ping  /health
      POST /invocations   JSON dataframe_split | dataframe_records | instances | inputs, or text/csv
    GET /metrics          Prometheus text format
    GET /openapi.json     the OpenAPI 3 description of all of it (`openapi`)

Without `/versions/{v}` the champion in the `ModelSlot` answers; any other
registered version is loaded on first use and cached. Every scored request gets
an id and its rows go to the `PredictionLog`. Bad requests get a 4xx with
`{"error": "..."}` naming the problem.

Infer requests and responses may use the binary tensor data extension (tensors
as raw bytes after the JSON header; see `oip_binary`), which is what
tritonclient's `InferenceServerClient` sends and asks for by default.

MLflow answers: classification -> `{"predictions": [{"label": L, "probabilities": [..]}, ..]}`,
regression -> `{"predictions": [y, ..]}`.

This module is over 500 lines because `ServingApp` is one request handler whose routes
share the model slot, the prediction log, the metrics and the per-request plumbing (ids,
limits, off-loop work); what stands alone is in modules of its own: `decode` (bodies into
columns), `metrics`, `batching`, `bodies`, `model_slot`, `prediction_log`, `shadow`.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import numpy as np
import orjson

from engine.core.config import ServingLimits
from engine.core.errors import MldeckError, NotFoundError
from engine.core.project import Project
from engine.records.registry import CHAMPION, alias_version
from engine.serving import oip_binary
from engine.serving.batching import ModelRunError, PreparedColumns, ScoredRun
from engine.serving.bodies import (
    BodyTooLarge,
    BodyTooSlow,
    BodyWatch,
    read_asgi_body,
    read_rsgi_body,
)
from engine.serving.decode import (
    DEFAULT_LIMITS,
    MAX_BODY_BYTES,
    HttpError,
    _short,
    bad_request,
    columns_from_csv,
    columns_from_mlflow_json,
    columns_from_oip,
    parse_json,
    prepare_columns,
)
from engine.serving.metrics import Metrics
from engine.serving.model_slot import LoadedModel, ModelSlot, load_model
from engine.serving.openapi import openapi_json
from engine.serving.prediction_log import (
    FailedRequest,
    LoggedRequest,
    PredictionLog,
    ScoredBatch,
)
from engine.serving.shadow import ShadowScorer
from storage.catalog import utcnow

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Header = Callable[[str], "str | None"]
"""A request header's value by its lower-case name (None when absent)."""


UNKNOWN_VERSION = "unknown"
"""The model-version label of requests for versions this server does not know."""

LARGE_BODY_BYTES = 64 * 1024
"""Bodies larger than this are decoded on a worker thread, off the event loop."""

LARGE_ROWS = 2048
"""Requests with more rows than this are scored on a worker thread, not in a micro-batch."""

SEEN_IDS = 100_000
"""Client request ids remembered to make a repeated one unique."""


# ------------------------------------------------------------------ the application


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def dumps(data: Any) -> bytes:
    """Compact JSON; orjson writes NaN and infinities as null, numpy arrays natively."""
    return orjson.dumps(data, default=_json_default, option=orjson.OPT_SERIALIZE_NUMPY)


class RequestIds:
    """Unique request ids, as cheap as a counter: a random per-process prefix + a sequence.

    32 hex characters like a uuid4's hex; `uuid.uuid4()` costs an os.urandom call
    per request, which showed up in the serving profile.
    """

    def __init__(self) -> None:
        self._prefix = os.urandom(10).hex()
        self._counter = itertools.count()

    def next(self) -> str:
        return f"{self._prefix}{next(self._counter):012x}"


class ServingApp:
    """The ASGI application; `close()` flushes the prediction log."""

    def __init__(
        self,
        project: Project,
        slot: ModelSlot,
        prediction_log: PredictionLog,
        max_body_bytes: int = MAX_BODY_BYTES,
        shadow: ShadowScorer | None = None,
        limits: ServingLimits = DEFAULT_LIMITS,
    ) -> None:
        self.project = project
        self.limits = limits
        self.slot = slot
        self.prediction_log = prediction_log
        self.shadow = shadow
        """Scores the champion's requests with a challenger, logged and never returned."""
        self.max_body_bytes = max_body_bytes
        self.model_name = project.config.name
        self.id_column = project.config.id_column
        """Logged with a request's inputs when sent (MLflow scoring), to join delayed labels."""
        self.metrics = Metrics()
        self._request_ids = RequestIds()
        self._versions: dict[int, LoadedModel] = {}
        self._versions_lock = threading.Lock()
        self._seen_ids: dict[str, None] = {}
        """Recent client-given request ids (insertion order: the oldest is forgotten first)."""
        self._body_watch = BodyWatch(limits.body_timeout_s)
        self._heavy = asyncio.Semaphore(2)
        """Large bodies decoded or scored on threads at once: bounds their memory."""

    def live_traffic(self) -> dict[str, Any]:
        """Scoring requests and their errors counted by this app since it started, and its
        shadow version (control, health and metadata calls are not traffic)."""
        scoring = ("infer", "invocations")
        return {
            "requests": sum(n for (e, _), n in self.metrics.requests.items() if e in scoring),
            "errors": sum(n for (e, _, _), n in self.metrics.errors.items() if e in scoring),
            "shadow": None if self.shadow is None else self.shadow.model.version,
            "dropped_rows": self.prediction_log.dropped_rows,
        }

    def close(self) -> None:
        if self.shadow is not None:
            self.shadow.close()
        self.prediction_log.close()

    # -------------------------------------------------------------- ASGI

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI 3."""
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        started = time.perf_counter()
        request_headers = {
            bytes(k).decode("latin-1"): bytes(v).decode("latin-1")
            for k, v in scope.get("headers", [])
        }
        body: bytes | HttpError | None
        try:
            self._check_length(request_headers.get("content-length"))
            body = await self._body_watch.read(read_asgi_body(receive, self.max_body_bytes))
        except HttpError as exc:
            body = exc
        except BodyTooLarge:
            body = HttpError(413, self._too_large())
        except BodyTooSlow:
            body = HttpError(408, self._too_slow())
        if body is None:
            log.warning(
                "%s %s: the client went away before its body was in", scope["method"], scope["path"]
            )
            return
        status, payload, headers, labels = await self._handle(
            scope["method"], scope["path"], request_headers.get, body
        )
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(k.encode(), v.encode()) for k, v in headers],
            }
        )
        await send({"type": "http.response.body", "body": payload})
        self._after(started, status, payload, labels)

    async def __rsgi__(self, scope: Any, protocol: Any) -> None:
        """RSGI (granian): the request body comes whole, the response goes in one call."""
        if scope.proto != "http":
            return
        started = time.perf_counter()
        header = scope.headers.get
        body: bytes | HttpError
        try:
            declared = self._check_length(header("content-length"))
            body = await self._body_watch.read(
                protocol()
                if declared is not None
                else read_rsgi_body(protocol, self.max_body_bytes)
            )
        except HttpError as exc:
            body = exc
        except BodyTooLarge:
            body = HttpError(413, self._too_large())
        except BodyTooSlow:
            body = HttpError(408, self._too_slow())
        except Exception as exc:  # the client went away mid-body: one line, no traceback
            log.warning("%s %s: the body did not arrive (%s)", scope.method, scope.path, exc)
            return
        status, payload, headers, labels = await self._handle(
            scope.method, scope.path, header, body
        )
        protocol.response_bytes(status, headers, payload)
        self._after(started, status, payload, labels)

    async def _handle(
        self, method: str, path: str, header: Header, body: bytes | HttpError
    ) -> tuple[int, bytes, list[tuple[str, str]], tuple[str, str, int]]:
        """(status, body, response headers, (endpoint, model version, rows) for the metrics)."""
        rows = 0
        headers: list[tuple[str, str]] = []
        try:
            if isinstance(body, HttpError):
                raise body
            endpoint, status, payload, headers, version, rows = await self._route(
                method, path, header, body
            )
        except HttpError as exc:
            endpoint, version = self._labels(path)
            status, payload = exc.status, dumps({"error": exc.msg})
        except Exception as exc:  # a bug: answer 500, keep serving
            endpoint, version = self._labels(path)
            log.exception("%s %s: internal error", method, path[:200])
            status, payload = 500, dumps({"error": f"internal error: {type(exc).__name__}: {exc}"})
        if not any(name == "content-type" for name, _ in headers):
            content_type = "application/json"
            if endpoint == "metrics" and status == 200:
                content_type = "text/plain; version=0.0.4; charset=utf-8"
            headers = [("content-type", content_type), *headers]
        return (
            status,
            payload,
            [("content-length", str(len(payload))), *headers],
            (
                endpoint,
                version,
                rows,
            ),
        )

    def _after(
        self, started: float, status: int, payload: bytes, labels: tuple[str, str, int]
    ) -> None:
        """What follows a sent response: its metrics, and a failed scoring request's record."""
        endpoint, version, rows = labels
        if endpoint != "metrics":
            self.metrics.observe(endpoint, version, status, time.perf_counter() - started, rows)
        if status >= 400 and endpoint in ("infer", "invocations"):
            self.prediction_log.submit_failure(
                FailedRequest(
                    utcnow(),
                    endpoint,
                    int(version) if version.isdigit() else None,
                    status,
                    bytes(payload).decode("utf-8", "replace"),
                )
            )

    def _labels(self, path: str) -> tuple[str, str]:
        """The endpoint and model-version labels a request's metrics go under, even if it fails."""
        parts = path.strip("/").split("/")
        if path.startswith("/invocations"):
            return "invocations", str(self.slot.model.version)
        if len(parts) >= 3 and parts[:2] == ["v2", "models"]:
            rest = parts[3:]
            version = str(self.slot.model.version)
            if len(rest) >= 2 and rest[0] == "versions":
                version, rest = self._version_label(rest[1]), rest[2:]
            label = {
                (): "model_metadata",
                ("ready",): "model_ready",
                ("config",): "model_config",
                ("infer",): "infer",
            }
            return label.get(tuple(rest), "unknown"), version
        return "other", ""

    def _version_label(self, text: str) -> str:
        """A version path segment as a metrics label: a version this server has loaded, or
        "unknown" (so that made-up versions cannot add series)."""
        if text == str(self.slot.model.version):
            return text
        if text.isascii() and text.isdigit() and len(text) <= 18 and int(text) in self._versions:
            return str(int(text))
        return UNKNOWN_VERSION

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _check_length(self, declared: str | None) -> int | None:
        """The declared content-length, refused (413) before any of the body is read."""
        if declared is None:
            return None
        try:
            length = int(declared)
        except ValueError:
            raise bad_request("content-length is not a number") from None
        if length > self.max_body_bytes:
            raise HttpError(413, self._too_large())
        return length

    def _too_large(self) -> str:
        return (
            f"the request body is over the limit of {self.max_body_bytes} bytes "
            "([serving] max_body_mb)"
        )

    def _too_slow(self) -> str:
        return (
            f"the request body did not arrive within {self.limits.body_timeout_s:g} s "
            "([serving] body_timeout_s)"
        )

    # -------------------------------------------------------------- routing

    async def _route(
        self, method: str, path: str, header: Header, body: bytes
    ) -> tuple[str, int, bytes, list[tuple[str, str]], str, int]:
        """(endpoint label, status, body, extra headers, model version, rows scored)."""
        path = path.rstrip("/") or "/"
        parts = path.strip("/").split("/")
        if path in ("/ping", "/health") and method == "GET":
            return "ping", 200, b"{}", [], "", 0
        if path == "/invocations":
            self._expect(method, "POST")
            return await self._invocations(header, body)
        if path == "/metrics":
            self._expect(method, "GET")
            text = self.metrics.render(self.slot.model.version, self.prediction_log.dropped_rows)
            return "metrics", 200, text.encode(), [], "", 0
        if path == "/openapi.json":
            self._expect(method, "GET")
            return "openapi", 200, openapi_json(), [], "", 0
        if path == "/v2":
            self._expect(method, "GET")
            info = {"name": "mldeck", "version": "2", "extensions": [oip_binary.EXTENSION]}
            return "server_metadata", 200, dumps(info), [], "", 0
        if path in ("/v2/health/live", "/v2/health/ready"):
            self._expect(method, "GET")
            return (
                "health",
                200,
                dumps({"live" if path.endswith("live") else "ready": True}),
                [],
                "",
                0,
            )
        if len(parts) >= 3 and parts[:2] == ["v2", "models"]:
            return await self._model_route(header, method, parts[2], parts[3:], body)
        raise HttpError(404, f"no route {method} {path[:200]}")

    @staticmethod
    def _expect(method: str, allowed: str) -> None:
        if method != allowed:
            raise HttpError(405, f"method {method} not allowed here; use {allowed}")

    async def _model_route(
        self, header: Header, method: str, name: str, rest: list[str], body: bytes
    ) -> tuple[str, int, bytes, list[tuple[str, str]], str, int]:
        if name != self.model_name:
            raise HttpError(
                404, f"unknown model {_short(name)}; this server serves {self.model_name!r}"
            )
        version_text: str | None = None
        if len(rest) >= 2 and rest[0] == "versions":
            version_text, rest = rest[1], rest[2:]
        model = self._model_for(version_text)
        if not rest:
            self._expect(method, "GET")
            return "model_metadata", 200, dumps(self._metadata(model)), [], str(model.version), 0
        if rest == ["ready"]:
            self._expect(method, "GET")
            info = {"name": self.model_name, "version": str(model.version), "ready": True}
            return "model_ready", 200, dumps(info), [], str(model.version), 0
        if rest == ["config"]:
            self._expect(method, "GET")
            return "model_config", 200, dumps(self._config(model)), [], str(model.version), 0
        if rest == ["infer"]:
            self._expect(method, "POST")
            return await self._infer(model, header, body)
        raise HttpError(404, f"no route under /v2/models/{name}: {'/'.join(rest)}")

    def _model_for(self, version_text: str | None) -> LoadedModel:
        champion = self.slot.model
        if version_text is None:
            return champion
        if not (version_text.isascii() and version_text.isdigit() and len(version_text) <= 18):
            raise HttpError(404, f"unknown model version {version_text[:40]!r}")
        version = int(version_text)
        if version == champion.version:
            return champion
        with self._versions_lock:
            cached = self._versions.get(version)
            if cached is None:
                try:
                    cached = load_model(self.project, version)
                except NotFoundError as exc:
                    raise HttpError(404, exc.msg) from None
                except MldeckError as exc:
                    raise HttpError(500, f"cannot load version {version}: {exc.msg}") from None
                self._versions[version] = cached
        return cached

    def _metadata(self, model: LoadedModel) -> dict[str, Any]:
        versions = [
            str(r["version"])
            for r in self.project.catalog.rows(
                "SELECT version FROM model_versions WHERE status = 'registered' ORDER BY version"
            )
        ]
        return {
            "name": self.model_name,
            "versions": versions,
            "platform": "onnxruntime_onnx",
            "model_version": str(model.version),
            "task": model.task,
            "provider": model.provider,
            "inputs": [
                {"name": s.name, "datatype": s.datatype, "shape": [-1, 1]} for s in model.inputs
            ],
            "outputs": [
                {"name": o.name, "datatype": o.datatype, "shape": o.shape} for o in model.outputs
            ],
        }

    def _config(self, model: LoadedModel) -> dict[str, Any]:
        """A minimal Triton model config: what tritonclient's `get_model_config` reads."""

        def triton_type(datatype: str) -> str:
            return "TYPE_STRING" if datatype == "BYTES" else f"TYPE_{datatype}"

        return {
            "name": self.model_name,
            "platform": "onnxruntime_onnx",
            "backend": "onnxruntime",
            "version": str(model.version),
            "max_batch_size": 0,
            "input": [
                {"name": s.name, "data_type": triton_type(s.datatype), "dims": [-1, 1]}
                for s in model.inputs
            ],
            "output": [
                {"name": o.name, "data_type": triton_type(o.datatype), "dims": o.shape}
                for o in model.outputs
            ],
        }

    # -------------------------------------------------------------- scoring

    async def _score(
        self,
        model: LoadedModel,
        columns: PreparedColumns,
        rows: int,
        endpoint: str,
        request_id: str,
        row_ids: list[Any] | None = None,
    ) -> dict[str, np.ndarray]:
        """Score one request's prepared columns on `model`: the one scoring path.

        The request joins `model`'s micro-batch (concurrent requests for the same
        version share one session run). The first request of a run to resume
        logs the whole run, with every request's id, to the prediction log (which
        only queues it) and hands it to the shadow. `row_ids`: the project's id
        column when the request sent it, logged with the inputs so delayed labels
        can be joined.
        """
        tag = (request_id, endpoint, row_ids)
        try:
            if rows > LARGE_ROWS:
                async with self._heavy:
                    outputs, run = await model.batcher.score_in_thread(columns, rows, tag)
            else:
                outputs, run = await model.batcher.score(columns, rows, tag)
        except ModelRunError as exc:  # validated input the model still failed on
            raise HttpError(500, f"the model failed to score this input: {exc}") from None
        if run.claim():
            self._log_run(model, run)
        return outputs

    def _log_run(self, model: LoadedModel, run: ScoredRun) -> None:
        requests = [
            LoggedRequest(request_id, endpoint, rows, wait_s * 1000)
            for (request_id, endpoint, _), rows, wait_s in zip(
                run.tags, run.rows, run.waits_s, strict=True
            )
        ]
        inputs = run.feed
        if self.id_column is not None and any(tag[2] is not None for tag in run.tags):
            ids: list[str | None] = []
            for (_, _, row_ids), rows in zip(run.tags, run.rows, strict=True):
                if row_ids is None:
                    ids.extend([None] * rows)
                else:
                    ids.extend(None if v is None else str(v) for v in row_ids)
            inputs = {**inputs, self.id_column: np.array(ids, dtype=object).reshape(-1, 1)}
        self.prediction_log.submit(
            ScoredBatch(utcnow(), model.version, inputs, run.outputs, requests)
        )
        if self.shadow is not None and model is self.slot.model:
            self.shadow.submit(run.feed, requests)

    async def _off_loop(self, function: Callable[..., Any], *args: Any) -> Any:
        """Run `function` on a worker thread (a large body's decoding, scoring or answer),
        so that the event loop keeps answering other requests meanwhile."""
        async with self._heavy:
            return await asyncio.to_thread(function, *args)

    def _request_id(self, given: Any) -> str:
        """The id a request is logged under: the client's (checked, made unique if seen
        before) or a new one."""
        if not isinstance(given, str) or not given:
            return self._request_ids.next()
        limit = self.limits.max_id_length
        if len(given) > limit:
            raise bad_request(
                f"the request id is {len(given)} characters, over the limit of {limit} "
                "([serving] max_id_length)"
            )
        if not (given.isascii() and given.isprintable()):
            raise bad_request("the request id must be printable ASCII")
        seen = self._seen_ids
        if given in seen:  # a repeated id: logged (and answered) with a unique suffix
            return f"{given}~{self._request_ids.next()}"
        seen[given] = None
        if len(seen) > SEEN_IDS:
            del seen[next(iter(seen))]
        return given

    def _decode_infer(
        self, model: LoadedModel, body: bytes, header_length: str | None
    ) -> tuple[dict[str, Any], PreparedColumns, int]:
        try:
            length = oip_binary.parse_header_length(header_length, len(body))
            json_part, binary_part = oip_binary.split_body(body, length)
            payload = parse_json(json_part, self.limits.max_depth)
            oip_binary.attach_binary_inputs(payload, binary_part)
        except oip_binary.BinaryDataError as exc:
            raise bad_request(str(exc)) from None
        columns, rows = prepare_columns(model, columns_from_oip(model, payload, self.limits))
        return payload, columns, rows

    async def _infer(
        self, model: LoadedModel, header: Header, body: bytes
    ) -> tuple[str, int, bytes, list[tuple[str, str]], str, int]:
        header_length = header(oip_binary.HEADER_LENGTH)
        content_type = _media_type(header("content-type"))
        # The binary extension's header is one a web page cannot send without a CORS
        # preflight (which this server never grants), so it stands for the content type.
        # tritonclient sends pure JSON with no content type; a browser's POST always
        # carries an Origin (the front refuses foreign ones), so that is no way in either.
        if header_length is None and content_type not in (
            "application/json",
            "application/octet-stream",
            "",
        ):
            raise HttpError(
                415,
                f"content type {content_type[:100]!r}: use application/json, or "
                "application/octet-stream with the binary tensor data extension",
            )
        if len(body) > LARGE_BODY_BYTES:
            payload, columns, rows = await self._off_loop(
                self._decode_infer, model, body, header_length
            )
        else:
            payload, columns, rows = self._decode_infer(model, body, header_length)
        wanted = payload.get("outputs")
        names = [o.name for o in model.outputs]
        if isinstance(wanted, list) and wanted:
            asked = [o.get("name") for o in wanted if isinstance(o, dict)]
            unknown = [n for n in asked if n not in names]
            if unknown:
                raise bad_request(f"unknown output(s) {_short(unknown)}; the model has {names}")
            names = [n for n in names if n in asked]
        try:
            binary = oip_binary.binary_outputs(payload, names)
        except oip_binary.BinaryDataError as exc:
            raise bad_request(str(exc)) from None
        request_id = self._request_id(payload.get("id"))
        outputs = await self._score(model, columns, rows, "infer", request_id)
        datatypes = {o.name: o.datatype for o in model.outputs}
        blobs: list[bytes] = []
        answered: list[dict[str, Any]] = []
        for name in names:
            tensor: dict[str, Any] = {
                "name": name,
                "datatype": datatypes[name],
                "shape": list(outputs[name].shape),
            }
            if name in binary:
                raw = oip_binary.encode_tensor(datatypes[name], outputs[name])
                tensor["parameters"] = {"binary_data_size": len(raw)}
                blobs.append(raw)
            else:
                tensor["data"] = outputs[name].reshape(-1).tolist()
            answered.append(tensor)
        response = {
            "model_name": self.model_name,
            "model_version": str(model.version),
            "id": request_id,
            "outputs": answered,
        }
        headers = [("x-request-id", request_id)]
        head = dumps(response)
        if not blobs:
            return "infer", 200, head, headers, str(model.version), rows
        headers += [
            ("content-type", "application/octet-stream"),
            (oip_binary.HEADER_LENGTH, str(len(head))),
        ]
        return "infer", 200, head + b"".join(blobs), headers, str(model.version), rows

    async def _invocations(
        self, header: Header, body: bytes
    ) -> tuple[str, int, bytes, list[tuple[str, str]], str, int]:
        model = self.slot.model
        content_type = _media_type(header("content-type"))
        if content_type not in ("application/json", "text/csv"):
            shown = repr(content_type[:100]) if content_type else "missing"
            raise HttpError(415, f"content type {shown}: use application/json or text/csv")
        if len(body) > LARGE_BODY_BYTES:
            prepared, rows, row_ids = await self._off_loop(
                self._decode_invocations, model, content_type, body
            )
        else:
            prepared, rows, row_ids = self._decode_invocations(model, content_type, body)
        request_id = self._request_ids.next()
        outputs = await self._score(model, prepared, rows, "invocations", request_id, row_ids)
        answer = (
            await self._off_loop(_mlflow_answer, model.task, outputs)
            if rows > LARGE_ROWS
            else _mlflow_answer(model.task, outputs)
        )
        headers = [
            ("x-request-id", request_id),
            ("x-model-version", str(model.version)),
        ]
        return ("invocations", 200, answer, headers, str(model.version), rows)

    def _decode_invocations(
        self, model: LoadedModel, content_type: str, body: bytes
    ) -> tuple[PreparedColumns, int, list[Any] | None]:
        """(the model's columns, rows, the id column's values when sent)."""
        if content_type == "text/csv":
            columns = columns_from_csv(body, self.limits)
        else:
            wanted = list(model.input_names)
            if self.id_column is not None:
                wanted.append(self.id_column)
            payload = parse_json(body, self.limits.max_depth)
            columns = columns_from_mlflow_json(payload, wanted, self.limits)
        prepared, rows = prepare_columns(model, columns)
        row_ids = None
        if self.id_column is not None and self.id_column not in prepared:
            sent = columns.get(self.id_column)
            row_ids = sent if isinstance(sent, list) and len(sent) == rows else None
        return prepared, rows, row_ids


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";")[0].strip().lower()


def _mlflow_answer(task: str, outputs: dict[str, np.ndarray]) -> bytes:
    if task == "classification":
        labels = outputs["label"].reshape(-1).tolist()
        probabilities = outputs["probabilities"].tolist()
        predictions: list[Any] = [
            {"label": label, "probabilities": probs}
            for label, probs in zip(labels, probabilities, strict=True)
        ]
    else:
        predictions = outputs["prediction"].reshape(-1).tolist()
    return dumps({"predictions": predictions})


def create_app(
    project: Project, max_body_bytes: int | None = None, shadow_version: int | None = None
) -> ServingApp:
    """The serving app for a project's champion, with its prediction log started.

    Args:
        shadow_version: a registered version to score every champion request in
            shadow (logged with `shadow = true`, never returned).

    Raises:
        NotFoundError: the project has no champion yet, or no such shadow version.
        MldeckError: the shadow version needs inputs the champion's requests lack.
    """
    champion = alias_version(project.catalog, CHAMPION)
    if champion is None:
        raise NotFoundError("there is no champion to serve yet (run `mldeck train`)")
    slot = ModelSlot(load_model(project, champion))
    prediction_log = PredictionLog(project.catalog)
    shadow = None
    if shadow_version is not None:
        if shadow_version == champion:
            raise MldeckError(f"v{shadow_version} is the champion; shadow another version")
        shadow_model = load_model(project, shadow_version)
        missing = {i.name for i in shadow_model.inputs} - {i.name for i in slot.model.inputs}
        if missing:
            raise MldeckError(
                f"v{shadow_version} needs columns the champion v{champion} does not take: "
                + ", ".join(sorted(missing))
            )
        shadow = ShadowScorer(shadow_model, prediction_log)
    limits = project.config.serving
    if max_body_bytes is None:
        max_body_bytes = int(limits.max_body_mb * 1024 * 1024)
    return ServingApp(project, slot, prediction_log, max_body_bytes, shadow, limits)
