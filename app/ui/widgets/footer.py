"""The footer of every screen: Textual's Footer, rebuilt only when its keys change."""

from __future__ import annotations

from typing import Any

from textual.screen import Screen
from textual.widgets import Footer


class DeckFooter(Footer):
    """Textual's `Footer` recomposes itself (a widget per key, each styled anew) on every
    bindings update: each screen switch and focus change. Screens keep their own footer,
    and their keys rarely change, so this one recomposes only when the keys it would
    show differ from the ones it shows: a screen switch then costs no footer rebuild
    (bench/ui_start.py)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._keys_shown: tuple[tuple[str, str, bool, str], ...] | None = None

    def bindings_changed(self, screen: Screen[Any]) -> None:
        keys = tuple(
            (binding.key, binding.description, enabled, tooltip)
            for (_, binding, enabled, tooltip) in screen.active_bindings.values()
            if binding.show
        )
        if keys == self._keys_shown:
            return
        super().bindings_changed(screen)
        if screen.app.app_focus and self.is_attached and screen is self.screen:
            self._keys_shown = keys  # the recompose is scheduled
