"""The mldeck Textual app: seven screens over one `EngineClient`.

The app receives its client (`LocalEngine` on an open project, or
`RemoteEngine` attached to the engine that owns the project) the way
harlequin's app receives its adapter; `connect` picks one for a folder and
`make_app` builds the app for the CLI and the tests alike.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual import on, work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen
from textual.widget import AwaitMount
from textual.worker import Worker, WorkerState

from app.ui.messages import EngineChanged, EngineEventsArrived, FeedStepped
from app.ui.screens.audit import AuditScreen
from app.ui.screens.base import DeckScreen
from app.ui.screens.data import DataScreen
from app.ui.screens.dialogs import KeysScreen, PromptAnswer, RetrainPrompt
from app.ui.screens.drift import DriftScreen
from app.ui.screens.models import ModelsScreen
from app.ui.screens.performance import PerformanceScreen
from app.ui.screens.pipeline import PipelineScreen
from app.ui.screens.serving import ServingScreen
from engine.api import EngineClient, Event, JobFinished, MldeckError, Progress, RetrainProposed

if TYPE_CHECKING:
    from app.ui.deck import Deck
    from engine.api import QuarterFeed

log = logging.getLogger(__name__)

SCREENS: tuple[tuple[str, str, type[DeckScreen]], ...] = (
    ("pipeline", "Pipeline", PipelineScreen),
    ("data", "Data", DataScreen),
    ("models", "Models", ModelsScreen),
    ("drift", "Drift", DriftScreen),
    ("performance", "Performance", PerformanceScreen),
    ("serving", "Serving", ServingScreen),
    ("audit", "Audit", AuditScreen),
)
"""(mode, title, screen) on keys 1-7, in this order."""

REFRESH_S = 5.0
LIVE_RELOAD_S = 0.5
"""Engine events reload the shown screen at most this often."""
EVENTS_RETRY_S = 5.0
"""After the event stream ended or failed (a daemon restarting), follow it again after this."""
SWITCH_HOLD_S = 0.001
"""How long a switch to a screen shown before holds updates (see `MldeckApp.delay_update`)."""
PROPOSAL_JOBS = ("propose", "decide", "snooze")
PROMPT_LATER_S = 60.0
"""A retrain prompt put off with Escape is asked again after this."""


@dataclass
class Connection:
    """The client the UI works through and how to let go of it."""

    client: EngineClient
    project_name: str
    attached_to: str | None
    """The owning engine's address when attached to one; None when in process."""
    close: Callable[[], object]


ENGINE_PARTS = ("watcher", "scheduler")
"""The parts of the engine the UI starts in process when no engine holds the project."""


def connect(start: Path, parts: tuple[str, ...] = ENGINE_PARTS) -> Connection:
    """Attach to the engine that owns the project at `start`, or start one in this process.

    The in-process engine is the same `EngineService` as `mldeck daemon` (pipeline queue,
    watched folders, retrain scheduler); it stops when the UI quits.
    """
    from engine.api import (
        CONFIG_NAME,
        STATE_DIR,
        EngineService,
        RemoteEngine,
        find_root,
        load_config,
        open_project,
        project_token,
        read_owner,
        recover_on_open,
    )

    root = find_root(start)
    name = load_config(root / CONFIG_NAME).name
    owner = read_owner(root / STATE_DIR)
    if owner is not None:
        remote = RemoteEngine(owner.url, project_token(root / STATE_DIR), root)
        return Connection(remote, name, owner.url, lambda: None)
    project = open_project(root)
    recover_on_open(project)
    service = EngineService(project, parts)
    service.start()
    return Connection(service, name, None, service.close)


