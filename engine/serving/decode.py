"""Decoding request bodies into model columns, for both protocols: JSON with its limits
(nesting depth, columns, rows), MLflow's shapes (dataframe_split, dataframe_records,
instances, inputs, CSV) and OIP v2 inputs; every client mistake is an `HttpError` with a
4xx status naming the problem and, for a limit, its `[serving]` key. Costs are linear in
the body (one pass over records' keys)."""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
from collections.abc import Collection, Mapping
from typing import Any

import numpy as np
import orjson

from engine.core.config import ServingLimits
from engine.data.features import MISSING_CATEGORY
from engine.serving.batching import PreparedColumns
from engine.serving.model_slot import LoadedModel

ColumnValues = list[Any] | np.ndarray
"""One input column's values: a JSON list, or a flat array decoded from binary tensor data."""

MAX_BODY_BYTES = 10 * 1024 * 1024
"""Request bodies larger than this get 413."""

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
