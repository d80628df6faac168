"""A small trained project for the UI tests, with fixed times so screens are deterministic.

Built once per test session (the `ui_template` fixture), copied per test: two linear
versions (v1 champion), weeks 1 and 13 of the stream ingested (two drift
windows, week 13 drifted) and one malformed file quarantined.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.core.project import open_project
from engine.pipeline.intake import ingest_file
from storage.audit import GENESIS_HASH, _entry_hash
from storage.catalog import Catalog
from tests.conftest import SAMPLE, TWO_LINEAR, build_trained

BASE = "TIMESTAMP '2025-01-06 09:00:00'"


def freeze_times(catalog: Catalog) -> None:
    """Every timestamp the UI shows set from ids (same order as recorded), the audit
    chain re-hashed so it still verifies."""
    minutes = f"{BASE} + INTERVAL 1 MINUTE *"
    statements = [
        f"UPDATE batches SET ingested_at = {minutes} batch_id",
        f"UPDATE stage_runs SET started_at = {minutes} run_id,"
        " ended_at = CASE WHEN ended_at IS NULL THEN NULL"
        f" ELSE {minutes} run_id + INTERVAL 1 SECOND * (1 + run_id % 4) END",
        f"UPDATE datasets SET created_at = {minutes} dataset_id",
        f"UPDATE feature_definitions SET created_at = {BASE}",
        f"UPDATE training_runs SET started_at = {minutes} training_run_id,"
        f" ended_at = {minutes} training_run_id + INTERVAL 2 SECOND, duration_s = 2.0",
        f"UPDATE model_versions SET created_at = {minutes} version",
        f"UPDATE aliases SET updated_at = {BASE}",
        f"UPDATE reference_profiles SET created_at = {minutes} model_version",
        f"UPDATE drift_windows SET window_start = {minutes} batch_id,"
        f" window_end = {minutes} batch_id, created_at = {minutes} window_id",
    ]
    for sql in statements:
        catalog.execute(sql)
    prev = GENESIS_HASH
    for entry in catalog.rows("SELECT * FROM audit_log ORDER BY entry_id"):
        entry["recorded_at"] = catalog.scalar(f"SELECT {minutes} ?", [entry["entry_id"]])
        entry_hash = _entry_hash(entry, prev)
        catalog.execute(
            "UPDATE audit_log SET recorded_at = ?, prev_hash = ?, entry_hash = ? WHERE entry_id = ?",
            [entry["recorded_at"], prev, entry_hash, entry["entry_id"]],
        )
        prev = entry_hash


def build_ui_project(root: Path, data: Path) -> dict[str, Any]:
    """Build the project at `root` from `data` (the small reference); what it holds."""
    versions = build_trained(root, data, TWO_LINEAR)
    bad = root.parent / "broken.csv"
    bad.write_text("foo,bar\n1,2\n")
    with open_project(root) as project:
        statuses = [
            ingest_file(project, path).status
            for path in (SAMPLE / "stream" / "week_01.csv", SAMPLE / "stream" / "week_13.csv", bad)
        ]
        freeze_times(project.catalog)
    return {"versions": versions, "statuses": statuses}
