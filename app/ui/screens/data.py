"""2 Data: ingested batches, the issues of the selected one, the quarantine with reasons;
v re-validates a quarantined file under the contract as mldeck.toml has it now."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import DataTable

from app.ui.format import fmt_time, short_hash, status_text
from app.ui.screens.base import DeckScreen
from app.ui.screens.dialogs import Confirmed, ReasonDialog
from app.ui.widgets.table import DeckTable

if TYPE_CHECKING:
    from engine.api import EngineClient


BATCHES_SHOWN = 200
"""How many batches `EngineClient.batches()` answers (engine.views.tables.batches): the newest."""


class DataScreen(DeckScreen):
    BINDINGS = [
        Binding(
            "v",
            "revalidate",
            "Re-validate",
            id="data.revalidate",
            tooltip="Check a quarantined file again under the edited contract",
        ),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.selected_batch: int | None = None
        self.quarantined: dict[int, dict[str, Any]] = {}

    def compose_body(self) -> ComposeResult:
        batches = DeckTable(id="batches", cursor_type="row", zebra_stripes=True)
        batches.border_title = "Batches"
        yield batches
        with Horizontal(id="data-panels"):
            issues = DeckTable(id="issues", cursor_type="row")
            issues.border_title = "Issues"
            yield issues
            quarantine = DeckTable(id="quarantine", cursor_type="row")
            quarantine.border_title = "Quarantine"
            yield quarantine

    def on_mount(self) -> None:
        self.query_one("#batches", DataTable).add_columns(
            "batch", "file", "kind", "rows", "hash", "status", "issues", "ingested (UTC)"
        )
        self.query_one("#issues", DataTable).add_columns("severity", "issue")
        self.query_one("#quarantine", DataTable).add_columns("batch", "file", "reason")
        super().on_mount()

    def fetch(self, client: EngineClient) -> dict[str, Any]:
        return {"batches": client.batches(), "quarantine": client.quarantined()}

    def show(self, data: dict[str, Any]) -> None:
        table = self.query_one("#batches", DataTable)
        table.border_title = "Batches" + (
            f" (newest {len(data['batches'])})" if len(data["batches"]) >= BATCHES_SHOWN else ""
        )
        selected = self.selected_batch
        table.clear()
        for b in data["batches"]:
            issues = f"{b['errors']}E {b['warnings']}W" if b["errors"] or b["warnings"] else ""
            table.add_row(
                str(b["batch_id"]),
                b["source_name"],
                b["kind"],
                "—" if b["row_count"] is None else str(b["row_count"]),
                short_hash(b["content_hash"]),
                status_text(b["status"]),
                Text(issues, style="yellow" if issues else ""),
                fmt_time(b["ingested_at"]),
                key=str(b["batch_id"]),
            )
        if data["batches"]:
            if selected is None or str(selected) not in table.rows:
                selected = int(data["batches"][0]["batch_id"])
            self.selected_batch = selected
            table.move_cursor(row=table.get_row_index(str(selected)))
            self._load_issues(selected)
        quarantine = self.query_one("#quarantine", DataTable)
        quarantine.clear()
        self.quarantined = {int(q["batch_id"]): q for q in data["quarantine"]}
        for q in data["quarantine"]:
            quarantine.add_row(
                str(q["batch_id"]),
                q["source_name"],
                Text(q["reason"] or "", style="red"),
                key=str(q["batch_id"]),
            )

    @on(DataTable.RowHighlighted, "#batches")
    def _batch_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value is None:
            return
        self.selected_batch = int(event.row_key.value)
        self._load_issues(self.selected_batch)

    @work(thread=True, exclusive=True, group="issues", exit_on_error=False)
    def _load_issues(self, batch_id: int) -> None:
        issues = self.deck.client.batch_issues(batch_id)
        self.app.call_from_thread(self._show_issues, batch_id, issues)

    def _show_issues(self, batch_id: int, issues: list[dict[str, Any]]) -> None:
        if batch_id != self.selected_batch:
            return
        table = self.query_one("#issues", DataTable)
        table.border_title = f"Issues of batch {batch_id}"
        table.clear()
        for issue in issues:
            column = issue["column_name"]
            table.add_row(
                status_text(issue["severity"]),
                f"{column}: {issue['message']}" if column else issue["message"],
            )
        if not issues:
            table.add_row(Text("none", style="dim"), "")

    # -------------------------------------------------------------- actions

    def _target_batch(self) -> int | None:
        """The quarantined batch to act on: the quarantine's highlighted row when that table
        has the focus, else the batch selected above."""
        quarantine = self.query_one("#quarantine", DataTable)
        if quarantine.has_focus and quarantine.row_count:
            key = quarantine.coordinate_to_cell_key(quarantine.cursor_coordinate).row_key
            return None if key.value is None else int(key.value)
        return self.selected_batch

    def action_revalidate(self) -> None:
        batch_id = self._target_batch()
        if batch_id is None or batch_id not in self.quarantined:
            self.notify("select a quarantined batch first", severity="warning")
            return
        name = self.quarantined[batch_id]["source_name"]

        def revalidate(answer: Confirmed | None) -> None:
            if answer is not None:
                self.deck.run_engine_action(
                    "revalidate",
                    lambda client: client.revalidate(
                        batch_id, actor=self.deck.actor, reason=answer.reason
                    ),
                )

        self.app.push_screen(
            ReasonDialog(
                f"Re-validate batch {batch_id}",
                f"Check {name} again, from its quarantined copy, under the contract in "
                "mldeck.toml as it is now? If it passes it becomes a new batch; if not it "
                "stays quarantined with the new reasons.",
                confirm="Re-validate",
            ),
            revalidate,
        )
