"""Engine events: plain dataclasses that the CLI prints and the UI turns into messages."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class StageStarted:
    stage: str
    subject: str


@dataclass(frozen=True)
class StageFinished:
    stage: str
    subject: str
    status: str
    detail: str = ""


@dataclass(frozen=True)
class Progress:
    stage: str
    subject: str
    done: int
    total: int
    detail: str = ""


@dataclass(frozen=True)
class AlertRaised:
    """A monitoring rule fired (stored in the catalog's alerts table)."""

    alert_id: int
    rule: str
    severity: str
    """warn | alert"""
    model_version: int | None
    message: str


Event = StageStarted | StageFinished | Progress | AlertRaised
EventSink = Callable[[Event], None]


def ignore_events(event: Event) -> None:
    """The default sink: drop events."""
