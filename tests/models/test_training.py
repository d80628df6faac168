"""Stages 3-6 on real components: prepare/split, train, evaluate, register.

Every model is trained for real on CPU (or CUDA where present), exported to
ONNX, stored in the object store and scored again here with onnxruntime.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import polars as pl
import pytest
from sklearn import metrics as skm

from engine.core.config import Evaluation
from engine.core.errors import ConfigError, TrainingError
from engine.core.project import Project, init_project, open_project
from engine.data.dataset import prepare_dataset
from engine.data.features import feature_spec
from engine.models.evaluate import apply_gates, better, classification_metrics, regression_metrics
from engine.pipeline.intake import ingest_file
from engine.pipeline.training_run import TrainResult, train
from tests.conftest import REFERENCE, append_models

TREE_KINDS = ("random_forest", "gradient_boosting")


# ----------------------------------------------------------------- helpers


def reference_slice(path: Path, first: int, last: int) -> Path:
    """Data rows first..last (1-based, inclusive) of the reference CSV, with its header."""
    with open(REFERENCE) as src, open(path, "w") as dst:
        for i, line in enumerate(src):
            if i == 0 or first <= i <= last:
                dst.write(line)
            if i > last:
                break
    return path


def edit_config(root: Path, old: str, new: str) -> None:
    """Replace the first `old` in mldeck.toml with `new`."""
    config = root / "mldeck.toml"
    text = config.read_text()
    assert old in text, old
    config.write_text(text.replace(old, new, 1))


def set_in_section(root: Path, header: str, lines: str) -> None:
    """Put `lines` right under a section header of mldeck.toml."""
    edit_config(root, f"{header}\n", f"{header}\n{lines}\n")


def raw_feed(session: ort.InferenceSession, frame: pl.DataFrame) -> dict[str, np.ndarray]:
    """Build the model's inputs from raw columns, independently of the engine's helpers."""
    feed: dict[str, np.ndarray] = {}
    for inp in session.get_inputs():
        values = frame[inp.name].to_list()
        if inp.type == "tensor(string)":
            array = np.array(["" if v is None else str(v) for v in values], dtype=object)
        else:
            array = np.array([np.nan if v is None else v for v in values], dtype=np.float32)
        feed[inp.name] = array.reshape(-1, 1)
    return feed


def version_rows(project: Project) -> list[dict[str, Any]]:
    return project.catalog.rows("SELECT * FROM model_versions ORDER BY version")


def recorded_metrics(project: Project, version: int) -> dict[str, float | None]:
    return {
        r["name"]: r["value"]
        for r in project.catalog.rows(
            "SELECT name, value FROM metrics WHERE version = ? AND split = 'holdout'", [version]
        )
    }


def ids(frame: pl.DataFrame) -> set[str]:
    return set(frame["loan_id"].to_list())


@pytest.fixture
def loans(
    make_project: Callable[..., Path],
    open_proj: Callable[[Path], Project],
    small_reference: Path,
) -> Callable[..., Project]:
    """A project with the small reference ingested; models and extra config are optional."""

    def build(
        models: str | None = None, name: str = "proj", edits: tuple[tuple[str, str], ...] = ()
    ) -> Project:
        root = make_project(name=name, models=models)
        for old, new in edits:
            edit_config(root, old, new)
        project = open_proj(root)
        assert ingest_file(project, small_reference).status in ("accepted", "warned")
        return project

    return build


@pytest.fixture(scope="module")
def trained(
    tmp_path_factory: pytest.TempPathFactory, small_reference: Path
) -> Iterator[tuple[Project, TrainResult]]:
    """One project trained once with FAST_MODELS (all four kinds), shared read-only."""
    root = tmp_path_factory.mktemp("trained") / "loans"
    init_project(root, target="default", id_column="loan_id")
    append_models(root)
    project = open_project(root)
    ingest_file(project, small_reference)
    result = train(project)
    yield project, result
    project.close()


# ----------------------------------------------------------------- prepare / split


def test_split_is_deterministic_and_disjoint(
    loans: Callable[..., Project], open_proj: Callable[[Path], Project]
) -> None:
    project = loans()
    spec = feature_spec(project.config)
    first = prepare_dataset(project, spec)
    second = prepare_dataset(project, spec)
    assert first.dataset_hash == second.dataset_hash
    assert first.dataset_id == second.dataset_id
    assert ids(first.holdout) == ids(second.holdout)
    assert ids(first.train) == ids(second.train)
    assert not ids(first.train) & ids(first.holdout)
    assert len(ids(first.train) | ids(first.holdout)) == 3000
    # Recorded once, with its counts.
    rows = project.catalog.rows("SELECT * FROM datasets")
    assert len(rows) == 1
    assert rows[0]["dataset_hash"] == first.dataset_hash
    assert (rows[0]["train_rows"], rows[0]["holdout_rows"]) == (
        first.train.height,
        first.holdout.height,
    )

    # The same after the process lets go of the catalog and opens it again.
    root = project.root
    project.close()
    again = open_proj(root)
    third = prepare_dataset(again, feature_spec(again.config))
    assert third.dataset_hash == first.dataset_hash
    assert ids(third.holdout) == ids(first.holdout)


def test_holdout_fraction_follows_config(loans: Callable[..., Project]) -> None:
    plain = loans(name="plain")
    default = prepare_dataset(plain, feature_spec(plain.config))
    share = default.holdout.height / 3000
    assert abs(share - 0.2) < 0.03, share

    wider = loans(
        name="wider",
        edits=(("holdout_fraction = 0.2", "holdout_fraction = 0.35"), ("seed = 42", "seed = 7")),
    )
    assert wider.config.holdout_fraction == 0.35 and wider.config.split_seed == 7
    dataset = prepare_dataset(wider, feature_spec(wider.config))
    assert abs(dataset.holdout.height / 3000 - 0.35) < 0.03
    # Another seed picks another holdout.
    assert ids(dataset.holdout) != ids(default.holdout)


def test_split_is_stable_as_data_grows(loans: Callable[..., Project], tmp_path: Path) -> None:
    project = loans()
    spec = feature_spec(project.config)
    before = prepare_dataset(project, spec)

    more = reference_slice(tmp_path / "loans_3001_4000.csv", 3001, 4000)
    result = ingest_file(project, more)
    assert result.status in ("accepted", "warned"), result.issues
    after = prepare_dataset(project, spec)

    assert after.dataset_hash != before.dataset_hash
    assert after.dataset_id != before.dataset_id
    assert after.train.height + after.holdout.height == 4000
    assert len(after.snapshot_hashes) == 2
    # Every old row keeps its side.
    assert ids(before.holdout) <= ids(after.holdout)
    assert ids(before.train) <= ids(after.train)
    new_rows = (ids(after.train) | ids(after.holdout)) - (ids(before.train) | ids(before.holdout))
    assert len(new_rows) == 1000
    new_holdout = ids(after.holdout) - ids(before.holdout)
    assert abs(len(new_holdout) / 1000 - 0.2) < 0.05


def test_feature_spec_is_versioned_by_hash(loans: Callable[..., Project]) -> None:
    project = loans()
    config = project.config
    base = feature_spec(config)
    assert feature_spec(config).hash == base.hash  # stable
    assert feature_spec(config, "linear").hash == base.hash
    assert feature_spec(config, "mlp").hash == base.hash
    forest = feature_spec(config, "random_forest")
    assert forest.hash == feature_spec(config, "gradient_boosting").hash
    assert forest.hash != base.hash
    assert forest.numeric_scale == "none" and base.numeric_scale == "standard"
    assert forest.columns == base.columns
    # Features: every column but the target, the id and the (ignored) date.
    header = REFERENCE.open().readline().strip().split(",")
    assert set(base.columns) == set(header) - {"default", "loan_id", "application_date"}
    assert {"home_ownership", "loan_purpose", "employment_type", "region"} == set(base.categorical)
    # The hash is the sha256 of the spec's JSON, and round-trips.
    assert base.hash == hashlib.sha256(base.to_json().encode()).hexdigest()
    assert type(base).from_json(base.to_json()) == base


# ----------------------------------------------------------------- train + register


def test_every_kind_trains_and_registers(trained: tuple[Project, TrainResult]) -> None:
    project, result = trained
    assert [o.status for o in result.outcomes] == ["registered"] * 4, [
        o.error for o in result.outcomes
    ]
    rows = version_rows(project)
    assert [(r["version"], r["name"], r["kind"]) for r in rows] == [
        (1, "linear", "linear"),
        (2, "forest", "random_forest"),
        (3, "boost", "gradient_boosting"),
        (4, "mlp", "mlp"),
    ]
    for row in rows:
        assert row["task"] == "classification"
        assert json.loads(row["classes_json"]) == [0, 1]
        assert 0 <= row["parity_max_abs_diff"] <= 1e-4
        assert row["status"] == "registered"
    # Each stage of each candidate left a succeeded stage run.
    stages = project.catalog.rows(
        "SELECT stage, count(*) AS n FROM stage_runs WHERE status = 'succeeded' GROUP BY 1"
    )
    counts = {r["stage"]: r["n"] for r in stages}
    assert counts["prepare"] == 1
    assert counts["train"] == counts["evaluate"] == 4
    assert counts["register"] == 1  # the run registers its versions in one transaction


def test_onnx_from_store_reproduces_recorded_holdout_metrics(
    trained: tuple[Project, TrainResult],
) -> None:
    project, result = trained
    dataset = prepare_dataset(project, feature_spec(project.config))
    assert dataset.dataset_id == result.dataset_id
    holdout = dataset.holdout
    y = holdout["default"].to_numpy()
    for row in version_rows(project):
        assert row["dataset_id"] == dataset.dataset_id
        model_bytes = project.objects.read_bytes(row["onnx_hash"])  # hash-verified read
        assert hashlib.sha256(model_bytes).hexdigest() == row["onnx_hash"]
        session = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
        label, proba = session.run(["label", "probabilities"], raw_feed(session, holdout))
        assert proba.shape == (holdout.height, 2)
        np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
        np.testing.assert_array_equal(label.reshape(-1), proba.argmax(axis=1))
        clipped = np.clip(proba.astype(np.float64), 1e-15, 1)
        expected = {
            "accuracy": skm.accuracy_score(y, label.reshape(-1)),
            "f1": skm.f1_score(y, proba.argmax(axis=1)),
            "roc_auc": skm.roc_auc_score(y, proba[:, 1]),
            "log_loss": skm.log_loss(y, clipped / clipped.sum(axis=1, keepdims=True)),
        }
        recorded = recorded_metrics(project, row["version"])
        assert set(recorded) == set(expected)
        for name, value in expected.items():
            assert recorded[name] == pytest.approx(value, rel=1e-5, abs=1e-6), (
                row["name"],
                name,
            )
        outcome = next(o for o in result.outcomes if o.version == row["version"])
        assert outcome.metrics == recorded


def test_onnx_takes_raw_columns(trained: tuple[Project, TrainResult]) -> None:
    project, _ = trained
    config = project.config
    # Raw rows straight from a CSV the project never saw, read with polars.
    raw = pl.read_csv(REFERENCE, n_rows=5000).slice(4000, 50)
    for row in version_rows(project):
        spec = feature_spec(config, row["kind"])
        session = ort.InferenceSession(
            project.objects.read_bytes(row["onnx_hash"]), providers=["CPUExecutionProvider"]
        )
        types = {i.name: i.type for i in session.get_inputs()}
        assert set(types) == set(spec.columns)
        assert all(types[c] == "tensor(string)" for c in spec.categorical)
        assert all(types[c] == "tensor(float)" for c in spec.numeric)
        assert {o.name for o in session.get_outputs()} >= {"label", "probabilities"}
        assert json.loads(row["inputs_json"]) == [
            {"name": i.name, "type": i.type, "shape": [str(d) for d in i.shape]}
            for i in session.get_inputs()
        ]
        label, proba = session.run(["label", "probabilities"], raw_feed(session, raw))
        assert set(label.tolist()) <= {0, 1}
        assert proba.shape == (50, 2)
        # An unseen category is handled, not an error.
        odd = raw.with_columns(pl.lit("spaceship").alias("loan_purpose"))
        (proba_odd,) = session.run(["probabilities"], raw_feed(session, odd))
        assert np.isfinite(proba_odd).all()


def test_native_sklearn_models_match_their_onnx(trained: tuple[Project, TrainResult]) -> None:
    import pickle

    from engine.data.features import model_frame

    project, _ = trained
    holdout = prepare_dataset(project, feature_spec(project.config)).holdout
    checked = 0
    for row in version_rows(project):
        if row["kind"] == "mlp":
            continue
        pipeline = pickle.loads(project.objects.read_bytes(row["native_hash"]))
        spec = feature_spec(project.config, row["kind"])
        native = pipeline.predict_proba(model_frame(holdout, spec))
        session = ort.InferenceSession(
            project.objects.read_bytes(row["onnx_hash"]), providers=["CPUExecutionProvider"]
        )
        (onnx_proba,) = session.run(["probabilities"], raw_feed(session, holdout))
        diff = float(np.max(np.abs(native - onnx_proba)))
        assert diff <= 1e-4
        assert row["parity_max_abs_diff"] == pytest.approx(diff, abs=1e-6)
        checked += 1
    assert checked == 3


def test_mlp_device_is_recorded(trained: tuple[Project, TrainResult]) -> None:
    project, result = trained
    # device = "auto" decides by the work: a few thousand rows for 3 epochs stay on the
    # CPU with or without CUDA (engine.models.mlp.choose_device); the reason is recorded.
    expected = "cpu"
    mlp = next(r for r in version_rows(project) if r["kind"] == "mlp")
    assert mlp["device"] == expected
    assert json.loads(mlp["params_json"])["device"] == expected
    assert json.loads(mlp["params_json"])["device_choice"].startswith("auto -> cpu: ")
    run = project.catalog.row(
        "SELECT * FROM training_runs WHERE training_run_id = ?", [mlp["training_run_id"]]
    )
    assert run is not None and run["device"] == expected and run["status"] == "succeeded"
    outcome = next(o for o in result.outcomes if o.kind == "mlp")
    assert outcome.device == expected
    # The MLP's params are the config over the defaults.
    params = json.loads(mlp["params_json"])
    assert params["hidden"] == [16] and params["epochs"] == 3


def test_lineage_is_recorded(trained: tuple[Project, TrainResult]) -> None:
    project, result = trained
    catalog = project.catalog
    batch = catalog.row("SELECT * FROM batches WHERE status IN ('accepted', 'warned')")
    assert batch is not None
    dataset = catalog.row("SELECT * FROM datasets WHERE dataset_id = ?", [result.dataset_id])
    assert dataset is not None
    assert json.loads(dataset["snapshot_hashes_json"]) == [batch["snapshot_hash"]]
    assert json.loads(dataset["batch_ids_json"]) == [batch["batch_id"]]
    assert project.objects.exists(batch["snapshot_hash"])
    installed = {
        "scikit-learn": metadata.version("scikit-learn"),
        "torch": metadata.version("torch"),
        "onnxruntime": metadata.version("onnxruntime"),
        "skl2onnx": metadata.version("skl2onnx"),
    }
    for row in version_rows(project):
        spec = feature_spec(project.config, row["kind"])
        assert row["feature_hash"] == spec.hash
        definition = catalog.row(
            "SELECT spec_json FROM feature_definitions WHERE feature_hash = ?", [spec.hash]
        )
        assert definition is not None and json.loads(definition["spec_json"]) == json.loads(
            spec.to_json()
        )
        assert row["seed"] == project.config.training_seed == 42
        libs = json.loads(row["library_versions_json"])
        for name, version in installed.items():
            assert libs[name] == version
        assert "python" in libs
        run = catalog.row(
            "SELECT * FROM training_runs WHERE training_run_id = ?", [row["training_run_id"]]
        )
        assert run is not None
        assert (run["dataset_id"], run["feature_hash"], run["candidate"]) == (
            result.dataset_id,
            spec.hash,
            row["name"],
        )
        assert json.loads(run["params_json"]) == json.loads(row["params_json"])
        assert project.objects.exists(row["native_hash"])
    forest = next(r for r in version_rows(project) if r["kind"] == "random_forest")
    params = json.loads(forest["params_json"])
    assert (params["n_estimators"], params["max_depth"], params["random_state"]) == (15, 6, 42)


# ----------------------------------------------------------------- failures


def test_bad_model_param_fails_only_that_candidate(loans: Callable[..., Project]) -> None:
    project = loans(
        models="""
