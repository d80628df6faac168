"""kill -9 matrix: each engine operation killed at several points, then restarted.

For every case a fresh copy of one template project (the sample reference's first
rows ingested and trained by two linear candidates; a retrain proposal pending; a
quarantined week) gets a real `mldeck daemon`; the operation is started (a data
file dropped, a labels file dropped, train, retrain, an accepted proposal, a
revalidation) and the daemon is SIGKILLed at a point chosen by state (its control
API shows a new stage run of the lane aimed at) or after a short random delay.
Then the daemon is started again and left to finish what the journal and the
recovery hold; a revalidation, which is not journaled, is asked again as a person
would; the daemon is stopped and `mldeck doctor` runs.

Each case is checked for: every dropped input ingested exactly once; a journaled
job finished, its training registered once (all its versions, or none if the
kill came before the job was journaled); no half-registered version (versions of
a run come whole); a revalidated batch revalidated once; doctor clean.

Usage:
    .venv/bin/python bench/kill_matrix.py                # 6 operations x 4 points
    .venv/bin/python bench/kill_matrix.py --ops train,retrain --seed 7

Prints one line per case and the counts (kills, inconsistencies); exits 0 when
there was no inconsistency, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SAMPLE = ROOT / "sample_data"
MODELS = '\n[models.linear]\nkind = "linear"\n\n[models.linear_b]\nkind = "linear"\nC = 0.5\n'
CANDIDATES = 2
POINTS: dict[str, tuple[str, ...]] = {
    "ingest": ("ingest", "validate", "monitor", "random"),
    "labels": ("recorded", "recorded", "random", "random"),
    "train": ("prepare", "train", "train:2", "register", "random"),
    "retrain": ("train", "evaluate", "train:2", "register", "random"),
    "accept": ("train", "register", "monitor", "random"),
    "revalidate": ("validate", "monitor", "random", "random"),
}
"""Where each operation is killed: once a new stage run of that lane appears (the
control API's stage lanes; `train:2`: the second one, the run's second candidate, after
the first was trained and evaluated), once a new batch is recorded (`recorded`: a labels file's
rows are stored and its live-performance update runs), or after a random 0-1.5 s."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: Callable[[], Any], timeout: float, what: str, every: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
        except Exception:  # the control API between two answers
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(every)


class Daemon:
    """A `mldeck daemon` process on a project."""

    def __init__(self, root: Path) -> None:
        from engine.core.owner import project_token
        from engine.service.client import RemoteEngine

        self.root = root
        self.port = free_port()
        self.log = open(root.parent / f"daemon-{self.port}.log", "w")  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, "-m", "app", "daemon", "--port", str(self.port)],
            cwd=root,
            env={**os.environ, "PYTHONPATH": str(ROOT), "MLDECK_ACTOR": "kill-matrix"},
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self._engine: Callable[[], Any] = lambda: RemoteEngine(
            f"http://127.0.0.1:{self.port}", project_token(root / ".mldeck")
        )

    def ready(self) -> Any:
        from engine.core.owner import read_owner

        def owned() -> bool:
            if self.process.poll() is not None:
                raise RuntimeError(f"the daemon exited: {self.output()}")
            owner = read_owner(self.root / ".mldeck")
            return owner is not None and owner.pid == self.process.pid

        wait_until(owned, 60, "the daemon to claim the project", 0.05)
        engine = self._engine()
        wait_until(engine.status, 60, "the control API", 0.05)
        return engine

    def idle(self, engine: Any, timeout: float = 300) -> None:
        wait_until(lambda: engine.status()["engine"]["queue"] == [], timeout, "idle", 0.1)

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(timeout=30)
        self.log.close()

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=60)
        self.log.close()
        return code

    def output(self) -> str:
        self.log.flush()
        return (self.root.parent / f"daemon-{self.port}.log").read_text()


