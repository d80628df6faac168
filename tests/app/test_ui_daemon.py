"""The UI attached to a real `mldeck daemon` process: a promotion with the keyboard goes
through the daemon's control API, and the daemon's state and audit log show it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from app.ui.app import make_app
from app.ui.screens.dialogs import ReasonDialog
from app.ui.screens.models import ModelsScreen
from engine.core.owner import read_owner
from engine.core.project import open_project
from engine.service.client import RemoteEngine
from storage.audit import verify_chain
from tests.app.test_ui import SIZE, rows, settle, type_text
from tests.daemon_helpers import Daemon, wait_until
from tests.helpers import until


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory, ui_template: Path) -> Path:
    root = tmp_path_factory.mktemp("ui-daemon") / "loans"
    shutil.copytree(ui_template, root)
    # No retrain prompt may pop up over the keys: the scheduler only proposes under "prompt".
    config = root / "mldeck.toml"
    config.write_text(config.read_text().replace('policy = "prompt"', 'policy = "off"'))
    return root


async def test_promote_with_the_keyboard_through_a_daemon(template: Path, tmp_path: Path) -> None:
    root = tmp_path / "loans"
    shutil.copytree(template, root)
    daemon = Daemon(root)
    try:
        engine = daemon.ready()
        daemon.idle(engine)
        app, close = make_app(root, actor="tester", refresh_s=600)
        assert isinstance(app.client, RemoteEngine)
        assert app.sub_title == f"loans · attached to http://127.0.0.1:{daemon.port}"
        try:
            async with app.run_test(size=SIZE) as pilot:
                await settle(pilot)
                await pilot.press("3")
                await settle(pilot)
                assert [(r[0], r[1]) for r in rows(app, "#registry")] == [("★", "v1"), ("", "v2")]
                await pilot.press("down", "p")
                await until(pilot, lambda: isinstance(app.screen, ReasonDialog))
                await type_text(pilot, "v2 through the daemon")
                await pilot.press("enter")
                await settle(pilot)
                assert isinstance(app.screen, ModelsScreen)
                assert [(r[0], r[1]) for r in rows(app, "#registry")] == [("", "v1"), ("★", "v2")]
                notes = [n.message for n in app._notifications]
                assert "champion v1 -> v2" in notes
        finally:
            close()

        # The daemon's own answers: the champion moved and the endpoint serves it.
        status = engine.status()
        assert status["champion"]["version"] == 2
        assert status["serving"]["version"] == 2
        assert status["engine"]["pid"] == daemon.process.pid
        entry = engine.audit_entries()[-1]  # oldest first: the last is the newest
        assert (entry["actor"], entry["action"], entry["from_version"], entry["to_version"]) == (
            "tester",
            "promote",
            1,
            2,
        )
        assert entry["reason"] == "v2 through the daemon"
        assert daemon.stop() == 0
    finally:
        if daemon.process.poll() is None:
            daemon.kill()

    # After the daemon let go: the catalog itself agrees, and the audit chain holds.
    wait_until(lambda: read_owner(root / ".mldeck") is None, 10, "the daemon to let go")
    with open_project(root) as project:
        catalog = project.catalog
        assert catalog.scalar("SELECT version FROM aliases WHERE alias = 'champion'") == 2
        last = catalog.row(
            "SELECT actor, action, reason FROM audit_log ORDER BY entry_id DESC LIMIT 1"
        )
        assert last == {"actor": "tester", "action": "promote", "reason": "v2 through the daemon"}
        assert verify_chain(catalog) is None
        # One key press, one promotion.
        promotions = catalog.scalar(
            "SELECT count(*) FROM audit_log WHERE action = 'promote' AND to_version = 2"
        )
        assert promotions == 1
