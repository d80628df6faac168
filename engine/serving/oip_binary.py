"""The binary tensor data extension of the Open Inference Protocol (Triton / KServe REST).

A request may carry tensors as raw bytes after its JSON header instead of as
JSON `data` lists: the body is `<JSON header><input 0 bytes><input 1 bytes>...`,
the `Inference-Header-Content-Length` request header gives the JSON header's
length, and each such input says how many bytes it owns with
`"parameters": {"binary_data_size": N}`, in the order the inputs are listed.
Fixed-size types are little-endian, row-major; a BYTES element is a 4-byte
little-endian length followed by that many bytes.

An output is answered in binary when its request entry asks with
`"parameters": {"binary_data": true}`, or, when it does not say, when the
request's `"parameters": {"binary_data_output": true}` does (tritonclient sends
that when it names no outputs). The response then has the same layout, with
`Inference-Header-Content-Length` in the response headers.

Everything here raises `BinaryDataError` for a payload that does not add up;
the server answers it with 400 and the message.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable
from typing import Any

import numpy as np

HEADER_LENGTH = "inference-header-content-length"
"""The HTTP header giving the JSON header's length (HTTP header names are case-insensitive)."""

EXTENSION = "binary_tensor_data"
"""The extension's name in the server metadata."""

FIXED_DTYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype("?"),
    "INT8": np.dtype("i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "UINT8": np.dtype("u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
}
"""Each fixed-size datatype's wire layout."""

_LENGTH = struct.Struct("<I")


class BinaryDataError(ValueError):
    """A binary payload that does not add up; the message names the problem."""


# ------------------------------------------------------------------ requests


def parse_header_length(value: str | None, body_length: int) -> int | None:
    """The JSON header's length from the request header, or None when it was not sent."""
    if value is None:
        return None
    try:
        length = int(value.strip())
    except ValueError:
        raise BinaryDataError(f"{HEADER_LENGTH} is {value!r}, expected a number of bytes") from None
    if length < 0 or length > body_length:
        raise BinaryDataError(
            f"{HEADER_LENGTH} is {length}, but the body holds {body_length} bytes"
        )
    return length


def split_body(body: bytes, header_length: int | None) -> tuple[bytes, bytes]:
    """(JSON header, binary part) of a request body."""
    if header_length is None:
        return body, b""
    return body[:header_length], body[header_length:]


def _binary_size(tensor: dict[str, Any], where: str) -> int | None:
    parameters = tensor.get("parameters")
    if parameters is None:
        return None
    if not isinstance(parameters, dict):
        raise BinaryDataError(f"{where}: parameters must be an object")
    if "shared_memory_region" in parameters:
        raise BinaryDataError(f"{where}: shared memory is not supported by this server")
    size = parameters.get("binary_data_size")
    if size is None:
        return None
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise BinaryDataError(f"{where}: binary_data_size is {size!r}, expected a byte count")
    return size


