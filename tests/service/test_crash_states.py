"""Crash recovery, deterministically: the catalog, journal and object store are put in
each state a kill -9 can leave them in, then the engine service starts on the project.
Each test asserts what `mldeck doctor` says before, exactly what the start redoes (once),
and that doctor is clean after."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from engine.core.project import Project, open_project
from engine.records.crash_recovery import recover_on_open
from engine.service.engine_service import EngineService
from engine.views.doctor import check_project
from storage.catalog import utcnow
from storage.objects import sha256_file
from tests.conftest import append_models
from tests.daemon_helpers import wait_until
from tests.service.test_daemon import LINEAR, slices

TWO = LINEAR + '\n[models.linear_b]\nkind = "linear"\nC = 0.5\n'


def _dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(done.stdout)


def _doctor(root: Path) -> list[str]:
    """What `mldeck doctor` reports on a project no engine holds (without --fix)."""
    with open_project(root) as project:
        report = check_project(project)
    problems: list[str] = report["problems"]
    return problems


@contextmanager
def _service(root: Path) -> Iterator[EngineService]:
    """Open the project as a restarted engine does (recover, then the service's start)."""
    project = open_project(root)
    recover_on_open(project)
    service = EngineService(project, ())
    service.start()
    try:
        yield service
        wait_until(service.queue.idle, 120, "the engine's recovery jobs")
    finally:
        service.close()


@pytest.fixture
def trained(make_project: Any, small_reference: Path, tmp_path: Path) -> tuple[Path, list[Path]]:
    """A project with one ingested batch and one training run, and two more slices."""
    from engine.pipeline.intake import ingest_file
    from engine.pipeline.training_run import train

    root = make_project("states", models=None)
    append_models(root, TWO)
    drops = slices(small_reference, tmp_path / "drops", [1500, 300, 300])
    with open_project(root) as project:
        ingest_file(project, drops[0])
        train(project)
    return root, drops[1:]


def _count(project: Project, sql: str, params: list[Any] | None = None) -> int:
    return int(project.catalog.scalar(sql, params or []))


def test_an_ingest_killed_between_snapshot_and_catalog_row_is_redone_once(
    trained: tuple[Path, list[Path]],
) -> None:
    root, (drop, _) = trained
    source = root / "data" / "incoming" / drop.name
    shutil.copy(drop, source)
    digest = sha256_file(source)
    pid = _dead_pid()
    with open_project(root) as project:
        # What the killed ingest had done: its stage run row, and the snapshot object.
        project.catalog.execute(
            "INSERT INTO stage_runs (stage, status, inputs_json, started_at, pid)"
            " VALUES ('ingest', 'running', ?, ?, ?)",
            [json.dumps({"source": str(source), "sha256": digest}), utcnow(), pid],
        )
        project.objects.put_file(source)
        batches_before = _count(project, "SELECT count(*) FROM batches")
    assert _doctor(root) == [
        f"stage run {_last_run(root)} (ingest) is left running by process {pid}, which is gone"
    ]

    with _service(root):
        pass
    with open_project(root) as project:
        assert _count(project, "SELECT count(*) FROM batches") == batches_before + 1
        assert _count(project, "SELECT count(*) FROM batches WHERE content_hash = ?", [digest]) == 1
        assert _count(project, "SELECT count(*) FROM stage_runs WHERE status = 'running'") == 0
    assert _doctor(root) == []

    with _service(root):  # a second start redoes nothing
        pass
    with open_project(root) as project:
        assert _count(project, "SELECT count(*) FROM batches") == batches_before + 1
        assert _count(project, "SELECT count(*) FROM stage_runs WHERE stage = 'ingest'") == 3


def _last_run(root: Path) -> int:
    with open_project(root) as project:
        return int(project.catalog.scalar("SELECT max(run_id) FROM stage_runs"))


def _journal(root: Path, kind: str, args: dict[str, Any], started_at: Any) -> int:
    with open_project(root) as project:
        return int(
            project.catalog.scalar(
                "INSERT INTO jobs (kind, args_json, status, submitted_at, started_at, attempts)"
                " VALUES (?, ?, 'running', ?, ?, 1) RETURNING job_id",
                [kind, json.dumps(args), started_at, started_at],
            )
        )


def test_a_journaled_retrain_cut_short_before_registering_runs_again_once(
    trained: tuple[Path, list[Path]],
) -> None:
    root, _ = trained
    job_id = _journal(root, "retrain", {"actor": "tester", "reason": "crash"}, utcnow())
    assert _doctor(root) == [
        f"job {job_id} (retrain) was cut short after 1 attempt(s); it runs again when an "
        "engine starts (mldeck daemon, or mldeck)"
    ]
    with _service(root):
        pass
    with open_project(root) as project:
        job = project.catalog.row("SELECT status, attempts FROM jobs WHERE job_id = ?", [job_id])
        assert job == {"status": "succeeded", "attempts": 2}
        # Two candidates: the first training's v1, v2 and the redone retrain's v3, v4.
        versions = [
            r["version"] for r in project.catalog.rows("SELECT version FROM model_versions")
        ]
        assert sorted(versions) == [1, 2, 3, 4]
        finished = _count(
            project, "SELECT count(*) FROM audit_log WHERE action = 'retrain_finished'"
        )
        assert finished == 1
    assert _doctor(root) == []
    with _service(root):
        pass
    with open_project(root) as project:
        assert _count(project, "SELECT count(*) FROM model_versions") == 4


def test_a_journaled_train_killed_after_its_registration_is_not_trained_again(
    trained: tuple[Path, list[Path]],
) -> None:
    root, _ = trained
    with open_project(root) as project:
        started = project.catalog.scalar("SELECT min(created_at) FROM model_versions")
    # The job started before v1, v2 were registered and the engine died before the
    # journal heard of it.
    job_id = _journal(root, "train", {"actor": "tester", "only": []}, started)
    with _service(root):
        pass
    with open_project(root) as project:
        assert _count(project, "SELECT count(*) FROM model_versions") == 2
        job = project.catalog.row(
            "SELECT status, attempts, result_json FROM jobs WHERE job_id = ?", [job_id]
        )
    assert job is not None and job["status"] == "succeeded" and job["attempts"] == 2
    assert json.loads(job["result_json"]) == {"recovered": True, "versions": [1, 2]}
    assert _doctor(root) == []


def test_a_journaled_decide_runs_the_accepted_retrain_once(
    trained: tuple[Path, list[Path]],
) -> None:
    root, _ = trained
    with open_project(root) as project:
        proposal = int(
            project.catalog.scalar(
                "INSERT INTO retrain_proposals (created_at, trigger, evidence_json, status)"
                " VALUES (?, 'person', '{}', 'pending') RETURNING proposal_id",
                [utcnow()],
            )
        )
    args = {"proposal_id": proposal, "accept": True, "actor": "tester", "reason": "crash"}
    job_id = _journal(root, "decide", args, utcnow())
    with _service(root):
        pass
    with open_project(root) as project:
        assert (
            project.catalog.scalar(
                "SELECT status FROM retrain_proposals WHERE proposal_id = ?", [proposal]
            )
            == "accepted"
        )
        assert _count(project, "SELECT count(*) FROM model_versions") == 4
        assert project.catalog.scalar("SELECT status FROM jobs WHERE job_id = ?", [job_id]) == (
            "succeeded"
        )
        accepted = "SELECT count(*) FROM audit_log WHERE action = 'retrain_accepted'"
        assert _count(project, accepted) == 1
    assert _doctor(root) == []


def test_a_half_written_staging_file_is_reported_then_removed(
    trained: tuple[Path, list[Path]],
) -> None:
    root, _ = trained
    with open_project(root) as project:
        tmp_dir = project.objects.tmp_dir
        objects_before = sorted(project.objects.iter_digests())
    (tmp_dir / "tmpab12cd.parquet").write_bytes(b"PAR1 half a snapshot")
    assert _doctor(root) == [
        f"1 staging file(s) left in {tmp_dir} by writes that never finished; "
        "the next command that writes removes them"
    ]
    with _service(root):
        pass
    assert list(tmp_dir.iterdir()) == []
    with open_project(root) as project:
        assert sorted(project.objects.iter_digests()) == objects_before
    assert _doctor(root) == []


def test_a_training_run_that_dies_while_registering_leaves_no_version(
    trained: tuple[Path, list[Path]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The process dies (a BaseException the pipeline does not catch, as a kill -9 would
    stop it) after the run's first version row is written: none of the run's versions,
    training runs or alias moves survive."""
    import engine.pipeline.training_run
    from engine.pipeline.training_run import train

    root, _ = trained
    real = engine.pipeline.training_run.record_provenance
    calls = []

    def dies_on_the_second(*args: Any, **kwargs: Any) -> None:
        calls.append(args)
        if len(calls) == 2:
            raise KeyboardInterrupt("killed while registering")
        real(*args, **kwargs)

    monkeypatch.setattr(engine.pipeline.training_run, "record_provenance", dies_on_the_second)
    with open_project(root) as project:
        runs_before = _count(project, "SELECT count(*) FROM training_runs")
        with pytest.raises(KeyboardInterrupt):
            train(project)
    assert len(calls) == 2
    with open_project(root) as project:
        assert _count(project, "SELECT count(*) FROM model_versions") == 2
        assert _count(project, "SELECT count(*) FROM training_runs") == runs_before
        assert project.catalog.scalar("SELECT version FROM aliases WHERE alias = 'challenger'") is (
            None
        )
    assert _doctor(root) == []


def test_doctor_names_a_half_registered_version(trained: tuple[Path, list[Path]]) -> None:
    """A catalog written by an mldeck that registered candidate by candidate."""
    root, _ = trained
    with open_project(root) as project:
        project.catalog.execute(
            "INSERT INTO model_versions SELECT * REPLACE (3 AS version, 999 AS training_run_id)"
            " FROM model_versions WHERE version = 2"
        )
    assert _doctor(root) == [
        "v3 is half-registered (no training run or metrics); "
        "archive it: mldeck archive VERSION --reason ..."
    ]


def test_a_stage_run_left_running_by_a_live_process_is_not_touched(
    trained: tuple[Path, list[Path]],
) -> None:
    root, _ = trained
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        with open_project(root) as project:
            project.catalog.execute(
                "INSERT INTO stage_runs (stage, status, inputs_json, started_at, pid)"
                " VALUES ('train', 'running', '{}', ?, ?)",
                [utcnow(), sleeper.pid],
            )
            recover_on_open(project)
            status = project.catalog.scalar("SELECT status FROM stage_runs ORDER BY run_id DESC")
        assert status == "running"
        assert _doctor(root) == []
    finally:
        sleeper.kill()
        sleeper.wait()
    with open_project(root) as project:  # once it is gone, the next open marks the run
        assert recover_on_open(project)["interrupted_stage_runs"] == 1


def test_doctor_is_clean_after_a_revalidation(
    trained: tuple[Path, list[Path]], small_reference: Path, tmp_path: Path
) -> None:
    """The revalidated batch hands its content on to the new batch: not ingested twice."""
    from engine.pipeline.intake import ingest_file, revalidate
    from tests.data.test_quarantine import broken_batch, edit_contract

    root, _ = trained
    with open_project(root) as project:
        quarantined = ingest_file(project, broken_batch(small_reference, tmp_path))
    assert quarantined.batch_id is not None
    edit_contract(root, region=None, credit_score="string")
    with open_project(root) as project:
        answer = revalidate(project, quarantined.batch_id, actor="ana", reason="allowed now")
    assert answer["status"] in ("accepted", "warned")
    assert _doctor(root) == []


def _one_line_error(root: Path, *args: str) -> str:
    from tests.daemon_helpers import cli

    done = cli(*args, cwd=root)
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    return lines[0]


def test_a_truncated_or_garbage_catalog_is_one_line_and_exit_1(
    trained: tuple[Path, list[Path]],
) -> None:
    root, _ = trained
    catalog = root / ".mldeck" / "catalog.duckdb"
    with open(catalog, "r+b") as handle:
        handle.truncate(1 << 20)
    for command in (("status",), ("models",), ("lineage", "1"), ("doctor",)):
        line = _one_line_error(root, *command)
        assert f"{catalog} is damaged" in line and "restore it from a backup" in line, line
    catalog.write_bytes(os.urandom(300_000))
    assert "not a valid DuckDB database file" in _one_line_error(root, "status")


def test_a_config_nested_100000_deep_is_one_line_and_exit_1(
    trained: tuple[Path, list[Path]],
) -> None:
    root, _ = trained
    with open(root / "mldeck.toml", "a", encoding="utf-8") as config:
        config.write("\ndeep = " + "[" * 100_000 + "]" * 100_000 + "\n")
    line = _one_line_error(root, "status")
    assert "mldeck.toml: arrays or inline tables are nested too deeply" in line, line


def test_an_interrupted_live_performance_update_is_redone_once(
    trained: tuple[Path, list[Path]], tmp_path: Path
) -> None:
    import polars as pl

    from engine.pipeline.intake import ingest_labels_file

    root, (drop, _) = trained
    with open_project(root) as project:
        ingest_file_result = _ingest(project, drop)
        assert ingest_file_result in ("accepted", "warned")
    labels = tmp_path / "labels_week.csv"
    pl.read_csv(drop).select(id="loan_id", label="default").write_csv(labels)
    with open_project(root) as project:
        labels_batch = ingest_labels_file(project, labels).batch_id
        assert labels_batch is not None
        # The engine died inside the live-performance update these labels started.
        project.catalog.execute(
            "INSERT INTO stage_runs (stage, status, inputs_json, started_at, pid)"
            " VALUES ('performance', 'running', ?, ?, ?)",
            [json.dumps({"labels_batch_id": labels_batch}), utcnow(), _dead_pid()],
        )
    performance = (
        "SELECT count(*) FROM stage_runs WHERE stage = 'performance' AND status = 'succeeded'"
    )
    with open_project(root) as project:
        done_before = _count(project, performance)
    with _service(root):
        pass
    with open_project(root) as project:
        assert _count(project, performance) == done_before + 1
    with _service(root):
        pass
    with open_project(root) as project:
        assert _count(project, performance) == done_before + 1
    assert _doctor(root) == []


def _ingest(project: Project, path: Path) -> str:
    from engine.pipeline.intake import ingest_file

    return ingest_file(project, path).status
