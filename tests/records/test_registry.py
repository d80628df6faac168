"""The registry: champion / challenger aliases, promote, rollback, the audit log.

One project is trained once per module (three runs, four real versions) and
copied for each test, so every test starts from the same real catalog.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from engine.core.errors import NotFoundError, RegistryError
from engine.core.project import Project, init_project, open_project
from engine.pipeline.intake import ingest_file
from engine.pipeline.training_run import train
from engine.records.registry import (
    CHALLENGER,
    CHAMPION,
    alias_version,
    champion_history,
    list_versions,
    promote,
    rollback,
)
from storage.audit import verify_chain
from tests.conftest import append_models

MODELS = """
[models.stump]
kind = "random_forest"
n_estimators = 2
max_depth = 1

[models.linear]
kind = "linear"

[models.boost]
kind = "gradient_boosting"
n_estimators = 15
"""


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory, small_reference: Path) -> Path:
    """Run 1: stump (v1, champion). Run 2: linear, boost (v2, v3; the better one is
    challenger). Run 3: linear under an unreachable AUC floor (v4, not promotable)."""
    root = tmp_path_factory.mktemp("registry") / "loans"
    init_project(root, target="default", id_column="loan_id")
    append_models(root, MODELS)
    with open_project(root) as project:
        ingest_file(project, small_reference)
        train(project, only=["stump"])
        train(project, only=["linear", "boost"])
        config = root / "mldeck.toml"
        config.write_text(
            config.read_text().replace(
                "[evaluation]\n", "[evaluation]\n[evaluation.min]\nroc_auc = 0.999\n", 1
            )
        )
        project.reload_config()
        train(project, only=["linear"])
    return root


@pytest.fixture
def project(template: Path, tmp_path: Path, open_proj: Callable[[Path], Project]) -> Project:
    copy = tmp_path / "loans"
    shutil.copytree(template, copy)
    return open_proj(copy)


def audit(project: Project) -> list[dict[str, Any]]:
    return project.catalog.rows("SELECT * FROM audit_log ORDER BY entry_id")


def auc(project: Project, version: int) -> float:
    return float(
        project.catalog.scalar(
            "SELECT value FROM metrics WHERE version = ? AND name = 'roc_auc'", [version]
        )
    )


def test_template_holds_four_versions(project: Project) -> None:
    rows = project.catalog.rows(
        "SELECT version, name, promotable FROM model_versions ORDER BY version"
    )
    assert [(r["version"], r["name"], r["promotable"]) for r in rows] == [
        (1, "stump", True),
        (2, "linear", True),
        (3, "boost", True),
        (4, "linear", False),
    ]


def test_first_promotable_version_becomes_champion_automatically(project: Project) -> None:
    assert alias_version(project.catalog, CHAMPION) == 1
    first = audit(project)[0]
    assert first["action"] == "promote"
    assert first["actor"] == "mldeck"
    assert first["alias"] == CHAMPION
    assert (first["from_version"], first["to_version"]) == (None, 1)
    assert "first promotable" in first["reason"]
    # Later training runs never move the champion by themselves.
    assert [e["action"] for e in audit(project)].count("promote") == 1


def test_a_better_new_version_becomes_challenger(project: Project) -> None:
    best = max((2, 3), key=lambda v: (auc(project, v), -v))
    assert auc(project, best) > auc(project, 1)  # the stump is easy to beat
    assert alias_version(project.catalog, CHALLENGER) == best
    entry = next(e for e in audit(project) if e["action"] == "set_challenger")
    assert (entry["alias"], entry["from_version"], entry["to_version"]) == (
        CHALLENGER,
        None,
        best,
    )
    assert "beats champion v1" in entry["reason"]
    listed = {v["version"]: v for v in list_versions(project.catalog)}
    assert listed[1]["aliases"] == [CHAMPION]
    assert listed[best]["aliases"] == [CHALLENGER]
    for version, info in listed.items():
        assert info["metrics"]["roc_auc"] == pytest.approx(auc(project, version))
        assert set(info["metrics"]) == {"accuracy", "f1", "roc_auc", "log_loss"}


def test_promote_moves_champion_and_is_audited(
    project: Project, open_proj: Callable[[Path], Project]
) -> None:
    challenger = alias_version(project.catalog, CHALLENGER)
    assert challenger is not None
    before = len(audit(project))
    result = promote(project.catalog, challenger, actor="alice", reason="beats v1 on AUC")
    assert result == {"champion": challenger, "previous": 1}
    assert alias_version(project.catalog, CHAMPION) == challenger
    assert alias_version(project.catalog, CHALLENGER) is None  # promoted: no longer challenger
    entries = audit(project)
    assert len(entries) == before + 1
    last = entries[-1]
    assert (last["actor"], last["action"], last["alias"]) == ("alice", "promote", CHAMPION)
    assert (last["from_version"], last["to_version"]) == (1, challenger)
    assert last["reason"] == "beats v1 on AUC"
    assert last["details_json"] is None
    assert verify_chain(project.catalog) is None

    # The catalog holds the same state after it is closed and opened again.
    root = project.root
    project.close()
    again = open_proj(root)
    assert alias_version(again.catalog, CHAMPION) == challenger
    assert audit(again)[-1]["reason"] == "beats v1 on AUC"


def test_promote_unknown_version_names_the_registered_ones(project: Project) -> None:
    before = audit(project)
    with pytest.raises(NotFoundError) as info:
        promote(project.catalog, 99, actor="alice", reason="typo")
    assert "99" in info.value.msg
    assert "registered versions: 1, 2, 3, 4" in info.value.msg
    assert audit(project) == before
    assert alias_version(project.catalog, CHAMPION) == 1


def test_promote_with_nothing_registered(
    make_project: Callable[..., Path], open_proj: Callable[[Path], Project]
) -> None:
    empty = open_proj(make_project(name="empty"))
    with pytest.raises(NotFoundError) as info:
        promote(empty.catalog, 1, actor="alice", reason="r")
    assert "nothing is registered" in info.value.msg


def test_non_promotable_version_needs_force(project: Project) -> None:
    before = audit(project)
    with pytest.raises(RegistryError) as info:
        promote(project.catalog, 4, actor="alice", reason="trust me")
    assert "roc_auc >= 0.999" in info.value.msg
    assert "--force" in info.value.msg
    assert audit(project) == before
    assert alias_version(project.catalog, CHAMPION) == 1

    result = promote(project.catalog, 4, actor="alice", reason="trust me", force=True)
    assert result == {"champion": 4, "previous": 1}
    last = audit(project)[-1]
    assert json.loads(last["details_json"]) == {"forced": True}
    assert (last["from_version"], last["to_version"]) == (1, 4)


def test_promote_refuses_no_op_and_empty_reason(project: Project) -> None:
    before = audit(project)
    with pytest.raises(RegistryError, match="already the champion"):
        promote(project.catalog, 1, actor="alice", reason="again")
    with pytest.raises(RegistryError, match="reason"):
        promote(project.catalog, 2, actor="alice", reason="  ")
    with pytest.raises(RegistryError, match="reason"):
        rollback(project.catalog, actor="alice", reason="")
    assert audit(project) == before


def test_rollback_walks_back_the_champion_stack(project: Project) -> None:
    catalog = project.catalog
    promote(catalog, 2, actor="alice", reason="v2")
    promote(catalog, 3, actor="bob", reason="v3")
    assert champion_history(catalog) == [1, 2, 3]

    assert rollback(catalog, actor="carol", reason="v3 misbehaves") == {
        "champion": 2,
        "previous": 3,
    }
    assert alias_version(catalog, CHAMPION) == 2
    last = audit(project)[-1]
    assert (last["actor"], last["action"], last["from_version"], last["to_version"]) == (
        "carol",
        "rollback",
        3,
        2,
    )
    assert last["reason"] == "v3 misbehaves"

    assert rollback(catalog, actor="carol", reason="v2 too") == {"champion": 1, "previous": 2}
    assert alias_version(catalog, CHAMPION) == 1
    with pytest.raises(RegistryError, match="no previous champion"):
        rollback(catalog, actor="carol", reason="once more")
    assert alias_version(catalog, CHAMPION) == 1

    # A new promotion after rollbacks starts from where the stack is now.
    promote(catalog, 3, actor="bob", reason="v3 fixed")
    assert rollback(catalog, actor="carol", reason="not fixed") == {"champion": 1, "previous": 3}
    assert verify_chain(catalog) is None
    actions = [(e["action"], e["from_version"], e["to_version"]) for e in audit(project)]
    assert [a for a in actions if a[0] in ("promote", "rollback")] == [
        ("promote", None, 1),
        ("promote", 1, 2),
        ("promote", 2, 3),
        ("rollback", 3, 2),
        ("rollback", 2, 1),
        ("promote", 1, 3),
        ("rollback", 3, 1),
    ]


def test_rollback_without_history_is_refused(
    project: Project, make_project: Callable[..., Path], open_proj: Callable[[Path], Project]
) -> None:
    before = audit(project)
    with pytest.raises(RegistryError, match="no previous champion"):
        rollback(project.catalog, actor="alice", reason="nothing to go back to")
    assert audit(project) == before
    assert alias_version(project.catalog, CHAMPION) == 1

    empty = open_proj(make_project(name="empty"))
    with pytest.raises(RegistryError, match="no previous champion"):
        rollback(empty.catalog, actor="alice", reason="none at all")


def test_audit_chain_detects_an_edited_entry(project: Project) -> None:
    promote(project.catalog, 2, actor="alice", reason="honest reason")
    assert verify_chain(project.catalog) is None
    entry = audit(project)[-1]["entry_id"]
    project.catalog.execute(
        "UPDATE audit_log SET reason = 'rewritten history' WHERE entry_id = ?", [entry]
    )
    assert verify_chain(project.catalog) == entry
