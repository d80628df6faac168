"""Snapshots of the seven screens (pytest-textual-snapshot) at 100x30, and two at 80x24,
on a project built once with fixed times. Update with `pytest --snapshot-update`
after checking the new SVGs by eye."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Input

from app.ui.app import SCREENS, MldeckApp, make_app
from app.ui.screens.base import DeckScreen

MODES = {str(i): mode for i, (mode, _, _) in enumerate(SCREENS, start=1)}
"""The mode each digit key shows."""


@pytest.fixture
def template(ui_template: Path) -> Path:
    return ui_template


@pytest.fixture
def deck(template: Path, tmp_path: Path) -> Iterator[MldeckApp]:
    root = tmp_path / "loans"
    shutil.copytree(template, root)
    app, close = make_app(root, actor="tester", refresh_s=600, parts=())
    yield app
    close()


def showing(*keys: str) -> Callable[[Pilot[Any]], Any]:
    async def settle(pilot: Pilot[Any], mode: str | None = None) -> None:
        # `Pilot.press` returns when the process looks idle, which a loaded machine can
        # fake before the key is handled: a screen's key waits for its screen, or the
        # old screen's loaded data would pass for the new one's.
        for _ in range(200):
            if mode is None or pilot.app.current_mode == mode:
                break
            await pilot.pause(0.01)
        for _ in range(50):  # until the shown screen has drawn its data, and then some
            await pilot.pause()
            await pilot.app.workers.wait_for_complete()
            screen = pilot.app.screen
            if not isinstance(screen, DeckScreen) or screen.shown_once:
                break
        # What showing the data started (the Data screen's issues, the lineage pane).
        await pilot.pause()
        await pilot.app.workers.wait_for_complete()
        # DataTable sizes its columns when idle: give it a few idle moments.
        for _ in range(3):
            await pilot.pause(0.05)

    async def run_before(pilot: Pilot[Any]) -> None:
        await settle(pilot)  # the home screen's first load, before any key
        for key in keys:
            await pilot.press(key)
            await settle(pilot, MODES.get(key))
        for field in pilot.app.screen.query(Input):  # a blinking cursor is a coin toss
            field.cursor_blink = False
        await pilot.pause()

    return run_before


@pytest.mark.parametrize(
    "keys",
    [
        pytest.param(("1",), id="pipeline"),
        pytest.param(("2",), id="data"),
        pytest.param(("3", "down"), id="models"),
        pytest.param(("4",), id="drift"),
        pytest.param(("5",), id="performance"),
        pytest.param(("6",), id="serving"),
        pytest.param(("7",), id="audit"),
        pytest.param(("3", "down", "p"), id="promote-dialog"),
        pytest.param(("question_mark",), id="keys"),
    ],
)
def test_screen(deck: MldeckApp, snap_compare: Any, keys: tuple[str, ...]) -> None:
    assert snap_compare(deck, terminal_size=(100, 30), run_before=showing(*keys))


@pytest.mark.parametrize(
    "keys", [pytest.param(("1",), id="pipeline"), pytest.param(("4",), id="drift")]
)
def test_screen_at_80x24(deck: MldeckApp, snap_compare: Any, keys: tuple[str, ...]) -> None:
    assert snap_compare(deck, terminal_size=(80, 24), run_before=showing(*keys))
