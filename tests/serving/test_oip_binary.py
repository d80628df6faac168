"""The binary tensor data codec (Open Inference Protocol extension), on its own."""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import pytest

from engine.serving.oip_binary import (
    BinaryDataError,
    attach_binary_inputs,
    binary_outputs,
    decode_bytes,
    decode_tensor,
    encode_bytes,
    encode_tensor,
    parse_header_length,
    split_body,
)


def test_bytes_round_trip() -> None:
    values = ["south", "", "näive", "a,b"]
    raw = encode_bytes(values)
    assert raw[:4] == struct.pack("<I", 5) and raw[4:9] == b"south"
    assert decode_bytes(raw, 4, "x") == [v.encode() for v in values]
    assert encode_bytes([b"\x00\xff"]) == b"\x02\x00\x00\x00\x00\xff"


@pytest.mark.parametrize(
    ("datatype", "dtype"),
    [("FP32", np.float32), ("FP64", np.float64), ("INT64", np.int64), ("BOOL", np.bool_)],
)
def test_fixed_round_trip(datatype: str, dtype: Any) -> None:
    array = np.array([[1], [0], [3]], dtype=dtype)
    raw = encode_tensor(datatype, array)
    assert len(raw) == 3 * np.dtype(dtype).itemsize
    decoded = decode_tensor(datatype, [3, 1], raw, "x")
    assert isinstance(decoded, np.ndarray)
    np.testing.assert_array_equal(decoded, array.reshape(-1))


def test_header_length_and_split() -> None:
    assert parse_header_length(None, 10) is None
    assert parse_header_length(" 4 ", 10) == 4
    assert split_body(b"{}\x01\x02", 2) == (b"{}", b"\x01\x02")
    assert split_body(b"{}", None) == (b"{}", b"")
    with pytest.raises(BinaryDataError, match="expected a number of bytes"):
        parse_header_length("abc", 10)
    with pytest.raises(BinaryDataError, match="the body holds 10 bytes"):
        parse_header_length("11", 10)
    with pytest.raises(BinaryDataError, match="the body holds"):
        parse_header_length("-1", 10)


def payload(*inputs: dict[str, Any]) -> dict[str, Any]:
    return {"inputs": list(inputs)}


def binary_input(name: str, datatype: str, shape: list[int], size: int) -> dict[str, Any]:
    return {
        "name": name,
        "datatype": datatype,
        "shape": shape,
        "parameters": {"binary_data_size": size},
    }


def test_attach_binary_inputs_in_order_and_leaves_json_alone() -> None:
    ages = np.array([30.5, 41.0], dtype=np.float32).tobytes()
    regions = encode_bytes(["west", "south"])
    request = payload(
        binary_input("age", "FP32", [2, 1], len(ages)),
        {"name": "income", "datatype": "FP64", "shape": [2], "data": [1.0, 2.0]},
        binary_input("region", "BYTES", [2], len(regions)),
    )
    attach_binary_inputs(request, ages + regions)
    age, income, region = request["inputs"]
    np.testing.assert_array_equal(age["data"], [30.5, 41.0])
    assert income["data"] == [1.0, 2.0]
    assert region["data"] == ["west", "south"]


def test_attach_nothing_binary_is_a_no_op() -> None:
    request = payload({"name": "a", "datatype": "FP32", "shape": [1], "data": [1.0]})
    attach_binary_inputs(request, b"")
    assert request["inputs"][0]["data"] == [1.0]
    attach_binary_inputs({"no": "inputs"}, b"")


@pytest.mark.parametrize(
    ("request_json", "binary", "message"),
    [
        # sizes that don't add up
        (payload(binary_input("a", "FP32", [2], 8)), b"\x00" * 4, "runs past the end of the body"),
        (payload(binary_input("a", "FP32", [2], 8)), b"\x00" * 12, "belong to no input"),
        (payload(binary_input("a", "FP32", [3], 8)), b"\x00" * 8, "needs 12 bytes"),
        (payload(binary_input("a", "FP32", [2], 7)), b"\x00" * 7, "needs 8 bytes"),
        (
            payload({"name": "a", "datatype": "FP32", "shape": [1], "data": [1.0]}),
            b"\x00" * 4,
            "belong to no input",
        ),
        ({"inputs": "nope"}, b"\x00", "there are no inputs"),
        # bad BYTES lengths
        (payload(binary_input("r", "BYTES", [1], 6)), struct.pack("<I", 9) + b"ab", "says 9 bytes"),
        (payload(binary_input("r", "BYTES", [2], 6)), struct.pack("<I", 2) + b"ab", "element 1"),
        (
            payload(binary_input("r", "BYTES", [1], 8)),
            struct.pack("<I", 1) + b"abcd",
            "3 bytes left over",
        ),
        (payload(binary_input("r", "BYTES", [1], 5)), struct.pack("<I", 1) + b"\xff", "not UTF-8"),
        # bad declarations
        (payload(binary_input("a", "FP32", [2], -1)), b"", "expected a byte count"),
        (payload(binary_input("a", "STRING", [1], 4)), b"\x00" * 4, "cannot be sent as binary"),
        (payload(binary_input("a", "FP32", [-1], 4)), b"\x00" * 4, "non-negative sizes"),
        (
            payload({**binary_input("a", "FP32", [1], 4), "data": [1.0]}),
            b"\x00" * 4,
            "both data and binary_data_size",
        ),
        (
            payload(
                {
                    "name": "a",
                    "datatype": "FP32",
                    "shape": [1],
                    "parameters": {"shared_memory_region": "r"},
                }
            ),
            b"",
            "shared memory is not supported",
        ),
    ],
)
def test_bad_binary_inputs(request_json: Any, binary: bytes, message: str) -> None:
    with pytest.raises(BinaryDataError, match=message):
        attach_binary_inputs(request_json, binary)


def test_binary_outputs_rules() -> None:
    names = ["label", "probabilities"]
    assert binary_outputs({}, names) == set()
    assert binary_outputs({"parameters": {"binary_data_output": True}}, names) == set(names)
    asked = {
        "outputs": [
            {"name": "label", "parameters": {"binary_data": True}},
            {"name": "probabilities", "parameters": {"binary_data": False}},
        ]
    }
    assert binary_outputs(asked, names) == {"label"}
    # an output that does not say follows the request-wide default
    mixed = {
        "parameters": {"binary_data_output": True},
        "outputs": [
            {"name": "label"},
            {"name": "probabilities", "parameters": {"binary_data": False}},
        ],
    }
    assert binary_outputs(mixed, names) == {"label"}
    with pytest.raises(BinaryDataError, match="classification extension"):
        binary_outputs({"outputs": [{"name": "label", "parameters": {"classification": 2}}]}, names)
