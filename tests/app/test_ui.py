"""The Textual UI driven with Pilot on a real project: every screen, every key action,
errors as notifications, a slow engine call that does not block keys, and the UI
attached to a real `mldeck serve` process."""

from __future__ import annotations

import asyncio
import io
import json
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Static

from app.ui.app import MldeckApp, make_app
from app.ui.screens.data import DataScreen
from app.ui.screens.dialogs import KeysScreen, ReasonDialog, RetrainPrompt
from app.ui.screens.models import ModelsScreen
from engine.core.errors import MldeckError
from engine.service.client import RemoteEngine
from engine.service.engine_service import EngineService
from storage.audit import verify_chain
from tests.conftest import SAMPLE, until

SIZE = (100, 30)


@pytest.fixture
def template(ui_template: Path) -> Path:
    return ui_template


@pytest.fixture
def project(template: Path, tmp_path: Path) -> Path:
    root = tmp_path / "loans"
    shutil.copytree(template, root)
    return root


@pytest.fixture
def deck(project: Path) -> Iterator[MldeckApp]:
    app, close = make_app(project, actor="tester", refresh_s=600, parts=())
    yield app
    close()


async def settle(pilot: Pilot[Any]) -> None:
    """Let every worker finish and the UI handle what they posted."""
    for _ in range(3):
        await pilot.pause()
        await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def type_text(pilot: Pilot[Any], text: str) -> None:
    await pilot.press(*["space" if c == " " else c for c in text])


def rows(app: MldeckApp, selector: str) -> list[list[str]]:
    table = app.screen.query_one(selector, DataTable)
    return [[str(cell) for cell in table.get_row_at(i)] for i in range(table.row_count)]


def text_of(app: MldeckApp, selector: str) -> str:
    """What a Static shows, as plain text."""
    content = app.screen.query_one(selector, Static).content
    if isinstance(content, str):
        return content
    console = Console(width=120, file=io.StringIO(), record=True)
    console.print(content)
    return console.export_text()


def catalog_of(app: MldeckApp) -> Any:
    assert isinstance(app.client, EngineService)
    return app.client.project.catalog


def champion(app: MldeckApp) -> int | None:
    value = catalog_of(app).scalar("SELECT version FROM aliases WHERE alias = 'champion'")
    return None if value is None else int(value)


def last_audit(app: MldeckApp) -> dict[str, Any]:
    entry: dict[str, Any] = catalog_of(app).row(
        "SELECT actor, action, from_version, to_version, reason, details_json FROM audit_log"
        " ORDER BY entry_id DESC LIMIT 1"
    )
    return entry


# ------------------------------------------------------------------ screens


