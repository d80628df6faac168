"""Every read command works on every version: the demo is played headless with its
retrains (a prompt accepted by a person, and the `auto` policy), a quarantined batch is
revalidated and trained on, a request is served; then lineage, reproduce and models run
on every version, explain on the served request, and the report on the project."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from engine.core.project import open_project
from engine.serving.app import create_app
from tests.conftest import REFERENCE, run_cli, serve_in_thread
from tests.data.test_quarantine import edit_contract

pytestmark = pytest.mark.slow


def _cli(root: Path, *args: str) -> Any:
    result = run_cli([*args, "--json"], cwd=root)
    assert result.exit_code == 0, f"mldeck {' '.join(args)}: {result.stderr}"
    return json.loads(result.stdout)


def _play(folder: Path, policy: str) -> None:
    result = run_cli(
        ["demo", "--headless", "--pace", "0", "--policy", policy, "--dir", str(folder), "--json"]
    )
    assert result.exit_code == 0, result.stderr


def _revalidated_batch(root: Path, tmp_path: Path) -> int:
    """A labelled file without the `region` column: quarantined, then revalidated once the
    contract no longer asks for it. Returns the accepted batch's id."""
    frame = pl.read_csv(REFERENCE).slice(2000, 400).drop("region")
    source = tmp_path / "no_region.csv"
    frame.write_csv(source)
    ingested = run_cli(["ingest", str(source)], cwd=root)
    assert ingested.exit_code == 1 and "'region'" in ingested.stderr
    with open_project(root) as project:
        quarantined = project.catalog.scalar(
            "SELECT batch_id FROM batches WHERE status = 'quarantined' AND source_name = ?",
            [source.name],
        )
    edit_contract(root, region=None)
    answer = _cli(root, "revalidate", str(quarantined), "--reason", "region is optional")
    assert answer["status"] in ("accepted", "warned")
    return int(answer["new_batch_id"])


def _serve_one_request(root: Path) -> tuple[str, int]:
    """One served request on the champion; its request id and the version that answered."""
    rows = pl.read_csv(REFERENCE).slice(10, 3).drop("default").to_dicts()
    with open_project(root) as project:
        app = create_app(project)
        try:
            with serve_in_thread(app) as port:
                request = urllib.request.Request(
                    f"http://127.0.0.1:{port}/invocations",
                    data=json.dumps({"dataframe_records": rows}).encode(),
                    headers={"Content-Type": "application/json"},
                )
                with urllib.request.urlopen(request, timeout=30) as answer:
                    return answer.headers["x-request-id"], int(answer.headers["x-model-version"])
        finally:
            app.close()  # flushes the prediction log


def _read_every_version(root: Path, tmp_path: Path) -> list[dict[str, Any]]:
    models = _cli(root, "models")
    assert models, "nothing registered"
    for model in models:
        version = str(model["version"])
        record = _cli(root, "lineage", version)
        assert record["version"] == model["version"]
        assert record["snapshots"], f"v{version} has no snapshots in its lineage"
        with open_project(root, read_only=True) as project:
            batch_ids = json.loads(
                project.catalog.scalar(
                    "SELECT batch_ids_json FROM datasets WHERE dataset_id = ?",
                    [record["dataset"]["dataset_id"]],
                )
            )
        assert [s["batch_id"] for s in record["snapshots"]] == batch_ids
        assert all(s["snapshot_hash"] for s in record["snapshots"])
        reproduced = _cli(root, "reproduce", version)
        assert reproduced["verdict"] in ("identical", "equivalent"), reproduced
    request_id, answered_by = _serve_one_request(root)
    explained = _cli(root, "explain", request_id)
    assert explained["model_version"] == answered_by
    assert explained["model"]["version"] == answered_by
    report = _cli(root, "report", "--out", str(tmp_path / f"{root.name}.html"))
    assert (tmp_path / f"{root.name}.html").stat().st_size > 0, report
    return list(models)


def test_a_prompted_retrain_and_a_revalidated_batch(tmp_path: Path) -> None:
    root = tmp_path / "prompted"
    _play(root, "prompt")
    proposals = _cli(root, "retrain", "--list")
    pending = [p for p in proposals if p["status"] == "pending"]
    assert pending, "the demo raised no retrain proposal"
    accepted = _cli(
        root, "retrain", "--accept", str(pending[0]["proposal_id"]), "--reason", "below floor"
    )
    label_joined = accepted["retrain"]["versions"]
    assert label_joined
    batch_id = _revalidated_batch(root, tmp_path)
    retrained = _cli(root, "retrain", "--reason", "the revalidated batch")
    models = _read_every_version(root, tmp_path)
    with open_project(root) as project:
        on_revalidated = project.catalog.rows(
            "SELECT v.version FROM model_versions v JOIN datasets d USING (dataset_id)"
            " WHERE list_contains(CAST(d.batch_ids_json AS BIGINT[]), ?)",
            [batch_id],
        )
    assert {r["version"] for r in on_revalidated} == set(retrained["versions"])
    assert {m["version"] for m in models} >= {1, 2, *label_joined, *retrained["versions"]}


def test_automatic_retrains(tmp_path: Path) -> None:
    root = tmp_path / "auto"
    _play(root, "auto")
    with open_project(root) as project:
        automatic = project.catalog.scalar(
            "SELECT count(*) FROM audit_log WHERE action = 'retrain_finished'"
        )
    assert automatic >= 1
    models = _read_every_version(root, tmp_path)
    assert len(models) > 2
