"""The `mldeck` command line, end to end, in process and as a real subprocess.

Exit codes: 0 ok, 1 the user's input was wrong (one clear line on stderr, no
traceback), 2 usage.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import numpy as np
import pytest
from click.testing import Result

from app.cli import cli
from engine.core.project import open_project
from tests.conftest import REPO, SAMPLE, append_models, run_cli


def ok(result: Result) -> Result:
    assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
    return result


def as_json(result: Result) -> Any:
    return json.loads(ok(result).stdout)


def user_error(result: Result, *needles: str) -> str:
    """Exit 1 with a one-line message on stderr that names the problem; no traceback."""
    assert result.exit_code == 1, (result.exit_code, result.stdout, result.stderr)
    err = result.stderr
    assert err.startswith("error: "), err
    assert "Traceback" not in err and "Traceback" not in result.stdout
    for needle in needles:
        assert needle in err, (needle, err)
    return err


def usage_error(result: Result) -> None:
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    assert "Usage:" in result.stderr and "Traceback" not in result.stderr


def init(tmp_path: Path, name: str = "loans", *extra: str) -> Path:
    info = as_json(run_cli(["init", name, *extra, "--json"], cwd=tmp_path))
    root = Path(info["project"])
    assert (root / "mldeck.toml").is_file() and Path(info["config"]) == root / "mldeck.toml"
    for sub in ("data/incoming", "data/labels", ".mldeck/objects", ".mldeck/quarantine"):
        assert (root / sub).is_dir(), sub
    assert (root / ".mldeck" / "catalog.duckdb").is_file()
    return root


def audit_rows(root: Path) -> list[dict[str, Any]]:
    with open_project(root) as project:
        return project.catalog.rows("SELECT * FROM audit_log ORDER BY entry_id")


def best_version(versions: list[dict[str, Any]], metric: str, lower: bool = False) -> int:
    """The first version with the best metric among promotable ones (the pipeline's rule)."""
    promotable = [v for v in versions if v["promotable"]]
    sign = 1 if lower else -1
    best = min(promotable, key=lambda v: (sign * v["metrics"][metric], v["version"]))
    return int(best["version"])


# ----------------------------------------------------------------- the session


@pytest.mark.slow
def test_session_init_ingest_train_models_promote_rollback_status(
    tmp_path: Path, small_reference: Path
) -> None:
    root = init(tmp_path, "loans", "--target", "default", "--id", "loan_id")
    append_models(root)
    shutil.copy(small_reference, root / "data" / "incoming" / "loans_small.csv")
    source_bytes = small_reference.read_bytes()

    # ingest: the default folder is data/incoming/
    (batch,) = as_json(run_cli(["ingest", "--json"], cwd=root))
    assert (batch["status"], batch["rows"], batch["labelled"], batch["batch_id"]) == (
        "accepted",
        3000,
        True,
        1,
    )
    assert batch["sha256"] == hashlib.sha256(source_bytes).hexdigest()
    with open_project(root) as project:
        assert project.objects.read_bytes(batch["snapshot"])[:4] == b"PAR1"  # hash-verified
    # once by content: the same path again is skipped, the same bytes elsewhere a duplicate
    (again,) = as_json(run_cli(["ingest", "data/incoming", "--json"], cwd=root))
    assert again["status"] == "skipped"
    shutil.copy(small_reference, tmp_path / "copy.csv")
    (dup,) = as_json(run_cli(["ingest", str(tmp_path / "copy.csv"), "--json"], cwd=root))
    assert (dup["status"], dup["duplicate_of"]) == ("duplicate", 1)
    assert (root / "data" / "incoming" / "loans_small.csv").read_bytes() == source_bytes

    # train
    trained = as_json(run_cli(["train", "--json"], cwd=root))
    assert trained["train_rows"] + trained["holdout_rows"] == 3000
    assert trained["primary_metric"] == "roc_auc"
    assert [c["status"] for c in trained["candidates"]] == ["registered"] * 4
    assert trained["champion_before"] is None

    # models
    versions = as_json(run_cli(["models", "--json"], cwd=root))
    assert [v["version"] for v in versions] == [1, 2, 3, 4]
    assert {v["kind"] for v in versions} == {"linear", "random_forest", "gradient_boosting", "mlp"}
    for v in versions:
        assert set(v["metrics"]) == {"accuracy", "f1", "roc_auc", "log_loss"}
        assert 0 <= v["parity_max_abs_diff"] <= 1e-4
        assert len(v["onnx_hash"]) == 64
    champion = best_version(versions, "roc_auc")
    assert trained["champion"] == champion
    assert [v["version"] for v in versions if "champion" in v["aliases"]] == [champion]
    table = ok(run_cli(["models"], cwd=root)).stdout
    assert "Model registry" in table and "champion" in table and f"v{champion}" in table

    # promote another version, then roll back
    other = next(v["version"] for v in versions if v["version"] != champion and v["promotable"])
    moved = as_json(
        run_cli(["promote", str(other), "--reason", "beats it on recent data", "--json"], cwd=root)
    )
    assert moved == {"champion": other, "previous": champion}
    back = as_json(run_cli(["rollback", "--reason", "recent data was odd", "--json"], cwd=root))
    assert back == {"champion": champion, "previous": other}
    entries = audit_rows(root)
    assert [(e["action"], e["from_version"], e["to_version"], e["actor"]) for e in entries] == [
        ("promote", None, champion, "tester"),
        ("promote", champion, other, "tester"),
        ("rollback", other, champion, "tester"),
    ]
    assert [e["reason"] for e in entries[1:]] == ["beats it on recent data", "recent data was odd"]

    # status, from another folder with -C
    status = as_json(run_cli(["-C", str(root), "status", "--json"], cwd=tmp_path))
    assert status["champion"]["version"] == champion
    assert status["champion"]["metrics"] == next(
        v["metrics"] for v in versions if v["version"] == champion
    )
    assert status["batches"] == {"accepted": 1, "duplicate": 1}
    assert (status["rows"], status["labelled_rows"], status["model_versions"]) == (3000, 3000, 4)
    assert status["target"] == "default" and status["task"] == "classification"
    assert {"train", "evaluate", "register"} <= {  # the 10 most recent
        r["stage"] for r in status["recent_runs"]
    }
    assert all(r["status"] == "succeeded" for r in status["recent_runs"])
    text = ok(run_cli(["status"], cwd=root / "data")).stdout  # any folder inside works
    assert f"Champion: v{champion}" in text and "Model versions: 4" in text


# ----------------------------------------------------------------- errors and exit codes


def test_user_errors_exit_1_with_a_clear_message(tmp_path: Path) -> None:
    root = init(tmp_path)
    user_error(run_cli(["promote", "99", "--reason", "x"], cwd=root), "no model version 99")
    user_error(run_cli(["rollback", "--reason", "x"], cwd=root), "no previous champion")
    user_error(run_cli(["train"], cwd=root), "ingest")
    user_error(run_cli(["ingest", "nowhere.csv"], cwd=root), "nowhere.csv", "no such file")
    user_error(run_cli(["init", "loans"], cwd=tmp_path), "already exists")
    user_error(run_cli(["status"], cwd=tmp_path), "mldeck.toml", "mldeck init")


def test_malformed_file_is_quarantined_and_exits_1(tmp_path: Path) -> None:
    root = init(tmp_path, "loans", "--target", "default")
    bad = tmp_path / "broken.csv"
    payload = b"loan_id,age,default\nL1,30,0\n\x00\x01\x02\xff binary junk\x00"
    bad.write_bytes(payload)
    result = run_cli(["ingest", str(bad), "--json"], cwd=root)
    err = user_error(result, "Quarantined", "broken.csv")
    (report,) = json.loads(result.stdout)  # stdout stays parseable JSON
    assert report["status"] == "quarantined"
    kept = Path(report["quarantine_path"])
    assert kept.read_bytes() == payload and str(kept) in err
    assert bad.read_bytes() == payload  # the source is never changed
    status = as_json(run_cli(["status", "--json"], cwd=root))
    assert status["batches"] == {"quarantined": 1}
    assert [q["source_name"] for q in status["quarantine"]] == ["broken.csv"]
    assert status["quarantine"][0]["reason"]


def test_bad_config_names_the_key(tmp_path: Path) -> None:
    root = init(tmp_path)
    config = root / "mldeck.toml"
    original = config.read_text()
    config.write_text(original.replace("holdout_fraction = 0.2", "holdout_fraction = 2"))
    user_error(run_cli(["status"], cwd=root), "split.holdout_fraction")
    config.write_text(original.replace("[serving]\n", "[serving]\nprot = 1\n"))
    user_error(run_cli(["models"], cwd=root), "serving.prot", "port")
    config.write_text(original + "\n[models.x]\nkind = 'svm'\n")
    user_error(run_cli(["train"], cwd=root), "models.x.kind")
    config.write_text("this is = = not toml")
    user_error(run_cli(["status"], cwd=root), "not valid TOML")


def test_bad_model_param_fails_that_candidate_and_exits_1(
    tmp_path: Path, small_reference: Path
) -> None:
    root = init(tmp_path, "loans", "--target", "default", "--id", "loan_id")
    append_models(
        root,
        '[models.linear]\nkind = "linear"\n[models.forest]\nkind = "random_forest"\n'
        "n_estimatorz = 5\n",
    )
    ok(run_cli(["ingest", str(small_reference)], cwd=root))
    result = run_cli(["train", "--json"], cwd=root)
    user_error(result, "models.forest.n_estimatorz")
    report = json.loads(result.stdout)
    statuses = {c["name"]: c["status"] for c in report["candidates"]}
    assert statuses == {"linear": "registered", "forest": "failed"}
    assert report["champion"] == 1
    # Without --json the failure is reported on stderr too.
    human = run_cli(["train", "--only", "forest"], cwd=root)
    assert human.exit_code == 1 and "models.forest.n_estimatorz" in human.stderr
    assert "Traceback" not in human.stderr


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    root = init(tmp_path)
    usage_error(run_cli(["status", "--bogus"], cwd=root))
    usage_error(run_cli(["promote", "3"], cwd=root))  # --reason is required
    usage_error(run_cli(["promote", "three", "--reason", "x"], cwd=root))
    usage_error(run_cli(["frobnicate"], cwd=root))


def test_every_command_has_help() -> None:
    top = ok(run_cli(["--help"])).stdout
    ctx = click.Context(cli)
    names = cli.list_commands(ctx)
    assert set(names) >= {"init", "ingest", "train", "models", "promote", "rollback"}
    for name in names:
        command = cli.get_command(ctx, name)
        assert command is not None and command.name == name
        assert name in top
        text = ok(run_cli([name, "--help"])).stdout
        assert text.startswith(f"Usage: cli {name}") or f" {name} " in text.splitlines()[0]
        assert "--help" in text
        first_line = (command.help or "").strip().splitlines()[0]
        assert first_line.split(":")[0][:30] in " ".join(text.split())
    assert "--json" in ok(run_cli(["models", "--help"])).stdout


# ----------------------------------------------------------------- real processes


def mldeck(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MLDECK_ACTOR": "tester", "PYTHONPATH": str(REPO)}
    env.pop("MLDECK_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "app", *args], capture_output=True, text=True, cwd=cwd, env=env
    )


def test_subprocess_exit_codes_and_no_traceback(tmp_path: Path) -> None:
    made = mldeck("init", "proj", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    root = tmp_path / "proj"
    missing = mldeck("-C", str(root), "promote", "99", "--reason", "x", cwd=tmp_path)
    assert missing.returncode == 1
    assert "no model version 99" in missing.stderr and "Traceback" not in missing.stderr
    assert missing.stdout == ""
    bogus = mldeck("--bogus", cwd=tmp_path)
    assert bogus.returncode == 2 and "No such option" in bogus.stderr
    outside = mldeck("status", cwd=tmp_path)
    assert outside.returncode == 1 and "mldeck init" in outside.stderr
    assert len(outside.stderr.strip().splitlines()) == 1  # one unbroken line


def test_help_imports_no_heavy_library() -> None:
    code = (
        "import sys\n"
        "sys.argv = ['mldeck', '--help']\n"
        "import app.cli\n"
        "try:\n"
        "    app.cli.main()\n"
        "except SystemExit as exc:\n"
        "    assert exc.code in (0, None), exc.code\n"
        "heavy = {'torch', 'sklearn', 'skl2onnx', 'onnx', 'onnxruntime', 'duckdb', 'polars'}\n"
        "print('LOADED', sorted({m.split('.')[0] for m in sys.modules} & heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert "Usage: mldeck" in out.stdout
    assert out.stdout.strip().splitlines()[-1] == "LOADED []"


# ----------------------------------------------------------------- a second, unrelated dataset


def write_diabetes_csv(path: Path) -> int:
    from sklearn.datasets import load_diabetes

    data = load_diabetes(as_frame=False)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*data.feature_names, "target"])
        for row, target in zip(data.data, data.target, strict=True):
            writer.writerow([repr(float(v)) for v in row] + [repr(float(target))])
    return len(data.target)


@pytest.mark.slow
def test_regression_dataset_works_with_no_code_change(tmp_path: Path) -> None:
    import onnxruntime as ort
    from sklearn.metrics import mean_squared_error

    from engine.data.dataset import prepare_dataset
    from engine.data.features import feature_spec

    root = init(tmp_path, "diabetes", "--target", "target")
    n = write_diabetes_csv(root / "data" / "incoming" / "diabetes.csv")
    (batch,) = as_json(run_cli(["ingest", "--json"], cwd=root))
    assert (batch["status"], batch["rows"], batch["labelled"]) == ("accepted", n, True)

    trained = as_json(run_cli(["train", "--json"], cwd=root))  # the default candidates
    assert trained["primary_metric"] == "rmse"
    assert [c["status"] for c in trained["candidates"]] == ["registered"] * 4
    assert trained["train_rows"] + trained["holdout_rows"] == n

    versions = as_json(run_cli(["models", "--json"], cwd=root))
    assert {v["kind"] for v in versions} == {"linear", "random_forest", "gradient_boosting", "mlp"}
    for v in versions:
        assert v["task"] == "regression"
        assert set(v["metrics"]) == {"rmse", "mae", "r2"}
        assert v["metrics"]["rmse"] >= v["metrics"]["mae"] > 0
    champion = best_version(versions, "rmse", lower=True)
    assert trained["champion"] == champion
    assert [v["version"] for v in versions if "champion" in v["aliases"]] == [champion]

    # The champion's ONNX takes the raw columns and reproduces its recorded RMSE.
    with open_project(root) as project:
        assert project.config.task == "regression" and project.config.id_column is None
        holdout = prepare_dataset(project, feature_spec(project.config)).holdout
        row = project.catalog.row("SELECT * FROM model_versions WHERE version = ?", [champion])
        assert row is not None
        session = ort.InferenceSession(
            project.objects.read_bytes(row["onnx_hash"]), providers=["CPUExecutionProvider"]
        )
    names = [i.name for i in session.get_inputs()]
    assert sorted(names) == sorted(["age", "sex", "bmi", "bp", *[f"s{i}" for i in range(1, 7)]])
    feed = {c: holdout[c].to_numpy().astype(np.float32).reshape(-1, 1) for c in names}
    (prediction,) = session.run(["prediction"], feed)
    rmse = float(np.sqrt(mean_squared_error(holdout["target"].to_numpy(), prediction.ravel())))
    recorded = next(v for v in versions if v["version"] == champion)["metrics"]["rmse"]
    assert rmse == pytest.approx(recorded, rel=1e-5)


# ----------------------------------------------------------------- all of the reference data


@pytest.mark.slow
def test_full_reference_every_kind_then_promote_rollback_status(tmp_path: Path) -> None:
    folder = tmp_path / "loans"
    ok(run_cli(["init", str(folder), "--target", "default", "--id", "loan_id"]))
    ok(run_cli(["ingest", str(SAMPLE / "reference" / "loans_reference.csv")], cwd=folder))
    shown = ok(run_cli(["train"], cwd=folder)).stdout
    assert "is now the champion" in shown
    reference_rows = sum(1 for _ in open(SAMPLE / "reference" / "loans_reference.csv")) - 1

    versions = as_json(run_cli(["models", "--json"], cwd=folder))
    assert [v["name"] for v in versions] == [
        "linear",
        "random_forest",
        "gradient_boosting",
        "mlp",
    ]
    for v in versions:
        assert v["promotable"] and 0 <= v["parity_max_abs_diff"] <= 1e-4
    champion = best_version(versions, "roc_auc")
    assert [v["version"] for v in versions if "champion" in v["aliases"]] == [champion]
    assert next(v for v in versions if v["version"] == champion)["metrics"]["roc_auc"] > 0.9

    other = next(v["version"] for v in versions if v["version"] != champion)
    assert as_json(
        run_cli(["promote", str(other), "--reason", "try it", "--json"], cwd=folder)
    ) == {"champion": other, "previous": champion}
    assert as_json(run_cli(["rollback", "--reason", "undo", "--json"], cwd=folder)) == {
        "champion": champion,
        "previous": other,
    }
    status = as_json(run_cli(["status", "--json"], cwd=folder))
    assert status["champion"]["version"] == champion
    assert status["rows"] == status["labelled_rows"] == reference_rows
    assert status["model_versions"] == 4 and status["batches"] == {"accepted": 1}
