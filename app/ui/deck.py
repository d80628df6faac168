"""What a screen may ask of the app it runs in: a small protocol, so that the screens do not
import the app class (which imports every screen)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from engine.api import EngineClient


class Deck(Protocol):
    client: EngineClient
    """The engine: in process, or the daemon's control API."""
    actor: str
    """Who acts, for the audit log."""
    refresh_s: float
    """How often a shown screen checks for changes."""
    changes: int
    """Counts the engine changes seen; a screen reloads when it moved since its last load."""

    def run_engine_action(self, action: str, call: Callable[[EngineClient], Any]) -> None: ...

    def retrain(self, reason: str) -> None: ...

    def report_failure(self, error: BaseException) -> None: ...
