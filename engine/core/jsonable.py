"""Answers as plain JSON data, so one reads the same built in process or received over the
control API."""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path
from typing import Any


def iso(value: Any) -> Any:
    return value.isoformat(timespec="seconds") + "Z" if isinstance(value, datetime) else value


def jsonable(value: Any) -> Any:
    """`value` as plain JSON data (datetimes as ISO strings, paths as strings, NaN as null),
    so an answer reads the same built here or received over the control API."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def iso_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Catalog rows with their datetimes as ISO strings."""
    return [{key: iso(value) for key, value in row.items()} for row in rows]
