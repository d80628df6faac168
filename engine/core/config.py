"""`mldeck.toml`: the project's config, read into one typed, validated object.

Only `data.target` matters for a first run, and even that is inferred from the
first batch when left out. What mldeck infers (target, id, task, the data
contract) is written back into the file, keeping the user's comments, so the
contract is explicit and editable.
"""

from __future__ import annotations

import difflib
import json
import os
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NoReturn, get_args

from engine.core.answers import ColumnType, ModelKind, RetrainPolicy, ServingAuth, Task
from engine.core.errors import ConfigError

COLUMN_TYPES: tuple[ColumnType, ...] = get_args(ColumnType)
MODEL_KINDS: tuple[ModelKind, ...] = get_args(ModelKind)
CLASSIFICATION_METRICS = ("accuracy", "f1", "roc_auc", "log_loss")
REGRESSION_METRICS = ("rmse", "mae", "r2")
# Metrics where a smaller value is better.
LOWER_IS_BETTER = frozenset({"log_loss", "rmse", "mae"})

DEFAULT_CANDIDATES: dict[str, dict[str, Any]] = {
    "linear": {"kind": "linear"},
    "random_forest": {"kind": "random_forest", "n_estimators": 100, "max_depth": 12},
    "gradient_boosting": {"kind": "gradient_boosting", "n_estimators": 150, "max_depth": 3},
    "mlp": {"kind": "mlp", "hidden": [64, 32], "epochs": 25, "batch_size": 256, "lr": 0.002},
}

TEMPLATE = """\
# mldeck project configuration. Only data.target is needed; mldeck infers the
# rest from the first batch and writes what it inferred back into this file.

[project]
name = {name}

[data]
{target_line}
{id_line}
# task = "classification"        # or "regression"; inferred from the target if absent
# ignore = []                    # columns that are not features (dates are ignored by default)
incoming = "data/incoming"
labels = "data/labels"

[split]
holdout_fraction = 0.2           # rows go to the holdout by a hash of their id: stable as data grows
seed = 42

[training]
seed = 42
# recent_batches = 6             # train on the newest 6 labelled batches only (default 0: all of them)
# Each table under [models] is a candidate: kind = linear | random_forest |
# gradient_boosting | mlp, plus the estimator's parameters. Without any, all
# four kinds are trained with sensible defaults.
# [models.forest]
# kind = "random_forest"
# n_estimators = 200

[evaluation]
# primary_metric = "roc_auc"     # classification: accuracy | f1 | roc_auc | log_loss; regression: rmse | mae | r2
# max_drop = 0.01                # the largest worsening of the primary metric allowed vs the champion
# [evaluation.min]               # floors, e.g. roc_auc = 0.7 (for rmse/mae/log_loss use [evaluation.max])

[validation]
max_null_fraction = 0.05         # default for columns that had no nulls in the first batch

[serving]
host = "127.0.0.1"
port = 8765
# auth = "auto"                  # auto: the token for inference and /metrics only beyond loopback | token | none
# max_body_mb = 10               # per request (413 beyond)
# max_rows = 100000              # rows per scoring request (413 beyond)
# max_columns = 1000             # distinct columns/keys per request (400 beyond)
# max_depth = 32                 # JSON nesting (400 beyond)
# max_id_length = 128            # a client's request id (400 beyond)
# header_timeout_s = 10          # slow clients: headers, then the whole body (408)
# body_timeout_s = 30

[drift]
# psi_warn = 0.1                 # PSI (numbers): warn / alert levels
# psi_alert = 0.2
# p_value = 0.05                 # KS and chi-square: significant below this p-value ...
# ks_min_statistic = 0.1         # ... and only an alert with KS D at least this
# cramers_v_min = 0.1            # ... or a chi-square effect size (Cramér's V) at least this
# js_alert = 0.1                 # Jensen-Shannon distance (categories)
# dataset_share = 0.25           # the dataset drifts when this share of features is in alert
# [drift.features.age]           # per-feature overrides of any threshold above
# psi_alert = 0.3

[alerts]
# drifted_features = 3           # alert when this many features drift (default: the dataset verdict)
# prediction_drift = true        # alert when the model's output drifts
# min_labelled = 100             # live performance is judged from this many labelled rows
# max_error_rate = 0.05          # serving: share of scoring requests that failed
# max_p99_latency_ms = 250       # serving: p99 scoring latency
# [alerts.min]                   # live performance floors, e.g. accuracy = 0.9
# [alerts.max]                   # ceilings for rmse / mae / log_loss
# [alerts.max_drop]              # the largest drop from the holdout figure, e.g. roc_auc = 0.05

[retrain]
policy = "prompt"                # prompt: store a proposal for a person | auto: retrain, promote through the gates | off
# every = "7d"                   # propose a retrain when the last training is this old

[watch]                          # `mldeck daemon` watches data.incoming and data.labels
polling = false                  # true on network file systems (no close events): wait for quiet files
quiet_seconds = 2.0              # polling: a file is taken once its size stopped changing this long
follow_symlinks = false          # true: take links in the watched folders that point outside the project
"""


