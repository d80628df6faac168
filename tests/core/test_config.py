"""engine/config.py and engine/project.py: mldeck.toml, its defaults, its errors, and the project folder."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from engine.core.config import (
    CLASSIFICATION_METRICS,
    MODEL_KINDS,
    REGRESSION_METRICS,
    ColumnContract,
    Contract,
)
from engine.core.config_parse import load_config
from engine.core.config_template import render_template, write_inferred
from engine.core.errors import ConfigError, ProjectError
from engine.core.project import CONFIG_NAME, find_root, init_project, open_project


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / CONFIG_NAME
    path.write_text(text, encoding="utf-8")
    return path


# ---------------------------------------------------------------- defaults


def test_naming_only_the_target_is_enough(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, '[data]\ntarget = "price"\n'))
    assert config.target == "price"
    assert config.id_column is None and config.task is None and config.contract is None
    assert config.name == tmp_path.name
    assert 0 < config.holdout_fraction < 1
    # Without [models], one candidate of every kind is trained.
    assert sorted(c.kind for c in config.candidates) == sorted(MODEL_KINDS)
    assert config.evaluation.primary_for("classification") in CLASSIFICATION_METRICS
    assert config.evaluation.primary_for("regression") in REGRESSION_METRICS
    assert config.serving_host == "127.0.0.1"  # loopback by default
    assert 0 < config.serving_port < 65536


def test_the_init_template_spells_out_the_defaults(tmp_path: Path) -> None:
    # The file `mldeck init` writes documents the defaults; a config naming only the
    # target must mean exactly the same thing.
    minimal = load_config(write(tmp_path, '[data]\ntarget = "default"\n'))
    other = tmp_path / "templated"
    other.mkdir()
    templated = load_config(write(other, render_template(tmp_path.name, "default", None)))
    differing = {
        f.name
        for f in dataclasses.fields(minimal)
        if getattr(minimal, f.name) != getattr(templated, f.name)
    }
    assert differing == {"path"}


def test_init_writes_a_loadable_config_and_the_folders(tmp_path: Path) -> None:
    root = tmp_path / "loans"
    path = init_project(root, target="default", id_column="loan_id")
    assert path == root / CONFIG_NAME
    for sub in ("data/incoming", "data/labels", ".mldeck/objects", ".mldeck/quarantine"):
        assert (root / sub).is_dir(), sub
    assert (root / ".mldeck" / "catalog.duckdb").is_file()
    config = load_config(path)
    assert (config.name, config.target, config.id_column) == ("loans", "default", "loan_id")
    assert not list(root.glob(".*.tmp"))


def test_init_without_a_target_leaves_it_to_inference(tmp_path: Path) -> None:
    config = load_config(init_project(tmp_path / "p"))
    assert config.target is None and config.id_column is None


def test_init_never_overwrites_a_config(tmp_path: Path) -> None:
    root = tmp_path / "p"
    init_project(root, target="a")
    before = (root / CONFIG_NAME).read_bytes()
    with pytest.raises(ProjectError, match="already exists"):
        init_project(root, target="b")
    assert (root / CONFIG_NAME).read_bytes() == before


def test_the_project_is_found_from_a_subfolder(tmp_path: Path) -> None:
    root = tmp_path / "p"
    init_project(root, target="y")
    deep = root / "data" / "incoming"
    assert find_root(deep) == root.resolve()
    with open_project(deep) as project:
        assert project.root == root.resolve()
        assert project.config.target == "y"


def test_no_project_gives_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ProjectError) as err:
        open_project(tmp_path)
    assert CONFIG_NAME in err.value.msg and "mldeck init" in err.value.msg


# ---------------------------------------------------------------- bad configs

BASE = render_template("p", "default", "loan_id")


def _edit(old: str, new: str) -> str:
    assert old in BASE, old
    return BASE.replace(old, new, 1)


BAD_CONFIGS = {
    "unknown key with a hint": (
        _edit("holdout_fraction = 0.2", "holdout_fracton = 0.2"),
        "split.holdout_fracton",
        "did you mean 'holdout_fraction'",
    ),
    "unknown top-level table with a hint": (
        BASE + '\n[modles.x]\nkind = "linear"\n',
        "modles",
        "did you mean 'models'",
    ),
    "unknown key in a model-free table": (
        _edit("[serving]", "[serving]\nhots = 'x'"),
        "serving.hots",
        "did you mean 'host'",
    ),
    "wrong type: string for an integer": (
        _edit("port = 8765", 'port = "8765"'),
        "serving.port",
        "must be an integer",
    ),
    "wrong type: boolean for an integer": (
        _edit("seed = 42\n\n[training]", "seed = true\n\n[training]"),
        "split.seed",
        "must be an integer",
    ),
    "wrong type: number for a string": (
        _edit('target = "default"', "target = 7"),
        "data.target",
        "must be a string",
    ),
    "wrong type: a value where a table belongs": (
        _edit("[validation]", "min = 0.7\n\n[validation]"),
        "evaluation.min",
        "must be a table",
    ),
    "holdout_fraction above range": (
        _edit("holdout_fraction = 0.2", "holdout_fraction = 1.5"),
        "split.holdout_fraction",
        "out of range",
    ),
    "holdout_fraction zero": (
        _edit("holdout_fraction = 0.2", "holdout_fraction = 0"),
        "split.holdout_fraction",
        "out of range",
    ),
    "bad task": (
        _edit('id = "loan_id"', 'id = "loan_id"\ntask = "clustering"'),
        "data.task",
        "'clustering' is not one of classification, regression",
    ),
    "unknown model kind": (
        BASE + '\n[models.fast]\nkind = "svm"\n',
        "models.fast.kind",
        "'svm' is not one of",
    ),
    "model without a kind": (
        BASE + "\n[models.fast]\nn_estimators = 3\n",
        "models.fast.kind",
        "is required",
    ),
    "model that is not a table": (
        BASE + "\n[models]\nfast = 3\n",
        "models.fast",
        "must be a table",
    ),
    "primary metric of the other task": (
        _edit('id = "loan_id"', 'id = "loan_id"\ntask = "regression"').replace(
            '# primary_metric = "roc_auc"', 'primary_metric = "roc_auc"\n#', 1
        ),
        "evaluation.primary_metric",
        "'roc_auc' is not a regression metric",
    ),
    "unknown metric floor": (
        _edit("[validation]", "[evaluation.min]\nauc = 0.7\n\n[validation]"),
        "evaluation.min.auc",
        "unknown metric",
    ),
    "empty target": (
        _edit('target = "default"', 'target = ""'),
        "data.target",
        "is empty",
    ),
    "ignore not a list": (
        _edit('id = "loan_id"', 'id = "loan_id"\nignore = "application_date"'),
        "data.ignore",
        "must be a list of strings",
    ),
    "contract column of an unknown type": (
        BASE + '\n[contract.columns]\nage = { type = "int" }\n',
        "contract.columns.age.type",
        "'int' is not one of",
    ),
    "drift threshold typo": (
        _edit("[drift]", "[drift]\npsi_alret = 0.3"),
        "drift.psi_alret",
        "did you mean 'psi_alert'",
    ),
    "drift threshold of the wrong type": (
        _edit("[drift]", '[drift]\npsi_alert = "high"'),
        "drift.psi_alert",
        "must be a number",
    ),
    "drift p-value above 1": (
        _edit("[drift]", "[drift]\np_value = 5"),
        "drift.p_value",
        "out of range",
    ),
    "drift warn above alert": (
        _edit("[drift]", "[drift]\npsi_warn = 0.3\npsi_alert = 0.2"),
        "drift.psi_warn",
        "is above psi_alert",
    ),
    "per-feature drift threshold typo": (
        BASE + "\n[drift.features.age]\npsi_alrt = 0.3\n",
        "drift.features.age.psi_alrt",
        "did you mean 'psi_alert'",
    ),
    "per-feature drift for a column the contract lacks": (
        BASE
        + '\n[contract.columns]\nage = { type = "integer" }\n'
        + "\n[drift.features.aeg]\npsi_alert = 0.3\n",
        "drift.features.aeg",
        "did you mean 'age'",
    ),
    "alerts key typo": (
        _edit("[alerts]", "[alerts]\nmin_labeled = 50"),
        "alerts.min_labeled",
        "did you mean 'min_labelled'",
    ),
    "alerts floor of an unknown metric": (
        _edit("[alerts]", "[alerts]\nmin = { acuracy = 0.9 }"),
        "alerts.min.acuracy",
        "did you mean 'accuracy'",
    ),
    "alerts error rate above 1": (
        _edit("[alerts]", "[alerts]\nmax_error_rate = 2"),
        "alerts.max_error_rate",
        "out of range",
    ),
    "alerts prediction_drift not a boolean": (
        _edit("[alerts]", '[alerts]\nprediction_drift = "yes"'),
        "alerts.prediction_drift",
        "must be true or false",
    ),
    "contract column without a type": (
        BASE + "\n[contract.columns]\nage = { min = 1 }\n",
        "contract.columns.age.type",
        "is required",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_a_bad_config_names_the_key_and_the_problem(tmp_path: Path, case: str) -> None:
    text, key, problem = BAD_CONFIGS[case]
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    msg = err.value.msg
    assert msg.startswith(f"{path}: {key}: "), msg
    assert problem in msg, msg


def test_every_bad_config_case_is_valid_without_its_edit(tmp_path: Path) -> None:
    # The cases above fail for their edit, not for something in the base text.
    config = load_config(write(tmp_path, BASE))
    assert (config.target, config.id_column) == ("default", "loan_id")


def test_a_matching_primary_metric_is_accepted(tmp_path: Path) -> None:
    text = _edit('id = "loan_id"', 'id = "loan_id"\ntask = "regression"').replace(
        '# primary_metric = "roc_auc"', 'primary_metric = "mae"\n#', 1
    )
    config = load_config(write(tmp_path, text))
    assert config.task == "regression"
    assert config.evaluation.primary_for("regression") == "mae"


def test_invalid_toml_names_the_file_and_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, BASE + "\n[models.broken\nkind = 1\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    msg = err.value.msg
    assert str(path) in msg and "not valid TOML" in msg
    broken_line = (BASE + "\n[models.broken\n").count("\n")
    assert f"line {broken_line}" in msg


def test_a_missing_config_says_to_run_init(tmp_path: Path) -> None:
    path = tmp_path / CONFIG_NAME
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(path) in err.value.msg and "mldeck init" in err.value.msg


def test_a_config_that_is_not_utf8_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / CONFIG_NAME
    path.write_bytes(b'[data]\ntarget = "\xff\xfe"\n')
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(path) in err.value.msg


def test_models_and_gates_are_read(tmp_path: Path) -> None:
    text = BASE.replace(
        "[validation]",
        "max_drop = 0.02\n[evaluation.min]\nroc_auc = 0.7\n[evaluation.max]\nlog_loss = 0.6\n\n"
        "[validation]",
        1,
    ) + (
        '\n[models.forest]\nkind = "random_forest"\nn_estimators = 30\n\n[models.mlp]\nhidden = [8]\n'
    )
    config = load_config(write(tmp_path, text))
    assert [(c.name, c.kind, c.params) for c in config.candidates] == [
        ("forest", "random_forest", {"n_estimators": 30}),
        ("mlp", "mlp", {"hidden": [8]}),  # the table's name is its kind when kind is absent
    ]
    assert config.evaluation.min == {"roc_auc": 0.7}
    assert config.evaluation.max == {"log_loss": 0.6}
    assert config.evaluation.max_drop == 0.02


# ---------------------------------------------------------------- write_inferred

CONTRACT = Contract(
    columns={
        "loan_id": ColumnContract("loan_id", "string"),
        "age": ColumnContract("age", "integer", min=18.0, max=80.0),
        "income": ColumnContract("income", "float", max_null_fraction=0.06, min=0.5, max=1e6),
        "purpose": ColumnContract(
            "purpose", "string", categories=("car", "credit card", 'quote "q"', "école")
        ),
        "weird name.with dot": ColumnContract("weird name.with dot", "boolean"),
        "applied": ColumnContract("applied", "date", max_null_fraction=1.0),
    },
    inferred_from="loans_reference.csv",
)

USER_TEXT = """\
# Team loans: keep this comment.
[project]
name = "loans"   # our name

