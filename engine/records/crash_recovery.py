"""What a process that died (kill -9, power loss) leaves, and how the next one tidies it.

A writer that opens the project (a CLI command, the engine service) first marks
the stage runs a dead process left `running` as interrupted and removes the
staging files unfinished writes left in `.mldeck/objects/tmp`: only one process
writes a project at a time (the catalog's lock), so nothing else is writing
them. A training run registers its versions in one transaction, so there is
never a half-registered run to undo; a journaled training job whose versions
were registered just before the engine died is not trained again
(`registered_since`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from engine.core.project import Project
from engine.records.stage_runs import mark_interrupted
from storage.catalog import Catalog


def recover_on_open(project: Project) -> dict[str, int]:
    """Tidy what a dead process left; returns what was done, by kind."""
    return {
        "interrupted_stage_runs": mark_interrupted(project.catalog),
        "staging_files_removed": project.objects.clear_staging(),
    }


def registered_since(catalog: Catalog, since: datetime | None) -> list[int]:
    """The versions registered at or after `since` (a job's start): jobs run one at a
    time, so these are that job's."""
    if since is None:
        return []
    return [
        int(r["version"])
        for r in catalog.rows(
            "SELECT version FROM model_versions WHERE created_at >= ? ORDER BY version", [since]
        )
    ]


def unfinished_jobs(catalog: Catalog) -> list[dict[str, Any]]:
    """Journaled jobs (train, retrain, decide) that no engine finished."""
    return catalog.rows(
        "SELECT job_id, kind, status, attempts, started_at FROM jobs"
        " WHERE status IN ('queued', 'running') ORDER BY job_id"
    )
