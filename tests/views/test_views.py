"""engine.views.tables (what the UI reads), registry.archive and the control API's read routes,
without Textual: the same answers in process and through the control API."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.core.errors import NotFoundError, RegistryError
from engine.core.project import Project, open_project
from engine.records.registry import CHALLENGER, archive, promote, set_challenger
from engine.service.client import LocalEngine
from engine.service.control import ControlApi
from engine.views import tables as views
from storage.audit import verify_chain

TOKEN = "t" * 32
AUTH = f"Bearer {TOKEN}"


@pytest.fixture
def template(ui_template: Path) -> Path:
    return ui_template


@pytest.fixture
def project(template: Path, tmp_path: Path) -> Iterator[Project]:
    root = tmp_path / "loans"
    shutil.copytree(template, root)
    with open_project(root) as opened:
        yield opened


def test_lanes_cover_the_nine_stages(project: Project) -> None:
    lanes = views.stage_lanes(project)
    assert [lane["stage"] for lane in lanes["lanes"]] == list(views.STAGES)
    by_stage = {lane["stage"]: lane for lane in lanes["lanes"]}
    assert by_stage["ingest"]["status"] == "quarantined"
    assert by_stage["monitor"]["output"] == "window_id=2"
    assert by_stage["deploy"]["output"] == "promote -> v1"
    assert by_stage["retrain"]["status"] is None
    assert lanes["queue"] == []


def test_drift_history_and_histogram(project: Project) -> None:
    history = views.drift_history(project)
    assert [(w["batch_id"], w["model_version"]) for w in history] == [(2, 1), (3, 1)]
    week_13 = {f["feature"]: f for f in history[-1]["features"]}
    assert week_13["age"]["status"] == "alert" and week_13["age"]["chart"]["method"] == "psi"
    assert week_13["region"]["chart"]["method"] == "jensen_shannon"
    assert "prediction" in week_13
    numeric = views.drift_histogram(project, history[-1]["window_id"], "age")
    categorical = views.drift_histogram(project, history[-1]["window_id"], "region")
    for histogram in (numeric, categorical):
        assert len(histogram["bins"]) == len(histogram["reference"]) == len(histogram["current"])
        assert sum(histogram["reference"]) == pytest.approx(1.0)
        assert sum(histogram["current"]) == pytest.approx(1.0)
    # Week 13 is younger than the reference: more of it in the lowest age bins.
    assert numeric["current"][1] > numeric["reference"][1]
    with pytest.raises(NotFoundError, match="no feature 'nope'"):
        views.drift_histogram(project, history[-1]["window_id"], "nope")


def test_lineage_and_audit_filter(project: Project) -> None:
    lineage = views.lineage_summary(project, 2)
    assert lineage["dataset"]["batch_ids"] == [1]
    assert lineage["champion"] == 1 and lineage["champion_metrics"]["accuracy"] is not None
    assert lineage["history"] == []
    assert views.lineage_summary(project, 1)["history"][0]["action"] == "promote"
    engine = LocalEngine(project)
    assert [e["action"] for e in engine.audit_entries(text="PROMOTE")] == ["promote"]
    assert engine.audit_entries(text="v2") == []
    everything = engine.audit_entries()
    assert engine.audit_entries(limit=1) == everything[-1:]  # the newest, oldest-first order


def test_archive(project: Project) -> None:
    catalog = project.catalog
    with pytest.raises(RegistryError, match="is the champion"):
        archive(catalog, 1, actor="tester", reason="old")
    with pytest.raises(RegistryError, match="reason is required"):
        archive(catalog, 2, actor="tester", reason=" ")
    set_challenger(catalog, 2, actor="tester", reason="try it")
    assert archive(catalog, 2, actor="tester", reason="superseded") == {"archived": 2}
    assert catalog.scalar("SELECT count(*) FROM aliases WHERE alias = ?", [CHALLENGER]) == 0
    with pytest.raises(RegistryError, match="archived and cannot be promoted"):
        promote(catalog, 2, actor="tester", reason="back")
    with pytest.raises(RegistryError, match="already archived"):
        archive(catalog, 2, actor="tester", reason="again")
    entry = catalog.row(
        "SELECT actor, action, from_version, reason FROM audit_log ORDER BY entry_id DESC LIMIT 1"
    )
    assert entry == {
        "actor": "tester",
        "action": "archive",
        "from_version": 2,
        "reason": "superseded",
    }
    assert verify_chain(catalog) is None
    assert [v["status"] for v in LocalEngine(project).models()] == ["registered", "archived"]


def _get(api: ControlApi, path: str, query: str = "") -> tuple[int, Any]:
    return api.handle("GET", path, query, AUTH, b"")


def test_control_read_routes_answer_what_views_answer(project: Project) -> None:
    api = ControlApi(LocalEngine(project), TOKEN)
    assert _get(api, "/control/batches") == (200, views.batches(project))
    assert _get(api, "/control/batch-issues", "batch=4") == (200, views.batch_issues(project, 4))
    assert _get(api, "/control/lineage-summary", "version=2") == (
        200,
        views.lineage_summary(project, 2),
    )
    assert _get(api, "/control/drift-histogram", "window=2&feature=age")[1]["bins"]
    assert _get(api, "/control/audit-entries", "text=promote")[1][0]["to_version"] == 1
    assert _get(api, "/control/performance") == (200, [])
    assert _get(api, "/control/lineage-summary", "version=x") == (
        400,
        {"error": "the query parameter 'version' must be an integer", "title": "Control API"},
    )
    assert _get(api, "/control/batch-issues", "batch=99")[0] == 404
    assert api.handle("GET", "/control/batches", "", None, b"")[0] == 401
    body = json.dumps({"version": 2, "actor": "tester", "reason": "superseded"}).encode()
    assert api.handle("POST", "/control/archive", "", AUTH, body) == (200, {"archived": 2})
    body = json.dumps({"proposal_id": 3, "actor": "a", "reason": "r"}).encode()
    status, answer = api.handle("POST", "/control/proposals/snooze", "", AUTH, body)
    assert status == 404 and "no retrain proposal 3" in answer["error"]