def build_template(folder: Path) -> dict[str, Any]:
    """The project every case starts from, and the files the operations drop."""
    import polars as pl

    from engine.core.project import init_project, open_project
    from engine.pipeline.intake import ingest_file
    from engine.pipeline.retrain import propose
    from engine.pipeline.training_run import train

    root = folder / "template"
    init_project(root, target="default", id_column="loan_id")
    with open(root / "mldeck.toml", "a", encoding="utf-8") as config:
        config.write(MODELS)
    truth = json.loads((SAMPLE / "drift_truth.json").read_text())
    week, week_labels = SAMPLE / truth["stream"][0]["file"], SAMPLE / truth["stream"][0]["labels"]
    reference = sorted((SAMPLE / "reference").glob("*.csv"))[0]
    frame = pl.read_csv(reference)
    first = folder / "reference_part.csv"
    frame.head(2000).write_csv(first)
    broken = folder / "no_region.csv"
    frame.slice(2000, 400).drop("region").write_csv(broken)
    with open_project(root) as project:
        ingest_file(project, first)
        train(project)
        proposal = propose(project, "person", {"why": "kill matrix"}, actor="kill-matrix")
        quarantined = ingest_file(project, broken)
    assert quarantined.status == "quarantined", quarantined.status
    return {
        "root": root,
        "week": week,
        "labels": week_labels,
        "proposal_id": proposal["proposal_id"],
        "quarantined": quarantined.batch_id,
    }


def allow_missing_region(root: Path) -> None:
    import tomlkit

    config = root / "mldeck.toml"
    doc = tomlkit.parse(config.read_text(encoding="utf-8"))
    del doc["contract"]["columns"]["region"]  # type: ignore[index,union-attr]
    config.write_text(tomlkit.dumps(doc), encoding="utf-8")


@dataclass
class Case:
    op: str
    point: str
    landed: bool = False
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0


def _latest(engine: Any, lane: str) -> int:
    if lane == "recorded":
        return int(sum(engine.status()["batches"].values()))
    for row in engine.stage_lanes()["lanes"]:
        if row["stage"] == lane:
            return int(row["run_id"] or 0)
    return 0


def _run_counter(engine: Any, lane: str, before: int) -> Callable[[], int]:
    """A poll that counts the runs of `lane` started since the one numbered `before`, by
    the distinct latest run ids it sees (one job's runs of a lane last long enough to be
    seen: a candidate's training takes a second or more)."""
    if lane == "recorded":
        return lambda: _latest(engine, lane) - before
    seen: set[int] = set()

    def count() -> int:
        latest = _latest(engine, lane)
        if latest > before:
            seen.add(latest)
        return len(seen)

    return count


def _start_op(op: str, engine: Any, root: Path, template: dict[str, Any]) -> None:
    """Start the operation; calls that wait for their job run on a thread (the kill
    cuts them off)."""
    if op == "ingest":
        shutil.copy(template["week"], root / "data" / "incoming" / template["week"].name)
        return
    if op == "labels":
        shutil.copy(template["labels"], root / "data" / "labels" / template["labels"].name)
        return
    actor, reason = "kill-matrix", "kill matrix"
    calls: dict[str, Callable[[], Any]] = {
        "train": lambda: engine.train(actor=actor, only=[]),
        "retrain": lambda: engine.retrain(actor=actor, reason=reason),
        "accept": lambda: engine.decide(
            template["proposal_id"], accept=True, actor=actor, reason=reason
        ),
        "revalidate": lambda: engine.revalidate(
            template["quarantined"], actor=actor, reason=reason
        ),
    }
    if op == "revalidate":
        allow_missing_region(root)

    def call() -> None:
        try:
            calls[op]()
        except Exception:
            pass  # killed under the request

    threading.Thread(target=call, daemon=True).start()


