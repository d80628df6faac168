"""6 Serving: the endpoint, the served and shadow versions, requests/s, p50/p99 latency
and error rate (the prediction log, plus the live endpoint's counters when attached)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import DataTable, Static

from app.ui.format import fmt_time
from app.ui.screens.base import DeckScreen
from app.ui.widgets.table import DeckTable

if TYPE_CHECKING:
    from engine.api import EngineClient, ServingStatsAnswer


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f} ms"


class ServingScreen(DeckScreen):
    def compose_body(self) -> ComposeResult:
        with Horizontal(id="serving-panels"):
            yield Static(id="endpoint", classes="panel")
            yield Static(id="traffic", classes="panel")
        versions = DeckTable(id="served-versions", cursor_type="row")
        versions.border_title = "By version (last minute)"
        yield versions

    def on_mount(self) -> None:
        self.query_one("#endpoint", Static).border_title = "Endpoint"
        self.query_one("#traffic", Static).border_title = "Traffic (last minute)"
        self.query_one("#served-versions", DataTable).add_columns(
            "version", "role", "requests", "rows", "p50", "p99"
        )
        super().on_mount()

    def fetch(self, client: EngineClient) -> ServingStatsAnswer:
        return client.serving_stats()

    def show(self, data: ServingStatsAnswer) -> None:
        endpoint = data["endpoint"]
        grid = Table.grid(padding=(0, 1))
        grid.add_column(style="bold")
        grid.add_column()
        if endpoint is None:
            grid.add_row("status", Text("not serving (start `mldeck serve`)", style="dim"))
        else:
            grid.add_row("address", str(endpoint["url"]))
            grid.add_row("serving", Text(f"v{endpoint['version']}", style="bold green"))
            grid.add_row("provider", str(endpoint["provider"]))
            shadow = endpoint.get("shadow")
            grid.add_row(
                "shadow", "none" if shadow is None else f"v{shadow} (logged, not returned)"
            )
        self.query_one("#endpoint", Static).update(grid)

        traffic = Table.grid(padding=(0, 1))
        traffic.add_column(style="bold")
        traffic.add_column()
        traffic.add_row("requests/s", f"{data['requests_per_s']:.2f}")
        traffic.add_row("p50", _ms(data["p50_ms"]))
        traffic.add_row("p99", _ms(data["p99_ms"]))
        if endpoint is not None and endpoint.get("requests"):
            rate = endpoint["errors"] / endpoint["requests"]
            traffic.add_row(
                "errors",
                Text(
                    f"{rate:.2%} ({endpoint['errors']} of {endpoint['requests']} since start)",
                    style="red" if endpoint["errors"] else "green",
                ),
            )
        else:
            traffic.add_row("errors", Text("—", style="dim"))
        traffic.add_row(
            "logged", f"{data['total_requests']} requests, last {fmt_time(data['last_served_at'])}"
        )
        self.query_one("#traffic", Static).update(traffic)

        table = self.query_one("#served-versions", DataTable)
        table.clear()
        for v in data["versions"]:
            table.add_row(
                f"v{v['version']}",
                "shadow" if v["shadow"] else "served",
                str(v["requests"]),
                str(v["rows"]),
                _ms(v["p50_ms"]),
                _ms(v["p99_ms"]),
            )
