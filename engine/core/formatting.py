"""How a figure reads in a table: the terminal's (app.output) and the HTML report's."""

from __future__ import annotations

import math
from typing import Any


def fmt_num(value: Any, digits: int = 4) -> str:
    """A figure for a table: tiny floats in scientific notation, None and NaN as a dash."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    if isinstance(value, float):
        if value != 0 and abs(value) < 10**-digits:
            return f"{value:.1e}"
        return f"{value:.{digits}f}"
    return str(value)
