"""The screens' table: Textual's DataTable, repainted once it has measured new rows."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from textual.widgets import DataTable
from textual.widgets.data_table import RowKey


class DeckTable(DataTable[Any]):
    """Textual's `DataTable` (8.2) sizes its columns to new rows when idle, but caches
    rendered cells and lines under an update count that this sizing leaves alone: a
    frame painted between `add_row` and that idle moment kept showing cells cut to the
    columns' old widths (a snapshot of the Data screen did, now and then). Bumping the
    count after sizing drops those renders."""

    def _update_dimensions(self, new_rows: Iterable[RowKey]) -> None:
        super()._update_dimensions(new_rows)
        self._update_count += 1
        self.refresh()
