"""7 Audit: the audit log, newest first, filtered by what is typed in the filter."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Input

from app.ui.format import fmt_time
from app.ui.screens.base import DeckScreen
from app.ui.widgets.table import DeckTable

if TYPE_CHECKING:
    from engine.api import AuditEntry, EngineClient


SHOWN_ENTRIES = 1000


class AuditScreen(DeckScreen):
    AUTO_FOCUS = "#audit-log"
    BINDINGS = [Binding("slash", "filter", "Filter", id="audit.filter")]

    def __init__(self) -> None:
        super().__init__()
        self.filter_text = ""

    def compose_body(self) -> ComposeResult:
        yield Input(placeholder="filter: actor, action, reason, v3 ...", id="audit-filter")
        entries = DeckTable(id="audit-log", cursor_type="row", zebra_stripes=True)
        entries.border_title = "Audit log"
        yield entries

    def on_mount(self) -> None:
        self.query_one("#audit-log", DataTable).add_columns(
            "#", "when (UTC)", "actor", "action", "from", "to", "reason"
        )
        super().on_mount()

    def fetch(self, client: EngineClient) -> list[AuditEntry]:
        newest = client.audit_entries(text=self.filter_text or None, limit=SHOWN_ENTRIES)
        return newest[::-1]  # newest first

    def show(self, data: list[dict[str, Any]]) -> None:
        table = self.query_one("#audit-log", DataTable)
        table.clear()
        for e in data:
            table.add_row(
                str(e["entry_id"]),
                fmt_time(e["recorded_at"]),
                e["actor"],
                e["action"],
                "—" if e["from_version"] is None else f"v{e['from_version']}",
                "—" if e["to_version"] is None else f"v{e['to_version']}",
                e["reason"] or "",
                key=str(e["entry_id"]),
            )

    @on(Input.Changed, "#audit-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.filter_text = event.value.strip()
        self.reload()

    def action_filter(self) -> None:
        self.query_one("#audit-filter", Input).focus()
