"""DeckTable: rows painted before the table sized its columns to them are painted again
once it has (the Data screen's snapshot caught them cut, now and then)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import DataTable

from app.ui.app import make_app
from app.ui.screens.data import DataScreen
from app.ui.widgets.table import DeckTable


@pytest.fixture
def template(ui_template: Path) -> Path:
    return ui_template


async def batches_shown(template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The Data screen's batches table as painted, after a frame was painted between
    `show` and the table's idle moment (when it sizes its columns)."""
    show = DataScreen.show

    def show_then_paint(screen: DataScreen, data: Any) -> None:
        show(screen, data)
        screen._compositor.update_widgets(set(screen.query("*")))
        screen._compositor.render_update(full=True)

    monkeypatch.setattr(DataScreen, "show", show_then_paint)
    root = tmp_path / "loans"
    shutil.copytree(template, root)
    app, close = make_app(root, actor="tester", refresh_s=600, parts=())
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.press("2")
            screen = app.screen
            assert isinstance(screen, DataScreen)
            for _ in range(100):
                await pilot.pause(0.02)
                if screen.shown_once:
                    break
            await pilot.pause(0.1)
            table = screen.query_one("#batches", DataTable)
            lines = table.render_lines(table.region.reset_offset)
            return "\n".join(line.text for line in lines)
    finally:
        close()


async def test_rows_painted_before_sizing_are_painted_again(
    template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shown = await batches_shown(template, tmp_path, monkeypatch)
    assert "broken.csv" in shown and "loans_small.csv" in shown


async def test_textual_datatable_keeps_them_cut(
    template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Why DeckTable exists: when Textual's DataTable repaints them itself, this fails
    # and DeckTable can go.
    monkeypatch.setattr(DeckTable, "_update_dimensions", DataTable._update_dimensions)
    shown = await batches_shown(template, tmp_path, monkeypatch)
    assert "broken.csv" not in shown
