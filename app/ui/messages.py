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
