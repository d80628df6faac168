"""Re-validating a quarantined file after the contract was edited: a pass becomes a new
batch linked to the quarantined one, a failure stays quarantined with the new reasons,
hard errors never get through; the same through the CLI and a running engine's
control API."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import tomlkit

from engine.core.errors import MldeckError, NotFoundError, ProjectError
from engine.core.owner import project_token
from engine.core.project import Project, init_project, open_project
from engine.data.quarantine import REVALIDATED
from engine.pipeline.intake import ingest_file, ingest_labels_file, revalidate
from engine.service.client import LocalEngine, RemoteEngine
from engine.service.engine_service import EngineService
from storage.audit import verify_chain
from tests.conftest import run_cli, serve_in_thread


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory, small_reference: Path) -> Path:
    """A project whose contract was inferred from the small reference (no models)."""
    root = tmp_path_factory.mktemp("quarantine") / "loans"
    init_project(root, target="default", id_column="loan_id")
    with open_project(root) as project:
        assert ingest_file(project, small_reference).status == "accepted"
    return root


@pytest.fixture
def root(template: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "loans"
    shutil.copytree(template, copy)
    return copy


@pytest.fixture
def project(root: Path) -> Iterator[Project]:
    with open_project(root) as opened:
        yield opened


def broken_batch(small_reference: Path, folder: Path) -> Path:
    """60 rows without the `region` column and with two credit scores that are not numbers."""
    lines = small_reference.read_text().splitlines()
    header = lines[0].split(",")
    drop, bad = header.index("region"), header.index("credit_score")
    out = []
    for n, line in enumerate([lines[0], *lines[1000:1060]]):
        fields = line.split(",")
        if n in (3, 7):
            fields[bad] = "n/a"
        del fields[drop]
        out.append(",".join(fields))
    path = folder / "week_x.csv"
    path.write_text("\n".join(out) + "\n")
    return path


def edit_contract(root: Path, **changes: str | None) -> None:
    """Set a contract column's type, or remove the column (None), in mldeck.toml."""
    config = root / "mldeck.toml"
    doc = tomlkit.parse(config.read_text())
    columns: Any = doc["contract"]["columns"]  # type: ignore[index]
    for name, type_ in changes.items():
        if type_ is None:
            del columns[name]
        else:
            columns[name]["type"] = type_
    config.write_text(tomlkit.dumps(doc))


def error_codes(project: Project, batch_id: int) -> list[str]:
    return [
        r["code"]
        for r in project.catalog.rows(
            "SELECT code FROM validation_issues WHERE batch_id = ? AND severity = 'error'"
            " ORDER BY code",
            [batch_id],
        )
    ]


def revalidations(project: Project) -> list[dict[str, Any]]:
    return [
        {**e, "details": json.loads(e.pop("details_json"))}
        for e in project.catalog.rows(
            "SELECT actor, reason, details_json FROM audit_log WHERE action = 'revalidate'"
            " ORDER BY entry_id"
        )
    ]


