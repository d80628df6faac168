"""Each stage run is a catalog row: stage, inputs, outputs, start, end, status, error.

The row is written as `running` before the work starts and outside the work's
own transaction, so a crash leaves a visible `running` row for a dead pid, which
`mark_interrupted` turns into `interrupted` on the next open.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from engine.core.answers import Stage, StageRunStatus
from engine.core.owner import pid_alive
from storage.catalog import Catalog, utcnow


@dataclass
class StageRun:
    run_id: int
    stage: Stage
    outputs: dict[str, Any] = field(default_factory=dict)
    status: StageRunStatus = "succeeded"


@contextmanager
def stage_run(catalog: Catalog, stage: Stage, inputs: dict[str, Any]) -> Iterator[StageRun]:
    """Record a stage run around a block; an exception marks it failed and propagates.

    The block may set `run.status` (e.g. to "quarantined") and fill `run.outputs`.
    """
    run_id = int(
        catalog.scalar(
            "INSERT INTO stage_runs (stage, status, inputs_json, started_at, pid) "
            "VALUES (?, 'running', ?, ?, ?) RETURNING run_id",
            [stage, json.dumps(inputs, default=str), utcnow(), os.getpid()],
        )
    )
    run = StageRun(run_id=run_id, stage=stage)
    try:
        yield run
    except BaseException as exc:
        catalog.execute(
            "UPDATE stage_runs SET status = 'failed', ended_at = ?, error = ?, outputs_json = ? "
            "WHERE run_id = ?",
            [
                utcnow(),
                str(getattr(exc, "msg", exc)) or type(exc).__name__,
                json.dumps(run.outputs, default=str),
                run_id,
            ],
        )
        raise
    catalog.execute(
        "UPDATE stage_runs SET status = ?, ended_at = ?, outputs_json = ? WHERE run_id = ?",
        [run.status, utcnow(), json.dumps(run.outputs, default=str), run_id],
    )


def mark_interrupted(catalog: Catalog) -> int:
    """Mark `running` rows whose process is gone as `interrupted`; return how many."""
    stale = [
        r["run_id"]
        for r in catalog.rows("SELECT run_id, pid FROM stage_runs WHERE status = 'running'")
        if r["pid"] is None or r["pid"] == os.getpid() or not pid_alive(int(r["pid"]))
    ]
    for run_id in stale:
        catalog.execute(
            "UPDATE stage_runs SET status = 'interrupted', ended_at = ? WHERE run_id = ?",
            [utcnow(), run_id],
        )
    return len(stale)