class MldeckApp(App[None]):
    """mldeck's terminal UI."""

    CSS_PATH = "mldeck.tcss"
    TITLE = "mldeck"
    MODES = {mode: screen for mode, _, screen in SCREENS}
    DEFAULT_MODE = "pipeline"
    # Below 100 columns or 30 rows the screens get -narrow / -short and pack tighter.
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (100, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (30, "-tall")]
    BINDINGS = [
        *[
            Binding(str(i), f"switch_mode('{mode}')", title, id=f"screen.{mode}")
            for i, (mode, title, _) in enumerate(SCREENS, start=1)
        ],
        Binding("question_mark", "keys", "Keys", id="app.keys"),
        Binding("q", "quit", "Quit", id="app.quit"),
    ]

    def __init__(
        self,
        client: EngineClient,
        *,
        project_name: str,
        actor: str,
        attached_to: str | None = None,
        refresh_s: float = REFRESH_S,
    ) -> None:
        super().__init__()
        self.client = client
        self.actor = actor
        """Who acts (audit log): $MLDECK_ACTOR or the user name."""
        self.attached_to = attached_to
        self.refresh_s = refresh_s
        self._where = f"{project_name} · " + (
            f"attached to {attached_to}" if attached_to else "in process"
        )
        self.sub_title = self._where
        self._answered_proposals: set[int] = set()
        self.feed: QuarterFeed | None = None
        """The demo's feed (`mldeck demo`): started with the app, stopped when it quits."""
        self._events_lock = threading.Lock()
        self._events_posted = False
        self._events_concern_proposals = False
        self._last_live_reload = 0.0
        self._stop_following = threading.Event()
        self._modes_mounted = {self.DEFAULT_MODE}
        self.changes = 0
        """Counts the engine's changes the UI heard of (events, its own actions): a screen
        loaded before the latest one reloads when it is shown again."""
        self._switching_to_mounted = False

    def on_mount(self) -> None:
        self.set_interval(self.refresh_s, self._check_proposals)
        self._check_proposals()
        # A plain daemon thread, not a worker: a worker's thread is joined when the app's
        # event loop closes, and an event stream only ends when the engine stops.
        threading.Thread(target=self._follow_events, name="ui-events", daemon=True).start()
        if self.feed is not None:
            self.feed.on_step = self._post_feed_step
            self.feed.start()

    def _post_feed_step(self, step: str) -> None:
        self.post_message(FeedStepped(step))

    def on_unmount(self) -> None:
        self._stop_following.set()
        if self.feed is not None:
            self.feed.stop()

    # -------------------------------------------------------------- live: the engine's events

    def _follow_events(self) -> None:
        """Follow the engine's events (the in-process hub or the daemon's SSE stream) and
        tell the UI thread, one message at a time, that some arrived."""
        while not self._stop_following.is_set():
            try:
                for event in self.client.events():
                    if self._stop_following.is_set():
                        return
                    self._note_event(event)
            except Exception as exc:  # the daemon went away: the timer goes on reloading
                log.info("engine events: %s", exc)
            self._stop_following.wait(EVENTS_RETRY_S)

    def _note_event(self, event: Event) -> None:
        if isinstance(event, Progress):  # a step of a running stage: the catalog is as it was
            return
        concerns_proposals = isinstance(event, RetrainProposed) or (
            isinstance(event, JobFinished) and event.kind in PROPOSAL_JOBS
        )
        with self._events_lock:
            self._events_concern_proposals |= concerns_proposals
            if self._events_posted:
                return
            self._events_posted = True
        self.post_message(EngineEventsArrived())

    @on(EngineEventsArrived)
    def _events_arrived(self) -> None:
        wait_s = self._last_live_reload + LIVE_RELOAD_S - time.monotonic()
        if wait_s > 0:
            self.set_timer(wait_s, self._apply_events)
        else:
            self._apply_events()

    def _apply_events(self) -> None:
        with self._events_lock:
            check_proposals = self._events_concern_proposals
            self._events_concern_proposals = False
            self._events_posted = False
        self._last_live_reload = time.monotonic()
        self.changes += 1
        self._reload_shown()
        if check_proposals:
            self._check_proposals()

    def _reload_shown(self) -> None:
        """Reload the deck screen on show (under a dialog too: it is still visible)."""
        decks = [s for s in self.screen_stack if isinstance(s, DeckScreen)]
        if decks:
            decks[-1].reload()

    @on(FeedStepped)
    def _feed_stepped(self, message: FeedStepped) -> None:
        self.sub_title = f"{self._where} · demo: {message.step}"

    # -------------------------------------------------------------- keys and palette

    def switch_mode(self, mode: str) -> AwaitMount:
        self._switching_to_mounted = mode in self._modes_mounted
        try:
            return super().switch_mode(mode)
        finally:
            self._switching_to_mounted = False
            self._modes_mounted.add(mode)

    def delay_update(self, delay: float = 0.05) -> None:
        """Textual's `switch_mode` holds every update for `delay` (50 ms) to hide a new
        mode's screen being composed, then repaints the whole screen. A screen mounted
        before has nothing to hide, and the hold was most of a key's latency
        (bench/ui_start.py): the hold then lasts only until the switch is done (a
        timer cannot be 0 s)."""
        super().delay_update(SWITCH_HOLD_S if self._switching_to_mounted else delay)

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for i, (mode, title, _) in enumerate(SCREENS, start=1):
            yield SystemCommand(
                f"{i} {title}",
                f"Show the {title} screen",
                lambda mode=mode: self.switch_mode(mode),
            )
        if isinstance(screen, ModelsScreen):
            for action, help_text in (
                ("promote", "Promote the selected version (asks for a reason)"),
                ("rollback", "Roll back to the previous champion (asks for a reason)"),
                ("archive", "Archive the selected version (asks for a reason)"),
                ("retrain", "Retrain every candidate (asks for a reason)"),
            ):
                yield SystemCommand(
                    action.capitalize(),
                    help_text,
                    getattr(screen, f"action_{action}"),
                )
        if isinstance(screen, DataScreen):
            yield SystemCommand(
                "Re-validate",
                "Check the selected quarantined file again under the contract (asks for a reason)",
                screen.action_revalidate,
            )
        yield SystemCommand("Keys", "Show every key", self.action_keys)

    def action_keys(self) -> None:
        """The keys of the app, then of the screen, then of the focused widget."""
        rows: list[tuple[int, str, str, str]] = []
        seen: set[tuple[str, str]] = set()
        for active in self.screen.active_bindings.values():
            binding = active.binding
            label = self.get_key_display(binding)
            if not binding.show or (label, binding.description) in seen:
                continue
            seen.add((label, binding.description))
            if active.node is self:
                rank, where = 0, "everywhere"
            elif active.node is self.screen:
                rank, where = 1, type(active.node).__name__.removesuffix("Screen")
            else:
                rank, where = 2, type(active.node).__name__
            rows.append((rank, label, binding.description, where))
        rows.sort(key=lambda row: row[0])
        keys = [row[1:] for row in rows]
        keys.append(("ctrl+p", "Command palette", "everywhere"))
        self.push_screen(KeysScreen(keys))

    # -------------------------------------------------------------- actions

    def run_engine_action(self, action: str, call: Callable[[EngineClient], Any]) -> None:
        """Run an engine action in a worker; the result or the error is notified."""
        self._run_engine_action(action, call)

    @work(thread=True, group="action", exit_on_error=False)
    def _run_engine_action(self, action: str, call: Callable[[EngineClient], Any]) -> None:
        result = call(self.client)
        self.call_from_thread(self.notify, _describe(action, result), title=action.capitalize())
        self.post_message(EngineChanged(action))

    def retrain(self, reason: str) -> None:
        """Retrain now through the engine (a pipeline job where an engine service runs)."""
        self.run_engine_action(
            "retrain", lambda client: client.retrain(actor=self.actor, reason=reason)
        )

    @on(EngineChanged)
    def _engine_changed(self) -> None:
        self.changes += 1
        self._reload_shown()

    # -------------------------------------------------------------- retrain prompts

    @work(thread=True, exclusive=True, group="proposals", exit_on_error=False)
    def _check_proposals(self) -> None:
        proposals = [p for p in self.client.proposals() if p["status"] == "pending"]
        self.call_from_thread(self._prompt, proposals[::-1])  # the oldest first

    def _prompt(self, proposals: list[dict[str, Any]]) -> None:
        if any(isinstance(s, RetrainPrompt) for s in self.screen_stack):
            return
        for proposal in proposals:
            proposal_id = int(proposal["proposal_id"])
            if proposal_id in self._answered_proposals:
                continue
            self._answered_proposals.add(proposal_id)
            self.push_screen(
                RetrainPrompt(proposal),
                lambda answer, pid=proposal_id: self._answer_prompt(pid, answer),
            )
            return

    def _answer_prompt(self, proposal_id: int, answer: PromptAnswer | None) -> None:
        if answer is None:  # later: asked again on a check after a while
            self.set_timer(PROMPT_LATER_S, lambda: self._answered_proposals.discard(proposal_id))
            return
        actor, reason = self.actor, answer.reason
        if answer.outcome == "snooze":  # stays pending; asked again when the UI starts next
            self.run_engine_action(
                "retrain prompt: snooze",
                lambda client: client.snooze(proposal_id, actor=actor, reason=reason),
            )
            return
        accept = answer.outcome == "retrain"
        self.run_engine_action(
            f"retrain prompt: {'retrain now' if accept else 'dismiss'}",
            lambda client: client.decide(proposal_id, accept=accept, actor=actor, reason=reason),
        )

    # -------------------------------------------------------------- failures

    @on(Worker.StateChanged)
    def _worker_failed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR and event.worker.error is not None:
            self.report_failure(event.worker.error)

    def report_failure(self, error: BaseException) -> None:
        """The one place a failed engine call is shown: a notification, never a crash."""
        if isinstance(error, MldeckError):
            self.notify(error.msg, title=error.title, severity="error", timeout=8)
        else:
            self.notify(
                f"{type(error).__name__}: {error}",
                title="Engine error",
                severity="error",
                timeout=8,
            )


