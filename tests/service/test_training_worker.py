"""An engine service trains in a child process (engine.service.training_worker): the same model
bytes as in process, progress and errors arrive in the engine, a killed child fails only
its candidate, and a stop does not wait for a training."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from engine.core.errors import ConfigError, EngineStopping, MldeckError, TrainingError
from engine.core.events import Event, Progress, ignore_events
from engine.core.owner import pid_alive
from engine.core.project import open_project
from engine.data.dataset import prepare_dataset
from engine.data.features import feature_spec
from engine.models.training import train_candidate
from engine.pipeline.intake import ingest_file
from engine.pipeline.retrain import propose
from engine.service.engine_service import EngineService
from engine.service.training_worker import TrainingWorker
from tests.conftest import REPO, build_trained
from tests.daemon_helpers import wait_until

MODELS = """
[models.linear]
kind = "linear"

[models.boost]
kind = "gradient_boosting"
n_estimators = 15
"""

SLOW = """
[models.linear]
kind = "linear"

[models.slow]
kind = "gradient_boosting"
n_estimators = 20000
"""
"""`slow` fits for minutes: it is killed or stopped long before it ends."""


def ingested(root: Path, data: Path) -> Path:
    with open_project(root) as project:
        ingest_file(project, data)
    return root


def started(root: Path) -> EngineService:
    """The engine as `mldeck daemon` and the UI start it (the parts do not train)."""
    service = EngineService(open_project(root), ())
    service.start()
    return service


def next_event(events: queue.Queue[Event | None], match: Callable[[Event], bool]) -> Event:
    while True:
        event = events.get(timeout=120)
        assert event is not None, "the engine stopped first"
        if match(event):
            return event


def fitting(name: str) -> Callable[[Event], bool]:
    return lambda e: isinstance(e, Progress) and e.subject == name and e.detail.startswith("fit")


def train_in_thread(service: EngineService, only: list[str]) -> tuple[threading.Thread, dict]:
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["answer"] = service.train(actor="tester", only=only)
        except MldeckError as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def train_runs(root: Path) -> list[dict[str, Any]]:
    with open_project(root) as project:
        return project.catalog.rows(
            "SELECT json_extract_string(inputs_json, '$.candidate') AS candidate, status, error,"
            " outputs_json FROM stage_runs WHERE stage = 'train' ORDER BY run_id"
        )


def onnx_hashes(root: Path) -> dict[str, str]:
    with open_project(root) as project:
        rows = project.catalog.rows(
            "SELECT t.candidate, v.onnx_hash FROM model_versions v"
            " JOIN training_runs t USING (training_run_id)"
        )
    return {r["candidate"]: r["onnx_hash"] for r in rows}


@pytest.mark.slow
def test_service_trains_in_a_warm_child_with_the_bytes_of_an_in_process_training(
    make_project: Any, small_reference: Path, tmp_path: Path
) -> None:
    root = ingested(make_project("child", models=MODELS), small_reference)
    service = started(root)
    events = service.hub.subscribe()
    try:
        answer = service.train(actor="tester", only=["linear", "boost"])
        worker = service.training.pid
        linear = next(c["version"] for c in answer["candidates"] if c["name"] == "linear")
        again = service.reproduce(linear, actor="tester")
        assert service.training.pid == worker  # the same warm process trained again
    finally:
        assert service.close()
    assert worker is not None and worker != os.getpid()
    assert not pid_alive(worker)  # closing the engine ended it

    assert [c["status"] for c in answer["candidates"]] == ["registered", "registered"]
    runs = train_runs(root)
    assert [json.loads(r["outputs_json"])["pid"] for r in runs] == [worker, worker]
    assert again["verdict"] == "identical"
    seen = []
    while (event := events.get_nowait()) is not None:
        if isinstance(event, Progress) and event.stage == "train":
            seen.append((event.subject, event.detail))
    assert ("linear", "fitting LogisticRegression") in seen
    assert ("boost", "exporting to ONNX") in seen

    in_process = tmp_path / "in_process"
    build_trained(in_process, small_reference, MODELS)
    assert json.loads(train_runs(in_process)[0]["outputs_json"])["pid"] == os.getpid()
    assert onnx_hashes(root) == onnx_hashes(in_process)


@pytest.mark.slow
def test_errors_raised_in_the_child_arrive_with_their_class_and_message(
    make_project: Any, small_reference: Path
) -> None:
    models = '[models.typo]\nkind = "linear"\nmax_iterr = 50\n\n[models.bad]\nkind = "linear"\nC = -1.0\n'
    root = ingested(make_project("errors", models=models), small_reference)
    worker = TrainingWorker()
    try:
        with open_project(root) as project:
            spec = feature_spec(project.config, "linear")
            dataset = prepare_dataset(project, spec)
            for candidate, kind in zip(
                project.config.candidates, (ConfigError, TrainingError), strict=True
            ):
                with pytest.raises(kind) as here:
                    train_candidate(candidate, dataset, spec, 0, ignore_events)
                with pytest.raises(kind) as there:
                    worker.train(candidate, dataset, spec, 0, ignore_events)
                assert type(there.value) is type(here.value)
                assert there.value.msg == here.value.msg
                assert there.value.title == here.value.title
        assert here.value.msg.startswith("models.bad: The 'C' parameter")
        assert worker.pid is not None and pid_alive(worker.pid)  # an error does not end it
    finally:
        worker.close()
    with pytest.raises(EngineStopping):
        worker.train(candidate, dataset, spec, 0, ignore_events)


def test_typo_in_a_param_fails_the_candidate_with_the_config_message(
    make_project: Any, small_reference: Path
) -> None:
    models = '[models.linear]\nkind = "linear"\nmax_iterr = 50\n'
    root = ingested(make_project("typo", models=models), small_reference)
    service = started(root)
    try:
        with pytest.raises(TrainingError) as failed:
            service.train(actor="tester", only=[])
    finally:
        assert service.close()
    assert failed.value.msg == (
        "every candidate failed: linear: models.linear.max_iterr: not a parameter of linear"
        " (did you mean 'max_iter'?)"
    )


@pytest.mark.slow
def test_a_killed_worker_fails_its_candidate_and_the_next_training_gets_a_new_one(
    make_project: Any, small_reference: Path
) -> None:
    root = ingested(make_project("killed", models=SLOW), small_reference)
    service = started(root)
    events = service.hub.subscribe()
    try:
        thread, outcome = train_in_thread(service, ["slow"])
        next_event(events, fitting("slow"))
        killed = service.training.pid
        assert killed is not None
        os.kill(killed, signal.SIGKILL)
        thread.join(60)
        assert not thread.is_alive()
        answer = service.train(actor="tester", only=["linear"])
        second = service.training.pid
        assert second not in (None, killed)
        # Killed between two trainings (e.g. by the OOM killer), and a training asked for
        # at once, while the dying child may still look alive: it gets a new child.
        os.kill(second, signal.SIGKILL)
        again = service.train(actor="tester", only=["linear"])
        assert service.training.pid not in (None, killed, second)
    finally:
        assert service.close()

    error = outcome["error"]
    assert isinstance(error, TrainingError)
    died = (
        f"the training process (pid {killed}) died (killed by SIGKILL, e.g. out of memory)"
        " while slow trained"
    )
    assert error.msg.startswith(f"every candidate failed: slow: {died}")
    assert answer["candidates"][0]["status"] == "registered"
    assert again["candidates"][0]["status"] == "registered"
    slow, linear, _ = train_runs(root)
    assert (slow["candidate"], slow["status"]) == ("slow", "failed")
    assert slow["error"].startswith(died)
    assert (linear["candidate"], linear["status"]) == ("linear", "succeeded")


def test_stopping_the_engine_ends_a_training_and_journals_it_for_the_next_start(
    make_project: Any, small_reference: Path
) -> None:
    root = ingested(make_project("stopped", models=SLOW), small_reference)
    service = started(root)
    events = service.hub.subscribe()
    thread, outcome = train_in_thread(service, ["slow"])
    next_event(events, fitting("slow"))
    worker = service.training.pid
    assert worker is not None
    # The pipeline finished within the stop's grace (7 s), though `slow` fits for minutes.
    assert service.close()
    thread.join(10)
    assert isinstance(outcome["error"], EngineStopping)
    assert not pid_alive(worker)
    with open_project(root) as project:
        jobs = project.catalog.rows("SELECT kind, status FROM jobs")
        versions = project.catalog.scalar("SELECT count(*) FROM model_versions")
    assert jobs == [{"kind": "train", "status": "running"}]  # the next start runs it again
    assert versions == 0
    [run] = train_runs(root)
    assert run["status"] == "failed"
    assert run["error"].startswith("the engine stopped while slow trained")


UNDER_A_UI = """
import sys
from pathlib import Path
from engine.data.dataset import prepare_dataset
from engine.core.events import ignore_events
from engine.data.features import feature_spec
from engine.core.project import open_project
from engine.service.training_worker import TrainingWorker