async def test_each_screen_shows_the_project(deck: MldeckApp) -> None:
    async with deck.run_test(size=SIZE) as pilot:
        await settle(pilot)
        lanes = rows(deck, "#lanes")
        assert [r[0] for r in lanes] == [
            "ingest", "validate", "prepare", "train", "evaluate",
            "register", "deploy", "monitor", "retrain",
        ]  # fmt: skip
        assert lanes[0][1] == "quarantined" and lanes[6][4] == "promote -> v1"
        assert lanes[8][1] == "—"  # nothing retrained yet
        assert "v1" in text_of(deck, "#champion")

        await pilot.press("2")
        await settle(pilot)
        assert isinstance(deck.screen, DataScreen)
        batches = rows(deck, "#batches")
        assert [(r[0], r[1], r[5]) for r in batches] == [
            ("4", "broken.csv", "quarantined"),
            ("3", "week_13.csv", "warned"),
            ("2", "week_01.csv", "warned"),
            ("1", "loans_small.csv", "accepted"),
        ]
        # The highlighted batch (the newest) shows its issues; the quarantine its reasons.
        issues = rows(deck, "#issues")
        assert issues and issues[0][0] == "error"
        assert any("missing" in r[1] for r in issues)
        quarantine = rows(deck, "#quarantine")
        assert quarantine[0][:2] == ["4", "broken.csv"] and "missing" in quarantine[0][2]
        await pilot.press("down")
        await settle(pilot)
        assert all(r[0] == "warning" for r in rows(deck, "#issues"))

        await pilot.press("3")
        await settle(pilot)
        registry = rows(deck, "#registry")
        assert [(r[0], r[1]) for r in registry] == [("★", "v1"), ("", "v2")]
        lineage = text_of(deck, "#lineage")
        assert "dataset 1" in lineage and "seed" in lineage

        await pilot.press("4")
        await settle(pilot)
        features = rows(deck, "#features")
        by_name = {r[0]: r for r in features}
        assert by_name["age"][4] == "alert" and by_name["loan_amount"][4] == "ok"
        assert features[-1][0] == "prediction"
        assert "model output" in text_of(deck, "#prediction-drift")

        await pilot.press("5")
        await settle(pilot)
        assert "No labels yet" in rows(deck, "#windows")[0][0]

        await pilot.press("6")
        await settle(pilot)
        assert "not serving" in text_of(deck, "#endpoint")

        await pilot.press("7")
        await settle(pilot)
        audit = rows(deck, "#audit-log")
        # Newest first: the quarantined file came after the first champion.
        assert [(r[2], r[3], r[5]) for r in audit] == [
            ("mldeck", "quarantine", "—"),
            ("mldeck", "promote", "v1"),
        ]

        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(deck.screen, KeysScreen))
        keys = rows(deck, "#keys-table")
        assert [r[0] for r in keys[:7]] == list("1234567")
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(deck.screen, KeysScreen))


async def test_drift_chart_follows_the_selected_feature(deck: MldeckApp) -> None:
    async with deck.run_test(size=SIZE) as pilot:
        await pilot.press("4")
        await settle(pilot)
        screen = deck.screen
        assert screen.selected_feature == "age"  # type: ignore[attr-defined]
        await pilot.press("down")
        await settle(pilot)
        assert screen.selected_feature == "annual_income"  # type: ignore[attr-defined]
        histogram = deck.client.drift_histogram(2, "annual_income")
        assert len(histogram["bins"]) == len(histogram["reference"]) == len(histogram["current"])
        assert sum(histogram["reference"]) == pytest.approx(1.0)


async def test_audit_filter(deck: MldeckApp) -> None:
    async with deck.run_test(size=SIZE) as pilot:
        await pilot.press("7")
        await settle(pilot)
        await pilot.press("slash")
        await type_text(pilot, "nobody did this")
        await settle(pilot)
        assert rows(deck, "#audit-log") == []
        deck.screen.query_one("#audit-filter", Input).value = "promote"
        await settle(pilot)
        assert len(rows(deck, "#audit-log")) == 1


# ------------------------------------------------------------------ actions


async def test_promote_then_roll_back_with_reasons(deck: MldeckApp) -> None:
    async with deck.run_test(size=SIZE) as pilot:
        await pilot.press("3")
        await settle(pilot)
        await pilot.press("down")  # v2
        await settle(pilot)
        await pilot.press("p")
        await until(pilot, lambda: isinstance(deck.screen, ReasonDialog))
        await pilot.press("enter")  # an empty reason is refused in place, and says so
        await until(pilot, lambda: "a reason is required" in text_of(deck, "#dialog-error"))
        assert isinstance(deck.screen, ReasonDialog) and champion(deck) == 1
        await type_text(pilot, "smaller C generalises")
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(deck.screen, ModelsScreen)
        assert champion(deck) == 2
        assert last_audit(deck) == {
            "actor": "tester",
            "action": "promote",
            "from_version": 1,
            "to_version": 2,
            "reason": "smaller C generalises",
            "details_json": None,
        }
        assert rows(deck, "#registry")[1][0] == "★"  # the screen refreshed

        await pilot.press("r")
        await until(pilot, lambda: isinstance(deck.screen, ReasonDialog))
        await type_text(pilot, "v2 misbehaves")
        await pilot.click("#confirm")
        await settle(pilot)
        assert champion(deck) == 1
        entry = last_audit(deck)
        assert (entry["action"], entry["from_version"], entry["to_version"], entry["reason"]) == (
            "rollback",
            2,
            1,
            "v2 misbehaves",
        )
        assert verify_chain(catalog_of(deck)) is None


