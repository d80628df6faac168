"""Reading `mldeck.toml` into `engine.core.config.Config`: every key checked, every error one
line naming the file, the key and the problem (with a "did you mean" for a misspelt key)."""

from __future__ import annotations

import difflib
import tomllib
from pathlib import Path
from typing import Any, NoReturn, get_args

from engine.core.answers import Task
from engine.core.config import (
    CLASSIFICATION_METRICS,
    COLUMN_TYPES,
    DEFAULT_CANDIDATES,
    DRIFT_THRESHOLDS,
    MODEL_KINDS,
    REGRESSION_METRICS,
    RETRAIN_POLICIES,
    SERVING_AUTH,
    AlertRules,
    Candidate,
    ColumnContract,
    Config,
    Contract,
    DriftSettings,
    Evaluation,
    RetrainConfig,
    ServingLimits,
    WatchConfig,
)
from engine.core.errors import ConfigError

# ---------------------------------------------------------------- parsing helpers


def _parse_serving(table: _Table) -> ServingLimits:
    return ServingLimits(
        auth=table.get_str("auth", "auto", SERVING_AUTH),
        max_body_mb=table.get_float("max_body_mb", 10.0, 0.001, 1024.0),
        max_rows=table.get_int("max_rows", 100_000, 1, 10_000_000),
        max_columns=table.get_int("max_columns", 1_000, 1, 100_000),
        max_depth=table.get_int("max_depth", 32, 8, 1_000),
        max_id_length=table.get_int("max_id_length", 128, 1, 4_096),
        header_timeout_s=table.get_float("header_timeout_s", 10.0, 0.1, 3600.0),
        body_timeout_s=table.get_float("body_timeout_s", 30.0, 0.1, 3600.0),
    )


