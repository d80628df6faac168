"""The Data screen's re-validate key (v) on a real project: a confirm dialog with a reason,
then the engine's state and the audit log."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.ui.app import MldeckApp, make_app
from app.ui.screens.data import DataScreen
from app.ui.screens.dialogs import ReasonDialog
from engine.core.project import open_project
from engine.pipeline.intake import ingest_file
from tests.app.test_ui import SIZE, catalog_of, last_audit, rows, settle, type_text
from tests.data.test_quarantine import broken_batch, edit_contract
from tests.helpers import until


@pytest.fixture(scope="module")
def template(
    tmp_path_factory: pytest.TempPathFactory, ui_template: Path, small_reference: Path
) -> Path:
    """The UI project plus a week without `region` (batch 5, quarantined); the contract
    then edited so that it passes (region dropped, credit scores as text)."""
    root = tmp_path_factory.mktemp("ui-revalidate") / "loans"
    shutil.copytree(ui_template, root)
    with open_project(root) as project:
        result = ingest_file(project, broken_batch(small_reference, root.parent))
    assert (result.batch_id, result.status) == (5, "quarantined")
    edit_contract(root, region=None, credit_score="string")
    return root


@pytest.fixture
def deck(template: Path, tmp_path: Path) -> Iterator[MldeckApp]:
    root = tmp_path / "loans"
    shutil.copytree(template, root)
    app, close = make_app(root, actor="tester", refresh_s=600, parts=())
    yield app
    close()


async def test_v_revalidates_the_selected_quarantined_batch(deck: MldeckApp) -> None:
    async with deck.run_test(size=SIZE) as pilot:
        await pilot.press("2")
        await settle(pilot)
        assert isinstance(deck.screen, DataScreen)
        assert rows(deck, "#batches")[0][:2] == ["5", "week_x.csv"]
        assert [r[0] for r in rows(deck, "#quarantine")] == ["4", "5"]
        await pilot.press("v")
        await until(pilot, lambda: isinstance(deck.screen, ReasonDialog))
        await type_text(pilot, "region is optional now")
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(deck.screen, DataScreen)
        status = catalog_of(deck).rows(
            "SELECT batch_id, status, revalidated_from FROM batches WHERE batch_id >= 5"
            " ORDER BY batch_id"
        )
        assert status[0] == {"batch_id": 5, "status": "revalidated", "revalidated_from": None}
        assert status[1]["batch_id"] == 6 and status[1]["revalidated_from"] == 5
        new_status = status[1]["status"]
        assert new_status in ("accepted", "warned")
        entry = last_audit(deck)
        assert (entry["actor"], entry["action"], entry["reason"]) == (
            "tester",
            "revalidate",
            "region is optional now",
        )
        assert json.loads(entry["details_json"])["new_batch_id"] == 6
        notes = [n.message for n in deck._notifications]
        assert f"batch 5 {new_status} as batch 6" in notes
        # The screen reloaded: the new batch on top, batch 5 out of the quarantine.
        batches = rows(deck, "#batches")
        assert [(r[0], r[5]) for r in batches[:2]] == [("6", new_status), ("5", "revalidated")]
        assert [r[0] for r in rows(deck, "#quarantine")] == ["4"]

        # Batch 5 is no longer quarantined: v only warns.
        def warnings_shown() -> int:
            return sum(n.severity == "warning" for n in deck._notifications)

        before = warnings_shown()
        await pilot.press("v")
        await until(pilot, lambda: warnings_shown() > before)
        assert isinstance(deck.screen, DataScreen)  # a warning, no dialog
        warnings = [n.message for n in deck._notifications if n.severity == "warning"]
        assert warnings == ["select a quarantined batch first"]


async def test_a_file_that_still_fails_stays_quarantined(deck: MldeckApp) -> None:
    async with deck.run_test(size=SIZE) as pilot:
        await pilot.press("2")
        await settle(pilot)
        # From the quarantine table: broken.csv lacks every contract column.
        deck.screen.query_one("#quarantine").focus()
        await pilot.pause()
        await pilot.press("v")
        await until(pilot, lambda: isinstance(deck.screen, ReasonDialog))
        assert "broken.csv" in str(deck.screen.question)
        await type_text(pilot, "one more look")
        await pilot.press("enter")
        await settle(pilot)
        notes = [n.message for n in deck._notifications]
        assert any(n.startswith("batch 4 is still quarantined: column") for n in notes)
        assert catalog_of(deck).scalar("SELECT status FROM batches WHERE batch_id = 4") == (
            "quarantined"
        )
        assert catalog_of(deck).scalar("SELECT count(*) FROM batches") == 5
        assert [r[0] for r in rows(deck, "#quarantine")] == ["4", "5"]
        entry = last_audit(deck)
        assert (entry["action"], json.loads(entry["details_json"])["outcome"]) == (
            "revalidate",
            "quarantined",
        )