def test_a_file_passes_once_the_contract_allows_it(
    root: Path, project: Project, small_reference: Path, tmp_path: Path
) -> None:
    source = broken_batch(small_reference, tmp_path)
    quarantined = ingest_file(project, source)
    assert quarantined.status == "quarantined"
    batch_id = quarantined.batch_id
    assert batch_id is not None and quarantined.quarantine_path is not None
    copy = quarantined.quarantine_path
    assert error_codes(project, batch_id) == ["bad_type", "missing_column"]

    # Unchanged contract: still quarantined, the same reasons, and the attempt audited.
    first = revalidate(project, batch_id, actor="ana", reason="try again")
    assert (first["status"], first["new_batch_id"]) == ("quarantined", None)
    assert error_codes(project, batch_id) == ["bad_type", "missing_column"]

    # One of the two problems fixed: still quarantined, with only the remaining reason.
    edit_contract(root, region=None)
    project.reload_config()
    second = revalidate(project, batch_id, actor="ana", reason="region is optional now")
    assert second["status"] == "quarantined"
    assert error_codes(project, batch_id) == ["bad_type"]
    assert "credit_score" in second["issues"][0]["message"]

    # Both fixed: a new batch, linked to the quarantined one, with a snapshot of every row.
    edit_contract(root, credit_score="string")
    project.reload_config()
    third = revalidate(project, batch_id, actor="ana", reason="scores may be missing")
    assert third["status"] in ("accepted", "warned") and third["rows"] == 60
    new_id = third["new_batch_id"]
    rows = {
        r["batch_id"]: r
        for r in project.catalog.rows(
            "SELECT batch_id, status, source_path, source_name, content_hash, snapshot_hash,"
            " row_count, revalidated_from, quarantine_path FROM batches"
        )
    }
    old, new = rows[batch_id], rows[new_id]
    assert old["status"] == REVALIDATED and old["quarantine_path"] == str(copy)
    assert new["revalidated_from"] == batch_id and new["row_count"] == 60
    assert (new["source_path"], new["source_name"]) == (str(copy), "week_x.csv")
    assert new["content_hash"] == old["content_hash"] == quarantined.content_hash
    snapshot = pl.read_parquet(project.objects.path(new["snapshot_hash"]))
    assert snapshot.height == 60 and "region" not in snapshot.columns
    assert snapshot["credit_score"].to_list()[2] == "n/a"
    # It joins the training data like any accepted batch.
    usable = project.catalog.rows(
        "SELECT batch_id FROM batches WHERE kind = 'data' AND status IN ('accepted', 'warned')"
    )
    assert new_id in {r["batch_id"] for r in usable}

    # Nothing lost: the copy is unchanged, the source untouched, every attempt on record.
    assert copy.read_bytes() == source.read_bytes()
    reason_file = Path(str(copy) + ".reason.txt").read_text()
    assert reason_file.count("re-validated at") == 3
    assert f"as batch {new_id}" in reason_file
    audit = revalidations(project)
    assert [(e["actor"], e["reason"], e["details"]["outcome"]) for e in audit] == [
        ("ana", "try again", "quarantined"),
        ("ana", "region is optional now", "quarantined"),
        ("ana", "scores may be missing", third["status"]),
    ]
    assert audit[-1]["details"]["new_batch_id"] == new_id
    assert audit[-1]["details"]["batch_id"] == batch_id
    assert verify_chain(project.catalog) is None
    lanes = project.catalog.scalar(
        "SELECT status FROM stage_runs WHERE stage = 'revalidate' ORDER BY run_id DESC LIMIT 1"
    )
    assert lanes == "succeeded"

    # Once out of the quarantine it cannot be re-validated again.
    with pytest.raises(ProjectError, match="is revalidated, not quarantined"):
        revalidate(project, batch_id, actor="ana", reason="again")
    # The same file dropped again is still skipped by its path and bytes.
    assert ingest_file(project, source).status == "skipped"


def test_an_unreadable_file_never_becomes_a_batch(project: Project, tmp_path: Path) -> None:
    source = tmp_path / "photo.csv"
    source.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00binary")
    result = ingest_file(project, source)
    assert result.status == "quarantined" and result.batch_id is not None
    answer = revalidate(project, result.batch_id, actor="ana", reason="maybe now")
    assert answer["status"] == "quarantined" and answer["new_batch_id"] is None
    assert answer["issues"][0]["code"] == "unreadable"
    assert project.catalog.scalar("SELECT count(*) FROM batches") == 2
    assert error_codes(project, result.batch_id) == ["unreadable"]


def test_what_cannot_be_revalidated_changes_nothing(
    project: Project, small_reference: Path, tmp_path: Path
) -> None:
    with pytest.raises(NotFoundError, match="no batch 99"):
        revalidate(project, 99, actor="ana", reason="x")
    with pytest.raises(ProjectError, match="batch 1 .* is accepted, not quarantined"):
        revalidate(project, 1, actor="ana", reason="x")
    result = ingest_file(project, broken_batch(small_reference, tmp_path))
    assert result.batch_id is not None and result.quarantine_path is not None
    with pytest.raises(ProjectError, match="a reason is required"):
        revalidate(project, result.batch_id, actor="ana", reason="  ")
    # The kept copy was altered: refused, since it is no longer what was quarantined.
    result.quarantine_path.write_text("loan_id,default\nL1,0\n")
    with pytest.raises(ProjectError, match="no longer has the bytes"):
        revalidate(project, result.batch_id, actor="ana", reason="x")
    result.quarantine_path.unlink()
    with pytest.raises(ProjectError, match="quarantined copy .* is missing"):
        revalidate(project, result.batch_id, actor="ana", reason="x")
    assert revalidations(project) == []
    statuses = project.catalog.rows("SELECT status FROM batches ORDER BY batch_id")
    assert [r["status"] for r in statuses] == ["accepted", "quarantined"]


