"""Lineage and audit after a played sequence on a real server.

The module plays it once: batch A ingested, v1 trained and made champion by
mldeck, served (P1); a bad file quarantined; batch B ingested and v2 trained on
A + B; alice promotes v2 through the running server's control API (P2); carol
rolls back to v1 (P3). Tests then ask `explain`, `lineage` and `audit` about it.
"""

from __future__ import annotations

import json
import shutil
import urllib.request
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest

from engine.core.owner import project_token
from engine.core.project import init_project, open_project
from engine.pipeline.intake import ingest_file
from engine.pipeline.training_run import train
from engine.service.engine_service import EngineService
from engine.serving.app import create_app
from tests.conftest import TWO_LINEAR, append_models, run_cli, serve_in_thread
from tests.serving.test_serving import oip_request

ROWS_PER_REQUEST = 3


def _post(
    url: str, payload: dict[str, Any], token: str | None = None
) -> tuple[dict[str, Any], Any]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=json.dumps(payload).encode(), headers=headers)
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read()), answer.headers


@pytest.fixture(scope="module")
def played(tmp_path_factory: pytest.TempPathFactory, small_reference: Path) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("lineage")
    frame = pl.read_csv(small_reference)
    part_a, part_b = base / "batch_a.csv", base / "batch_b.csv"
    frame.head(1500).write_csv(part_a)
    frame.slice(1500).write_csv(part_b)
    bad = base / "broken.csv"
    bad.write_bytes(b"\x00\x01\x02 not a table \xff\xfe")
    request_frame = frame.slice(100, ROWS_PER_REQUEST).drop("default")
    requests = request_frame.to_dicts()

    root = base / "loans"
    init_project(root, target="default", id_column="loan_id")
    append_models(root, TWO_LINEAR)
    ids: dict[str, str] = {}
    with open_project(root) as project:
        ingest_file(project, part_a)
        train(project, only=["linear"])  # v1: the first promotable version becomes champion
        app = create_app(project)
        try:
            with serve_in_thread(app) as port:
                url = f"http://127.0.0.1:{port}"
                _, headers = _post(f"{url}/invocations", {"dataframe_records": requests})
                ids["P1"] = headers["x-request-id"]
                # An OIP client may choose its own id, even one holding the row separator.
                _post(
                    f"{url}/v2/models/{project.config.name}/infer",
                    oip_request(app, request_frame, id="client/7"),
                )
        finally:
            app.close()

        assert ingest_file(project, bad).status == "quarantined"
        ingest_file(project, part_b)
        train(project, only=["linear2"])  # v2, on batches A and B
        token = project_token(project.state_dir)
    # The engine service owns the project while it runs (and closes it after).
    service = EngineService(open_project(root), ("serve",))
    service.open_endpoint()
    service.start()
    try:
        with serve_in_thread(service.front) as port:
            url = f"http://127.0.0.1:{port}"
            _post(
                f"{url}/control/promote",
                {"version": 2, "actor": "alice", "reason": "v2 knows batch B", "force": True},
                token,
            )
            _, headers = _post(f"{url}/invocations", {"dataframe_records": requests})
            ids["P2"] = headers["x-request-id"]
            _post(
                f"{url}/control/rollback",
                {"actor": "carol", "reason": "v2 rejects good applicants"},
                token,
            )
            _, headers = _post(f"{url}/invocations", {"dataframe_records": requests})
            ids["P3"] = headers["x-request-id"]
    finally:
        service.close()
    with open_project(root) as project:
        snapshots = {
            r["source_name"]: r["snapshot_hash"]
            for r in project.catalog.rows("SELECT source_name, snapshot_hash FROM batches")
        }
    return {"root": root, "ids": ids, "snapshots": snapshots, "requests": requests}


def copy_of(played: dict[str, Any], tmp_path: Path) -> Path:
    copy = tmp_path / "loans"
    shutil.copytree(played["root"], copy)
    return copy