@dataclass(frozen=True)
class ColumnContract:
    """What a column of an incoming batch must look like."""

    name: str
    type: ColumnType
    """One of COLUMN_TYPES."""
    max_null_fraction: float | None = None
    """Share of nulls above which a batch gets a warning; None: [validation] max_null_fraction."""
    min: float | None = None
    max: float | None = None
    categories: tuple[str, ...] | None = None
    """Allowed values of a string column; a new one is a warning."""

    @property
    def is_numeric(self) -> bool:
        return self.type in ("integer", "float")


@dataclass(frozen=True)
class Contract:
    columns: dict[str, ColumnContract]
    inferred_from: str | None = None


@dataclass(frozen=True)
class Candidate:
    name: str
    kind: ModelKind
    params: dict[str, Any]


@dataclass(frozen=True)
class Evaluation:
    primary_metric: str | None = None
    """None: roc_auc for classification, rmse for regression."""
    min: dict[str, float] = field(default_factory=dict)
    max: dict[str, float] = field(default_factory=dict)
    max_drop: float | None = None

    def primary_for(self, task: str) -> str:
        if self.primary_metric:
            return self.primary_metric
        return "roc_auc" if task == "classification" else "rmse"


DRIFT_THRESHOLDS = (
    "psi_warn",
    "psi_alert",
    "p_value",
    "ks_min_statistic",
    "cramers_v_min",
    "js_alert",
    "js_warn",
    "wasserstein_alert",
    "min_rows",
)
"""The fields of engine.monitoring.drift.Thresholds that [drift] and [drift.features.NAME] may set."""


@dataclass(frozen=True)
class DriftSettings:
    """[drift]: the thresholds of the drift verdicts (engine.monitoring.drift.Thresholds' defaults otherwise)."""

    thresholds: dict[str, float] = field(default_factory=dict)
    """Overrides of the default thresholds, for every feature."""
    features: dict[str, dict[str, float]] = field(default_factory=dict)
    """Per-feature overrides, on top of `thresholds`; "__prediction__" is the model output."""
    dataset_share: float = 0.25
    """The dataset drifts when at least this share of its features is in alert."""

    def for_feature(self, name: str) -> dict[str, float]:
        return {**self.thresholds, **self.features.get(name, {})}


@dataclass(frozen=True)
class AlertRules:
    """[alerts]: when a monitoring window raises an alert."""

    drifted_features: int | None = None
    """Alert when at least this many features are in drift alert; None: the dataset verdict."""
    prediction_drift: bool = True
    """Alert (warn) when the model's output drifts."""
    min_labelled: int = 100
    """Live performance is only judged on windows with at least this many labelled rows."""
    min: dict[str, float] = field(default_factory=dict)
    """Live metric floors (accuracy, f1, roc_auc, r2)."""
    max: dict[str, float] = field(default_factory=dict)
    """Live metric ceilings (log_loss, rmse, mae)."""
    max_drop: dict[str, float] = field(default_factory=dict)
    """The largest worsening of a live metric from the version's holdout figure."""
    max_error_rate: float | None = 0.05
    """Serving: the share of scoring requests answered with an error."""
    max_p99_latency_ms: float | None = None
    """Serving: the 99th percentile of the scoring latency."""


RETRAIN_POLICIES: tuple[RetrainPolicy, ...] = get_args(RetrainPolicy)


@dataclass(frozen=True)
class RetrainConfig:
    policy: RetrainPolicy = "prompt"
    """prompt: a trigger stores a pending proposal; auto: retrain and promote through the gates;
    off: a trigger is only logged."""
    every: str | None = None
    """A schedule trigger, e.g. "7d": fires when the last training is older than this."""
    min_new_labels: int | None = None
    """A new-labels trigger: fires once this many labelled rows arrived since the last training."""


