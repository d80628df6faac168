"""Stage 3, prepare: the versioned feature definition and the deterministic split.

The feature definition is a small JSON spec (which columns are numeric and
categorical, how each is imputed, scaled and encoded); its sha256 is its
version. Rows go to the holdout by an md5 of the split seed and the row's id,
so adding rows never moves old rows between train and holdout.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from engine.config import Config
from storage.sql import quote_ident, quote_literal

if TYPE_CHECKING:
    from sklearn.compose import ColumnTransformer

MISSING_CATEGORY = ""
"""Null categories become this string, identically in training, ONNX and serving."""


@dataclass(frozen=True)
class FeatureSpec:
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    numeric_impute: str = "median"
    numeric_scale: str = "standard"
    categorical_encoding: str = "onehot"
    unknown_category: str = "ignore"
    missing_category: str = MISSING_CATEGORY

    @property
    def columns(self) -> tuple[str, ...]:
        return self.numeric + self.categorical

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @property
    def hash(self) -> str:
        return hashlib.sha256(self.to_json().encode()).hexdigest()

    @classmethod
    def from_json(cls, text: str) -> FeatureSpec:
        data: dict[str, Any] = json.loads(text)
        data["numeric"] = tuple(data["numeric"])
        data["categorical"] = tuple(data["categorical"])
        return cls(**data)


TREE_KINDS = ("random_forest", "gradient_boosting")


def feature_spec(config: Config, kind: str | None = None) -> FeatureSpec:
    """Every contract column except the target, the id and ignored columns is a feature.

    Tree models get unscaled numbers: scaling cannot change their splits, and
    float32 scaling in ONNX against float64 in sklearn would move rows across
    split thresholds and break parity.
    """
    assert config.contract is not None
    skip = {config.target, config.id_column, *config.ignore}
    numeric, categorical = [], []
    for name, col in config.contract.columns.items():
        if name in skip:
            continue
        if col.is_numeric:
            numeric.append(name)
        elif col.type in ("string", "boolean"):
            categorical.append(name)
    scale = "none" if kind in TREE_KINDS else "standard"
    return FeatureSpec(numeric=tuple(numeric), categorical=tuple(categorical), numeric_scale=scale)


def model_frame(frame: pl.DataFrame, spec: FeatureSpec) -> pl.DataFrame:
    """The raw feature columns as every model sees them: float32 numbers, string categories."""
    return frame.select(
        *[pl.col(c).cast(pl.Float32) for c in spec.numeric],
        *[pl.col(c).cast(pl.Utf8).fill_null(spec.missing_category) for c in spec.categorical],
    )


def tensor_feed(
    frame: pl.DataFrame,
    numeric: tuple[str, ...] | list[str],
    categorical: tuple[str, ...] | list[str],
    missing_category: str = MISSING_CATEGORY,
) -> dict[str, np.ndarray]:
    """One [N, 1] tensor per raw column: float32 (NaN for nulls) or object strings."""
    feed: dict[str, np.ndarray] = {}
    for c in numeric:
        values = frame[c].cast(pl.Float32).fill_null(float("nan")).to_numpy()
        feed[c] = values.astype(np.float32).reshape(-1, 1)
    for c in categorical:
        values = frame[c].cast(pl.Utf8).fill_null(missing_category).to_numpy()
        feed[c] = values.astype(object).reshape(-1, 1)
    return feed


def onnx_feed(frame: pl.DataFrame, spec: FeatureSpec) -> dict[str, np.ndarray]:
    """The feed of a model trained on `spec`."""
    return tensor_feed(frame, spec.numeric, spec.categorical, spec.missing_category)


def build_preprocessor(spec: FeatureSpec) -> ColumnTransformer:
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    parts: list[tuple[str, Any, list[str]]] = []
    if spec.numeric:
        steps: list[Any] = [SimpleImputer(strategy=spec.numeric_impute)]
        if spec.numeric_scale == "standard":
            steps.append(StandardScaler())
        parts.append(("num", make_pipeline(*steps), list(spec.numeric)))
    if spec.categorical:
        parts.append(
            (
                "cat",
                OneHotEncoder(handle_unknown=spec.unknown_category, sparse_output=False),
                list(spec.categorical),
            )
        )
    return ColumnTransformer(parts)


def onnx_input_types(spec: FeatureSpec) -> list[tuple[str, Any]]:
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    return [(c, FloatTensorType([None, 1])) for c in spec.numeric] + [
        (c, StringTensorType([None, 1])) for c in spec.categorical
    ]


def split_sql(config: Config, columns: list[str]) -> str:
    """A SQL boolean expression that is true for holdout rows."""
    if config.id_column:
        key_sql = f"CAST({quote_ident(config.id_column)} AS VARCHAR)"
    else:
        key_sql = (
            "concat_ws('|', "
            + ", ".join(f"coalesce(CAST({quote_ident(c)} AS VARCHAR), '')" for c in columns)
            + ")"
        )
    buckets = 1_000_000
    threshold = int(round(config.holdout_fraction * buckets))
    seed_sql = quote_literal(f"{config.split_seed}:")
    return f"(md5_number(concat({seed_sql}, {key_sql})) % {int(buckets)}) < {int(threshold)}"