def cli_json(root: Path, *args: str) -> Any:
    result = run_cli(["-C", str(root), *args, "--json"])
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_explain_an_early_prediction(played: dict[str, Any]) -> None:
    found = cli_json(played["root"], "explain", played["ids"]["P1"])
    assert found["model_version"] == 1
    assert found["champion_at_the_time"] == 1
    assert found["endpoint"] == "invocations"
    model = found["model"]
    assert [s["snapshot_hash"] for s in model["snapshots"]] == [played["snapshots"]["batch_a.csv"]]
    assert [(s["source_name"], s["row_count"]) for s in model["snapshots"]] == [
        ("batch_a.csv", 1500)
    ]
    promoted = found["promoted_by"]
    assert (promoted["actor"], promoted["action"]) == ("mldeck", "promote")
    assert "first promotable" in promoted["reason"]
    # The rows as they were sent and answered.
    assert [r["row"] for r in found["rows"]] == list(range(ROWS_PER_REQUEST))
    sent = played["requests"]
    for row, request in zip(found["rows"], sent, strict=True):
        assert row["inputs"]["annual_income"] == pytest.approx(request["annual_income"])
        assert row["inputs"]["region"] == request["region"]
        assert row["output"]["label"] in (0, 1)
        assert sum(row["output"]["probabilities"]) == pytest.approx(1.0, abs=1e-5)
    # What the version was made with.
    assert model["name"] == "linear" and model["seed"] == 42 and model["device"] == "cpu"
    assert model["feature_definition"]["spec"]["numeric"]
    assert model["library_versions"]["scikit-learn"]
    assert model["provenance"]["recorded"] is True
    assert len(model["provenance"]["config_hash"]) == 64


def test_explain_after_promotion_and_rollback(played: dict[str, Any]) -> None:
    second = cli_json(played["root"], "explain", played["ids"]["P2"])
    assert second["model_version"] == 2
    assert [s["snapshot_hash"] for s in second["model"]["snapshots"]] == [
        played["snapshots"]["batch_a.csv"],
        played["snapshots"]["batch_b.csv"],
    ]
    assert (second["promoted_by"]["actor"], second["promoted_by"]["reason"]) == (
        "alice",
        "v2 knows batch B",
    )
    third = cli_json(played["root"], "explain", played["ids"]["P3"])
    assert third["model_version"] == 1
    assert third["promoted_by"]["action"] == "rollback"
    assert third["promoted_by"]["actor"] == "carol"
    one_row = cli_json(played["root"], "explain", played["ids"]["P3"] + "/1")
    assert [r["row"] for r in one_row["rows"]] == [1]


def test_explain_a_client_chosen_oip_id(played: dict[str, Any]) -> None:
    whole = cli_json(played["root"], "explain", "client/7")
    assert (whole["request_id"], whole["endpoint"], whole["model_version"]) == (
        "client/7",
        "infer",
        1,
    )
    assert [r["row"] for r in whole["rows"]] == list(range(ROWS_PER_REQUEST))
    row = cli_json(played["root"], "explain", "client/7/2")
    assert row["request_id"] == "client/7" and [r["row"] for r in row["rows"]] == [2]


def test_explain_text_names_version_snapshot_and_promoter(played: dict[str, Any]) -> None:
    result = run_cli(["-C", str(played["root"]), "explain", played["ids"]["P2"]])
    assert result.exit_code == 0, result.stderr
    text = result.stdout
    assert "answered by" in text and "v2" in text
    assert played["snapshots"]["batch_b.csv"][:12] in text
    assert "promote by alice" in text and "v2 knows batch B" in text


def test_explain_survives_archiving_and_an_old_catalog(
    played: dict[str, Any], tmp_path: Path
) -> None:
    root = copy_of(played, tmp_path)
    con = duckdb.connect(str(root / ".mldeck" / "catalog.duckdb"))
    con.execute("UPDATE model_versions SET status = 'archived' WHERE version = 2")
    # A version registered before provenance was recorded has no row.
    con.execute("DELETE FROM model_provenance WHERE model_version = 2")
    con.close()
    found = cli_json(root, "explain", played["ids"]["P2"])
    assert found["model_version"] == 2
    assert found["model"]["status"] == "archived"
    assert found["model"]["provenance"]["recorded"] is False
    assert found["model"]["provenance"]["git_commit"] == "not recorded"
    assert found["promoted_by"]["actor"] == "alice"
    text = run_cli(["-C", str(root), "lineage", "2"]).stdout
    assert "not recorded" in text and "archived" in text


def test_explain_unknown_prediction_is_one_clear_line(played: dict[str, Any]) -> None:
    result = run_cli(["-C", str(played["root"]), "explain", "no-such-request"])
    assert result.exit_code == 1
    assert "no logged prediction 'no-such-request'" in result.stderr
    assert "Traceback" not in result.stderr
    bad_row = run_cli(["-C", str(played["root"]), "explain", played["ids"]["P1"] + "/x"])
    assert bad_row.exit_code == 1 and "row number" in bad_row.stderr


