"""5 Performance: live accuracy / AUC (or RMSE) per labelled window, the holdout figure
as a reference line. Windows come from `EngineClient.performance()`."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import DataTable

from app.ui.format import fmt_num, metric_label
from app.ui.screens.base import DeckScreen
from app.ui.widgets.table import DeckTable

if TYPE_CHECKING:
    from app.ui.widgets.charts import TrendChart
    from engine.api import EngineClient, PerformanceWindow

CHARTED = ("accuracy", "roc_auc", "rmse", "mae", "f1", "r2")
"""Which figure is charted: the first of these a window has."""


class PerformanceScreen(DeckScreen):
    def compose_body(self) -> ComposeResult:
        from app.ui.widgets.charts import TrendChart  # plotext: imported when first shown

        yield TrendChart(id="performance-chart")
        windows = DeckTable(id="windows", cursor_type="row", zebra_stripes=True)
        windows.border_title = "Windows"
        yield windows

    def fetch(self, client: EngineClient) -> list[PerformanceWindow]:
        return client.performance()

    def show(self, data: list[PerformanceWindow]) -> None:
        chart = cast("TrendChart", self.query_one("#performance-chart"))
        table = self.query_one("#windows", DataTable)
        table.clear(columns=True)
        if not data:
            chart.show_empty("live performance: no labels yet")
            table.add_column("")
            table.add_row(
                Text(
                    "No labels yet: labels dropped into data/labels/ are joined to the logged "
                    "predictions, one window per monitored batch.",
                    style="dim",
                )
            )
            return
        metrics = [m for m in CHARTED if any(w["metrics"].get(m) is not None for w in data)]
        table.add_columns("window", "version", "labelled", *map(metric_label, metrics))
        for w in data:
            table.add_row(
                str(w["window_ref"]),
                f"v{w['model_version']}",
                str(w["n_labelled"]),
                *[
                    f"{fmt_num(w['metrics'].get(m), 3)} / {fmt_num(w['holdout'].get(m), 3)}"
                    for m in metrics
                ],
            )
        if not metrics:
            chart.show_empty("live performance")
            return
        metric = metrics[0]
        holdout = next(
            (w["holdout"][metric] for w in reversed(data) if w["holdout"].get(metric) is not None),
            None,
        )
        chart.show_series(
            f"{metric_label(metric)} per window (line: holdout)",
            [str(w["window_ref"]) for w in data],
            {metric_label(metric): [w["metrics"].get(metric) for w in data]},
            {"holdout": holdout},
        )
