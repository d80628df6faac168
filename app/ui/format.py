"""Small text helpers shared by the screens (no Textual widgets here)."""

from __future__ import annotations

from typing import Any

from rich.text import Text

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

METRIC_LABELS = {"accuracy": "acc", "roc_auc": "auc", "log_loss": "logloss"}


def status_text(status: str | None) -> Text:
    if status is None:
        return Text("—", style="dim")
    return Text(status, style=STATUS_STYLE.get(status, ""))


def fmt_time(value: str | None) -> str:
    """'2025-01-06T09:00:00Z' as '2025-01-06 09:00' (UTC)."""
    if not value:
        return "—"
    return value.replace("T", " ")[:16]


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 60:
        return f"{seconds:.1f}s"
    return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


def fmt_num(value: Any, digits: int = 4) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        if value != 0 and abs(value) < 10**-digits:
            return f"{value:.1e}"
        return f"{value:.{digits}f}"
    return str(value)


def metric_label(name: str) -> str:
    return METRIC_LABELS.get(name, name)


def short_hash(value: str | None, n: int = 12) -> str:
    return "—" if not value else value[:n]
