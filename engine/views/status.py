"""What a project holds, as one JSON-ready dict (the CLI and the UI render it).

Times are ISO 8601 strings in UTC, so the dict reads the same whether it was
built here or came over the control API of the engine that owns the project.
"""

from __future__ import annotations

from typing import Any, cast

from engine.core.answers import (
    AliasInfo,
    PendingProposal,
    RecentBatch,
    RecentRun,
    StatusAnswer,
)
from engine.core.jsonable import iso_rows
from engine.core.project import Project
from engine.records.registry import (
    CHALLENGER,
    CHAMPION,
    alias_version,
    get_version,
    version_metrics,
)


def project_status(
    project: Project,
    recent: int = 10,
    serving: dict[str, Any] | None = None,
    engine: dict[str, Any] | None = None,
) -> StatusAnswer:
    """Batches, quarantine, recent stage runs, champion and challenger.

    Args:
        serving: what the engine that owns the project serves, if one does.
        engine: the owning engine's parts and pipeline queue, if one runs.
    """
    catalog = project.catalog
    counts = {
        r["status"]: int(r["n"])
        for r in catalog.rows("SELECT status, count(*) AS n FROM batches GROUP BY 1 ORDER BY 1")
    }
    rows = catalog.row(
        "SELECT coalesce(sum(row_count), 0) AS rows,"
        " coalesce(sum(row_count) FILTER (WHERE labelled), 0) AS labelled"
        " FROM batches WHERE status IN ('accepted', 'warned')"
    ) or {"rows": 0, "labelled": 0}
    from engine.views.tables import quarantined

    quarantine = quarantined(project)
    runs = catalog.rows(
        "SELECT run_id, stage, status, started_at, ended_at,"
        " epoch(ended_at) - epoch(started_at) AS duration_s, error"
        " FROM stage_runs ORDER BY run_id DESC LIMIT ?",
        [recent],
    )
    batches = catalog.rows(
        "SELECT batch_id, kind, source_name, status, row_count, duplicate_of, ingested_at"
        " FROM batches ORDER BY batch_id DESC LIMIT ?",
        [recent],
    )
    proposals = catalog.rows(
        "SELECT proposal_id, trigger, created_at FROM retrain_proposals WHERE status = 'pending'"
        " ORDER BY proposal_id"
    )

    def alias_info(alias: str) -> AliasInfo | None:
        version = alias_version(catalog, alias)
        if version is None:
            return None
        row = get_version(catalog, version)
        return {
            "version": version,
            "name": row["name"],
            "kind": row["kind"],
            "device": row["device"],
            "metrics": version_metrics(catalog, version),
        }

    return {
        "name": project.config.name,
        "root": str(project.root),
        "target": project.config.target,
        "task": project.config.task,
        "batches": counts,
        "rows": int(rows["rows"]),
        "labelled_rows": int(rows["labelled"]),
        "quarantine": quarantine,
        "recent_batches": cast("list[RecentBatch]", iso_rows(batches)),
        "recent_runs": cast("list[RecentRun]", iso_rows(runs)),
        "retrain_proposals": cast("list[PendingProposal]", iso_rows(proposals)),
        "champion": alias_info(CHAMPION),
        "challenger": alias_info(CHALLENGER),
        "model_versions": int(catalog.scalar("SELECT count(*) FROM model_versions")),
        "serving": serving,
        "engine": engine,
    }
