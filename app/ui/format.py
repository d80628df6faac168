"""Small text helpers shared by the screens (no Textual widgets here)."""

from __future__ import annotations

from rich.text import Text

# Re-exported: the screens format figures, times and metric names as the CLI does.
from app.output import fmt_num as fmt_num
from app.output import fmt_time as fmt_time
from app.output import metric_label as metric_label

STATUS_STYLE = {
    "succeeded": "green",
    "accepted": "green",
    "ok": "green",
    "registered": "green",
    "running": "bold cyan",
    "warned": "yellow",
    "warn": "yellow",
    "warning": "yellow",
    "quarantined": "bold red",
    "refused": "bold red",
    "failed": "bold red",
    "alert": "bold red",
    "error": "bold red",
    "interrupted": "magenta",
    "duplicate": "dim",
    "revalidated": "dim",
    "skipped": "dim",
    "archived": "dim",
    "no data": "dim",
}


def status_text(status: str | None) -> Text:
    if status is None:
        return Text("—", style="dim")
    return Text(status, style=STATUS_STYLE.get(status, ""))


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 60:
        return f"{seconds:.1f}s"
    return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


def short_hash(value: str | None, n: int = 12) -> str:
    return "—" if not value else value[:n]
