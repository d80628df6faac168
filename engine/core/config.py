"""`mldeck.toml`: the project's config as one typed object (the model; it is read and checked
by `config_parse`, and written by `config_template`).

Only `data.target` matters for a first run, and even that is inferred from the
first batch when left out. What mldeck infers (target, id, task, the data
contract) is written back into the file, keeping the user's comments, so the
contract is explicit and editable.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, get_args

from engine.core.answers import ColumnType, ModelKind, RetrainPolicy, ServingAuth, Task

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