class Captured:  # what Textual puts in sys.stderr while an app runs
    def write(self, text): return len(text)
    def flush(self): pass
    def fileno(self): return -1

with open_project(Path(sys.argv[1])) as project:
    spec = feature_spec(project.config, "linear")
    dataset = prepare_dataset(project, spec)
    candidate = project.config.candidates[0]
sys.stderr = Captured()
worker = TrainingWorker()
trained = worker.train(candidate, dataset, spec, 0, ignore_events)
worker.close()
print("trained in", trained.pid)
"""


@pytest.mark.slow
def test_a_worker_started_under_a_terminal_ui_trains_and_writes_nothing_on_the_terminal(
    make_project: Any, small_reference: Path
) -> None:
    # max_iter = 1: sklearn warns that lbfgs did not converge, on the child's stderr
    root = ingested(
        make_project("ui", models='[models.linear]\nkind = "linear"\nmax_iter = 1\n'),
        small_reference,
    )
    done = subprocess.run(
        [sys.executable, "-c", UNDER_A_UI, str(root)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("trained in ")
    assert done.stderr == ""


@pytest.mark.slow
def test_an_accepted_retrain_cut_short_by_a_stop_runs_at_the_next_start(
    make_project: Any, small_reference: Path
) -> None:
    root = ingested(make_project("accepted", models=SLOW), small_reference)
    with open_project(root) as project:
        proposal = propose(project, "person", {"note": "a test"})["proposal_id"]
    service = started(root)
    events = service.hub.subscribe()
    outcome: dict[str, Any] = {}

    def accept() -> None:
        try:
            service.decide(proposal, accept=True, actor="tester", reason="looks right")
        except MldeckError as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    next_event(events, fitting("slow"))
    assert service.close()
    thread.join(10)
    assert isinstance(outcome["error"], EngineStopping)
    with open_project(root) as project:
        assert project.catalog.rows("SELECT kind, status FROM jobs") == [
            {"kind": "decide", "status": "running"}
        ]
    config = root / "mldeck.toml"  # the rerun trains what the config says then: fast
    config.write_text(config.read_text().replace("n_estimators = 20000", "n_estimators = 5"))

    service = started(root)
    try:
        wait_until(service.queue.idle, 120, "the resumed decision")
    finally:
        assert service.close()
    with open_project(root) as project:
        catalog = project.catalog
        assert catalog.rows("SELECT kind, status FROM jobs") == [
            {"kind": "decide", "status": "succeeded"}
        ]
        actions = [
            r["action"] for r in catalog.rows("SELECT action FROM audit_log ORDER BY entry_id")
        ]
        status = catalog.scalar(
            "SELECT status FROM retrain_proposals WHERE proposal_id = ?", [proposal]
        )
        versions = catalog.scalar("SELECT count(*) FROM model_versions")
    assert status == "accepted"
    assert actions.count("retrain_accepted") == 1  # recorded once, by the first run
    # the first run's retrain was cut short; the resumed one finished
    assert actions[actions.index("retrain_accepted") :] == [
        "retrain_accepted",
        "retrain_started",
        "retrain_failed",
        "retrain_started",
        "promote",  # the project had no champion: its first model becomes one
        "retrain_finished",
    ]
    # the first run was cut short before its one registration transaction: nothing of it is
    # registered (a run registers all its versions or none); linear and slow by the resumed one
    assert versions == 2
