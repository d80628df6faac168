"""kill -9 at many points of a daemon's run (start-up, ingest, a retrain's training,
evaluation and registration, a random moment), restarting it each time: afterwards every
input is ingested exactly once, every journaled retrain ran to its end (again, after each
kill that landed inside it), every training run registered all its versions or none,
`mldeck doctor` passes and the champion is a complete model.

The kill points are chosen by state, not by time: the daemon is killed once its control
API shows a new stage run of the kind the life aims at. Deterministic cases of each
interrupted state are in tests/service/test_crash_states.py."""

from __future__ import annotations

import json
import random
import shutil
import threading
from pathlib import Path
from typing import Any

import pytest

from engine.core.project import open_project
from engine.service.client import RemoteEngine
from engine.serving.model_slot import load_model
from storage.objects import sha256_file
from tests.daemon_helpers import Daemon, cli, wait_until
from tests.service.test_daemon import LINEAR, slices

TWO = LINEAR + '\n[models.linear_b]\nkind = "linear"\nC = 0.5\n'
POINTS = ("start", "ingest", "train", "evaluate", "register", "moment")
"""Where each life is killed, in turn: right after it claimed the project (recovery),
once a new stage run of that lane appears, or after a random 0-2 s."""
LIVES = 12
RETRAIN_POINTS = {"train", "evaluate", "register"}
"""Lives aimed inside a training ask for a retrain first (journaled: redone until done)."""


def _ask_retrain(daemon: Daemon) -> None:
    def ask() -> None:
        try:
            daemon.engine().retrain(actor="tester", reason="crash test")
        except Exception:
            pass  # the daemon is killed under the request; the job is journaled

    threading.Thread(target=ask, daemon=True).start()


def _latest_runs(engine: RemoteEngine) -> dict[str, int]:
    lanes = engine.stage_lanes()["lanes"]
    return {lane["stage"]: lane["run_id"] or 0 for lane in lanes}


def _retrain_jobs(engine: RemoteEngine) -> int:
    """Retrain jobs running or queued (the journal's resumed ones among them)."""
    return sum(job["kind"] == "retrain" for job in engine.status()["engine"]["queue"])


def _new_run(engine: RemoteEngine, lane: str, before: int) -> bool:
    try:
        return _latest_runs(engine).get(lane, 0) > before
    except Exception:  # between two answers of a busy control API
        return False


def _live(root: Path, point: str, waiting: list[Path], rng: random.Random) -> tuple[bool, bool]:
    """One daemon life killed at `point`; whether the kill landed there, and whether the
    life asked for a retrain."""
    incoming = root / "data" / "incoming"
    daemon = Daemon(root)
    if point == "start":
        daemon.claimed()
        daemon.kill()
        return True, False
    engine = daemon.ready()
    before = _latest_runs(engine).get(point, 0)
    asked = point in RETRAIN_POINTS
    if point in ("ingest", "moment") and waiting:
        path = waiting.pop(0)
        shutil.copy(path, incoming / path.name)
    if asked:
        queued = _retrain_jobs(engine)
        _ask_retrain(daemon)
        wait_until(lambda: _retrain_jobs(engine) > queued, 60, "the retrain's job")
    hit = True
    if point == "moment":
        threading.Event().wait(rng.uniform(0, 2))
    else:
        try:
            wait_until(lambda: _new_run(engine, point, before), 120, point, 0.02)
        except AssertionError:  # that stage never started in this life
            hit = False
    daemon.kill()
    assert daemon.process.returncode == -9
    return hit, asked


@pytest.mark.slow
def test_kill_9_at_many_points(make_project: Any, small_reference: Path, tmp_path: Path) -> None:
    rng = random.Random(13)
    root = make_project("crash", models=TWO)
    incoming = root / "data" / "incoming"
    drops = slices(small_reference, tmp_path / "drops", [600] + [200] * 10)
    shutil.copy(drops[0], incoming / drops[0].name)
    waiting = drops[1:]
    landed: dict[str, int] = dict.fromkeys(POINTS, 0)
    retrains_asked = 0
    for life in range(LIVES):
        point = POINTS[life % len(POINTS)]
        hit, asked = _live(root, point, waiting, rng)
        landed[point] += hit
        retrains_asked += asked
    for path in waiting:
        shutil.copy(path, incoming / path.name)

    # The last life: recovery and the journal finish what the killed ones left.
    daemon = Daemon(root)
    try:
        engine = daemon.ready()
        wait_until(
            lambda: sum(engine.status()["batches"].values()) >= len(drops), 180, "every drop"
        )
        daemon.idle(engine, timeout=300)
        assert daemon.stop(timeout=30) == 0
    finally:
        if daemon.process.poll() is None:
            daemon.kill()

    # Every kill aimed at a stage landed inside one at least once.
    assert all(landed[p] >= 1 for p in POINTS), landed
    hashes = {sha256_file(p): p.name for p in drops}
    with open_project(root) as project:
        catalog = project.catalog
        rows = catalog.rows(
            "SELECT content_hash, count(*) AS n FROM batches WHERE status != 'duplicate' GROUP BY 1"
        )
        assert {r["content_hash"]: r["n"] for r in rows} == dict.fromkeys(hashes, 1)
        jobs = catalog.rows("SELECT kind, status, attempts FROM jobs ORDER BY job_id")
        versions = catalog.rows(
            "SELECT version, name, dataset_id, training_run_id FROM model_versions ORDER BY version"
        )
        champion = catalog.scalar("SELECT version FROM aliases WHERE alias = 'champion'")
        assert champion is not None
        model = load_model(project, int(champion))  # hash-verified ONNX that loads
        assert model.version == champion
        # Each ingest a kill interrupted was redone at the next start, once.
        interrupted = catalog.rows(
            "SELECT DISTINCT json_extract_string(inputs_json, '$.sha256') AS sha256"
            " FROM stage_runs WHERE stage = 'ingest' AND status = 'interrupted'"
        )
        redone = [
            catalog.scalar(
                "SELECT count(*) FROM batches WHERE content_hash = ? AND status != 'duplicate'",
                [r["sha256"]],
            )
            for r in interrupted
        ]
    # Each retrain asked was journaled once and finished; each one a kill landed in ran again.
    assert [j["kind"] for j in jobs] == ["retrain"] * retrains_asked
    assert all(j["status"] == "succeeded" for j in jobs), jobs
    inside_training = landed["train"] + landed["evaluate"] + landed["register"]
    assert sum(j["attempts"] for j in jobs) >= retrains_asked + min(1, inside_training)
    assert any(j["attempts"] >= 2 for j in jobs), jobs
    # All or none: the versions come in whole runs of the two candidates.
    assert versions and len(versions) % 2 == 0
    for first, second in zip(versions[::2], versions[1::2], strict=True):
        assert {first["name"], second["name"]} == {"linear", "linear_b"}
        assert first["dataset_id"] == second["dataset_id"]
    assert redone == [1] * len(interrupted)
    doctor = cli("doctor", "--json", cwd=root)
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert json.loads(doctor.stdout)["ok"] is True