def test_lineage_counts_predictions_and_writes_reports(
    played: dict[str, Any], tmp_path: Path
) -> None:
    record = cli_json(played["root"], "lineage", "1")
    days = record["predictions_by_day"]
    assert sum(d["served"] for d in days) == 3 * ROWS_PER_REQUEST  # P1, client/7 and P3
    assert sum(d["shadow"] for d in days) == 0
    assert [(e["action"], e["actor"]) for e in record["history"]] == [
        ("promote", "mldeck"),
        ("promote", "alice"),  # v1 -> v2: v1 replaced
        ("rollback", "carol"),
    ]
    assert (
        sum(d["served"] for d in cli_json(played["root"], "lineage", "2")["predictions_by_day"])
        == 3
    )

    markdown, page = tmp_path / "v1.md", tmp_path / "v1.html"
    for out in (markdown, page):
        result = run_cli(["-C", str(played["root"]), "lineage", "1", "--out", str(out)])
        assert result.exit_code == 0, result.stderr
    snapshot = played["snapshots"]["batch_a.csv"]
    md = markdown.read_text()
    assert md.startswith("# mldeck lineage v1")
    assert "| batch | file |" in md and snapshot[:12] in md
    assert "carol" in md and "v2 rejects good applicants" in md
    html = page.read_text()
    assert html.startswith("<!DOCTYPE html>") and "<td>carol</td>" in html
    bad = run_cli(["-C", str(played["root"]), "lineage", "1", "--out", str(tmp_path / "v1.txt")])
    assert bad.exit_code == 2 and ".md or .html" in bad.stderr
    missing = run_cli(["-C", str(played["root"]), "lineage", "9"])
    assert missing.exit_code == 1 and "no model version 9" in missing.stderr


def test_audit_lists_every_kind_in_the_period(played: dict[str, Any], tmp_path: Path) -> None:
    listed = cli_json(played["root"], "audit")
    actions = [(e["action"], e["actor"]) for e in listed["entries"]]
    assert actions == [
        ("promote", "mldeck"),
        ("quarantine", "mldeck"),
        ("set_challenger", "mldeck"),  # v2 beat v1 on its holdout
        ("promote", "alice"),
        ("rollback", "carol"),
    ]
    assert listed["chain"]["intact"] is True
    quarantine = next(e for e in listed["entries"] if e["action"] == "quarantine")
    assert quarantine["details"]["source"].endswith("broken.csv")
    assert quarantine["reason"]

    only = cli_json(played["root"], "audit", "--kind", "promote", "--kind", "rollback")
    assert [e["actor"] for e in only["entries"]] == ["mldeck", "alice", "carol"]
    today = listed["entries"][0]["recorded_at"][:10]
    assert len(
        cli_json(played["root"], "audit", "--since", today, "--until", today)["entries"]
    ) == len(listed["entries"])
    assert cli_json(played["root"], "audit", "--until", "2000-01-01")["entries"] == []

    out = tmp_path / "audit.md"
    result = run_cli(["-C", str(played["root"]), "audit", "--since", today, "--out", str(out)])
    assert result.exit_code == 0, result.stderr
    text = out.read_text()
    assert "v2 knows batch B" in text and "quarantine" in text and "intact" in text

    unknown = run_cli(["-C", str(played["root"]), "audit", "--kind", "promotion"])
    assert unknown.exit_code == 1 and "unknown kind(s) promotion" in unknown.stderr
    bad_date = run_cli(["-C", str(played["root"]), "audit", "--since", "last week"])
    assert bad_date.exit_code == 2 and "YYYY-MM-DD" in bad_date.stderr


def test_audit_verify_names_the_altered_entry(played: dict[str, Any], tmp_path: Path) -> None:
    root = copy_of(played, tmp_path)
    ok = run_cli(["-C", str(root), "audit", "verify"])
    assert ok.exit_code == 0, ok.stderr
    assert "intact" in ok.stdout

    con = duckdb.connect(str(root / ".mldeck" / "catalog.duckdb"))
    (entry,) = con.execute(
        "SELECT entry_id FROM audit_log WHERE actor = 'alice' AND action = 'promote'"
    ).fetchone() or (None,)
    con.execute("UPDATE audit_log SET reason = 'approved by the board' WHERE entry_id = ?", [entry])
    con.close()
    broken = run_cli(["-C", str(root), "audit", "verify"])
    assert broken.exit_code == 1
    assert f"entry {entry} (promote by alice" in broken.stderr
    assert "altered" in broken.stderr
    as_json = run_cli(["-C", str(root), "audit", "verify", "--json"])
    assert as_json.exit_code == 1
    report = json.loads(as_json.stdout)
    assert report["intact"] is False and report["first_broken"]["entry_id"] == entry
    listing = cli_json(root, "audit")
    assert listing["chain"]["first_broken"]["entry_id"] == entry