class _Table:
    """A TOML table that tracks its path for error messages and rejects unknown keys."""

    def __init__(self, data: Any, path: str, file: Path) -> None:
        if not isinstance(data, dict):
            raise ConfigError(f"{file}: [{path}] must be a table")
        self.data: dict[str, Any] = data
        self.path = path
        self.file = file

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def fail(self, name: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.file}: {self.key(name)}: {problem}")

    def check_keys(self, allowed: set[str]) -> None:
        for name in self.data:
            if name not in allowed:
                close = difflib.get_close_matches(name, sorted(allowed), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                known = ", ".join(sorted(allowed))
                raise self.fail(name, f"unknown key{hint}; known keys: {known}")

    def sub(self, name: str) -> _Table:
        value = self.data.get(name, {})
        if not isinstance(value, dict):
            raise self.fail(name, "must be a table")
        return _Table(value, self.key(name), self.file)

    def get_str(self, name: str, default: str | None = None, choices: tuple[str, ...] = ()) -> Any:
        value = self.data.get(name, default)
        if value is None:
            return None
        if not isinstance(value, str):
            raise self.fail(name, f"must be a string, not {value!r}")
        if choices and value not in choices:
            raise self.fail(name, f"{value!r} is not one of {', '.join(choices)}")
        return value

    def get_int(self, name: str, default: int, lo: int | None = None, hi: int | None = None) -> int:
        value = self.data.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(name, f"must be an integer, not {value!r}")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise self.fail(name, f"{value} is out of range [{lo}, {hi}]")
        return value

    def get_float(self, name: str, default: float | None, lo: float, hi: float) -> Any:
        value = self.data.get(name, default)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(name, f"must be a number, not {value!r}")
        if not lo <= value <= hi:
            raise self.fail(name, f"{value} is out of range [{lo}, {hi}]")
        return float(value)

    def get_str_list(self, name: str) -> tuple[str, ...]:
        value = self.data.get(name, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(name, "must be a list of strings")
        return tuple(value)


def _metric_bounds(table: _Table, known: tuple[str, ...], lo: float = -1e300) -> dict[str, float]:
    out: dict[str, float] = {}
    for metric in table.data:
        if metric not in known:
            close = difflib.get_close_matches(metric, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise table.fail(metric, f"unknown metric{hint}; known: {', '.join(known)}")
        out[metric] = table.get_float(metric, None, lo, 1e300)
    return out


def _parse_contract(table: _Table) -> Contract:
    table.check_keys({"inferred_from", "columns"})
    columns_table = table.sub("columns")
    columns: dict[str, ColumnContract] = {}
    for name in columns_table.data:
        col = columns_table.sub(name)
        col.check_keys({"type", "max_null_fraction", "min", "max", "categories"})
        categories = col.get_str_list("categories") if "categories" in col.data else None
        columns[name] = ColumnContract(
            name=name,
            type=col.get_str("type", None, COLUMN_TYPES) or _missing(col, "type"),
            max_null_fraction=col.get_float("max_null_fraction", None, 0.0, 1.0),
            min=col.get_float("min", None, -1e300, 1e300),
            max=col.get_float("max", None, -1e300, 1e300),
            categories=categories,
        )
    return Contract(columns=columns, inferred_from=table.get_str("inferred_from"))


def _missing(table: _Table, name: str) -> NoReturn:
    raise table.fail(name, "is required")


def _parse_candidates(models: _Table) -> tuple[Candidate, ...]:
    raw = models.data or DEFAULT_CANDIDATES
    candidates = []
    for name, spec in raw.items():
        if not isinstance(spec, dict):
            raise models.fail(name, "must be a table: [models.NAME] with kind = ... and parameters")
        table = _Table(dict(spec), models.key(name), models.file)
        kind = table.get_str("kind", name if name in MODEL_KINDS else None, MODEL_KINDS)
        if kind is None:
            raise table.fail("kind", f"is required (one of {', '.join(MODEL_KINDS)})")
        params = {k: v for k, v in table.data.items() if k != "kind"}
        candidates.append(Candidate(name=name, kind=kind, params=params))
    return tuple(candidates)


def _parse_thresholds(table: _Table) -> dict[str, float]:
    out: dict[str, float] = {}
    for name in table.data:
        if name == "min_rows":
            out[name] = table.get_int(name, 100, 1)
        elif name == "p_value":
            out[name] = table.get_float(name, None, 0.0, 1.0)
        else:
            out[name] = table.get_float(name, None, 0.0, 1e300)
    for warn, alert in (("psi_warn", "psi_alert"), ("js_warn", "js_alert")):
        if warn in out and alert in out and out[warn] > out[alert]:
            raise table.fail(warn, f"{out[warn]} is above {alert} = {out[alert]}")
    return out


def _parse_drift(table: _Table, contract: Contract | None) -> DriftSettings:
    table.check_keys({*DRIFT_THRESHOLDS, "dataset_share", "features"})
    thresholds = _Table(
        {k: v for k, v in table.data.items() if k in DRIFT_THRESHOLDS}, table.path, table.file
    )
    features_t = table.sub("features")
    known = set(contract.columns) | {"__prediction__"} if contract is not None else None
    features: dict[str, dict[str, float]] = {}
    for name in features_t.data:
        if known is not None and name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise features_t.fail(name, f"not a column of the contract{hint}")
        feature = features_t.sub(name)
        feature.check_keys(set(DRIFT_THRESHOLDS))
        features[name] = _parse_thresholds(feature)
    return DriftSettings(
        thresholds=_parse_thresholds(thresholds),
        features=features,
        dataset_share=table.get_float("dataset_share", 0.25, 0.0, 1.0),
    )


def _parse_alerts(table: _Table) -> AlertRules:
    table.check_keys(
        {
            "drifted_features",
            "prediction_drift",
            "min_labelled",
            "min",
            "max",
            "max_drop",
            "max_error_rate",
            "max_p99_latency_ms",
        }
    )
    known = CLASSIFICATION_METRICS + REGRESSION_METRICS
    drifted = table.data.get("drifted_features")
    prediction_drift = table.data.get("prediction_drift", True)
    if not isinstance(prediction_drift, bool):
        raise table.fail("prediction_drift", f"must be true or false, not {prediction_drift!r}")
    return AlertRules(
        drifted_features=None if drifted is None else table.get_int("drifted_features", 1, 1),
        prediction_drift=prediction_drift,
        min_labelled=table.get_int("min_labelled", 100, 1),
        min=_metric_bounds(table.sub("min"), known),
        max=_metric_bounds(table.sub("max"), known),
        max_drop=_metric_bounds(table.sub("max_drop"), known, lo=0.0),
        max_error_rate=table.get_float("max_error_rate", 0.05, 0.0, 1.0),
        max_p99_latency_ms=table.get_float("max_p99_latency_ms", None, 0.0, 1e300),
    )


def parse_config(data: dict[str, Any], file: Path) -> Config:
    root = _Table(data, "", file)
    root.check_keys(
        {
            "project",
            "data",
            "split",
            "training",
            "models",
            "evaluation",
            "validation",
            "serving",
            "contract",
            "drift",
            "alerts",
            "retrain",
            "watch",
        }
    )
    project = root.sub("project")
    project.check_keys({"name"})
    data_t = root.sub("data")
    data_t.check_keys({"target", "id", "task", "ignore", "incoming", "labels"})
    split = root.sub("split")
    split.check_keys({"holdout_fraction", "seed"})
    training = root.sub("training")
    training.check_keys({"seed", "recent_batches"})
    evaluation = root.sub("evaluation")
    evaluation.check_keys({"primary_metric", "max_drop", "min", "max"})
    validation = root.sub("validation")
    validation.check_keys({"max_null_fraction"})
    serving = root.sub("serving")
    serving.check_keys({"host", "port", *ServingLimits.__dataclass_fields__})
    retrain = root.sub("retrain")
    retrain.check_keys({"policy", "every", "min_new_labels"})
    watch = root.sub("watch")
    watch.check_keys({"polling", "quiet_seconds", "follow_symlinks"})
    every = retrain.get_str("every")
    if every is not None:
        _check_span(retrain, "every", every)
    min_new_labels = (
        retrain.get_int("min_new_labels", 0, 1) if "min_new_labels" in retrain.data else None
    )
    polling = watch.data.get("polling", False)
    if not isinstance(polling, bool):
        raise watch.fail("polling", f"must be true or false, not {polling!r}")
    follow_symlinks = watch.data.get("follow_symlinks", False)
    if not isinstance(follow_symlinks, bool):
        raise watch.fail("follow_symlinks", f"must be true or false, not {follow_symlinks!r}")

    task = data_t.get_str("task", None, get_args(Task))
    known_metrics = CLASSIFICATION_METRICS + REGRESSION_METRICS
    primary = evaluation.get_str("primary_metric", None, known_metrics)
    if (
        task
        and primary
        and primary
        not in (CLASSIFICATION_METRICS if task == "classification" else REGRESSION_METRICS)
    ):
        raise evaluation.fail("primary_metric", f"{primary!r} is not a {task} metric")
    target = data_t.get_str("target")
    if target == "":
        raise data_t.fail("target", "is empty: name the column to predict")
    contract = _parse_contract(root.sub("contract")) if "contract" in data else None
    return Config(
        path=file,
        name=project.get_str("name", file.parent.name),
        target=target,
        id_column=data_t.get_str("id"),
        task=task,
        ignore=data_t.get_str_list("ignore"),
        incoming_dir=data_t.get_str("incoming", "data/incoming"),
        labels_dir=data_t.get_str("labels", "data/labels"),
        holdout_fraction=split.get_float("holdout_fraction", 0.2, 0.01, 0.9),
        split_seed=split.get_int("seed", 42),
        training_seed=training.get_int("seed", 42),
        recent_batches=training.get_int("recent_batches", 0, 0),
        candidates=_parse_candidates(root.sub("models")),
        evaluation=Evaluation(
            primary_metric=primary,
            min=_metric_bounds(evaluation.sub("min"), known_metrics),
            max=_metric_bounds(evaluation.sub("max"), known_metrics),
            max_drop=evaluation.get_float("max_drop", None, 0.0, 1e300),
        ),
        default_max_null_fraction=validation.get_float("max_null_fraction", 0.05, 0.0, 1.0),
        serving_host=serving.get_str("host", "127.0.0.1"),
        serving_port=serving.get_int("port", 8765, 0, 65535),
        contract=contract,
        drift=_parse_drift(root.sub("drift"), contract),
        alerts=_parse_alerts(root.sub("alerts")),
        retrain=RetrainConfig(
            policy=retrain.get_str("policy", "prompt", RETRAIN_POLICIES),
            every=every,
            min_new_labels=min_new_labels,
        ),
        serving=_parse_serving(serving),
        watch=WatchConfig(
            polling=polling,
            quiet_seconds=watch.get_float("quiet_seconds", 2.0, 0.0, 3600.0),
            follow_symlinks=follow_symlinks,
        ),
    )


def _check_span(table: _Table, name: str, text: str) -> None:
    from engine.core.errors import MldeckError
    from engine.core.spans import parse_span

    try:
        parse_span(text)
    except MldeckError as exc:
        raise table.fail(name, exc.msg) from None


def load_config(path: Path) -> Config:
    """Read and validate `mldeck.toml`; errors name the file, the key and the problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"{path} does not exist; run `mldeck init` first") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
    except RecursionError as exc:  # tomllib recurses once per level of [[[...]]] or {{...}}
        raise ConfigError(
            f"{path}: arrays or inline tables are nested too deeply to read; "
            "mldeck.toml needs at most a few levels"
        ) from exc
    try:
        return parse_config(data, path)
    except RecursionError as exc:
        raise ConfigError(f"{path}: a value is nested too deeply to check") from exc
