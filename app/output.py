"""Console output: rich tables for people, JSON for scripts, errors on stderr."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import TYPE_CHECKING, Any

from engine.api import fmt_num as fmt_num  # shared with the HTML report

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    stdout: Console
    stderr: Console


def __getattr__(name: str) -> Console:
    """`stdout` and `stderr`, made on first use: rich costs ~60 ms to import, which
    `--help`, `--json` and `explain` never need."""
    if name not in ("stdout", "stderr"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return _console(name)


def _console(name: str) -> Console:
    made: Console | None = globals().get(name)
    if made is not None:
        return made
    from rich.console import Console

    if name == "stdout":
        # Piped output gets a wide console so tables are not folded for a file or a pager.
        width = None if sys.stdout.isatty() else 160
        made = Console(highlight=False, soft_wrap=False, width=width)
    else:
        made = Console(stderr=True, highlight=False)
    globals()[name] = made
    return made


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds") + "Z"
    return str(value)


def print_json(data: Any) -> None:
    """JSON on stdout, nothing else (scripts parse it)."""
    print(json.dumps(data, indent=2, default=_default, sort_keys=False))


METRIC_LABELS = {"accuracy": "acc", "roc_auc": "auc", "log_loss": "logloss"}


def metric_label(name: str) -> str:
    return METRIC_LABELS.get(name, name)


def fmt_metric(value: float | None, digits: int = 4) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def fmt_time(value: datetime | str | None) -> str:
    if isinstance(value, str):
        value = datetime.fromisoformat(value.removesuffix("Z"))
    return "—" if value is None else value.strftime("%Y-%m-%d %H:%M")


NO_WRAP = {
    "version",
    "ver",
    "acc",
    "f1",
    "auc",
    "logloss",
    "rmse",
    "mae",
    "r2",
    "parity",
    "created (UTC)",
}


def table(title: str | None, columns: list[str], rows: list[list[Any]]) -> Table:
    from rich.table import Table

    out = Table(title=title, title_justify="left", header_style="bold")
    for name in columns:
        out.add_column(name, overflow="fold", no_wrap=name in NO_WRAP)
    for row in rows:
        out.add_row(*[str(cell) for cell in row])
    return out


def error(title: str, msg: str) -> None:
    from rich.markup import escape

    # soft_wrap: one unbroken line per error, so it reads (and greps) the same in any width.
    _console("stderr").print(
        f"[bold red]error[/]: [bold]{escape(title)}[/]: {escape(msg)}", soft_wrap=True
    )
