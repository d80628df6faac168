"""The base of the seven screens: data loaded from the engine in a thread worker.

`fetch` runs in a worker thread and only talks to the engine client; `show`
runs on the UI thread with what `fetch` returned. A screen reloads on a timer
while it is the one shown, when it is shown again, after an action changed
the engine, and when the engine published events (the app follows them and
reloads the shown screen at most every `LIVE_RELOAD_S`). Shown again, a screen
reloads only when the engine changed since its last load (`Deck.changes`)
or that load is older than `RESUME_RELOAD_AFTER_S`: a key that flips between
screens does not re-read the catalog each time. A reload never queues behind a
slow one: while a load is running, the next is only marked as wanted. Errors go
to the app's `report_failure` (a notification), never a crash.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from textual import events, on, work
from textual.app import App, ComposeResult
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Header
from textual.worker import Worker, WorkerState

from app.ui.widgets.footer import DeckFooter

if TYPE_CHECKING:
    from app.ui.deck import Deck
    from engine.api import EngineClient

RESUME_RELOAD_AFTER_S = 2.0
"""A screen shown again reloads when its data is older than this, even if no event
said the engine changed (an attached UI whose event stream is down)."""


class DeckScreen(Screen[None]):
    """A screen of the deck: Header, the body, Footer; data from `fetch`."""

    @dataclass
    class Loaded(Message):
        """What `fetch` returned, delivered on the UI thread."""

        data: Any

    def __init__(self) -> None:
        super().__init__()
        self._loading = False
        self._wanted = False
        self._resume_pending = False
        self._shown: Any = None
        """What `show` last put on the screen: an unchanged reload redraws nothing."""
        self._loaded_changes = -1
        """`Deck.changes` when the latest load started."""
        self._loaded_at = float("-inf")
        self._styled_for: tuple[object, ...] | None = None
        """What the app's styles depended on when this screen was last left."""

    @property
    def shown_once(self) -> bool:
        """Whether data has been put on the screen yet."""
        return self._shown is not None

    @property
    def deck(self) -> Deck:
        return cast("Deck", self.app)

    def compose(self) -> ComposeResult:
        yield Header(icon="≡")
        yield from self.compose_body()
        yield DeckFooter()

    def compose_body(self) -> ComposeResult:
        raise NotImplementedError

    def fetch(self, client: EngineClient) -> Any:
        """Read what the screen shows (runs in a worker thread)."""
        raise NotImplementedError

    def show(self, data: Any) -> None:
        """Put `data` on the screen (UI thread)."""
        raise NotImplementedError

    def on_mount(self) -> None:
        self.set_interval(self.deck.refresh_s, self._tick)

    def on_screen_suspend(self) -> None:
        self._styled_for = _style_inputs(self.app)

    def on_screen_resume(self, event: events.ScreenResume) -> None:
        """Shown (the first time too): load, unless a load is running (Textual sends a
        new mode's screen two resumes). After the first frame: the load's thread would
        otherwise compete with painting the screen the key asked for."""
        # Textual restyles every widget of a screen shown again, and a restyled DataTable
        # drops its render caches and renders each visible cell anew: most of a screen
        # switch's cost (bench/ui_start.py). Nothing the styles depend on changed while
        # this screen was away unless the app's pseudo-classes, classes or theme did
        # (a CSS change is caught by `App.switch_mode`, and class changes on the screen's
        # own widgets restyle them when they happen), so the restyle is skipped then.
        # This handler runs before `Screen._on_screen_resume`, which reads the flag.
        if self._styled_for is not None and self._styled_for == _style_inputs(self.app):
            event.refresh_styles = False
        if not self._loading and not self._resume_pending and self._stale():
            self._resume_pending = True
            self.call_after_refresh(self._reload_after_resume)

    def _stale(self) -> bool:
        return (
            not self.shown_once
            or self._loaded_changes != self.deck.changes
            or time.monotonic() - self._loaded_at >= RESUME_RELOAD_AFTER_S
        )

    def _reload_after_resume(self) -> None:
        self._resume_pending = False
        self.reload()

    def _tick(self) -> None:
        if self.is_current:
            self.reload()

    def reload(self) -> None:
        if self._loading:
            self._wanted = True
            return
        self._loading = True
        self._loaded_changes = self.deck.changes
        self._loaded_at = time.monotonic()
        self._load()

    @work(thread=True, group="load", exit_on_error=False)
    def _load(self) -> None:
        self.post_message(self.Loaded(self.fetch(self.deck.client)))

    @on(Loaded)
    def _on_loaded(self, message: Loaded) -> None:
        message.stop()
        if message.data is not None and message.data == self._shown:
            return
        self._shown = message.data
        self.show(message.data)

    @on(Worker.StateChanged)
    def _on_worker_state(self, event: Worker.StateChanged) -> None:
        event.stop()  # a screen's workers are the screen's business; failures reported once
        if event.state == WorkerState.ERROR and event.worker.error is not None:
            self.deck.report_failure(event.worker.error)
        if event.worker.group != "load" or event.state not in (
            WorkerState.SUCCESS,
            WorkerState.ERROR,
            WorkerState.CANCELLED,
        ):
            return
        self._loading = False
        if self._wanted:
            self._wanted = False
            self.reload()


def _style_inputs(app: App[Any]) -> tuple[object, ...]:
    """What the app contributes to its screens' styles."""
    return (app.pseudo_classes, frozenset(app.classes), app.theme)