async def test_cancel_changes_nothing(deck: MldeckApp) -> None:
    async with deck.run_test(size=SIZE) as pilot:
        await pilot.press("3")
        await settle(pilot)
        before = last_audit(deck)
        await pilot.press("down", "p")
        await until(pilot, lambda: isinstance(deck.screen, ReasonDialog))
        await type_text(pilot, "not sure")
        await pilot.press("escape")
        await settle(pilot)
        assert champion(deck) == 1
        assert last_audit(deck) == before


async def test_archive_and_errors_become_notifications(deck: MldeckApp) -> None:
    async with deck.run_test(size=SIZE) as pilot:
        await pilot.press("3")
        await settle(pilot)
        # The champion cannot be archived: a notification, the app goes on.
        await pilot.press("a")
        await until(pilot, lambda: isinstance(deck.screen, ReasonDialog))
        await type_text(pilot, "retire")
        await pilot.press("enter")
        await settle(pilot)
        assert deck.is_running
        errors = [n for n in deck._notifications if n.severity == "error"]
        assert errors and "champion" in errors[-1].message
        # Nothing to roll back to yet: another notification.
        await pilot.press("r")
        await until(pilot, lambda: isinstance(deck.screen, ReasonDialog))
        await type_text(pilot, "why not")
        await pilot.press("enter")
        await settle(pilot)
        errors = [n for n in deck._notifications if n.severity == "error"]
        assert "no previous champion" in errors[-1].message

        await pilot.press("down", "a")
        await until(pilot, lambda: isinstance(deck.screen, ReasonDialog))
        await type_text(pilot, "superseded")
        await pilot.press("enter")
        await settle(pilot)
        status = catalog_of(deck).scalar("SELECT status FROM model_versions WHERE version = 2")
        assert status == "archived"
        assert last_audit(deck) == {
            "actor": "tester",
            "action": "archive",
            "from_version": 2,
            "to_version": None,
            "reason": "superseded",
            "details_json": None,
        }
        assert rows(deck, "#registry")[1][-1] == "archived"
        # An archived version cannot be promoted.
        await pilot.press("p")
        await until(pilot, lambda: isinstance(deck.screen, ReasonDialog))
        await type_text(pilot, "again")
        await pilot.press("enter")
        await settle(pilot)
        assert champion(deck) == 1
        errors = [n for n in deck._notifications if n.severity == "error"]
        assert "archived" in errors[-1].message


# ------------------------------------------------------------------ never blocking


class GatedEngine:
    """The real engine, with `models()` held until the test opens the gate."""

    def __init__(self, engine: EngineService) -> None:
        self.engine = engine
        self.gate = threading.Event()
        self.waiting = threading.Event()

    def models(self) -> list[dict[str, Any]]:
        self.waiting.set()
        self.gate.wait(timeout=30)
        return self.engine.models()

    def __getattr__(self, name: str) -> Callable[..., Any]:
        return getattr(self.engine, name)  # type: ignore[no-any-return]


async def test_a_slow_engine_call_does_not_block_keys(deck: MldeckApp) -> None:
    assert isinstance(deck.client, EngineService)
    gated = GatedEngine(deck.client)
    deck.client = gated  # type: ignore[assignment]
    async with deck.run_test(size=SIZE) as pilot:
        await pilot.press("3")
        await until(pilot, gated.waiting.is_set, 10)
        # The registry is still loading; keys still work.
        await pilot.press("2")
        await until(pilot, lambda: isinstance(deck.screen, DataScreen), 10)
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(deck.screen, KeysScreen), 10)
        await pilot.press("escape")
        gated.gate.set()
        await pilot.press("3")
        await settle(pilot)
        assert len(rows(deck, "#registry")) == 2


