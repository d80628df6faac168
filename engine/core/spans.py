"""Spans of time written as "7d", "12h", "30m" or "2w": the one parser, for the config and the monitors."""

from __future__ import annotations

from datetime import timedelta

from engine.core.errors import MldeckError

MAX_SPAN = timedelta(days=36_525)
"""The longest window a span may name (100 years)."""


def parse_span(text: str) -> timedelta:
    """'7d', '12h', '30m', '2w' as a timedelta."""
    units = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
    value = text.strip().lower()
    if len(value) < 2 or value[-1] not in units or not value[:-1].isdigit():
        raise MldeckError(
            f"{text!r} is not a window: use a number and a unit, e.g. 7d, 12h, 2w, 30m",
            title="Bad window",
        )
    amount = int(value[:-1])
    if amount <= 0:
        raise MldeckError(f"{text!r}: the window must be positive", title="Bad window")
    try:
        span = timedelta(**{units[value[-1]]: amount})
    except OverflowError:
        span = MAX_SPAN + MAX_SPAN
    if span > MAX_SPAN:  # "now - span" must stay a date
        raise MldeckError(f"{text!r}: the window is over 100 years", title="Bad window")
    return span