@dataclass(frozen=True)
class WatchConfig:
    polling: bool = False
    """Poll the folders instead of inotify (network file systems give no close events)."""
    quiet_seconds: float = 2.0
    """Polling: a file is taken once its size and mtime stopped changing for this long."""
    follow_symlinks: bool = False
    """Take symbolic links in the watched folders whose target lies outside the project
    (refused by default: a link must not make mldeck read files nobody dropped)."""


SERVING_AUTH: tuple[ServingAuth, ...] = get_args(ServingAuth)


@dataclass(frozen=True)
class ServingLimits:
    """[serving]: what one request may hold and how the endpoint is exposed.

    Each limit a request passes is answered 413 (size) or 400 (shape) naming it.
    """

    auth: ServingAuth = "auto"
    """auto: inference and /metrics need the token only when bound beyond loopback;
    token: always; none: never (the control API always needs it)."""
    max_body_mb: float = 10.0
    """A request body larger than this is refused (413)."""
    max_rows: int = 100_000
    """Rows one scoring request may hold (413)."""
    max_columns: int = 1_000
    """Distinct columns (keys, inputs) one scoring request may name (400)."""
    max_depth: int = 32
    """How deeply a JSON body may nest arrays and objects (400)."""
    max_id_length: int = 128
    """Characters in a request id sent by a client (400)."""
    header_timeout_s: float = 10.0
    """A client must send its request headers within this (granian)."""
    body_timeout_s: float = 30.0
    """A client must send its whole body within this once the headers are in (408)."""


@dataclass(frozen=True)
class Config:
    path: Path
    name: str
    target: str | None
    id_column: str | None
    task: Task | None
    ignore: tuple[str, ...]
    incoming_dir: str
    labels_dir: str
    holdout_fraction: float
    split_seed: int
    training_seed: int
    recent_batches: int
    """Train on the newest N batches with labels; 0 for all."""
    candidates: tuple[Candidate, ...]
    evaluation: Evaluation
    default_max_null_fraction: float
    serving_host: str
    serving_port: int
    contract: Contract | None
    drift: DriftSettings = field(default_factory=DriftSettings)
    alerts: AlertRules = field(default_factory=AlertRules)
    retrain: RetrainConfig = RetrainConfig()
    watch: WatchConfig = WatchConfig()
    serving: ServingLimits = ServingLimits()

    def with_contract(self, contract: Contract) -> Config:
        return replace(self, contract=contract)


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


def toml_string(value: str) -> str:
    """`value` as a TOML basic string (JSON's escapes are TOML's, but for DEL)."""
    return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")


def render_template(name: str, target: str | None, id_column: str | None) -> str:
    target_line = (
        f"target = {toml_string(target)}"
        if target
        else '# target = "..."                # the column to predict; inferred from the first batch if absent'
    )
    id_line = (
        f"id = {toml_string(id_column)}"
        if id_column
        else '# id = "..."                    # a unique row id; inferred if a column looks like one'
    )
    return TEMPLATE.format(name=toml_string(name), target_line=target_line, id_line=id_line)


def write_inferred(
    path: Path,
    *,
    target: str | None = None,
    id_column: str | None = None,
    task: str | None = None,
    ignore: tuple[str, ...] | None = None,
    contract: Contract | None = None,
) -> None:
    """Write inferred settings into mldeck.toml, keeping comments; atomic rename."""
    import tomlkit

    doc = tomlkit.parse(path.read_text(encoding="utf-8"))
    data = doc.setdefault("data", tomlkit.table())
    for key, value in (("target", target), ("id", id_column), ("task", task)):
        if value is not None:
            data[key] = value
    if ignore is not None:
        data["ignore"] = list(ignore)
    if contract is not None:
        table = tomlkit.table()
        table.add(tomlkit.comment("The data contract: inferred from the first batch; edit freely."))
        if contract.inferred_from:
            table["inferred_from"] = contract.inferred_from
        columns = tomlkit.table()
        for col in contract.columns.values():
            entry = tomlkit.inline_table()
            entry["type"] = col.type
            if col.max_null_fraction is not None:
                entry["max_null_fraction"] = col.max_null_fraction
            for bound in ("min", "max"):
                value = getattr(col, bound)
                if value is not None:
                    entry[bound] = int(value) if col.type == "integer" else value
            if col.categories is not None:
                entry["categories"] = list(col.categories)
            columns[col.name] = entry
        table["columns"] = columns
        doc["contract"] = table
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_text(tomlkit.dumps(doc), encoding="utf-8")
    os.replace(temp, path)