def run_case(case: Case, template: dict[str, Any], work: Path, rng: random.Random) -> None:
    from engine.core.project import open_project
    from storage.objects import sha256_file

    root = work / f"{case.op}-{case.point}-{rng.randrange(1 << 30):x}" / "project"
    shutil.copytree(template["root"], root)
    with open_project(root, read_only=True) as project:
        versions_before = int(project.catalog.scalar("SELECT count(*) FROM model_versions"))
    daemon = Daemon(root)
    engine = daemon.ready()
    daemon.idle(engine, 120)
    lane, _, nth = case.point.partition(":")
    before = 0 if lane == "random" else _latest(engine, lane)
    _start_op(case.op, engine, root, template)
    if lane == "random":
        time.sleep(rng.uniform(0, 1.5))
        case.landed = True
    else:
        try:
            count = _run_counter(engine, lane, before)
            wait_until(lambda: count() >= int(nth or 1), 120, case.point)
            case.landed = True
        except TimeoutError:
            case.landed = False
    daemon.kill()

    restarted = Daemon(root)
    try:
        engine = restarted.ready()
        restarted.idle(engine, 300)
        if case.op == "revalidate":  # not journaled: the person asks again
            answer = _revalidate_again(engine, template["quarantined"])
            if answer is not None:
                case.problems.append(answer)
        if restarted.stop() != 0:
            case.problems.append("the restarted daemon did not stop cleanly")
    finally:
        if restarted.process.poll() is None:
            restarted.kill()

    with open_project(root, read_only=True) as project:
        catalog = project.catalog
        for source in (template["week"], template["labels"]):
            n = int(
                catalog.scalar(
                    "SELECT count(*) FROM batches WHERE content_hash = ? AND status != 'duplicate'",
                    [sha256_file(source)],
                )
            )
            dropped = (case.op == "ingest" and source == template["week"]) or (
                case.op == "labels" and source == template["labels"]
            )
            if n != (1 if dropped else 0):
                case.problems.append(f"{source.name} ingested {n} times")
        jobs = catalog.rows("SELECT job_id, kind, status, attempts FROM jobs ORDER BY job_id")
        for job in jobs:
            if job["status"] != "succeeded" and not (
                job["kind"] == "decide" and job["status"] == "failed"
            ):
                case.problems.append(f"job {job['job_id']} ({job['kind']}) is {job['status']}")
        versions = catalog.rows(
            "SELECT version, name, dataset_id, created_at FROM model_versions"
            " WHERE version > ? ORDER BY version",
            [versions_before],
        )
        if len(versions) % CANDIDATES:
            case.problems.append(f"{len(versions)} new versions: a run registered in part")
        runs = len(versions) // CANDIDATES
        if case.op in ("train", "retrain", "accept"):
            expected = 1 if jobs else 0  # journaled before the kill, or never asked
            if runs != expected:
                case.problems.append(f"{runs} training runs registered, expected {expected}")
        elif runs:
            case.problems.append(f"{runs} training runs registered by a {case.op}")
        if case.op == "revalidate":
            n = int(
                catalog.scalar(
                    "SELECT count(*) FROM batches WHERE revalidated_from = ?",
                    [template["quarantined"]],
                )
            )
            if n != 1:
                case.problems.append(f"the quarantined batch was revalidated {n} times")
    doctor = subprocess.run(
        [sys.executable, "-m", "app", "doctor", "--json"],
        cwd=root,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=300,
    )
    try:
        report = json.loads(doctor.stdout)
        case.problems.extend(f"doctor: {p}" for p in report["problems"])
    except json.JSONDecodeError:
        case.problems.append(f"doctor failed: {doctor.stderr.strip()[:200]}")


def _revalidate_again(engine: Any, batch_id: int) -> str | None:
    """Ask the revalidation once more; None when it went through or was already done."""
    try:
        engine.revalidate(batch_id, actor="kill-matrix", reason="again, after the crash")
    except Exception as exc:
        text = str(getattr(exc, "msg", exc))
        if "already" in text or "revalidated" in text:
            return None
        return f"revalidate again failed: {text}"
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ops", default=",".join(POINTS), help="operations, comma-separated")
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    ops = [op.strip() for op in args.ops.split(",") if op.strip()]
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mldeck-kill-") as tmp:
        work = Path(tmp)
        template = build_template(work)
        cases = [Case(op, point) for op in ops for point in POINTS[op]]
        for case in cases:
            began = time.monotonic()
            try:
                run_case(case, template, work, rng)
            except Exception as exc:  # a case that could not run is an inconsistency too
                case.problems.append(f"{type(exc).__name__}: {exc}")
            case.seconds = time.monotonic() - began
            verdict = "ok" if not case.problems else "; ".join(case.problems)
            print(
                f"{case.op:<10} killed at {case.point:<9} "
                f"{'(landed)' if case.landed else '(passed) '} {case.seconds:5.1f} s  {verdict}",
                flush=True,
            )
    kills = len(cases)
    bad = sum(1 for c in cases if c.problems)
    landed = sum(1 for c in cases if c.landed)
    print(
        f"\n{kills} kills ({landed} at the aimed state), {bad} inconsistencies; "
        f"{time.monotonic() - started:.0f} s on {platform.node()} "
        f"({os.cpu_count()} CPUs, Python {platform.python_version()})"
    )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
