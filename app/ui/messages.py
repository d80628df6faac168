"""App-wide messages, named in the past tense."""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message


@dataclass
class EngineChanged(Message):
    """An action changed the engine's state (promote, rollback, archive, retrain, ...):
    every screen refreshes when it is next shown, the current one now."""

    action: str
    """What was done, e.g. "promote"."""


@dataclass
class EngineEventsArrived(Message):
    """The engine published events since the last of these was handled (one at a time:
    the thread that follows the events coalesces them)."""


@dataclass
class FeedStepped(Message):
    """The demo feed did something worth a line in the header."""

    step: str
    """e.g. "week 3 of 13"."""