class BrokenCatalog:
    """The real engine, but reading batches fails as a broken catalog would."""

    def __init__(self, engine: EngineService) -> None:
        self.engine = engine

    def batches(self) -> list[dict[str, Any]]:
        from storage.errors import CatalogError

        raise MldeckError(CatalogError("catalog.duckdb: IO Error: disk full").msg, title="Catalog")

    def __getattr__(self, name: str) -> Callable[..., Any]:
        return getattr(self.engine, name)  # type: ignore[no-any-return]


async def test_a_failing_read_is_one_notification(deck: MldeckApp) -> None:
    assert isinstance(deck.client, EngineService)
    deck.client = BrokenCatalog(deck.client)  # type: ignore[assignment]
    async with deck.run_test(size=SIZE) as pilot:
        await pilot.press("2")
        await settle(pilot)
        assert deck.is_running and isinstance(deck.screen, DataScreen)
        errors = [n for n in deck._notifications if n.severity == "error"]
        assert [(n.title, n.message) for n in errors] == [
            ("Catalog", "catalog.duckdb: IO Error: disk full")
        ]
        await pilot.press("3")  # the other screens still work
        await settle(pilot)
        assert len(rows(deck, "#registry")) == 2


# ------------------------------------------------------------------ retrain prompts


@pytest.mark.parametrize(
    ("button", "action", "status"),
    [
        ("dismiss", "retrain_dismissed", "dismissed"),
        ("snooze", "retrain_snoozed", "pending"),
        ("retrain", "retrain_accepted", "accepted"),
    ],
)
async def test_a_retrain_prompt_answer_goes_to_the_audit_log(
    deck: MldeckApp, button: str, action: str, status: str
) -> None:
    from engine.pipeline.retrain import list_proposals

    assert isinstance(deck.client, EngineService)
    project = deck.client.project
    evidence = {"alerts": [{"rule": "drift", "message": "batch 3: age, annual_income drifted"}]}
    # Proposed through the engine's queue, as its scheduler would.
    proposed = deck.client.queue.run("propose", {"trigger": "alert", "evidence": evidence})
    proposal_id = proposed["proposal_id"]
    versions = len(deck.client.models())
    async with deck.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert isinstance(deck.screen, RetrainPrompt)
        assert rows(deck, "#evidence")[0] == ["drift", "batch 3: age, annual_income drifted"]
        await type_text(pilot, "labels first")
        await pilot.click(f"#{button}")
        await settle(pilot)
        assert not isinstance(deck.screen, RetrainPrompt)
    entries = project.catalog.rows(
        "SELECT actor, action, reason, details_json FROM audit_log ORDER BY entry_id"
    )
    answer = next(e for e in entries if e["action"] == action)
    assert (answer["actor"], answer["reason"]) == ("tester", "labels first")
    assert json.loads(answer["details_json"])["proposal_id"] == proposal_id
    (proposal,) = list_proposals(project)
    assert proposal["status"] == status
    # Retrain now trains new versions; the other answers train nothing.
    assert (len(deck.client.models()) > versions) == (button == "retrain")


async def test_the_prompt_answers_by_key_while_typing_a_reason(deck: MldeckApp) -> None:
    from engine.pipeline.retrain import list_proposals

    assert isinstance(deck.client, EngineService)
    deck.client.queue.run("propose", {"trigger": "alert", "evidence": {"note": "x"}})
    async with deck.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert isinstance(deck.screen, RetrainPrompt)
        await type_text(pilot, "not this quarter")
        await pilot.press("ctrl+d")  # dismiss, not delete-right in the reason field
        await settle(pilot)
        assert not isinstance(deck.screen, RetrainPrompt)
    (proposal,) = list_proposals(deck.client.project)
    assert (proposal["status"], proposal["decision_reason"]) == ("dismissed", "not this quarter")


async def test_no_proposals_no_prompt(deck: MldeckApp) -> None:
    async with deck.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert not isinstance(deck.screen, RetrainPrompt)


# ------------------------------------------------------------------ live: the engine's events
# The fixture's refresh timer is 600 s: only the engine's events can bring these changes.


