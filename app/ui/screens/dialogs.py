"""Modal dialogs: confirm with a reason, the keys, the retrain prompt."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, DataTable, Input, Label, Static

from app.ui.widgets.table import DeckTable


@dataclass(frozen=True)
class Confirmed:
    """What a person confirmed in a `ReasonDialog`."""

    reason: str
    force: bool = False


class ReasonDialog(ModalScreen[Confirmed | None]):
    """Asks for a reason (it goes to the audit log) and a confirmation.

    Enter in the reason field or the confirm button confirms; Escape cancels.
    An empty reason is refused in place.
    """

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="dialog.cancel")]

    def __init__(self, title: str, question: str, *, confirm: str, offer_force: bool = False):
        super().__init__()
        self.title_text = title
        self.question = question
        self.confirm_label = confirm
        self.offer_force = offer_force

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="dialog"):
            yield Label(self.title_text, classes="dialog-title")
            yield Static(self.question, classes="dialog-question")
            yield Input(placeholder="reason (recorded in the audit log)", id="reason")
            if self.offer_force:
                yield Checkbox("even if it failed its gates (--force)", id="force")
            yield Static("", id="dialog-error")
            with Horizontal(classes="dialog-buttons"):
                yield Button(self.confirm_label, variant="primary", id="confirm")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#reason", Input).focus()

    @on(Input.Submitted, "#reason")
    @on(Button.Pressed, "#confirm")
    def _confirm(self) -> None:
        reason = self.query_one("#reason", Input).value.strip()
        if not reason:
            self.query_one("#dialog-error", Static).update(
                Text("a reason is required: it goes to the audit log", style="red")
            )
            return
        force = self.offer_force and self.query_one("#force", Checkbox).value
        self.dismiss(Confirmed(reason, force))

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


class KeysScreen(ModalScreen[None]):
    """Every key of the app and of the screen it was opened on."""

    BINDINGS = [
        Binding("escape,question_mark,q", "close", "Close", id="keys.close"),
    ]

    def __init__(self, rows: list[tuple[str, str, str]]) -> None:
        super().__init__()
        self.rows = rows

    def compose(self) -> ComposeResult:
        with Vertical(id="keys", classes="dialog"):
            yield Label("Keys", classes="dialog-title")
            yield DeckTable(id="keys-table", cursor_type="none", zebra_stripes=True)
            yield Static("Escape closes · Ctrl+P opens the command palette", classes="dim")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("key", "does", "where")
        for row in self.rows:
            table.add_row(*row)

    def action_close(self) -> None:
        self.dismiss(None)


@dataclass(frozen=True)
class PromptAnswer:
    """A person's answer to a retrain prompt."""

    outcome: str
    """retrain | dismiss | snooze (engine.prompts.OUTCOMES)."""
    reason: str


class RetrainPrompt(ModalScreen[PromptAnswer | None]):
    """A retrain proposal with its evidence: retrain now, dismiss or snooze.

    Each answer has a key that works while the reason field has the focus
    (priority bindings: Ctrl+D answers rather than deleting a character).
    """

    BINDINGS = [
        Binding("escape", "cancel", "Later", id="prompt.later"),
        Binding("ctrl+r", "answer('retrain')", "Retrain now", priority=True, id="prompt.retrain"),
        Binding("ctrl+d", "answer('dismiss')", "Dismiss", priority=True, id="prompt.dismiss"),
        Binding("ctrl+s", "answer('snooze')", "Snooze", priority=True, id="prompt.snooze"),
    ]

    def __init__(self, proposal: dict[str, Any]) -> None:
        super().__init__()
        self.proposal = proposal

    def compose(self) -> ComposeResult:
        proposal = self.proposal
        with Vertical(id="prompt", classes="dialog"):
            yield Label("Retrain?", classes="dialog-title")
            yield Static(f"The {proposal.get('trigger', 'retrain')} trigger proposes a retrain.")
            evidence = proposal.get("evidence") or {}
            if evidence:
                table = DeckTable(id="evidence", cursor_type="none")
                yield table
            yield Input(placeholder="reason (recorded in the audit log)", id="reason")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Retrain now ^R", variant="primary", id="retrain")
                yield Button("Dismiss ^D", id="dismiss")
                yield Button("Snooze ^S", id="snooze")
            yield Static("Escape: ask me later", classes="dim")

    def on_mount(self) -> None:
        evidence = self.proposal.get("evidence") or {}
        if evidence:
            table = self.query_one("#evidence", DataTable)
            table.add_columns("evidence", "value")
            for key, value in _evidence_rows(evidence):
                table.add_row(key, value)
        self.query_one("#reason", Input).focus()

    @on(Button.Pressed)
    def _answer(self, event: Button.Pressed) -> None:
        self.action_answer(event.button.id or "")

    def action_answer(self, outcome: str) -> None:
        reason = self.query_one("#reason", Input).value.strip() or f"{outcome} from the UI"
        self.dismiss(PromptAnswer(outcome, reason))

    def action_cancel(self) -> None:
        self.dismiss(None)


def _evidence_rows(evidence: dict[str, Any]) -> list[tuple[str, str]]:
    """A proposal's evidence as (what, value) rows: one per alert for an alert trigger."""
    rows = [
        (str(a.get("rule", "alert")), str(a.get("message", ""))) for a in evidence.get("alerts", [])
    ]
    rows += [(str(k), str(v)) for k, v in evidence.items() if k != "alerts"]
    return rows