def element_count(shape: Any, where: str) -> int:
    """The number of elements a tensor's shape holds."""
    if not isinstance(shape, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise BinaryDataError(f"{where}: shape {shape!r} must be a list of non-negative sizes")
    return math.prod(shape)


def decode_bytes(raw: bytes, count: int, where: str) -> list[bytes]:
    """`count` length-prefixed BYTES elements, which must fill `raw` exactly."""
    values: list[bytes] = []
    offset = 0
    view = memoryview(raw)
    for i in range(count):
        if offset + 4 > len(raw):
            raise BinaryDataError(
                f"{where}: BYTES data ends at element {i} of {count}: no room for its 4-byte length"
            )
        (length,) = _LENGTH.unpack_from(raw, offset)
        offset += 4
        if offset + length > len(raw):
            raise BinaryDataError(
                f"{where}: BYTES element {i} says {length} bytes, only {len(raw) - offset} remain"
            )
        values.append(bytes(view[offset : offset + length]))
        offset += length
    if offset != len(raw):
        raise BinaryDataError(
            f"{where}: {len(raw) - offset} bytes left over after {count} BYTES elements"
        )
    return values


def decode_tensor(datatype: Any, shape: Any, raw: bytes, where: str) -> np.ndarray | list[str]:
    """A tensor's binary data as a flat array (numbers) or a list of str (BYTES)."""
    count = element_count(shape, where)
    if datatype == "BYTES":
        strings = []
        for i, value in enumerate(decode_bytes(raw, count, where)):
            try:
                strings.append(value.decode("utf-8"))
            except UnicodeDecodeError:
                raise BinaryDataError(f"{where}: BYTES element {i} is not UTF-8 text") from None
        return strings
    dtype = FIXED_DTYPES.get(datatype) if isinstance(datatype, str) else None
    if dtype is None:
        raise BinaryDataError(f"{where}: datatype {datatype!r} cannot be sent as binary data")
    if len(raw) != count * dtype.itemsize:
        raise BinaryDataError(
            f"{where}: shape {shape} of {datatype} needs {count * dtype.itemsize} bytes,"
            f" binary_data_size is {len(raw)}"
        )
    return np.frombuffer(raw, dtype=dtype)


def attach_binary_inputs(payload: Any, binary: bytes) -> None:
    """Give each input that has `binary_data_size` its decoded data, in place.

    After this, such an input's `data` is a flat numpy array (numbers) or a
    list of str (BYTES), so the JSON path checks it like any other. Inputs with
    `data` in the JSON are left alone.
    """
    inputs = payload.get("inputs") if isinstance(payload, dict) else None
    if not isinstance(inputs, list):
        if binary:
            raise BinaryDataError(
                f"{len(binary)} bytes of binary data follow the JSON header, but there are no inputs"
            )
        return
    if not binary and not any(type(t) is dict and "parameters" in t for t in inputs):
        return  # the common request: all data in the JSON
    offset = 0
    for i, tensor in enumerate(inputs):
        if not isinstance(tensor, dict):
            continue  # the JSON checks name this
        where = f"input {tensor.get('name', i)!r}"
        size = _binary_size(tensor, where)
        if size is None:
            continue
        if "data" in tensor:
            raise BinaryDataError(f"{where}: has both data and binary_data_size")
        if offset + size > len(binary):
            raise BinaryDataError(
                f"{where}: binary_data_size {size} runs past the end of the body"
                f" ({len(binary) - offset} bytes of binary data left;"
                f" is {HEADER_LENGTH} missing or wrong?)"
            )
        raw = binary[offset : offset + size]
        offset += size
        tensor["data"] = decode_tensor(tensor.get("datatype"), tensor.get("shape"), raw, where)
    if offset != len(binary):
        raise BinaryDataError(
            f"{len(binary) - offset} bytes of binary data after the JSON header belong to no input"
            f" (the inputs' binary_data_size add up to {offset})"
        )


# ------------------------------------------------------------------ responses


def binary_outputs(payload: dict[str, Any], names: Iterable[str]) -> set[str]:
    """Which of the answered outputs the request wants in binary."""
    parameters = payload.get("parameters")
    default = isinstance(parameters, dict) and parameters.get("binary_data_output") is True
    asked: dict[str, Any] = {}
    wanted = payload.get("outputs")
    if isinstance(wanted, list):
        for i, output in enumerate(wanted):
            if not isinstance(output, dict):
                continue
            where = f"output {output.get('name', i)!r}"
            output_parameters = output.get("parameters")
            if output_parameters is None:
                continue
            if not isinstance(output_parameters, dict):
                raise BinaryDataError(f"{where}: parameters must be an object")
            if "shared_memory_region" in output_parameters:
                raise BinaryDataError(f"{where}: shared memory is not supported by this server")
            if output_parameters.get("classification"):
                raise BinaryDataError(
                    f"{where}: the classification extension is not supported by this server"
                )
            if "binary_data" in output_parameters:
                asked[str(output.get("name"))] = output_parameters["binary_data"]
    return {name for name in names if asked.get(name, default) is True}


def encode_bytes(values: Iterable[Any]) -> bytes:
    """BYTES elements as 4-byte little-endian length + bytes (str as UTF-8)."""
    parts: list[bytes] = []
    for value in values:
        raw = value if isinstance(value, bytes) else str(value).encode("utf-8")
        parts.append(_LENGTH.pack(len(raw)))
        parts.append(raw)
    return b"".join(parts)


def encode_tensor(datatype: str, array: np.ndarray) -> bytes:
    """An output tensor's binary data, row-major."""
    if datatype == "BYTES":
        return encode_bytes(array.reshape(-1).tolist())
    dtype = FIXED_DTYPES.get(datatype)
    if dtype is None:
        raise BinaryDataError(f"datatype {datatype!r} cannot be sent as binary data")
    return np.ascontiguousarray(array, dtype=dtype).tobytes()
