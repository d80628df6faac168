"""The `dataframe_records` decoder on records that each bring a new key: time and peak
memory at 1.6k and 16k keys, this decoder against f42d565's (quadratic), same run.

The current decoder is run with `max_columns` raised past the key count, so it
does the whole decode a server with such a limit would do (a default server
refuses these bodies with 400 after collecting the keys). The old decoder is
copied here as it was, as the baseline. Linear means: 10x the keys, about 10x
the time. Always exits 0.

    .venv/bin/python bench/decode_records.py
"""

from __future__ import annotations

import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.core.config import ServingLimits  # noqa: E402
from engine.serving.decode import columns_from_records, parse_json  # noqa: E402


def old_columns_from_records(records: Any, where: str) -> dict[str, list[Any]]:
    """f42d565's decoder: every record appends to every column seen so far."""
    columns: dict[str, list[Any]] = {}
    for i, record in enumerate(records):
        for key in record:
            columns.setdefault(key, [None] * i)
        for key, values in columns.items():
            values.append(record.get(key))
    return columns


def measure(decode: Callable[..., object], *args: Any) -> tuple[float, float]:
    """(seconds, peak MB of Python allocations)."""
    tracemalloc.start()
    started = time.perf_counter()
    decode(*args)
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1] / 1e6
    tracemalloc.stop()
    return seconds, peak


def main() -> None:
    wanted = ["age", "annual_income", "region"]  # what a model takes: none of the new keys
    results: dict[str, dict[int, tuple[float, float]]] = {"new": {}, "old": {}}
    for keys in (1_600, 16_000):
        body = (
            "{" + '"dataframe_records": [' + ",".join(f'{{"k{i}": 1}}' for i in range(keys)) + "]}"
        ).encode()
        limits = ServingLimits(max_columns=keys)
        records = parse_json(body)["dataframe_records"]
        results["new"][keys] = measure(
            columns_from_records, records, "dataframe_records", wanted, limits
        )
        results["old"][keys] = measure(old_columns_from_records, records, "x")
        print(f"{keys:>6} keys, body {len(body) / 1e3:.0f} KB")
        for name in ("old", "new"):
            seconds, peak = results[name][keys]
            print(f"    {name}: {seconds * 1000:9.1f} ms   peak {peak:8.1f} MB")
    for name in ("old", "new"):
        ratio = results[name][16_000][0] / results[name][1_600][0]
        print(f"{name}: 10x the keys -> {ratio:.1f}x the time")
    speedup = results["old"][16_000][0] / results["new"][16_000][0]
    print(f"16k keys: new decoder {speedup:.0f}x faster than f42d565's")


if __name__ == "__main__":
    main()
