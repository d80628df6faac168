"""`mldeck doctor`: an integrity check of a project's catalog and object store.

Checks that every object the catalog refers to exists and still hashes to its
name, that the aliases point at registered versions whose ONNX graph verifies
and loads, that no content was ingested twice, that no stage run is left
`running` by a process that is gone, that every version was registered whole
(its training run and metrics), and that the audit chain verifies.
While no engine is working (`idle`), it also reports what a crash left for the
next start to redo or remove: journaled training jobs nobody finished and
staging files in `.mldeck/objects/tmp`. Each problem is one line naming what
and where.
"""

from __future__ import annotations

import json

from engine.core.answers import DoctorAnswer
from engine.core.owner import pid_alive
from engine.core.project import Project
from engine.records.crash_recovery import unfinished_jobs
from storage.audit import verify_chain
from storage.errors import StorageError


def check_project(project: Project, idle: bool = True) -> DoctorAnswer:
    """Returns `{"ok", "problems": [str], "checked": {what: count}}`.

    Args:
        idle: no engine job is running (a running one may be writing staging files and
            its own journal row, which are then not leftovers).
    """
    catalog = project.catalog
    problems: list[str] = []
    checked: dict[str, int] = {}

    referrers: dict[str, list[str]] = {}
    for row in catalog.rows(
        "SELECT batch_id, snapshot_hash FROM batches WHERE snapshot_hash IS NOT NULL"
    ):
        referrers.setdefault(row["snapshot_hash"], []).append(f"batch {row['batch_id']} snapshot")
    for row in catalog.rows("SELECT dataset_id, snapshot_hashes_json FROM datasets"):
        for digest in json.loads(row["snapshot_hashes_json"]):
            referrers.setdefault(digest, []).append(f"dataset {row['dataset_id']}")
    for row in catalog.rows("SELECT version, onnx_hash, native_hash FROM model_versions"):
        referrers.setdefault(row["onnx_hash"], []).append(f"v{row['version']} ONNX graph")
        if row["native_hash"]:
            referrers.setdefault(row["native_hash"], []).append(f"v{row['version']} native model")
    for digest, where in sorted(referrers.items()):
        try:
            project.objects.verified_path(digest)
        except StorageError as exc:
            problems.append(f"{', '.join(where)}: {exc.msg}")
    checked["objects"] = len(referrers)

    for row in catalog.rows(
        "SELECT batch_id, quarantine_path FROM batches WHERE quarantine_path IS NOT NULL"
    ):
        path = row["quarantine_path"]
        if not (project.root / path).is_file():
            problems.append(f"batch {row['batch_id']}: its quarantined copy {path} is missing")

    aliases = catalog.rows(
        "SELECT a.alias, a.version, v.status, v.onnx_hash FROM aliases a"
        " LEFT JOIN model_versions v USING (version) ORDER BY a.alias"
    )
    for row in aliases:
        name = f"alias {row['alias']} -> v{row['version']}"
        if row["status"] is None:
            problems.append(f"{name}: no such model version")
        elif row["status"] != "registered":
            problems.append(f"{name}: the version is {row['status']}")
        else:
            problem = _onnx_problem(project, str(row["onnx_hash"]))
            if problem:
                problems.append(f"{name}: {problem}")
    checked["aliases"] = len(aliases)

    # A revalidated batch hands its content on to the batch its revalidation accepted.
    for row in catalog.rows(
        "SELECT content_hash, string_agg(batch_id::VARCHAR, ', ' ORDER BY batch_id) AS ids"
        " FROM batches WHERE status NOT IN ('duplicate', 'revalidated')"
        " GROUP BY content_hash HAVING count(*) > 1"
    ):
        problems.append(
            f"content {row['content_hash'][:12]} was ingested more than once: batches {row['ids']}"
        )
    for row in catalog.rows(
        "SELECT d.batch_id, d.duplicate_of FROM batches d LEFT JOIN batches o"
        " ON o.batch_id = d.duplicate_of WHERE d.status = 'duplicate' AND o.batch_id IS NULL"
    ):
        problems.append(
            f"batch {row['batch_id']} is a duplicate of batch {row['duplicate_of']}, "
            "which does not exist"
        )
    checked["batches"] = int(catalog.scalar("SELECT count(*) FROM batches"))

    for row in catalog.rows(
        "SELECT run_id, stage, pid FROM stage_runs WHERE status = 'running' ORDER BY run_id"
    ):
        if row["pid"] is None or not pid_alive(int(row["pid"])):
            problems.append(
                f"stage run {row['run_id']} ({row['stage']}) is left running by process "
                f"{row['pid']}, which is gone"
            )
    checked["stage_runs"] = int(catalog.scalar("SELECT count(*) FROM stage_runs"))

    for row in catalog.rows(
        "SELECT v.version FROM model_versions v"
        " LEFT JOIN training_runs t USING (training_run_id)"
        " WHERE t.training_run_id IS NULL"
        " OR NOT EXISTS (SELECT 1 FROM metrics m WHERE m.version = v.version)"
        " ORDER BY v.version"
    ):
        problems.append(
            f"v{row['version']} is half-registered (no training run or metrics); "
            "archive it: mldeck archive VERSION --reason ..."
        )
    checked["versions"] = int(catalog.scalar("SELECT count(*) FROM model_versions"))

    if idle:
        for job in unfinished_jobs(catalog):
            problems.append(
                f"job {job['job_id']} ({job['kind']}) was cut short after {job['attempts']} "
                "attempt(s); it runs again when an engine starts (mldeck daemon, or mldeck)"
            )
        leftovers = project.objects.staging_leftovers()
        if leftovers:
            problems.append(
                f"{len(leftovers)} staging file(s) left in {project.objects.tmp_dir} by writes "
                "that never finished; the next command that writes removes them"
            )

    broken = verify_chain(catalog)
    if broken is not None:
        problems.append(f"audit log: entry {broken} does not fit the hash chain")
    checked["audit_entries"] = int(catalog.scalar("SELECT count(*) FROM audit_log"))
    return {"ok": not problems, "problems": problems, "checked": checked}


def _onnx_problem(project: Project, digest: str) -> str | None:
    from engine.core.onnx_tools import make_session

    try:
        make_session(project.objects.read_bytes(digest))
    except StorageError as exc:
        return exc.msg
    except Exception as exc:  # onnxruntime refuses the graph
        return f"its ONNX graph does not load: {type(exc).__name__}: {exc}"
    return None
