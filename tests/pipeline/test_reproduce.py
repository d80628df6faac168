"""`mldeck reproduce` and the provenance recorded at registration.

One project is trained once per module (a linear model, v1, and the MLP, v2, on
CPU) and copied for each test.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pytest

from engine.core.project import Project
from engine.records.provenance import git_state
from tests.helpers import run_cli

MODELS = """
[models.linear]
kind = "linear"

[models.mlp]
kind = "mlp"
hidden = [16]
epochs = 3
device = "cpu"
"""


@pytest.fixture
def root(trained_project: Callable[..., Path]) -> Path:
    return trained_project(MODELS)


def reproduce(root: Path, version: int) -> tuple[int, dict[str, Any]]:
    result = run_cli(["-C", str(root), "reproduce", str(version), "--json"])
    assert "Traceback" not in result.stderr
    return result.exit_code, json.loads(result.stdout)


def catalog_rows(root: Path, sql: str) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(root / ".mldeck" / "catalog.duckdb"), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_a_sklearn_model_reproduces_identically(root: Path) -> None:
    code, report = reproduce(root, 1)
    assert code == 0
    assert report["verdict"] == "identical"
    assert report["rebuilt_onnx_hash"] == report["recorded_onnx_hash"]
    assert report["max_abs_diff"] == 0.0
    assert report["holdout_rows"] > 100
    assert set(report["metrics"]) == {"accuracy", "f1", "roc_auc", "log_loss"}
    assert all(m["diff"] == 0.0 for m in report["metrics"].values())
    assert report["registered"] is False
    # Nothing registered, nothing added to the object store; the check is audited.
    assert catalog_rows(root, "SELECT count(*) FROM model_versions") == [(2,)]
    objects = {p.name for p in (root / ".mldeck" / "objects").glob("??/*")}
    assert report["rebuilt_onnx_hash"] in objects  # the same bytes that were registered
    (entry,) = catalog_rows(
        root, "SELECT actor, action, to_version, reason FROM audit_log WHERE action = 'reproduce'"
    )
    assert entry == ("tester", "reproduce", 1, "identical")
    assert (
        report["audit_entry_id"] == catalog_rows(root, "SELECT max(entry_id) FROM audit_log")[0][0]
    )


def test_the_mlp_on_cpu_reproduces_within_tolerance(root: Path) -> None:
    code, report = reproduce(root, 2)
    assert code == 0
    assert report["verdict"] in ("identical", "equivalent")
    assert report["max_abs_diff"] <= 1e-6
    assert all(m["diff"] <= 1e-6 for m in report["metrics"].values())


def test_text_output_says_the_verdict_and_that_nothing_was_registered(root: Path) -> None:
    result = run_cli(["-C", str(root), "reproduce", "1"])
    assert result.exit_code == 0, result.stderr
    assert "v1: identical" in result.stdout
    assert "Nothing was registered" in result.stdout


def test_a_tampered_snapshot_makes_it_different(root: Path) -> None:
    ((snapshot,),) = catalog_rows(root, "SELECT snapshot_hash FROM batches")
    path = root / ".mldeck" / "objects" / snapshot[:2] / snapshot
    os.chmod(path, 0o644)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))

    code, report = reproduce(root, 1)
    assert code == 1
    assert report["verdict"] == "different"
    assert report["rebuilt_onnx_hash"] is None  # no retraining on data that does not verify
    (reason,) = report["reasons"]
    assert f"snapshot {snapshot[:12]} of batch 1" in reason
    assert "does not verify" in reason and "corrupt" in reason
    ((audit_reason,),) = catalog_rows(
        root, "SELECT reason FROM audit_log WHERE action = 'reproduce'"
    )
    assert audit_reason.startswith("different: snapshot")

    text = run_cli(["-C", str(root), "reproduce", "1"])
    assert text.exit_code == 1
    assert "v1: different" in text.stdout and "does not verify" in text.stdout


def test_the_recorded_config_is_used_not_the_current_one(root: Path) -> None:
    config = root / "mldeck.toml"
    config.write_text(
        config.read_text().replace('kind = "linear"\n', 'kind = "linear"\nC = 0.01\n', 1)
    )
    code, report = reproduce(root, 1)
    assert (code, report["verdict"]) == (0, "identical")


def test_without_a_recorded_config_the_reasons_say_why(root: Path) -> None:
    config = root / "mldeck.toml"
    config.write_text(
        config.read_text().replace('kind = "linear"\n', 'kind = "linear"\nC = 0.01\n', 1)
    )
    con = duckdb.connect(str(root / ".mldeck" / "catalog.duckdb"))
    con.execute("DELETE FROM model_provenance WHERE model_version = 1")
    # As if v1 had been trained with another scikit-learn.
    row = con.execute(
        "SELECT library_versions_json FROM model_versions WHERE version = 1"
    ).fetchone()
    assert row is not None
    versions = json.loads(row[0])
    versions["scikit-learn"] = "1.0.0"
    con.execute(
        "UPDATE model_versions SET library_versions_json = ? WHERE version = 1",
        [json.dumps(versions)],
    )
    con.close()
    code, report = reproduce(root, 1)
    assert (code, report["verdict"]) == (1, "different")
    reasons = " | ".join(report["reasons"])
    assert "config not recorded" in reasons
    assert "outputs on the holdout differ" in reasons
    assert "scikit-learn changed: 1.0.0 -> " in reasons
    assert report["library_changes"]["scikit-learn"]["recorded"] == "1.0.0"


def test_reproduce_an_unknown_version(root: Path) -> None:
    result = run_cli(["-C", str(root), "reproduce", "7"])
    assert result.exit_code == 1
    assert "no model version 7" in result.stderr


def test_provenance_records_config_and_code_version(
    root: Path, open_proj: Callable[[Path], Project]
) -> None:
    project = open_proj(root)
    row = project.catalog.row("SELECT * FROM model_provenance WHERE model_version = 1")
    assert row is not None
    # The config object is the file as it was when v1 was trained.
    assert project.objects.read_bytes(row["config_hash"]) == (root / "mldeck.toml").read_bytes()
    assert row["mldeck_version"] == project.catalog.scalar(
        "SELECT json_extract_string(library_versions_json, '$.mldeck') FROM model_versions"
        " WHERE version = 1"
    )
    assert row["git_commit"] is None and row["git_dirty"] is None  # not a git repository


def _git(root: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
    }
    done = subprocess.run(
        ["git", "-C", str(root), *args], capture_output=True, text=True, env=env, check=True
    )
    return done.stdout.strip()


def test_git_commit_and_dirty_flag(root: Path) -> None:
    _git(root, "init", "-q")
    _git(root, "add", "mldeck.toml")
    _git(root, "commit", "-q", "-m", "config")
    head = _git(root, "rev-parse", "HEAD")
    # The catalog changing is not a code change.
    assert git_state(root) == (head, False)
    config = root / "mldeck.toml"
    config.write_text(config.read_text() + "\n# edited\n")
    assert git_state(root) == (head, True)
    result = run_cli(["-C", str(root), "train", "--only", "linear"])
    assert result.exit_code == 0, result.stderr
    assert catalog_rows(
        root, "SELECT git_commit, git_dirty FROM model_provenance WHERE model_version = 3"
    ) == [(head, True)]
    record = json.loads(run_cli(["-C", str(root), "lineage", "3", "--json"]).stdout)
    assert record["provenance"]["git_commit"] == head
    assert record["provenance"]["git_dirty"] is True