def test_a_labels_file_passes_once_the_target_type_allows_it(
    root: Path, project: Project, tmp_path: Path
) -> None:
    labels = tmp_path / "labels.csv"
    labels.write_text("loan_id,default\nL0000001,high\nL0000002,low\n")
    result = ingest_labels_file(project, labels)
    assert result.status == "quarantined" and result.batch_id is not None
    assert error_codes(project, result.batch_id) == ["bad_type"]
    edit_contract(root, default="string")
    project.reload_config()
    answer = LocalEngine(project).revalidate(result.batch_id, actor="ana", reason="high/low now")
    assert answer["status"] == "accepted" and answer["kind"] == "labels"
    stored = project.catalog.rows("SELECT row_id, label, batch_id FROM labels ORDER BY row_id")
    assert stored == [
        {"row_id": "L0000001", "label": "high", "batch_id": answer["new_batch_id"]},
        {"row_id": "L0000002", "label": "low", "batch_id": answer["new_batch_id"]},
    ]


def test_cli_lists_the_quarantine_and_revalidates(
    root: Path, small_reference: Path, tmp_path: Path
) -> None:
    source = broken_batch(small_reference, tmp_path)
    assert run_cli(["ingest", str(source)], cwd=root).exit_code == 1
    listed = run_cli(["quarantine", "--json"], cwd=root)
    assert listed.exit_code == 0, listed.output
    (entry,) = json.loads(listed.stdout)
    assert (entry["batch_id"], entry["source_name"], entry["kind"]) == (2, "week_x.csv", "data")
    assert "'region'" in entry["reason"] and "credit_score" in entry["reason"]
    table = run_cli(["quarantine"], cwd=root)
    assert "week_x.csv" in table.stdout and "mldeck revalidate" in table.stdout

    # Still failing: exit 1 with the reasons on one line, the batch stays quarantined.
    failed = run_cli(["revalidate", "2", "--reason", "check"], cwd=root)
    assert failed.exit_code == 1
    assert (
        "Still quarantined: batch 2 (week_x.csv)" in failed.stderr and "'region'" in failed.stderr
    )
    edit_contract(root, region=None, credit_score="string")
    passed = run_cli(["revalidate", "2", "--reason", "contract edited", "--json"], cwd=root)
    assert passed.exit_code == 0, passed.output
    answer = json.loads(passed.stdout)
    assert answer["batch_id"] == 2 and answer["new_batch_id"] == 3
    assert json.loads(run_cli(["quarantine", "--json"], cwd=root).stdout) == []
    missing = run_cli(["revalidate", "7", "--reason", "x"], cwd=root)
    assert missing.exit_code == 1 and "no batch 7" in missing.stderr
    assert "Traceback" not in missing.output


def test_revalidate_through_the_engine_service(
    root: Path, small_reference: Path, tmp_path: Path
) -> None:
    """The control route and RemoteEngine: a pipeline job on the engine that owns the project."""
    with open_project(root) as project:
        result = ingest_file(project, broken_batch(small_reference, tmp_path))
    assert result.batch_id == 2
    edit_contract(root, region=None, credit_score="string")
    service = EngineService(open_project(root), ())
    service.start()
    try:
        with serve_in_thread(service.front) as port:
            remote = RemoteEngine(f"http://127.0.0.1:{port}", project_token(root / ".mldeck"))
            answer = remote.revalidate(2, actor="ana", reason="through the engine")
            assert answer["new_batch_id"] == 3 and answer["status"] in ("accepted", "warned")
            with pytest.raises(MldeckError, match="is revalidated, not quarantined"):
                remote.revalidate(2, actor="ana", reason="again")
            assert remote.quarantined() == []
            assert [b["batch_id"] for b in remote.batches()][:1] == [3]
            lanes = {lane["stage"]: lane for lane in remote.stage_lanes()["lanes"]}
            assert lanes["validate"]["status"] == "succeeded"
    finally:
        service.close()
