"""1 Pipeline (home): the nine stages as lanes, the queue, the champion, open alerts."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import DataTable, Static

from app.ui.format import fmt_duration, fmt_num, fmt_time, metric_label, status_text
from app.ui.screens.base import DeckScreen
from app.ui.widgets.table import DeckTable

if TYPE_CHECKING:
    from engine.api import EngineClient


class PipelineScreen(DeckScreen):
    def compose_body(self) -> ComposeResult:
        lanes = DeckTable(id="lanes", cursor_type="row", zebra_stripes=True)
        lanes.border_title = "Stages"
        yield lanes
        with Horizontal(id="pipeline-panels"):
            yield Static(id="champion", classes="panel")
            yield Static(id="queue", classes="panel")
            yield Static(id="alerts", classes="panel")

    def on_mount(self) -> None:
        table = self.query_one("#lanes", DataTable)
        # Fixed widths: the lanes are always the same nine rows, and the columns do not
        # jump as runs come and go.
        for label, width in (
            ("stage", 8),
            ("status", 11),
            ("latest run (UTC)", 16),
            ("took", 6),
            ("output", 60),
        ):
            table.add_column(label, width=width)
        for panel, title in (("champion", "Champion"), ("queue", "Queue"), ("alerts", "Alerts")):
            self.query_one(f"#{panel}", Static).border_title = title
        super().on_mount()

    def fetch(self, client: EngineClient) -> dict[str, Any]:
        return {
            "status": client.status(),
            "lanes": client.stage_lanes(),
            "alerts": client.alerts(status="open"),
            "performance": client.performance(),
        }

    def show(self, data: dict[str, Any]) -> None:
        table = self.query_one("#lanes", DataTable)
        table.clear()
        for lane in data["lanes"]["lanes"]:
            output = Text(
                lane["error"] or lane["output"] or "", style="red" if lane["error"] else ""
            )
            table.add_row(
                Text(lane["stage"], style="bold"),
                status_text(lane["status"]),
                fmt_time(lane["started_at"]),
                fmt_duration(lane["duration_s"]),
                output,
                key=lane["stage"],
            )
        self.query_one("#champion", Static).update(self._champion(data))
        queue = data["lanes"]["queue"]
        self.query_one("#queue", Static).update(
            Text("\n".join(f"{q['stage']} (run {q['run_id']})" for q in queue))
            if queue
            else Text("idle", style="dim")
        )
        alerts = data["alerts"]
        self.query_one("#alerts", Static).update(
            Text("\n".join(f"[{a['severity']}] {a['message']}" for a in alerts), style="red")
            if alerts
            else Text("no open alerts", style="green")
        )

    @staticmethod
    def _champion(data: dict[str, Any]) -> Text:
        status = data["status"]
        champion = status["champion"]
        if champion is None:
            return Text("none yet: train (mldeck train)", style="dim")
        text = Text()
        text.append(f"v{champion['version']} ", style="bold green")
        text.append(f"{champion['name']} ({champion['kind']})\n")
        text.append(
            "holdout "
            + " ".join(f"{metric_label(k)} {fmt_num(v, 3)}" for k, v in champion["metrics"].items())
            + "\n"
        )
        windows = [w for w in data["performance"] if w.get("model_version") == champion["version"]]
        if windows:
            latest = windows[-1]
            live = {
                k: v
                for k, v in latest["metrics"].items()
                if k in champion["metrics"] and isinstance(v, int | float)
            }
            text.append(
                "live "
                + " ".join(f"{metric_label(k)} {fmt_num(v, 3)}" for k, v in live.items())
                + "\n"
            )
        else:
            text.append("live: no labels yet\n", style="dim")
        if status["challenger"]:
            text.append(f"challenger v{status['challenger']['version']}\n")
        serving = status.get("serving")
        text.append(
            f"serving v{serving['version']} at {serving['url']}" if serving else "not serving",
            style="" if serving else "dim",
        )
        return text
