"""What a project holds, as one JSON-ready dict (the CLI and the UI render it).

Times are ISO 8601 strings in UTC, so the dict reads the same whether it was
built here or came over the control API of the engine that owns the project.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from engine.project import Project
from engine.registry import CHALLENGER, CHAMPION, alias_version, get_version, version_metrics


def iso(value: Any) -> Any:
    return value.isoformat(timespec="seconds") + "Z" if isinstance(value, datetime) else value


def _iso_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{key: iso(value) for key, value in row.items()} for row in rows]


def project_status(
    project: Project, recent: int = 10, serving: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Batches, quarantine, recent stage runs, champion and challenger.

    Args:
        serving: what the engine that owns the project serves, if one does.
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
    from engine.views import quarantined  # engine.views builds on this module's iso()

    quarantine = quarantined(project)
    runs = catalog.rows(
        "SELECT run_id, stage, status, started_at, ended_at,"
        " epoch(ended_at) - epoch(started_at) AS duration_s, error"
        " FROM stage_runs ORDER BY run_id DESC LIMIT ?",
        [recent],
    )

    def alias_info(alias: str) -> dict[str, Any] | None:
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
        "recent_runs": _iso_rows(runs),
        "champion": alias_info(CHAMPION),
        "challenger": alias_info(CHALLENGER),
        "model_versions": int(catalog.scalar("SELECT count(*) FROM model_versions")),
        "serving": serving,
    }
