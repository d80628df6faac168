"""Delayed labels: engine.data.labels.ingest_labels_file and its join to what the champion predicted."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from engine.core.project import Project, init_project, open_project
from engine.monitoring.performance import performance_windows
from engine.pipeline.intake import ingest_file, ingest_labels_file
from engine.pipeline.training_run import train
from tests.conftest import SAMPLE, append_models, run_cli

LINEAR = '\n[models.linear]\nkind = "linear"\n'
WEEK = SAMPLE / "stream" / "week_02.csv"
WEEK_LABELS = SAMPLE / "labels" / "labels_02.csv"


@dataclass
class Trained:
    root: Path
    project: Project


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory, small_reference: Path) -> Path:
    root = tmp_path_factory.mktemp("labels") / "loans"
    init_project(root, target="default", id_column="loan_id")
    append_models(root, LINEAR)
    with open_project(root) as project:
        ingest_file(project, small_reference)
        train(project)
    return root


@pytest.fixture
def trained(template: Path, tmp_path: Path) -> Iterator[Trained]:
    """A copy of a project trained on the small reference (a linear champion)."""
    root = tmp_path / "loans"
    shutil.copytree(template, root)
    project = open_project(root)
    yield Trained(root, project)
    project.close()


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def _labels_rows(project: Project) -> int:
    return int(project.catalog.scalar("SELECT count(*) FROM labels"))


BAD_FILES = {
    "missing id column": ("id_x,default\nL1,0\n", "the id column 'loan_id' is missing"),
    "missing label column": ("loan_id,outcome\nL1,0\n", "the label column ('default' or 'label')"),
    "wrong label type": ("loan_id,default\nL1,0\nL2,yes\n", "wrong label type: 1 values"),
    "empty": ("loan_id,default\n", "header but no rows"),
    "zero bytes": ("", "empty file"),
    "malformed": ("loan_id,default\nL1,0\nL2,1,7,8\nL3,0\n", "malformed CSV"),
    "null id": ("loan_id,default\nL1,0\n,1\n", "1 rows have no id"),
    "null label": ("loan_id,default\nL1,0\nL2,\n", "1 rows have no label"),
    "id twice": (
        "loan_id,default\nL1,0\nL1,1\n",
        "labelled more than once in the file (e.g. 'L1')",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_a_bad_labels_file_is_quarantined_with_its_reason(
    trained: Trained, tmp_path: Path, case: str
) -> None:
    text, reason = BAD_FILES[case]
    source = _write(tmp_path, "labels_bad.csv", text)
    result = ingest_labels_file(trained.project, source)
    assert result.status == "quarantined"
    messages = " | ".join(i.message for i in result.issues if i.severity == "error")
    assert reason in messages, messages
    assert result.quarantine_path is not None
    assert result.quarantine_path.read_bytes() == text.encode()  # byte for byte
    reason_file = result.quarantine_path.with_name(result.quarantine_path.name + ".reason.txt")
    assert reason in reason_file.read_text()
    assert source.read_text() == text  # the source is never touched
    assert _labels_rows(trained.project) == 0
    row = trained.project.catalog.row(
        "SELECT kind, status FROM batches WHERE batch_id = ?", [result.batch_id]
    )
    assert row == {"kind": "labels", "status": "quarantined"}
    audit = trained.project.catalog.row(
        "SELECT action, reason, details_json FROM audit_log ORDER BY entry_id DESC LIMIT 1"
    )
    assert audit is not None and audit["action"] == "quarantine"
    assert reason in audit["reason"] and f'"batch_id": {result.batch_id}' in audit["details_json"]


def test_labels_join_the_batch_rows_by_id_skip_and_duplicate(
    trained: Trained, tmp_path: Path
) -> None:
    project = trained.project
    week = ingest_file(project, WEEK)
    scored = project.catalog.scalar(
        "SELECT count(*) FROM scored_rows WHERE batch_id = ?", [week.batch_id]
    )
    assert scored == week.rows
    assert performance_windows(project) == []  # no labels yet

    result = ingest_labels_file(project, WEEK_LABELS)
    assert result.status == "accepted" and result.rows == week.rows
    assert _labels_rows(project) == week.rows
    (window,) = performance_windows(project)
    assert window["window_ref"] == f"batch {week.batch_id}"
    assert window["n_rows"] == window["n_labelled"] == week.rows
    assert 0.8 < window["metrics"]["accuracy"] <= 1.0
    assert set(window["holdout"]) == {"accuracy", "f1", "roc_auc", "log_loss"}

    again = ingest_labels_file(project, WEEK_LABELS)
    assert again.status == "skipped" and again.batch_id == result.batch_id
    copy = _write(tmp_path, "copy.csv", WEEK_LABELS.read_text())
    duplicate = ingest_labels_file(project, copy)
    assert duplicate.status == "duplicate" and duplicate.duplicate_of == result.batch_id
    assert _labels_rows(project) == week.rows


def test_a_later_label_for_the_same_id_wins(trained: Trained, tmp_path: Path) -> None:
    project = trained.project
    week = ingest_file(project, WEEK)
    ingest_labels_file(project, WEEK_LABELS)
    (before,) = performance_windows(project)
    # Flip every label: the window is recomputed on the corrected labels.
    lines = WEEK_LABELS.read_text().splitlines()
    flipped = [lines[0]] + [f"{r.split(',')[0]},{1 - int(r.split(',')[1])}" for r in lines[1:]]
    ingest_labels_file(project, _write(tmp_path, "corrections.csv", "\n".join(flipped) + "\n"))
    (after,) = performance_windows(project)
    assert after["n_labelled"] == week.rows
    assert after["metrics"]["accuracy"] == pytest.approx(1 - before["metrics"]["accuracy"])


def test_labels_that_arrive_before_their_batch_are_joined_when_it_comes(
    trained: Trained,
) -> None:
    project = trained.project
    assert ingest_labels_file(project, WEEK_LABELS).status == "accepted"
    assert performance_windows(project) == []
    week = ingest_file(project, WEEK)
    (window,) = performance_windows(project)
    assert window["window_ref"] == f"batch {week.batch_id}" and window["n_labelled"] == week.rows


def test_a_label_the_champion_never_predicts_is_a_warning(trained: Trained, tmp_path: Path) -> None:
    result = ingest_labels_file(
        trained.project, _write(tmp_path, "odd.csv", "loan_id,default\nL1,0\nL2,2\n")
    )
    assert result.status == "warned"
    assert [i.code for i in result.issues] == ["unknown_class"]
    assert _labels_rows(trained.project) == 2


def test_mldeck_ingest_sends_data_labels_to_the_labels_ingest(trained: Trained) -> None:
    trained.project.close()
    (trained.root / "data" / "incoming" / WEEK.name).write_bytes(WEEK.read_bytes())
    (trained.root / "data" / "labels" / WEEK_LABELS.name).write_bytes(WEEK_LABELS.read_bytes())
    result = run_cli(["ingest"], cwd=trained.root)
    assert result.exit_code == 0, result.stderr
    assert f"{WEEK_LABELS.name}  labels" in result.stdout
    perf = run_cli(["perf", "--json"], cwd=trained.root)
    assert perf.exit_code == 0, perf.stderr
    (window,) = json.loads(perf.stdout)
    assert window["n_labelled"] > 1000
    trained.project = open_project(trained.root)
