"""Stage 3, prepare: the versioned feature definition and the deterministic split.

The feature definition is a small JSON spec (which columns are numeric and
categorical, how each is imputed, scaled and encoded, and the model input name
of each column whose header is not one as it is: `engine.data.input_names`); its
sha256 is its version. Rows go to the holdout by an md5 of the split seed and
the row's id, so adding rows never moves old rows between train and holdout.

Models see their columns under their input names (`model_frame`, `onnx_feed`);
everything else keeps the raw names.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from engine.core.config import Config
from engine.core.errors import ConfigError
from engine.data.input_names import input_names
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
    input_names: tuple[tuple[str, str], ...] = ()
    """(column, model input name) for each column whose name is not its own input name;
    left out of the JSON when empty, so specs of plain headers hash as they always did."""

    @property
    def columns(self) -> tuple[str, ...]:
        return self.numeric + self.categorical

    def input_name(self, column: str) -> str:
        """The name of `column`'s model input."""
        for raw, name in self.input_names:
            if raw == column:
                return name
        return column

    @property
    def inputs(self) -> dict[str, str]:
        """Every column's model input name, in the columns' order."""
        renamed = dict(self.input_names)
        return {c: renamed.get(c, c) for c in self.columns}

    def to_json(self) -> str:
        data = asdict(self)
        renamed = data.pop("input_names")
        if renamed:
            data["input_names"] = dict(renamed)
        return json.dumps(data, sort_keys=True)

    @property
    def hash(self) -> str:
        return hashlib.sha256(self.to_json().encode()).hexdigest()

    @classmethod
    def from_json(cls, text: str) -> FeatureSpec:
        data: dict[str, Any] = json.loads(text)
        data["numeric"] = tuple(data["numeric"])
        data["categorical"] = tuple(data["categorical"])
        data["input_names"] = tuple(data.get("input_names", {}).items())
        return cls(**data)


TREE_KINDS = ("random_forest", "gradient_boosting")


def feature_spec(config: Config, kind: str | None = None) -> FeatureSpec:
    """Every contract column except the target, the id and ignored columns is a feature.

    Tree models get unscaled numbers: scaling cannot change their splits, and
    float32 scaling in ONNX against float64 in sklearn would move rows across
    split thresholds and break parity.

    Raises:
        ConfigError: the target or id column is not in the contract, or two
            feature columns would get one model input name.
    """
    assert config.contract is not None
    columns = config.contract.columns
    for key, name in (("target", config.target), ("id", config.id_column)):
        if name is not None and name not in columns:
            close = difflib.get_close_matches(name, list(columns), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ConfigError(
                f"{config.path.name}: [data] {key} = {name!r} is not a column of the data "
                f"({hint}the contract's columns: {', '.join(repr(c) for c in columns)})"
            )
    skip = {config.target, config.id_column, *config.ignore}
    numeric, categorical = [], []
    for name, col in columns.items():
        if name in skip:
            continue
        if col.is_numeric:
            numeric.append(name)
        elif col.type in ("string", "boolean"):
            categorical.append(name)
    renamed = tuple((c, n) for c, n in input_names(numeric + categorical).items() if c != n)
    scale = "none" if kind in TREE_KINDS else "standard"
    return FeatureSpec(
        numeric=tuple(numeric),
        categorical=tuple(categorical),
        numeric_scale=scale,
        input_names=renamed,
    )


def model_frame(frame: pl.DataFrame, spec: FeatureSpec) -> pl.DataFrame:
    """The feature columns as every model sees them: under their input names, float32
    numbers and string categories."""
    name = spec.input_name
    return frame.select(
        *[pl.col(c).cast(pl.Float32).alias(name(c)) for c in spec.numeric],
        *[
            pl.col(c).cast(pl.Utf8).fill_null(spec.missing_category).alias(name(c))
            for c in spec.categorical
        ],
    )


def tensor_feed(
    frame: pl.DataFrame,
    numeric: tuple[str, ...] | list[str],
    categorical: tuple[str, ...] | list[str],
    missing_category: str = MISSING_CATEGORY,
) -> dict[str, np.ndarray]:
    """One [N, 1] tensor per raw column, by column name: float32 (NaN for nulls) or object
    strings."""
    feed: dict[str, np.ndarray] = {}
    for c in numeric:
        values = frame[c].cast(pl.Float32).fill_null(float("nan")).to_numpy()
        feed[c] = values.astype(np.float32).reshape(-1, 1)
    for c in categorical:
        values = frame[c].cast(pl.Utf8).fill_null(missing_category).to_numpy()
        feed[c] = values.astype(object).reshape(-1, 1)
    return feed


def onnx_feed(frame: pl.DataFrame, spec: FeatureSpec) -> dict[str, np.ndarray]:
    """The feed of a model trained on `spec` (by input name) from a frame of raw columns."""
    feed = tensor_feed(frame, spec.numeric, spec.categorical, spec.missing_category)
    return {name: feed[column] for column, name in spec.inputs.items()}


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
        parts.append(("num", make_pipeline(*steps), [spec.input_name(c) for c in spec.numeric]))
    if spec.categorical:
        parts.append(
            (
                "cat",
                OneHotEncoder(handle_unknown=spec.unknown_category, sparse_output=False),
                [spec.input_name(c) for c in spec.categorical],
            )
        )
    return ColumnTransformer(parts)


def onnx_input_types(spec: FeatureSpec) -> list[tuple[str, Any]]:
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    name = spec.input_name
    return [(name(c), FloatTensorType([None, 1])) for c in spec.numeric] + [
        (name(c), StringTensorType([None, 1])) for c in spec.categorical
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
