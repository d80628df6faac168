"""4 Drift: per-feature scores against thresholds (latest window), the selected feature's
score over time with its warn/alert lines, reference vs current histogram, prediction drift."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Static

from app.ui.format import fmt_num, status_text
from app.ui.screens.base import DeckScreen
from app.ui.widgets.table import DeckTable

if TYPE_CHECKING:
    from app.ui.widgets.charts import HistogramChart, TrendChart
    from engine.api import DriftHistoryWindow, EngineClient


class DriftScreen(DeckScreen):
    def __init__(self) -> None:
        super().__init__()
        self.history: list[DriftHistoryWindow] = []
        self.selected_feature: str | None = None

    def compose_body(self) -> ComposeResult:
        # plotext takes ~80 ms to import: paid when the screen is first shown, not at start.
        from app.ui.widgets.charts import HistogramChart, TrendChart

        with Horizontal(id="drift-body"):
            with Vertical(id="drift-left"):
                features = DeckTable(id="features", cursor_type="row", zebra_stripes=True)
                features.border_title = "Features (latest window)"
                yield features
                yield Static(id="prediction-drift", classes="panel")
            with Vertical(id="drift-charts"):
                yield TrendChart(id="trend")
                yield HistogramChart(id="histogram")

    def on_mount(self) -> None:
        self.query_one("#features", DataTable).add_columns(
            "feature", "test", "score", "thresh", "status"
        )
        self.query_one("#prediction-drift", Static).border_title = "Prediction drift"
        super().on_mount()

    def fetch(self, client: EngineClient) -> list[DriftHistoryWindow]:
        return client.drift_history()

    def show(self, data: list[DriftHistoryWindow]) -> None:
        self.history = data
        table = self.query_one("#features", DataTable)
        table.clear()
        panel = self.query_one("#prediction-drift", Static)
        if not data:
            table.border_title = "Features"
            panel.update(
                Text(
                    "No drift window yet: drift is checked for each batch ingested "
                    "while the champion has a reference profile.",
                    style="dim",
                )
            )
            cast("TrendChart", self.query_one("#trend")).show_empty("drift over time")
            cast("HistogramChart", self.query_one("#histogram")).show_empty("reference vs current")
            return
        latest = data[-1]
        batch = f"batch {latest['batch_id']}" if latest["batch_id"] is not None else "window"
        table.border_title = (
            f"{batch} vs v{latest['model_version']}: {latest['status']}"
            f" ({latest['drifted_features']} drifted)"
        )
        for f in latest["features"]:
            name = f["feature"]
            table.add_row(
                Text(name if len(name) <= 20 else name[:19] + "…", style=_name_style(name)),
                METHOD_LABELS.get(f["method"], f["method"] or "—"),
                Text(fmt_num(f["score"], 3), style=_score_style(f["status"])),
                fmt_num(f["threshold"], 3),
                status_text(f["status"]),
                key=f["feature"],
            )
        prediction = next((f for f in latest["features"] if f["feature"] == "prediction"), None)
        if prediction is None:
            panel.update(Text("not computed for this window", style="dim"))
        else:
            text = Text("model output: ")
            text.append_text(status_text(prediction["status"]))
            text.append(
                f"  {prediction['method']} {fmt_num(prediction['score'], 3)}"
                f" (threshold {fmt_num(prediction['threshold'], 3)})"
            )
            panel.update(text)
        names: list[str] = [f["feature"] for f in latest["features"]]
        feature = self.selected_feature if self.selected_feature in names else names[0]
        table.move_cursor(row=names.index(feature))
        self._select(feature)

    @on(DataTable.RowHighlighted, "#features")
    def _feature_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value is not None and event.row_key.value != self.selected_feature:
            self._select(event.row_key.value)

    def _select(self, feature: str) -> None:
        self.selected_feature = feature
        self._plot_trend(feature)
        if self.history:
            self._load_histogram(int(self.history[-1]["window_id"]), feature)

    def _plot_trend(self, feature: str) -> None:
        labels, scores = [], []
        warn = alert = None
        method = None
        for window in self.history:
            found = next((f for f in window["features"] if f["feature"] == feature), None)
            chart = None if found is None else found["chart"]
            labels.append(f"b{window['batch_id']}" if window["batch_id"] is not None else "")
            scores.append(None if chart is None else chart["score"])
            if chart is not None:
                method = chart["method"]
                warn, alert = chart.get("warn_threshold"), chart["threshold"]
        cast("TrendChart", self.query_one("#trend")).show_series(
            f"{feature}: {method or 'score'} per window",
            labels,
            {method or "score": scores},
            {"warn": warn, "alert": alert},
        )

    @work(thread=True, exclusive=True, group="histogram", exit_on_error=False)
    def _load_histogram(self, window_id: int, feature: str) -> None:
        histogram = self.deck.client.drift_histogram(window_id, feature)
        self.app.call_from_thread(self._show_histogram, histogram)

    def _show_histogram(self, histogram: dict[str, Any]) -> None:
        if histogram["feature"] == self.selected_feature:
            cast("HistogramChart", self.query_one("#histogram")).show_histogram(histogram)


METHOD_LABELS: dict[str | None, str] = {
    "psi": "psi",
    "ks": "ks",
    "wasserstein_normed": "w1",
    "chi_square": "chi2",
    "jensen_shannon": "js",
}


def _name_style(feature: str) -> str:
    return "italic" if feature == "prediction" else ""


def _score_style(status: str) -> str:
    return {"alert": "bold red", "warn": "yellow", "ok": "green"}.get(status, "dim")
