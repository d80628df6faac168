"""kill -9 at many points of a daemon's run (file drops, ingest, a retrain with its
registration and promotion), restarting it each time: afterwards every input is
ingested exactly once, `mldeck doctor` passes and the champion is a complete model."""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path
from typing import Any

from engine.core.project import open_project
from engine.serving.model_slot import load_model
from storage.objects import sha256_file
from tests.daemon_helpers import Daemon, cli, wait_until
from tests.test_daemon import LINEAR, slices

LIVES = [
    0.0,
    0.2,
    0.4,
    0.6,
    0.8,
    0.3,
    0.5,
    0.7,
    1.0,
    1.5,
    2.0,
    2.5,
    3.0,
    6.0,
    0.2,
    0.6,
    1.0,
    1.5,
    2.0,
    3.0,
]
"""Seconds each of the 20 daemon lives lasts after it claimed the project, before its
SIGKILL: the first lives die in recovery, the start-up scan and ingest, the later
ones at different depths of a training (fit, ONNX export, registration, promotion)."""
RETRAIN_AT = (8, 16)
"""The lives in which a person asks for a retrain (journaled: redone until it finishes)."""


def _ask_retrain(daemon: Daemon) -> None:
    def ask() -> None:
        try:
            daemon.engine().retrain(actor="tester", reason="crash test")
        except Exception:
            pass  # the daemon is killed under the request; the job is journaled

    threading.Thread(target=ask, daemon=True).start()


def test_kill_9_at_many_points(make_project: Any, small_reference: Path, tmp_path: Path) -> None:
    root = make_project("crash", models=LINEAR)
    incoming = root / "data" / "incoming"
    drops = slices(small_reference, tmp_path / "drops", [400] + [200] * 12)
    shutil.copy(drops[0], incoming / drops[0].name)
    waiting = drops[1:]
    for life, seconds in enumerate(LIVES):
        daemon = Daemon(root)
        daemon.claimed()
        if life % 3 != 2 and waiting:
            path = waiting.pop(0)
            shutil.copy(path, incoming / path.name)
        if life in RETRAIN_AT:
            _ask_retrain(daemon)
        time.sleep(seconds)
        daemon.kill()
    for path in waiting:
        shutil.copy(path, incoming / path.name)

    daemon = Daemon(root)
    try:
        engine = daemon.ready()
        wait_until(
            lambda: sum(engine.status()["batches"].values()) >= len(drops), 120, "every drop"
        )
        daemon.idle(engine)
        if engine.status()["champion"] is None:  # every retrain was cut short: one more
            engine.retrain(actor="tester", reason="after the crashes")
        assert daemon.stop(timeout=30) == 0
    finally:
        if daemon.process.poll() is None:
            daemon.kill()

    hashes = {sha256_file(p): p.name for p in drops}
    with open_project(root) as project:
        rows = project.catalog.rows(
            "SELECT content_hash, count(*) AS n FROM batches WHERE status != 'duplicate' GROUP BY 1"
        )
        assert {r["content_hash"]: r["n"] for r in rows} == dict.fromkeys(hashes, 1)
        champion = project.catalog.scalar("SELECT version FROM aliases WHERE alias = 'champion'")
        assert champion is not None
        model = load_model(project, int(champion))  # hash-verified ONNX that loads
        assert model.version == champion
        jobs = project.catalog.rows("SELECT status, attempts FROM jobs ORDER BY job_id")
        interrupted = project.catalog.rows(
            "SELECT stage, count(*) AS n FROM stage_runs WHERE status = 'interrupted' GROUP BY 1"
        )
    assert interrupted, "no kill landed inside a stage run"
    assert jobs and all(j["status"] == "succeeded" for j in jobs)
    doctor = cli("doctor", "--json", cwd=root)
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert json.loads(doctor.stdout)["ok"] is True
