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
"""

from __future__ import annotations

import asyncio
import bisect
import csv
import io
import itertools
import json
import logging
import math
import os
import threading
import time
from collections.abc import Awaitable, Callable, Collection, Mapping, MutableMapping
from typing import Any

import numpy as np
import orjson

from engine.core.config import ServingLimits
from engine.core.errors import MldeckError, NotFoundError
from engine.core.project import Project
from engine.data.features import MISSING_CATEGORY
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

ColumnValues = list[Any] | np.ndarray
"""One input column's values: a JSON list, or a flat array decoded from binary tensor data."""

MAX_BODY_BYTES = 10 * 1024 * 1024
"""Request bodies larger than this get 413."""

LATENCY_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
NUMERIC_DATATYPES = {
    "FP16",
    "FP32",
    "FP64",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "BOOL",
}


class HttpError(Exception):
    """A request the server refuses, with its status code."""

    def __init__(self, status: int, msg: str) -> None:
        super().__init__(msg)
        self.status = status
        self.msg = msg


def bad_request(msg: str) -> HttpError:
    return HttpError(400, msg)


def _short(value: Any, limit: int = 100) -> str:
    """A client's value as shown in an error: its repr, cut (answers never echo a body)."""
    if isinstance(value, str | list | dict) and len(value) > limit:
        value = value[:limit] if isinstance(value, str | list) else dict(list(value.items())[:5])
        return f"{value!r}[...]"
    text = repr(value) if not isinstance(value, int) or value.bit_length() < 256 else "an integer"
    return text if len(text) <= limit else text[:limit] + "[...]"


def too_many_rows(rows: int, limits: ServingLimits) -> HttpError:
    return HttpError(
        413, f"{rows} rows in one request, over the limit of {limits.max_rows} ([serving] max_rows)"
    )


def too_many_columns(count: int, where: str, limits: ServingLimits) -> HttpError:
    return bad_request(
        f"{where}: {count} columns, over the limit of {limits.max_columns} ([serving] max_columns)"
    )


DEFAULT_LIMITS = ServingLimits()


# ------------------------------------------------------------------ JSON bodies


def parse_json(body: bytes, max_depth: int = DEFAULT_LIMITS.max_depth) -> Any:
    """A JSON body, refused (400) when malformed or nested deeper than `max_depth`.

    orjson first; the stdlib takes the NaN / Infinity literals orjson refuses
    (tritonclient sends them): NaN is read as null (a missing value), an infinity
    stays one so that the column check names its column and row.
    """
    if not body:
        raise bad_request("empty body: expected JSON")
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if "depth" in str(exc) or "recursion" in str(exc):
            raise too_deep(max_depth) from None
        try:
            payload = json.loads(body, parse_constant=_json_constant)
        except RecursionError:
            raise too_deep(max_depth) from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise bad_request(f"malformed JSON: {exc}") from None
    if _may_nest_deeper(body, max_depth) and _deeper_than(payload, max_depth):
        raise too_deep(max_depth)
    return payload


