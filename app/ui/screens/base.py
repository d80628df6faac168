"""The base of the seven screens: data loaded from the engine in a thread worker.

`fetch` runs in a worker thread and only talks to the engine client; `show`
runs on the UI thread with what `fetch` returned. A screen reloads on a timer
while it is the one shown, when it is shown again, after an action changed
the engine, and when the engine published events (the app follows them and
reloads the shown screen at most every `LIVE_RELOAD_S`). A reload never queues behind a slow one: while a load is running,
the next is only marked as wanted. Errors go to the app's `report_failure`
(a notification), never a crash.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from textual import on, work
from textual.app import ComposeResult
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Header
from textual.worker import Worker, WorkerState

from app.ui.widgets.footer import DeckFooter

if TYPE_CHECKING:
    from app.ui.app import MldeckApp
    from engine.client import EngineClient


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

    @property
    def shown_once(self) -> bool:
        """Whether data has been put on the screen yet."""
        return self._shown is not None

    @property
    def deck(self) -> MldeckApp:
        return cast("MldeckApp", self.app)

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

    def on_screen_resume(self) -> None:
        """Shown (the first time too): load, unless a load is running (Textual sends a
        new mode's screen two resumes). After the first frame: the load's thread would
        otherwise compete with painting the screen the key asked for."""
        if not self._loading and not self._resume_pending:
            self._resume_pending = True
            self.call_after_refresh(self._reload_after_resume)

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