async def test_a_proposal_prompts_as_soon_as_the_engine_makes_it(deck: MldeckApp) -> None:
    assert isinstance(deck.client, EngineService)
    engine = deck.client
    async with deck.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert not isinstance(deck.screen, RetrainPrompt)
        evidence = {"alerts": [{"rule": "drift", "message": "batch 3 drifted"}]}
        await asyncio.to_thread(
            engine.queue.run, "propose", {"trigger": "alert", "evidence": evidence}
        )
        await until(pilot, lambda: isinstance(deck.screen, RetrainPrompt))
        # the prompt composes its table after it becomes the screen: wait for both
        await until(
            pilot, lambda: bool(deck.screen.query("#evidence")) and bool(rows(deck, "#evidence"))
        )
        assert rows(deck, "#evidence")[0] == ["drift", "batch 3 drifted"]


async def test_an_ingest_by_the_engine_reloads_the_shown_screen(deck: MldeckApp) -> None:
    from engine.service.demo import quarter

    assert isinstance(deck.client, EngineService)
    engine = deck.client
    week = quarter(SAMPLE)[1]
    dropped = shutil.copy(week.batch, engine.project.incoming_dir)
    async with deck.run_test(size=SIZE) as pilot:
        await pilot.press("2")
        await settle(pilot)
        assert len(rows(deck, "#batches")) == 4
        await asyncio.to_thread(engine.ingest, [str(dropped)])
        await until(pilot, lambda: len(rows(deck, "#batches")) == 5)
        assert rows(deck, "#batches")[0][1] == week.batch.name


# ------------------------------------------------------------------ attached to mldeck serve


@pytest.fixture
def served(project: Path) -> Iterator[tuple[Path, int]]:
    from tests.conftest import start_server, stop_server

    server, port = start_server(project)
    yield project, port
    stop_server(server)


async def test_attached_to_a_running_server(served: tuple[Path, int]) -> None:
    root, port = served
    app, close = make_app(root, actor="tester", refresh_s=600)
    assert isinstance(app.client, RemoteEngine)
    assert app.sub_title == f"loans · attached to http://127.0.0.1:{port}"
    try:
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            assert rows(app, "#lanes")[6][4] == "promote -> v1"
            await pilot.press("6")
            await settle(pilot)
            endpoint = text_of(app, "#endpoint")
            assert f"http://127.0.0.1:{port}" in endpoint and "v1" in endpoint
            await pilot.press("3")
            await settle(pilot)
            await pilot.press("down", "p")
            await until(pilot, lambda: isinstance(app.screen, ReasonDialog))
            await type_text(pilot, "through the server")
            await pilot.press("enter")
            await settle(pilot)
            assert rows(app, "#registry")[1][0] == "★"
            await pilot.press("2")
            await settle(pilot)
            assert len(rows(app, "#batches")) == 4
            await pilot.press("4")
            await settle(pilot)
            assert rows(app, "#features")[-1][0] == "prediction"
            await pilot.press("7")
            await settle(pilot)
            assert rows(app, "#audit-log")[0][2:] == [
                "tester",
                "promote",
                "v1",
                "v2",
                "through the server",
            ]
    finally:
        close()
    status = app.client.status()
    assert status["champion"]["version"] == 2
    assert status["serving"]["version"] == 2  # the server swapped its model


async def test_attached_ui_follows_the_servers_events(served: tuple[Path, int]) -> None:
    root, _ = served
    app, close = make_app(root, actor="tester", refresh_s=600)
    assert isinstance(app.client, RemoteEngine)
    other = RemoteEngine(app.client.url, app.client.token)  # another user of the same engine
    try:
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("3")
            await settle(pilot)
            assert rows(app, "#registry")[1][-1] != "archived"
            await asyncio.to_thread(
                lambda: other.archive(2, actor="someone else", reason="superseded")
            )
            # Only the server's event stream can tell the UI: its timer is 600 s away.
            await until(pilot, lambda: rows(app, "#registry")[1][-1] == "archived")
    finally:
        close()