_BRACKETS = bytes.maketrans(b"{}", b"[]")
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def _may_nest_deeper(body: bytes, limit: int) -> bool:
    """False when the body's brackets, read without regard to strings, nest no deeper
    than `limit`: then the parsed body cannot either. In C, a few passes over the
    brackets alone; True (walk the parsed body) when brackets inside strings confuse it."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    brackets = body.translate(_BRACKETS, _NOT_BRACKETS)
    for _ in range(limit):
        inner = brackets.replace(b"[]", b"")  # one level less
        if not inner:
            return False
        if inner == brackets:
            return True  # unbalanced: brackets in strings
        brackets = inner
    return True


def too_deep(max_depth: int) -> HttpError:
    return bad_request(
        f"the JSON body nests deeper than the limit of {max_depth} ([serving] max_depth)"
    )


def _json_constant(name: str) -> float | None:
    return None if name == "NaN" else float(name)


def _deeper_than(payload: Any, limit: int) -> bool:
    """Whether arrays/objects in `payload` nest more than `limit` deep (no recursion)."""
    stack: list[tuple[Any, int]] = [(payload, 1)] if isinstance(payload, list | dict) else []
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        for child in node.values() if isinstance(node, dict) else node:
            if isinstance(child, list | dict):
                stack.append((child, depth + 1))
    return False


# ------------------------------------------------------------------ input conversion


_NUMBER_TYPES = (float, int)
FLOAT32_MAX = float(np.finfo(np.float32).max)
"""Numbers are fed to the model as float32: anything larger in size is refused."""


def _in_float32_range(values: Any) -> bool:
    """Whether plain numbers (None allowed, no NaN) all fit in float32, checked in C."""
    nonzero = list(filter(None, values))  # drops None and zeros
    return not nonzero or (max(nonzero) <= FLOAT32_MAX and min(nonzero) >= -FLOAT32_MAX)


def _out_of_range(name: str, row: int, value: Any) -> HttpError:
    shown = repr(value) if not isinstance(value, int) or value.bit_length() < 256 else "an integer"
    return bad_request(
        f"column {name!r}: row {row} holds {shown}, not a finite number within the float32 "
        f"range (|x| <= {FLOAT32_MAX:.4g})"
    )


def _finite_number(name: str, row: int, value: float | int) -> float:
    try:
        number = float(value)
    except OverflowError:
        raise _out_of_range(name, row, value) from None
    if math.isnan(number):
        return number
    if not -FLOAT32_MAX <= number <= FLOAT32_MAX:
        raise _out_of_range(name, row, value)
    return number


def prepare_column(name: str, values: ColumnValues, is_string: bool) -> list[Any] | np.ndarray:
    """One input column's values checked and converted for the model: strings
    (nulls -> the missing category) or float32-ready numbers (nulls and "" -> NaN).

    Plain lists of the right type pass as they are (the batch builds one array
    for all its requests); anything else is converted value by value.
    """
    if isinstance(values, np.ndarray):
        if is_string:
            return prepare_column(name, values.reshape(-1).tolist(), True)
        with np.errstate(over="ignore", invalid="ignore"):
            array = values.reshape(-1).astype(np.float32)
        infinite = np.isinf(array)
        if infinite.any():
            row = int(np.flatnonzero(infinite)[0])
            raise _out_of_range(name, row, values.reshape(-1)[row].item())
        return array.reshape(-1, 1)
    if is_string:
        if all(type(v) is str for v in values):
            return values
        strings: list[Any] = []
        for i, value in enumerate(values):
            if value is None:
                strings.append(MISSING_CATEGORY)
            elif isinstance(value, str):
                strings.append(value)
            elif isinstance(value, bool | int | float):
                strings.append(str(value))
            else:
                raise bad_request(
                    f"column {name!r}: row {i} holds {_short(value)}, expected a string"
                )
        return strings
    if all(type(v) in _NUMBER_TYPES for v in values) and _in_float32_range(values):
        return values
    numbers: list[float] = []
    for i, value in enumerate(values):
        if value is None or value == "":
            numbers.append(math.nan)
        elif isinstance(value, bool | int | float):
            numbers.append(_finite_number(name, i, value))
        elif isinstance(value, str):
            try:
                numbers.append(_finite_number(name, i, float(value)))
            except ValueError:
                raise bad_request(
                    f"column {name!r}: row {i} holds {_short(value)}, expected a number"
                ) from None
        elif isinstance(value, list):
            raise bad_request(f"column {name!r}: expected one value per row, got a list in row {i}")
        else:
            raise bad_request(f"column {name!r}: row {i} holds {_short(value)}, expected a number")
    return numbers


def prepare_columns(
    model: LoadedModel, columns: Mapping[str, ColumnValues]
) -> tuple[PreparedColumns, int]:
    """The model's input columns, checked and converted, and the row count.

    Every input column must be present and all must have the same length; a
    request that passes here cannot make a batch it joins fail.
    """
    if not any(len(values) for values in columns.values()):
        raise bad_request("empty batch: no rows to score")
    missing = [spec.name for spec in model.inputs if spec.name not in columns]
    if missing:
        raise bad_request(f"missing column(s): {', '.join(missing)}")
    fast = _prepare_plain_lists(model, columns)
    if fast is not None:
        return fast
    prepared = {
        spec.name: prepare_column(spec.name, columns[spec.name], spec.is_string)
        for spec in model.inputs
    }
    sizes = {len(values) for values in prepared.values()}
    if len(sizes) > 1:
        raise bad_request(f"columns have different lengths: {sorted(sizes)}")
    if not sizes or sizes == {0}:
        raise bad_request("empty batch: no rows to score")
    return prepared, sizes.pop()


_NONE_TYPE = type(None)
_NUMBER_OR_NONE = frozenset((float, int, _NONE_TYPE))
_STR_OR_NONE = frozenset((str, _NONE_TYPE))


def _prepare_plain_lists(
    model: LoadedModel, columns: Mapping[str, ColumnValues]
) -> tuple[PreparedColumns, int] | None:
    """The common case in a few calls: every input a plain list that already holds
    the right types (strings for string inputs, floats/ints for number inputs,
    nulls in either) and all of the same length: one type set over all string
    values, one over all number values. None when anything differs; `prepare_columns` then checks
    column by column (with its error messages) as before.
    """
    names = model.input_names
    values = [columns[name] for name in names]
    if set(map(type, values)) != {list}:  # set(map(...)): the checks run in C
        return None
    rows = len(values[0])
    if rows == 0 or set(map(len, values)) != {rows}:
        return None
    strings = [values[i] for i in model.string_positions]
    numbers = list(itertools.chain.from_iterable([values[i] for i in model.number_positions]))
    string_types = set(map(type, itertools.chain.from_iterable(strings)))
    number_types = set(map(type, numbers))
    if not string_types <= _STR_OR_NONE or not number_types <= _NUMBER_OR_NONE:
        return None
    present = numbers if _NONE_TYPE not in number_types else list(filter(None, numbers))
    if present and (max(present) > FLOAT32_MAX or min(present) < -FLOAT32_MAX):
        return None  # prepare_column names the column and row
    if _NONE_TYPE in string_types:  # nulls -> the missing category, as prepare_column does
        for i in model.string_positions:
            if None in values[i]:
                values[i] = [MISSING_CATEGORY if v is None else v for v in values[i]]
    if _NONE_TYPE in number_types:  # nulls -> NaN, as prepare_column does
        for i in model.number_positions:
            if None in values[i]:
                values[i] = [math.nan if v is None else v for v in values[i]]
    return dict(zip(names, values, strict=True)), rows


def columns_from_records(
    records: Any,
    where: str,
    wanted: Collection[str] | None = None,
    limits: ServingLimits = DEFAULT_LIMITS,
) -> dict[str, list[Any]]:
    """Columns from a list of {column: value} records (a missing key is null).

    Linear in the body: the distinct keys are collected once (refused past
    `max_columns`), then only the `wanted` columns (all when None) are built,
    one pass each.
    """
    if not isinstance(records, list):
        raise bad_request(f"{where} must be a list of {{column: value}} objects")
    if len(records) > limits.max_rows:
        raise too_many_rows(len(records), limits)
    if set(map(type, records)) != {dict}:
        for i, record in enumerate(records):
            if not isinstance(record, dict):
                raise bad_request(f"{where}[{i}] must be an object of column: value")
    keys: dict[str, None] = {}  # first-seen order
    limit = limits.max_columns
    for record in records:
        keys.update(dict.fromkeys(record))
        if len(keys) > limit:
            raise too_many_columns(len(keys), where, limits)
    names = keys if wanted is None else [k for k in wanted if k in keys]
    return {key: [record.get(key) for record in records] for key in names}


def columns_from_split(split: Any, limits: ServingLimits = DEFAULT_LIMITS) -> dict[str, list[Any]]:
    if not isinstance(split, dict) or "columns" not in split or "data" not in split:
        raise bad_request('dataframe_split must be {"columns": [...], "data": [[...], ...]}')
    names, data = split["columns"], split["data"]
    if not isinstance(names, list) or not isinstance(data, list):
        raise bad_request("dataframe_split: columns and data must be lists")
    if len(names) > limits.max_columns:
        raise too_many_columns(len(names), "dataframe_split", limits)
    if len(data) > limits.max_rows:
        raise too_many_rows(len(data), limits)
    if not set(map(type, names)) <= {str}:
        raise bad_request("dataframe_split: columns must be a list of column names (strings)")
    width = len(names)
    # set(map(...)) checks every row in C; a generator over rows cost ~1 us per row
    if data and width and set(map(type, data)) == {list} and set(map(len, data)) == {width}:
        # the common case: one transposition in C instead of a list per column
        return dict(zip(map(str, names), map(list, zip(*data, strict=True)), strict=True))
    for i, row in enumerate(data):
        if not isinstance(row, list) or len(row) != len(names):
            raise bad_request(
                f"dataframe_split: data[{i}] must be a list of {len(names)} values (one per column)"
            )
    return {str(name): [row[j] for row in data] for j, name in enumerate(names)}


def columns_from_mapping(
    mapping: dict[str, Any], where: str, limits: ServingLimits = DEFAULT_LIMITS
) -> dict[str, list[Any]]:
    if len(mapping) > limits.max_columns:
        raise too_many_columns(len(mapping), where, limits)
    columns = {}
    for key, values in mapping.items():
        if not isinstance(values, list):
            raise bad_request(f"{where}[{key[:100]!r}] must be a list of values")
        if len(values) > limits.max_rows:
            raise too_many_rows(len(values), limits)
        columns[key] = values
    return columns


def columns_from_mlflow_json(
    payload: Any, wanted: Collection[str] | None = None, limits: ServingLimits = DEFAULT_LIMITS
) -> dict[str, list[Any]]:
    if not isinstance(payload, dict):
        raise bad_request(
            "the body must be a JSON object with one of: dataframe_split, dataframe_records, "
            "instances, inputs"
        )
    if "dataframe_split" in payload:
        return columns_from_split(payload["dataframe_split"], limits)
    if "dataframe_records" in payload:
        return columns_from_records(
            payload["dataframe_records"], "dataframe_records", wanted, limits
        )
    for key in ("instances", "inputs"):
        if key in payload:
            value = payload[key]
            if isinstance(value, dict):
                return columns_from_mapping(value, key, limits)
            return columns_from_records(value, key, wanted, limits)
    raise bad_request(
        "unknown payload: expected one of dataframe_split, dataframe_records, instances, inputs"
    )


def columns_from_csv(body: bytes, limits: ServingLimits = DEFAULT_LIMITS) -> dict[str, list[Any]]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise bad_request("the CSV body is not UTF-8") from None
    reader = csv.reader(io.StringIO(text, newline=""))  # \r, \n and \r\n each end a line
    try:
        header = next(reader, None)
        if not header:
            raise bad_request("empty CSV: expected a header row")
        if len(header) > limits.max_columns:
            raise too_many_columns(len(header), "CSV header", limits)
        columns: dict[str, list[Any]] = {name: [] for name in header}
        rows = 0
        for line_number, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) != len(header):
                raise bad_request(
                    f"CSV line {line_number} has {len(row)} fields, the header has {len(header)}"
                )
            rows += 1
            if rows > limits.max_rows:
                raise too_many_rows(rows, limits)
            for name, value in zip(header, row, strict=True):
                columns[name].append(value if value != "" else None)
    except csv.Error as exc:  # a stray quote or carriage return, a field over the csv limit
        raise bad_request(f"malformed CSV at line {reader.line_num}: {exc}") from None
    return columns


def columns_from_oip(
    model: LoadedModel, payload: Any, limits: ServingLimits = DEFAULT_LIMITS
) -> dict[str, ColumnValues]:
    """Column values from an OIP v2 infer request, checking datatype and shape."""
    if not isinstance(payload, dict) or not isinstance(payload.get("inputs"), list):
        raise bad_request('the body must be a JSON object with an "inputs" list')
    if len(payload["inputs"]) > limits.max_columns:
        raise too_many_columns(len(payload["inputs"]), "inputs", limits)
    specs = model.input_specs
    columns: dict[str, ColumnValues] = {}
    for i, tensor in enumerate(payload["inputs"]):
        if not isinstance(tensor, dict):
            raise bad_request(f"inputs[{i}] must be an object")
        name = tensor.get("name")
        spec = specs.get(name) if isinstance(name, str) else None
        if spec is None:
            raise bad_request(
                f"inputs[{i}]: unknown input {_short(name)}; the model takes {', '.join(specs)}"
            )
        datatype, shape, data = tensor.get("datatype"), tensor.get("shape"), tensor.get("data")
        if spec.is_string and datatype != "BYTES":
            raise bad_request(f"input {name!r}: datatype {_short(datatype)}, expected BYTES")
        if not spec.is_string and datatype not in NUMERIC_DATATYPES:
            raise bad_request(
                f"input {name!r}: datatype {_short(datatype)}, expected a number type such as FP32"
            )
        # [N] or [N, 1], N a count (checked without a generator: this runs per input)
        if not (
            isinstance(shape, list)
            and (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1))
            and isinstance(shape[0], int)
            and shape[0] >= 0
            and isinstance(shape[-1], int)
        ):
            raise bad_request(f"input {name!r}: shape {_short(shape)}, expected [N] or [N, 1]")
        if isinstance(data, np.ndarray):
            data = data.reshape(-1)  # binary tensor data, already decoded
        elif not isinstance(data, list):
            raise bad_request(f"input {name!r}: data must be a list")
        elif data and isinstance(data[0], list):
            data = [v for row in data for v in (row if isinstance(row, list) else [row])]
        if len(data) != shape[0]:
            raise bad_request(
                f"input {name!r}: shape {shape[:2]} says {shape[0]} values, data holds {len(data)}"
            )
        if len(data) > limits.max_rows:
            raise too_many_rows(len(data), limits)
        columns[spec.name] = data
    return columns


# ------------------------------------------------------------------ metrics


class Metrics:
    """Counters and a latency histogram, rendered in Prometheus text format.

    `observe` runs once per request on the event loop, so it only bumps one
    plain per-(endpoint, version, status) record (count, latency sum, rows and a
    bucket count found by bisection); the Prometheus series are aggregated from
    those records when `/metrics` is read.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: dict[tuple[str, str, int], list[Any]] = {}
        """(endpoint, version, status) -> [requests, latency sum, rows, per-bucket counts]."""

    def observe(self, endpoint: str, version: str, status: int, seconds: float, rows: int) -> None:
        record = self._records.get((endpoint, version, status))
        if record is None:
            with self._lock:
                record = self._records.setdefault(
                    (endpoint, version, status), [0, 0.0, 0, [0] * (len(LATENCY_BUCKETS_S) + 1)]
                )
        record[0] += 1
        record[1] += seconds
        record[2] += rows
        record[3][bisect.bisect_left(LATENCY_BUCKETS_S, seconds)] += 1

    @property
    def requests(self) -> dict[tuple[str, str], int]:
        """Requests by (endpoint, version)."""
        totals: dict[tuple[str, str], int] = {}
        for (endpoint, version, _), record in list(self._records.items()):
            totals[(endpoint, version)] = totals.get((endpoint, version), 0) + record[0]
        return totals

    @property
    def errors(self) -> dict[tuple[str, str, int], int]:
        """Requests answered 4xx or 5xx, by (endpoint, version, status)."""
        return {key: record[0] for key, record in list(self._records.items()) if key[2] >= 400}

    @property
    def rows(self) -> dict[str, int]:
        """Rows scored, by version (versions that scored none are left out)."""
        totals: dict[str, int] = {}
        for (_, version, _), record in list(self._records.items()):
            if record[2]:
                totals[version] = totals.get(version, 0) + record[2]
        return totals

    def _latency(self) -> tuple[dict[str, list[int]], dict[str, float]]:
        """Cumulative bucket counts (the last one is +Inf) and latency sums, by endpoint."""
        counts: dict[str, list[int]] = {}
        sums: dict[str, float] = {}
        for (endpoint, _, _), record in list(self._records.items()):
            per_bucket = counts.setdefault(endpoint, [0] * (len(LATENCY_BUCKETS_S) + 1))
            for i, n in enumerate(record[3]):
                per_bucket[i] += n
            sums[endpoint] = sums.get(endpoint, 0.0) + record[1]
        cumulative = {
            endpoint: list(itertools.accumulate(per_bucket))
            for endpoint, per_bucket in counts.items()
        }
        return cumulative, sums

    def render(self, champion: int, dropped_rows: int) -> str:
        requests, errors, rows = self.requests, self.errors, self.rows
        latency_counts, latency_sum = self._latency()
        # label values come from fixed sets and version numbers, escaped all the same
        requests = {(_label(e), _label(v)): n for (e, v), n in requests.items()}
        errors = {(_label(e), _label(v), s): n for (e, v, s), n in errors.items()}
        rows = {_label(v): n for v, n in rows.items()}
        latency_counts = {_label(e): c for e, c in latency_counts.items()}
        latency_sum = {_label(e): t for e, t in latency_sum.items()}
        lines = [
            "# HELP mldeck_requests_total Requests by endpoint and answering model version.",
            "# TYPE mldeck_requests_total counter",
        ]
        for (endpoint, version), n in sorted(requests.items()):
            lines.append(
                f'mldeck_requests_total{{endpoint="{endpoint}",model_version="{version}"}} {n}'
            )
        lines += [
            "# HELP mldeck_request_errors_total Requests answered with a 4xx or 5xx.",
            "# TYPE mldeck_request_errors_total counter",
        ]
        for (endpoint, version, status), n in sorted(errors.items()):
            lines.append(
                f'mldeck_request_errors_total{{endpoint="{endpoint}",model_version="{version}",status="{status}"}} {n}'
            )
        lines += [
            "# HELP mldeck_rows_scored_total Rows scored, by model version.",
            "# TYPE mldeck_rows_scored_total counter",
        ]
        for version, n in sorted(rows.items()):
            lines.append(f'mldeck_rows_scored_total{{model_version="{version}"}} {n}')
        lines += [
            "# HELP mldeck_request_duration_seconds Request latency, by endpoint.",
            "# TYPE mldeck_request_duration_seconds histogram",
        ]
        for endpoint, counts in sorted(latency_counts.items()):
            for bound, n in zip(LATENCY_BUCKETS_S, counts, strict=False):
                lines.append(
                    f'mldeck_request_duration_seconds_bucket{{endpoint="{endpoint}",le="{bound}"}} {n}'
                )
            lines.append(
                f'mldeck_request_duration_seconds_bucket{{endpoint="{endpoint}",le="+Inf"}} {counts[-1]}'
            )
            lines.append(
                f'mldeck_request_duration_seconds_sum{{endpoint="{endpoint}"}} {latency_sum[endpoint]}'
            )
            lines.append(
                f'mldeck_request_duration_seconds_count{{endpoint="{endpoint}"}} {counts[-1]}'
            )
        lines += [
            "# HELP mldeck_champion_version The model version the server answers with by default.",
            "# TYPE mldeck_champion_version gauge",
            f"mldeck_champion_version {champion}",
            "# HELP mldeck_prediction_log_dropped_rows_total Rows not logged: the log queue was full.",
            "# TYPE mldeck_prediction_log_dropped_rows_total counter",
            f"mldeck_prediction_log_dropped_rows_total {dropped_rows}",
        ]
        return "\n".join(lines) + "\n"


def _label(value: str) -> str:
    """A label value escaped as the Prometheus text format asks: backslash, quote, newline."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


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