def _describe(action: str, result: Any) -> str:
    if isinstance(result, dict) and "proposal_id" in result:
        retrain = result.get("retrain")
        text = f"proposal #{result['proposal_id']} {result['status']}"
        if retrain:
            versions = ", ".join(f"v{v}" for v in retrain["versions"])
            before = retrain["champion_before"]
            if retrain["promoted"]:
                outcome = f"v{retrain['promoted']} is champion (was v{before})"
            elif retrain.get("challenger") and retrain["challenger"] in retrain["versions"]:
                outcome = f"v{retrain['challenger']} is the challenger: promote it with p (Models)"
            else:
                outcome = f"none beat v{before}"
            text += f": registered {versions}; {outcome}"
        return text
    if isinstance(result, dict):
        if "champion" in result:
            before = f"v{result['previous']}" if result.get("previous") else "none"
            return f"champion {before} -> v{result['champion']}"
        if "archived" in result:
            return f"v{result['archived']} archived"
        if "new_batch_id" in result:
            if result["new_batch_id"] is None:
                errors = [i["message"] for i in result["issues"] if i["severity"] == "error"]
                return f"batch {result['batch_id']} is still quarantined: {'; '.join(errors)}"
            return (
                f"batch {result['batch_id']} {result['status']} as batch {result['new_batch_id']}"
            )
    return f"{action}: done"


def make_app(
    start: Path, *, actor: str, refresh_s: float = REFRESH_S, parts: tuple[str, ...] = ENGINE_PARTS
) -> tuple[MldeckApp, Callable[[], object]]:
    """The app on the project at `start` and what closes its connection after it ends."""
    connection = connect(start, parts)
    app = MldeckApp(
        connection.client,
        project_name=connection.project_name,
        actor=actor,
        attached_to=connection.attached_to,
        refresh_s=refresh_s,
    )
    return app, connection.close


if TYPE_CHECKING:

    def _screens_deck(app: MldeckApp) -> Deck:
        """mypy checks here that the app gives the screens what `Deck` promises."""
        return app