[models.linear]
kind = "linear"

[models.forest]
kind = "random_forest"
n_estimatorz = 10

[models.net]
kind = "mlp"
hiden = [8]

[models.deep]
kind = "random_forest"
max_depth = -3

[models.slow]
kind = "mlp"
lr = "fast"
"""
    )
    result = train(project)
    by_name = {o.name: o for o in result.outcomes}
    assert by_name["linear"].status == "registered"
    assert by_name["forest"].status == "failed"
    assert "models.forest.n_estimatorz" in (by_name["forest"].error or "")
    assert "n_estimators" in (by_name["forest"].error or "").replace("n_estimatorz", "")
    assert by_name["net"].status == "failed"
    assert "models.net.hiden" in (by_name["net"].error or "")
    assert by_name["deep"].status == "failed"
    assert "models.deep" in (by_name["deep"].error or "")
    assert "max_depth" in (by_name["deep"].error or "")
    assert by_name["slow"].status == "failed"
    assert "models.slow.lr" in (by_name["slow"].error or "")
    # Only the good one is registered (and, being the only one, is champion).
    assert [r["name"] for r in version_rows(project)] == ["linear"]
    assert result.champion == by_name["linear"].version
    failed = project.catalog.rows(
        "SELECT candidate, error FROM training_runs WHERE status = 'failed' ORDER BY candidate"
    )
    assert [r["candidate"] for r in failed] == ["deep", "forest", "net", "slow"]
    assert all(r["error"] for r in failed)


def test_train_with_no_data_says_what_to_do(
    make_project: Callable[..., Path], open_proj: Callable[[Path], Project]
) -> None:
    project = open_proj(make_project())
    with pytest.raises(TrainingError) as info:
        train(project)
    assert "ingest" in info.value.msg
    assert project.catalog.scalar("SELECT count(*) FROM model_versions") == 0


def test_every_candidate_failing_is_a_training_error(loans: Callable[..., Project]) -> None:
    project = loans(models='[models.linear]\nkind = "linear"\nC = "lots"\n')
    with pytest.raises(TrainingError) as info:
        train(project)
    assert "every candidate failed" in info.value.msg
    assert "linear" in info.value.msg
    assert project.catalog.scalar("SELECT count(*) FROM model_versions") == 0


def test_unknown_only_candidate_is_named(loans: Callable[..., Project]) -> None:
    project = loans(models='[models.linear]\nkind = "linear"\n')
    with pytest.raises(TrainingError) as info:
        train(project, only=["nope"])
    assert "nope" in info.value.msg and "linear" in info.value.msg


def test_unknown_model_kind_is_a_config_error(
    make_project: Callable[..., Path],
) -> None:
    root = make_project(models='[models.x]\nkind = "svm"\n')
    with pytest.raises(ConfigError) as info:
        open_project(root)
    assert "models.x.kind" in info.value.msg


# ----------------------------------------------------------------- evaluate


def test_classification_metrics_match_sklearn() -> None:
    rng = np.random.default_rng(3)
    y = np.array(["no", "yes"])[rng.integers(0, 2, 200)]
    p_yes = np.clip(0.35 * (y == "yes") + rng.random(200) * 0.65, 0, 1)
    proba = np.column_stack([1 - p_yes, p_yes])
    got = classification_metrics(y, proba, ["no", "yes"])
    predicted = np.array(["no", "yes"])[proba.argmax(axis=1)]
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y, predicted))
    assert got["f1"] == pytest.approx(skm.f1_score(y, predicted, pos_label="yes"))
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(y == "yes", p_yes))
    assert got["log_loss"] == pytest.approx(
        skm.log_loss(y, np.clip(proba, 1e-15, 1), labels=["no", "yes"])
    )

    # Three classes: macro F1 and one-vs-rest AUC.
    y3 = rng.integers(0, 3, 300)
    raw = rng.random((300, 3)) + np.eye(3)[y3] * 0.8
    proba3 = raw / raw.sum(axis=1, keepdims=True)
    got3 = classification_metrics(y3, proba3, [0, 1, 2])
    assert got3["accuracy"] == pytest.approx(skm.accuracy_score(y3, proba3.argmax(axis=1)))
    assert got3["f1"] == pytest.approx(skm.f1_score(y3, proba3.argmax(axis=1), average="macro"))
    assert got3["roc_auc"] == pytest.approx(skm.roc_auc_score(y3, proba3, multi_class="ovr"))
    assert got3["log_loss"] == pytest.approx(skm.log_loss(y3, proba3))

    # A holdout with one class has no AUC, but the other metrics are defined.
    one = classification_metrics(np.array([1, 1, 1]), np.array([[0.2, 0.8]] * 3), [0, 1])
    assert one["roc_auc"] is None and one["accuracy"] == 1.0


def test_regression_metrics_match_sklearn() -> None:
    rng = np.random.default_rng(5)
    y = rng.normal(100, 20, 150)
    pred = y + rng.normal(0, 7, 150)
    got = regression_metrics(y, pred)
    assert got["rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(y, pred)))
    assert got["mae"] == pytest.approx(skm.mean_absolute_error(y, pred))
    assert got["r2"] == pytest.approx(skm.r2_score(y, pred))
    # A constant target has no R2.
    assert regression_metrics(np.ones(4), np.ones(4) * 2)["r2"] is None


def test_gates_floors_ceilings_and_drop() -> None:
    evaluation = Evaluation(min={"roc_auc": 0.8}, max={"log_loss": 0.5}, max_drop=0.01)
    ok = apply_gates(evaluation, "classification", {"roc_auc": 0.9, "log_loss": 0.3}, None, None)
    assert ok.promotable and all(c["passed"] for c in ok.checks) and len(ok.checks) == 2
    low = apply_gates(evaluation, "classification", {"roc_auc": 0.7, "log_loss": 0.3}, None, None)
    assert not low.promotable
    assert [c["gate"] for c in low.checks if not c["passed"]] == ["roc_auc >= 0.8"]
    high = apply_gates(evaluation, "classification", {"roc_auc": 0.9, "log_loss": 0.6}, None, None)
    assert not high.promotable
    # Drop vs the champion: 0.02 worse fails, 0.005 worse passes.
    champion: dict[str, float | None] = {"roc_auc": 0.92, "log_loss": 0.3}
    worse = apply_gates(
        evaluation, "classification", {"roc_auc": 0.9, "log_loss": 0.3}, 7, champion
    )
    assert not worse.promotable and worse.champion == {"version": 7, "metrics": champion}
    close = apply_gates(
        evaluation, "classification", {"roc_auc": 0.915, "log_loss": 0.3}, 7, champion
    )
    assert close.promotable
    # Lower-is-better primary metric (regression rmse).
    reg = Evaluation(max_drop=1.0)
    assert apply_gates(reg, "regression", {"rmse": 10.5}, 1, {"rmse": 10.0}).promotable
    assert not apply_gates(reg, "regression", {"rmse": 11.5}, 1, {"rmse": 10.0}).promotable
    # An undefined primary metric is never promotable.
    assert not apply_gates(Evaluation(), "classification", {"roc_auc": None}, None, None).promotable
    assert better("rmse", 1.0, 2.0) and not better("roc_auc", 0.5, 0.6)
    assert better("roc_auc", 0.5, None) and not better("roc_auc", None, 0.5)


def test_unreachable_floor_means_no_champion(loans: Callable[..., Project]) -> None:
    project = loans(
        models='[models.linear]\nkind = "linear"\n[models.forest]\nkind = "random_forest"\n'
        "n_estimators = 5\n",
        edits=(("[evaluation]\n", "[evaluation]\n[evaluation.min]\nroc_auc = 0.999\n"),),
    )
    result = train(project)
    assert [o.status for o in result.outcomes] == ["registered", "registered"]
    assert not any(o.promotable for o in result.outcomes)
    assert result.champion is None and result.challenger is None
    assert project.catalog.scalar("SELECT count(*) FROM aliases") == 0
    assert project.catalog.scalar("SELECT count(*) FROM audit_log") == 0
    for row in version_rows(project):
        assert not row["promotable"]
        checks = json.loads(row["gates_json"])["checks"]
        floor = next(c for c in checks if c["gate"] == "roc_auc >= 0.999")
        assert floor["passed"] is False
        assert floor["value"] == pytest.approx(recorded_metrics(project, row["version"])["roc_auc"])


def test_max_drop_compares_with_champion_on_same_holdout(loans: Callable[..., Project]) -> None:
    project = loans(
        models='[models.linear]\nkind = "linear"\n\n[models.stump]\nkind = "random_forest"\n'
        "n_estimators = 1\nmax_depth = 1\n"
    )
    first = train(project, only=["linear"])
    assert first.champion == 1 and first.champion_before is None
    champion_metrics = recorded_metrics(project, 1)

    set_in_section(project.root, "[evaluation]", "max_drop = 0.0")
    project.reload_config()
    second = train(project)
    assert second.champion_before == 1 and second.champion == 1
    # The champion was re-scored on the same holdout: same numbers as recorded.
    assert second.champion_holdout_metrics is not None
    for name, value in champion_metrics.items():
        assert second.champion_holdout_metrics[name] == pytest.approx(value, abs=1e-9)
    linear = next(o for o in second.outcomes if o.name == "linear")
    stump = next(o for o in second.outcomes if o.name == "stump")
    # Retraining the same model on the same data gives the same metrics: no drop.
    champion_auc, stump_auc = champion_metrics["roc_auc"], stump.metrics["roc_auc"]
    assert champion_auc is not None and stump_auc is not None
    assert linear.metrics["roc_auc"] == pytest.approx(champion_auc, abs=1e-9)
    assert linear.promotable
    assert stump_auc < champion_auc
    assert not stump.promotable
    gates = json.loads(
        project.catalog.scalar(
            "SELECT gates_json FROM model_versions WHERE version = ?", [stump.version]
        )
    )
    drop = next(c for c in gates["checks"] if "drop vs champion v1" in c["gate"])
    assert drop["passed"] is False
    assert drop["value"] == pytest.approx(champion_auc - stump_auc)
    assert gates["champion"]["version"] == 1
    # Not strictly better than the champion: no challenger.
    assert second.challenger is None
