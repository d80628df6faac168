"""`mldeck daemon` as a real process on a temp project: the watched folders, one
owner per project, the CLI through its control API, the event stream, a graceful stop."""

from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path
from typing import Any

import pytest

from engine.core.events import JobFinished
from engine.core.owner import OWNER_FILE, read_owner
from engine.core.project import open_project
from tests.conftest import TrainedTemplates
from tests.daemon_helpers import Daemon, cli, wait_until
from tests.helpers import LINEAR, TWO_LINEAR, run_cli, slices

__all__ = ["LINEAR", "slices"]  # imported from here by test_retrain and test_crash


def batches(engine: Any) -> list[dict[str, Any]]:
    return engine.status()["recent_batches"]


@pytest.fixture
def project(make_project: Any) -> Path:
    return make_project("loans", models=LINEAR)


def test_dropped_files_are_each_ingested_once(
    project: Path, small_reference: Path, tmp_path: Path
) -> None:
    parts = slices(small_reference, tmp_path / "parts", [300, 300, 300, 300, 50, 50])
    incoming = project / "data" / "incoming"
    shutil.copy(parts[0], incoming / "present_at_start.csv")
    daemon = Daemon(project)
    try:
        engine = daemon.ready()
        seen: list[Any] = []
        stream = threading.Thread(
            target=lambda: seen.extend(e for e in engine.events() if isinstance(e, JobFinished)),
            daemon=True,
        )
        stream.start()
        wait_until(lambda: len(batches(engine)) == 1, what="the file present at start-up")

        # written in chunks, with pauses, by one writer: taken once it is closed
        data = parts[1].read_bytes()
        with open(incoming / "chunked.csv", "wb") as handle:
            for start in range(0, len(data), len(data) // 4 + 1):
                handle.write(data[start : start + len(data) // 4 + 1])
                handle.flush()
                os.fsync(handle.fileno())
        # written under a temporary name, then renamed into place
        shutil.copy(parts[2], incoming / "renamed.csv.part")
        os.replace(incoming / "renamed.csv.part", incoming / "renamed.csv")
        # the same bytes under another name, a malformed file, and names never taken
        shutil.copy(parts[1], incoming / "same_bytes.csv")
        (incoming / "broken.csv").write_text("loan_id,age\n1,2,3,4\n5\n")
        shutil.copy(parts[3], incoming / ".hidden.csv")
        shutil.copy(parts[3], incoming / "later.tmp")
        wait_until(lambda: len(batches(engine)) == 5, what="five batches")
        # nothing more may come: a sentinel file dropped last is ingested after every earlier
        # report (one watch reports in order, and ingest jobs run in order), so once it is
        # in, any second batch of an earlier file or an ignored name would be too
        shutil.copy(parts[4], incoming / "zz_sentinel.csv")
        wait_until(
            lambda: any(b["source_name"] == "zz_sentinel.csv" for b in batches(engine)),
            what="the sentinel",
        )
        daemon.idle(engine)
        found = {b["source_name"]: b for b in batches(engine)}
        assert len(batches(engine)) == 6
        assert found.pop("zz_sentinel.csv")["status"] in {"accepted", "warned"}
        ingested = {"accepted", "warned"}  # warned: soft issues (e.g. a value out of range)
        status = {name: b["status"] for name, b in found.items()}
        assert status.pop("same_bytes.csv") == "duplicate"
        assert status.pop("broken.csv") == "quarantined"
        assert set(status) == {"present_at_start.csv", "chunked.csv", "renamed.csv"}
        assert set(status.values()) <= ingested
        assert found["chunked.csv"]["row_count"] == 300  # never read half-way
        assert found["same_bytes.csv"]["duplicate_of"] == found["chunked.csv"]["batch_id"]
        # the daemon kept running after the malformed file, and said so on its event stream
        assert engine.status()["engine"]["parts"] == ["serve", "watcher", "scheduler"]
        # (the file present at start may be ingested before the stream is subscribed)
        wait_until(
            lambda: (
                {e.subject for e in seen if e.kind == "ingest"} >= {"broken.csv", "chunked.csv"}
            ),
            30,
            "events",
        )
        assert daemon.stop() == 0
    finally:
        if daemon.process.poll() is None:
            daemon.kill()
    stream.join(timeout=10)
    assert not stream.is_alive()  # the event stream ended with the daemon

    # restarted: the files are all still there, and nothing is ingested again
    daemon = Daemon(project)
    try:
        engine = daemon.ready()
        # the start-up scan's reports are queued before a file dropped now: once it is in,
        # they have all been decided on
        shutil.copy(parts[5], incoming / "zz_sentinel_2.csv")
        wait_until(
            lambda: any(b["source_name"] == "zz_sentinel_2.csv" for b in batches(engine)),
            what="the second sentinel",
        )
        daemon.idle(engine)
        assert len(batches(engine)) == 7
        assert daemon.stop() == 0
    finally:
        if daemon.process.poll() is None:
            daemon.kill()


@pytest.mark.slow
def test_a_burst_of_files_is_ingested_in_order(make_project: Any) -> None:
    # Three columns, two rows a file: the test is about the queue, not validation.
    count = 1000
    project = make_project("burst", target="y", id_column="id", models=LINEAR)
    incoming = project / "data" / "incoming"
    daemon = Daemon(project)
    try:
        engine = daemon.ready()
        names = []
        for i in range(count):
            # names in another order than they are written: the write order is what counts
            name = f"burst_{(i * 7919) % count:04d}.csv"
            (incoming / name).write_text(f"id,x,y\n{2 * i},{i * 0.5},{i % 2}\n{2 * i + 1},{i},1\n")
            names.append(name)
        wait_until(
            lambda: sum(engine.status()["batches"].values()) == count,
            900,
            f"{count} batches",
            interval=1.0,
        )
        assert daemon.stop(timeout=30) == 0
    finally:
        if daemon.process.poll() is None:
            daemon.kill()
    with open_project(project) as opened:
        got = opened.catalog.rows("SELECT source_name, status FROM batches ORDER BY batch_id")
    assert [r["source_name"] for r in got] == names  # in order, none lost, none doubled
    assert {r["status"] for r in got} <= {"accepted", "warned"}


def test_one_owner_per_project(project: Path) -> None:
    first = Daemon(project)
    try:
        first.ready()
        second = cli("daemon", "--port", "1", cwd=project)
        assert second.returncode == 1
        assert "held by `mldeck daemon`" in second.stderr
        assert f"process {first.process.pid}" in second.stderr
        assert "Traceback" not in second.stderr
        serve = cli("serve", cwd=project)
        assert serve.returncode == 1 and "held by `mldeck daemon`" in serve.stderr
    finally:
        first.kill()  # dies without cleaning up: its owner file stays behind
    assert (project / ".mldeck" / OWNER_FILE).exists()
    assert read_owner(project / ".mldeck") is None  # stale: its process is gone
    taker = Daemon(project)
    try:
        engine = taker.ready()
        assert engine.status()["engine"]["pid"] == taker.process.pid
        assert taker.stop() == 0
    finally:
        if taker.process.poll() is None:
            taker.kill()
    assert not (project / ".mldeck" / OWNER_FILE).exists()


# ------------------------------------------------------------------ the CLI through the daemon


@pytest.fixture
def trained(trained_templates: TrainedTemplates) -> Path:
    """The session's trained TWO_LINEAR project: a template to copy, never to open."""
    root, versions = trained_templates.get(TWO_LINEAR)
    assert versions == [1, 2]
    return root


def _volatile_free(value: Any) -> Any:
    """Answers without what differs between two runs of the same commands: times and durations."""
    if isinstance(value, dict):
        return {
            k: _volatile_free(v)
            for k, v in value.items()
            if not (
                k.endswith("_at")
                or k in ("duration_s", "window_start", "window_end", "head_hash", "bytes")
            )
        }
    if isinstance(value, list):
        return [_volatile_free(v) for v in value]
    return value


COMMANDS = [
    ["ingest", "{batch}", "--json"],
    ["drift", "--json"],
    ["models", "--json"],
    ["promote", "2", "--reason", "v2 looks better", "--json"],
    ["rollback", "--reason", "v2 misbehaves", "--json"],
    ["train", "--only", "linear", "--json"],
    ["retrain", "--reason", "fresh data", "--json"],
    ["retrain", "--list", "--json"],
    ["doctor", "--json"],
    ["alerts", "--all", "--json"],
    ["perf", "--json"],
    ["lineage", "1", "--json"],
    ["reproduce", "1", "--json"],
    ["audit", "--kind", "promote", "--json"],
    ["audit", "verify", "--json"],
    ["report", "--out", "{report}", "--json"],
    ["status", "--json"],
]


def _answers(root: Path, batch: Path) -> list[Any]:
    out = []
    files = {"{batch}": batch.as_posix(), "{report}": (batch.parent / "report.html").as_posix()}
    for command in COMMANDS:
        args = [files.get(a, a) for a in command]
        result = run_cli(args, cwd=root)
        assert result.exit_code == 0, (args, result.stderr)
        out.append(_volatile_free(json.loads(result.stdout)))
    return out


@pytest.mark.slow  # every read command twice, in process and through a daemon: ~45 s here
def test_cli_answers_the_same_through_the_daemon(
    trained: Path, small_reference: Path, tmp_path: Path
) -> None:
    (batch,) = slices(small_reference, tmp_path / "batch", [400])
    direct, through = tmp_path / "direct", tmp_path / "through"
    shutil.copytree(trained, direct)
    shutil.copytree(trained, through)
    expected = _answers(direct, batch)
    daemon = Daemon(through)
    try:
        daemon.ready()
        answers = _answers(through, batch)
        human = run_cli(["drift"], cwd=through).stdout  # a table with no times in it
        unknown = run_cli(["explain", "no-such-request"], cwd=through)
        assert daemon.stop() == 0
    finally:
        if daemon.process.poll() is None:
            daemon.kill()
    assert "Drift of batch" in human and run_cli(["drift"], cwd=direct).stdout == human
    direct_unknown = run_cli(["explain", "no-such-request"], cwd=direct)
    assert (unknown.exit_code, unknown.stderr) == (1, direct_unknown.stderr)
    status, expected_status = answers.pop(), expected.pop()
    assert status.pop("engine")["parts"] == ["serve", "watcher", "scheduler"]
    assert status.pop("serving")["version"] == status["champion"]["version"]
    assert expected_status.pop("engine") is None and expected_status.pop("serving") is None
    assert (status.pop("root"), expected_status.pop("root")) == (str(through), str(direct))
    assert status == expected_status
    assert answers == expected
    assert [a["status"] for a in answers[0]] == ["accepted"]
    assert answers[3] == {"champion": 2, "previous": 1}


def test_graceful_stop_flushes_predictions_and_releases_the_project(
    trained: Path, tmp_path: Path, small_reference: Path
) -> None:
    import http.client

    import polars as pl

    root = tmp_path / "loans"
    shutil.copytree(trained, root)
    body = json.dumps(
        {"dataframe_records": pl.read_csv(small_reference).head(2).drop("default").to_dicts()}
    ).encode()
    daemon = Daemon(root)
    try:
        engine = daemon.ready()
        conn = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=10)
        for _ in range(25):
            conn.request(
                "POST", "/invocations", body=body, headers={"Content-Type": "application/json"}
            )
            assert conn.getresponse().read() and True
        # a retrain is running when the stop comes
        threading.Thread(
            target=lambda: _ignore(lambda: engine.retrain(actor="t", reason="r")), daemon=True
        ).start()
        wait_until(lambda: engine.status()["engine"]["queue"], 30, "the retrain to start")
        assert daemon.stop(timeout=10) == 0
    finally:
        if daemon.process.poll() is None:
            daemon.kill()
    assert not (root / ".mldeck" / OWNER_FILE).exists()
    with open_project(root) as opened:
        logged = opened.catalog.scalar(
            "SELECT count(DISTINCT request_id) FROM predictions WHERE NOT shadow"
        )
        jobs = opened.catalog.rows("SELECT kind, status FROM jobs")
    assert logged == 25
    # the retrain either finished or stays journaled to run at the next start
    assert jobs and jobs[0]["kind"] == "retrain" and jobs[0]["status"] in ("succeeded", "running")


def _ignore(call: Any) -> None:
    try:
        call()
    except Exception:
        pass


def test_mldeck_status_shows_the_engine(trained: Path, tmp_path: Path) -> None:
    root = tmp_path / "loans"
    shutil.copytree(trained, root)
    daemon = Daemon(root)
    try:
        daemon.ready()
        shown = cli("status", cwd=root)
        assert daemon.stop() == 0
    finally:
        if daemon.process.poll() is None:
            daemon.kill()
    assert shown.returncode == 0, shown.stderr
    assert "Engine: serve + watcher + scheduler" in shown.stdout
    assert "queue: idle" in shown.stdout and "Recent batches" in shown.stdout


def test_the_schedule_proposes_a_retrain_and_a_person_dismisses_it(
    trained: Path, tmp_path: Path
) -> None:
    root = tmp_path / "loans"
    shutil.copytree(trained, root)
    config = root / "mldeck.toml"
    config.write_text(config.read_text().replace("# every = ", "every = "))
    with open_project(root) as opened:
        assert opened.config.retrain.every == "7d"
        opened.catalog.execute("UPDATE model_versions SET created_at = created_at - INTERVAL 8 DAY")
    daemon = Daemon(root)
    try:
        engine = daemon.ready()
        (proposal,) = wait_until(engine.proposals, 30, "a schedule proposal")
        assert proposal["trigger"] == "schedule" and proposal["status"] == "pending"
        assert proposal["evidence"]["every"] == "7d"
        assert engine.status()["retrain_proposals"][0]["proposal_id"] == proposal["proposal_id"]
        dismissed = cli(
            "retrain", "--dismiss", str(proposal["proposal_id"]), "--reason", "not now", cwd=root
        )
        assert dismissed.returncode == 0, dismissed.stderr
        assert "dismissed" in dismissed.stdout
        # two scheduler passes after the dismissal, their jobs done: not due again for a week
        ticks = engine.status()["engine"]["schedule_ticks"]
        wait_until(
            lambda: engine.status()["engine"]["schedule_ticks"] >= ticks + 2, 30, "two ticks"
        )
        daemon.idle(engine)
        assert [p["status"] for p in engine.proposals()] == ["dismissed"]
        assert daemon.stop() == 0
    finally:
        if daemon.process.poll() is None:
            daemon.kill()
