"""Engine events: plain dataclasses that the CLI prints and the UI turns into messages.

An engine service fans its events out to subscribers (`EventHub`): the control
API streams them as server-sent events, one JSON object per event with a
`type` field naming the class (`event_to_dict`, `event_from_dict`).
"""

from __future__ import annotations

import dataclasses
import queue
import threading
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any


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


@dataclass(frozen=True)
class JobQueued:
    """A job joined the engine's pipeline queue."""

    job_id: int
    kind: str
    """ingest | train | retrain | promote | rollback | propose | decide"""
    subject: str


@dataclass(frozen=True)
class JobStarted:
    job_id: int
    kind: str
    subject: str


@dataclass(frozen=True)
class JobFinished:
    job_id: int
    kind: str
    subject: str
    status: str
    """succeeded | failed | interrupted (cut short by a stop; a journaled job runs again)"""
    detail: str = ""


@dataclass(frozen=True)
class RetrainProposed:
    """A trigger fired under the `prompt` policy: a proposal waits for a person."""

    proposal_id: int
    trigger: str
    detail: str


Event = (
    StageStarted
    | StageFinished
    | Progress
    | AlertRaised
    | JobQueued
    | JobStarted
    | JobFinished
    | RetrainProposed
)
EventSink = Callable[[Event], None]


def ignore_events(event: Event) -> None:
    """The default sink: drop events."""


def event_to_dict(event: Event) -> dict[str, Any]:
    return {"type": type(event).__name__, **dataclasses.asdict(event)}


def event_from_dict(data: dict[str, Any]) -> Event | None:
    """The event a dict describes; None for a type this build does not know."""
    kinds = {cls.__name__: cls for cls in typing.get_args(Event)}
    cls = kinds.get(str(data.get("type")))
    if cls is None:
        return None
    names = {f.name for f in dataclasses.fields(cls)}
    event: Event = cls(**{k: v for k, v in data.items() if k in names})
    return event


class EventHub:
    """Fans events out to subscribers, each with its own bounded queue.

    Publishing never blocks: a subscriber that does not keep up loses events
    (it is a live view, the catalog holds the record).
    """

    def __init__(self, max_queued: int = 1000) -> None:
        self._subscribers: dict[queue.Queue[Event | None], Callable[[], None] | None] = {}
        self._lock = threading.Lock()
        self._max_queued = max_queued
        self._closed = False

    def publish(self, event: Event) -> None:
        self._deliver(event)

    def subscribe(self, notify: Callable[[], None] | None = None) -> queue.Queue[Event | None]:
        """A queue of the events published from now on; None in it means the hub closed.

        Args:
            notify: called (on the publishing thread) after each event is queued,
                e.g. to wake an event loop.
        """
        subscriber: queue.Queue[Event | None] = queue.Queue(self._max_queued)
        with self._lock:
            if self._closed:
                subscriber.put_nowait(None)
            self._subscribers[subscriber] = notify
        return subscriber

    def unsubscribe(self, subscriber: queue.Queue[Event | None]) -> None:
        with self._lock:
            self._subscribers.pop(subscriber, None)

    def iterate(self) -> Iterator[Event]:
        """Events as they are published, until the hub closes."""
        subscriber = self.subscribe()
        try:
            while (event := subscriber.get()) is not None:
                yield event
        finally:
            self.unsubscribe(subscriber)

    def close(self) -> None:
        """End every subscription (streams finish, iterators stop)."""
        with self._lock:
            self._closed = True
        self._deliver(None)

    def _deliver(self, item: Event | None) -> None:
        with self._lock:
            subscribers = list(self._subscribers.items())
        for subscriber, notify in subscribers:
            try:
                subscriber.put_nowait(item)
            except queue.Full:
                if item is not None:
                    continue  # a live view that lags loses events
                while True:  # make room for the end marker
                    try:
                        subscriber.get_nowait()
                    except queue.Empty:
                        break
                subscriber.put_nowait(None)
            if notify is not None:
                try:
                    notify()
                except RuntimeError:  # its event loop is closed: the stream is gone
                    self.unsubscribe(subscriber)