[data]
target = "default"
# the id is added by mldeck below
incoming = "data/incoming"

[split]
holdout_fraction = 0.25  # agreed with risk
seed = 7
"""


def test_write_inferred_keeps_comments_and_round_trips_the_contract(tmp_path: Path) -> None:
    path = write(tmp_path, USER_TEXT)
    before = load_config(path)
    write_inferred(
        path,
        id_column="loan_id",
        task="classification",
        ignore=("applied",),
        contract=CONTRACT,
    )
    text = path.read_text(encoding="utf-8")
    for comment in (
        "# Team loans: keep this comment.",
        "# our name",
        "# the id is added by mldeck below",
        "# agreed with risk",
    ):
        assert comment in text
    config = load_config(path)
    assert config.contract == CONTRACT
    assert (config.target, config.id_column, config.task) == (
        "default",
        "loan_id",
        "classification",
    )
    assert config.ignore == ("applied",)
    # What the user set is untouched.
    assert (config.name, config.holdout_fraction, config.split_seed) == ("loans", 0.25, 7)
    assert config.holdout_fraction == before.holdout_fraction
    assert not list(tmp_path.glob(".*.tmp"))


def test_write_inferred_twice_replaces_the_contract(tmp_path: Path) -> None:
    path = write(tmp_path, USER_TEXT)
    write_inferred(path, contract=CONTRACT)
    smaller = Contract(columns={"age": ColumnContract("age", "float", min=1.5)}, inferred_from=None)
    write_inferred(path, contract=smaller)
    config = load_config(path)
    assert config.contract == smaller
    text = path.read_text()
    assert text.count("[contract]") == 1 and text.count("[contract.columns]") == 1
    assert "income" not in text and "inferred_from" not in text


def test_an_edited_contract_is_read_back(tmp_path: Path) -> None:
    path = write(tmp_path, USER_TEXT)
    write_inferred(path, contract=CONTRACT)
    text = path.read_text().replace('"car", ', '"car", "boat", ')
    path.write_text(text)
    config = load_config(path)
    assert config.contract is not None
    assert config.contract.columns["purpose"].categories == (
        "car",
        "boat",
        "credit card",
        'quote "q"',
        "école",
    )


def test_drift_and_alerts_are_read(tmp_path: Path) -> None:
    from engine.core.config import DRIFT_THRESHOLDS
    from engine.monitoring.drift import Thresholds

    assert set(DRIFT_THRESHOLDS) == {f.name for f in dataclasses.fields(Thresholds)}
    text = (
        BASE.replace(
            "[drift]", "[drift]\npsi_alert = 0.25\nmin_rows = 50\ndataset_share = 0.5", 1
        ).replace(
            "[alerts]",
            "[alerts]\ndrifted_features = 2\nmax_p99_latency_ms = 250\nmin = { accuracy = 0.9 }\n"
            "max_drop = { roc_auc = 0.05 }",
            1,
        )
        + "\n[drift.features.age]\npsi_alert = 0.4\n"
    )
    config = load_config(write(tmp_path, text))
    assert config.drift.thresholds == {"psi_alert": 0.25, "min_rows": 50}
    assert config.drift.dataset_share == 0.5
    assert config.drift.for_feature("age") == {"psi_alert": 0.4, "min_rows": 50}
    assert config.drift.for_feature("region") == {"psi_alert": 0.25, "min_rows": 50}
    rules = config.alerts
    assert (rules.drifted_features, rules.max_p99_latency_ms) == (2, 250.0)
    assert rules.min == {"accuracy": 0.9} and rules.max_drop == {"roc_auc": 0.05}
    assert rules.prediction_drift is True and rules.max_error_rate == 0.05  # defaults
