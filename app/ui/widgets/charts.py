"""plotext charts: a score over time with its thresholds, and reference vs current bars."""

from __future__ import annotations

from typing import Any

from textual_plotext import PlotextPlot


class TrendChart(PlotextPlot):
    """One series over time with horizontal reference lines (thresholds, holdout)."""

    def show_series(
        self,
        title: str,
        labels: list[str],
        series: dict[str, list[float | None]],
        lines: dict[str, float | None],
    ) -> None:
        """Plot each named series against `labels`, with a horizontal line per `lines` entry.

        Points that are None are left out (a window with no data).
        """
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title(title)
        xs = list(range(1, len(labels) + 1))
        for name, values in series.items():
            points = [(x, v) for x, v in zip(xs, values, strict=True) if v is not None]
            if points:
                plt.plot(
                    [p[0] for p in points], [p[1] for p in points], marker="braille", label=name
                )
        colors = ("orange", "red", "cyan")
        for (_name, level), color in zip(lines.items(), colors, strict=False):
            if level is not None:
                plt.horizontal_line(level, color=color)
        if xs:
            step = max(1, len(xs) // 8)
            plt.xticks([float(x) for x in xs[::step]], labels[::step])
        self.refresh()

    def show_empty(self, title: str) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title(title)
        self.refresh()


class HistogramChart(PlotextPlot):
    """Reference vs current shares per bin, side by side."""

    LABEL_WIDTH = 10

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002 (Textual's name)
        super().__init__(id=id)
        self._histogram: dict[str, Any] | None = None

    def show_histogram(self, histogram: dict[str, Any]) -> None:
        self._histogram = histogram
        self._plot_histogram()

    def on_resize(self) -> None:
        if self._histogram is not None:
            self._plot_histogram()

    def _plot_histogram(self) -> None:
        histogram = self._histogram
        assert histogram is not None
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title(f"{histogram['feature']}: reference vs current")
        labels = [label[: self.LABEL_WIDTH] for label in histogram["bins"]]
        xs = list(range(1, len(labels) + 1))
        # plotext's multiple_bar takes `labels`; textual-plotext's typed copy names it `label`
        plt.multiple_bar(  # type: ignore[call-arg]
            xs, [histogram["reference"], histogram["current"]], labels=["reference", "current"]
        )
        # Every step-th bin is labelled, so that the labels never overlap at this width
        # (plotext would otherwise drop some of its own choosing).
        room = max(1, self.size.width - 8)
        step = max(1, -(-len(labels) * (self.LABEL_WIDTH + 2) // room))
        plt.xticks([float(x) for x in xs[::step]], labels[::step])
        self.refresh()

    def show_empty(self, title: str) -> None:
        self._histogram = None
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title(title)
        self.refresh()
