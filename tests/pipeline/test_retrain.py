"""Stage 9 in-process: the retrain policy, proposals, the schedule trigger, the retrain job."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from engine.core.errors import RegistryError
from engine.core.project import Project
from engine.pipeline.intake import ingest_file
from engine.pipeline.retrain import decide, list_proposals, propose, run_retrain, schedule_due
from engine.pipeline.training_run import train
from engine.records.registry import CHALLENGER, CHAMPION, alias_version
from storage.audit import verify_chain
from storage.catalog import utcnow
from tests.conftest import run_cli
from tests.helpers import LINEAR, slices


def set_retrain(root: Path, text: str) -> None:
    config = root / "mldeck.toml"
    body = config.read_text()
    start = body.index("[retrain]")
    end = body.index("[watch]")
    config.write_text(body[:start] + "[retrain]\n" + text + "\n\n" + body[end:])


def audit_actions(project: Project) -> list[str]:
    return [r["action"] for r in project.catalog.rows("SELECT action FROM audit_log ORDER BY 1")]


@pytest.fixture
def small_champion(
    make_project: Any, open_proj: Any, small_reference: Path, tmp_path: Path
) -> tuple[Project, list[Path]]:
    """A champion trained on 200 rows; 2,600 more labelled rows not yet ingested."""
    root = make_project("loans", models=LINEAR)
    first, more = slices(small_reference, tmp_path / "parts", [200, 2600])
    project = open_proj(root)
    ingest_file(project, first)
    train(project)
    assert alias_version(project.catalog, CHAMPION) == 1
    return project, [more]


def test_auto_retrains_and_promotes_through_the_gates(
    small_champion: tuple[Project, list[Path]],
) -> None:
    project, (more,) = small_champion
    set_retrain(project.root, 'policy = "auto"')
    project.reload_config()
    ingest_file(project, more)
    answer = propose(project, "schedule", {"every": "7d"})
    assert answer["action"] == "retrained"
    retrained = answer["retrain"]
    # more data, same holdout rule: the new version beats v1 on v1's own new holdout
    assert retrained["promoted"] == 2 and alias_version(project.catalog, CHAMPION) == 2
    assert retrained["champion_before"] == 1 and retrained["versions"] == [2]
    actions = [
        r["action"] for r in project.catalog.rows("SELECT action FROM audit_log ORDER BY entry_id")
    ]
    assert actions[-4:] == ["retrain_started", "set_challenger", "promote", "retrain_finished"]
    assert verify_chain(project.catalog) is None

    # gates that no version can pass: a retrain registers, and promotes nothing
    config = project.root / "mldeck.toml"
    config.write_text(
        config.read_text().replace("[evaluation]\n", "[evaluation]\nmin = { roc_auc = 0.9999 }\n")
    )
    project.reload_config()
    again = run_retrain(project, actor="tester", reason="gates too strict")
    assert again["promoted"] is None and again["versions"] == [3]
    assert alias_version(project.catalog, CHAMPION) == 2


def test_prompt_stores_one_proposal_per_trigger_and_a_person_decides(
    small_champion: tuple[Project, list[Path]],
) -> None:
    project, (more,) = small_champion
    first = propose(project, "schedule", {"every": "7d", "last_training": "then"})
    assert first["action"] == "proposed" and first["policy"] == "prompt"
    again = propose(project, "schedule", {"every": "7d"})
    assert again == {**first, "action": "pending"}
    (shown,) = list_proposals(project)
    assert shown["evidence"] == {"every": "7d", "last_training": "then"}
    assert shown["status"] == "pending"

    dismissed = decide(project, first["proposal_id"], accept=False, actor="ana", reason="not now")
    assert dismissed == {
        "proposal_id": first["proposal_id"],
        "status": "dismissed",
        "retrain": None,
    }
    with pytest.raises(RegistryError, match="already dismissed"):
        decide(project, first["proposal_id"], accept=True, actor="ana", reason="changed my mind")

    ingest_file(project, more)  # more labelled rows: the retrained version beats v1
    second = propose(project, "schedule", {"every": "7d"})
    accepted = decide(project, second["proposal_id"], accept=True, actor="bo", reason="go")
    assert accepted["status"] == "accepted" and accepted["retrain"]["versions"] == [2]
    # under `prompt` the new best becomes the challenger; a person promotes it, not the retrain
    retrained = accepted["retrain"]
    assert retrained["challenger"] == 2 and retrained["promoted"] is None
    assert retrained["champion_before"] == retrained["champion"] == 1
    assert alias_version(project.catalog, CHALLENGER) == 2
    assert alias_version(project.catalog, CHAMPION) == 1
    entries = project.catalog.rows(
        "SELECT actor, action, reason, details_json FROM audit_log"
        " WHERE action IN ('retrain_dismissed', 'retrain_accepted') ORDER BY entry_id"
    )
    assert [(e["actor"], e["action"], e["reason"]) for e in entries] == [
        ("ana", "retrain_dismissed", "not now"),
        ("bo", "retrain_accepted", "go"),
    ]
    assert json.loads(entries[1]["details_json"])["proposal_id"] == second["proposal_id"]


def test_off_only_logs(small_champion: tuple[Project, list[Path]]) -> None:
    project, _ = small_champion
    set_retrain(project.root, 'policy = "off"')
    project.reload_config()
    versions = project.catalog.scalar("SELECT count(*) FROM model_versions")
    assert propose(project, "schedule", {})["action"] == "ignored"
    assert list_proposals(project) == []
    assert project.catalog.scalar("SELECT count(*) FROM model_versions") == versions


def test_the_schedule_is_due_when_the_last_training_is_old_enough(
    small_champion: tuple[Project, list[Path]],
) -> None:
    project, _ = small_champion
    now = utcnow()
    assert schedule_due(project, now) is None  # no [retrain] every
    set_retrain(project.root, 'policy = "prompt"\nevery = "7d"')
    project.reload_config()
    assert schedule_due(project, now) is None
    assert schedule_due(project, now + timedelta(days=8)) is not None
    project.catalog.execute("UPDATE model_versions SET created_at = created_at - INTERVAL 10 DAY")
    evidence = schedule_due(project, now)
    assert evidence is not None and evidence["every"] == "7d"
    # once proposed, the next one is due a period after the proposal
    propose(project, "schedule", evidence)
    assert schedule_due(project, now) is None
    assert schedule_due(project, now + timedelta(days=8)) is not None


def test_retrain_cli_without_a_daemon(small_champion: tuple[Project, list[Path]]) -> None:
    project, _ = small_champion
    root = project.root
    propose(project, "schedule", {"every": "7d"})
    project.close()
    listed = run_cli(["retrain", "--list"], cwd=root)
    assert listed.exit_code == 0 and "schedule" in listed.stdout and "pending" in listed.stdout
    missing = run_cli(["retrain"], cwd=root)
    assert missing.exit_code == 2 and "--reason" in missing.stderr
    unknown = run_cli(["retrain", "--accept", "9", "--reason", "x"], cwd=root)
    assert unknown.exit_code == 1 and "no retrain proposal 9" in unknown.stderr
    now = run_cli(["retrain", "--reason", "new data", "--json"], cwd=root)
    assert now.exit_code == 0, now.stderr
    assert json.loads(now.stdout)["versions"] == [2]
    bad = root / "mldeck.toml"
    bad.write_text(bad.read_text().replace('policy = "prompt"', 'policy = "sometimes"'))
    refused = run_cli(["retrain", "--list"], cwd=root)
    assert refused.exit_code == 1 and "retrain.policy" in refused.stderr


def test_alerts_and_new_labels_are_retrain_triggers(
    small_champion: tuple[Project, list[Path]],
) -> None:
    from engine.pipeline.intake import ingest_labels_file
    from engine.pipeline.retrain import alert_due, due_triggers, labels_due
    from tests.conftest import SAMPLE

    project, _ = small_champion
    set_retrain(project.root, 'policy = "prompt"\nmin_new_labels = 1000')
    config = project.root / "mldeck.toml"
    # Only the performance floor alerts: a 200-row reference sees drift everywhere.
    text = config.read_text().replace("[alerts]\n", "[alerts]\ndrifted_features = 1000\n", 1)
    config.write_text(text + "\n[alerts.min]\naccuracy = 0.99\n")
    project.reload_config()
    assert due_triggers(project, utcnow(), {}) == []

    ingest_file(project, SAMPLE / "stream" / "week_01.csv")
    assert labels_due(project) is None and alert_due(project) is None  # no labels yet
    ingest_labels_file(project, SAMPLE / "labels" / "labels_01.csv")
    alert = alert_due(project)
    assert alert is not None
    assert [a["rule"] for a in alert["alerts"]] == ["performance_min"]
    labels = labels_due(project)
    assert labels is not None and labels["new_labels"] == 1447
    assert [t for t, _ in due_triggers(project, utcnow(), {})] == ["alert", "labels"]

    # Proposed once: the same alert and the same labels do not propose again.
    assert propose(project, "alert", alert)["action"] == "proposed"
    assert propose(project, "labels", labels)["action"] == "proposed"
    assert alert_due(project) is None and labels_due(project) is None

    # A new alert fires the trigger again; a person decides on the pending proposal first.
    ingest_file(project, SAMPLE / "stream" / "week_02.csv")
    ingest_labels_file(project, SAMPLE / "labels" / "labels_02.csv")
    again = alert_due(project)
    assert again is not None and len(again["alerts"]) == 1
    assert propose(project, "alert", again)["action"] == "pending"

    # A retrain answers both: nothing is due after it.
    run_retrain(project, actor="tester", reason="labels arrived")
    assert alert_due(project) is None and labels_due(project) is None
