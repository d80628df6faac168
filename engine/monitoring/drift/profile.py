"""Reference profiles: one pass over the training frame, stored as JSON (step 1 of
engine.monitoring.drift)."""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Union

import numpy as np
import numpy.typing as npt

from engine.monitoring.drift.stats import (
    CATEGORICAL,
    NUMERIC,
    PREDICTION,
    PROFILE_VERSION,
    FloatArray,
    IntArray,
)

if TYPE_CHECKING:
    import duckdb
    import polars as pl

    FrameLike = Union[pl.DataFrame, pl.LazyFrame, duckdb.DuckDBPyRelation]
    PredictionLike = Union[str, pl.Series, npt.ArrayLike, None]

# --------------------------------------------------------------------------- profiles


def _as_list(a: npt.ArrayLike) -> list[Any]:
    return np.asarray(a).tolist()  # type: ignore[no-any-return]


@dataclass(frozen=True, eq=False)
class NumericProfile:
    """Reference sketch of one numeric column (see the module docstring for exactness)."""

    name: str
    n: int
    """Non-null (finite) values."""
    nulls: int
    """Nulls, NaN and +-inf."""
    values: FloatArray
    """Sorted sketch points: every distinct value (exact) or a quantile grid."""
    eq: IntArray
    """Reference values equal to each point."""
    gap: IntArray
    """Reference values strictly between the previous point and this one (all 0 when exact)."""
    edges: FloatArray
    """PSI bin edges (left-closed bins; -inf and +inf implied at the ends)."""
    bin_counts: IntArray
    """Reference values per PSI bin: len(edges) + 1 bins."""
    mean: float
    std: float
    """Population std (ddof=0), as numpy and Evidently."""
    exact: bool
    dtype: str = "float"
    kind: str = NUMERIC

    @property
    def cum_le(self) -> IntArray:
        """Reference values <= each point."""
        return np.cumsum(self.eq + self.gap)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": NUMERIC,
            "dtype": self.dtype,
            "n": self.n,
            "nulls": self.nulls,
            "exact": self.exact,
            "mean": self.mean,
            "std": self.std,
            "values": _as_list(self.values),
            "eq": _as_list(self.eq),
            "gap": [] if not self.gap.any() else _as_list(self.gap),
            "edges": _as_list(self.edges),
            "bin_counts": _as_list(self.bin_counts),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> NumericProfile:
        values = np.asarray(d["values"], dtype=np.float64)
        gap = d.get("gap") or []
        return cls(
            name=str(d["name"]),
            n=int(d["n"]),
            nulls=int(d["nulls"]),
            values=values,
            eq=np.asarray(d["eq"], dtype=np.int64),
            gap=np.asarray(gap, dtype=np.int64) if gap else np.zeros(values.size, np.int64),
            edges=np.asarray(d["edges"], dtype=np.float64),
            bin_counts=np.asarray(d["bin_counts"], dtype=np.int64),
            mean=float(d["mean"]),
            std=float(d["std"]),
            exact=bool(d["exact"]),
            dtype=str(d.get("dtype", "float")),
        )


@dataclass(frozen=True, eq=False)
class CategoricalProfile:
    """Reference category counts of one column (nulls excluded)."""

    name: str
    n: int
    nulls: int
    categories: tuple[str, ...]
    counts: IntArray
    other: int = 0
    """Reference rows in categories beyond max_categories (lumped; 0 unless truncated)."""
    dtype: str = "string"
    kind: str = CATEGORICAL

    @property
    def truncated(self) -> bool:
        return self.other > 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": CATEGORICAL,
            "dtype": self.dtype,
            "n": self.n,
            "nulls": self.nulls,
            "categories": list(self.categories),
            "counts": _as_list(self.counts),
            "other": self.other,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CategoricalProfile:
        return cls(
            name=str(d["name"]),
            n=int(d["n"]),
            nulls=int(d["nulls"]),
            categories=tuple(str(c) for c in d["categories"]),
            counts=np.asarray(d["counts"], dtype=np.int64),
            other=int(d.get("other", 0)),
            dtype=str(d.get("dtype", "string")),
        )


ColumnProfile = Union[NumericProfile, CategoricalProfile]


def _column_from_dict(d: Mapping[str, Any]) -> ColumnProfile:
    if d["kind"] == NUMERIC:
        return NumericProfile.from_dict(d)
    return CategoricalProfile.from_dict(d)


@dataclass(frozen=True, eq=False)
class ReferenceProfile:
    """The training reference of a model version: built once, stored as JSON in the catalog."""

    columns: dict[str, ColumnProfile]
    n_rows: int
    prediction: ColumnProfile | None = None
    bins: int = 10
    meta: dict[str, Any] = field(default_factory=dict)
    """Free-form provenance (model version, dataset version, ...), stored as is."""

    @property
    def numeric(self) -> tuple[str, ...]:
        return tuple(n for n, c in self.columns.items() if c.kind == NUMERIC)

    @property
    def categorical(self) -> tuple[str, ...]:
        return tuple(n for n, c in self.columns.items() if c.kind == CATEGORICAL)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": PROFILE_VERSION,
            "n_rows": self.n_rows,
            "bins": self.bins,
            "meta": self.meta,
            "columns": [c.to_dict() for c in self.columns.values()],
            "prediction": None if self.prediction is None else self.prediction.to_dict(),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"), sort_keys=True)

    @functools.cached_property
    def fingerprint(self) -> str:
        """sha256 of the JSON: ties window summaries to the profile they were counted against."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ReferenceProfile:
        if int(d.get("version", 0)) != PROFILE_VERSION:
            raise ValueError(f"unsupported drift profile version {d.get('version')!r}")
        columns = [_column_from_dict(c) for c in d["columns"]]
        pred = d.get("prediction")
        return cls(
            columns={c.name: c for c in columns},
            n_rows=int(d["n_rows"]),
            prediction=None if pred is None else _column_from_dict(pred),
            bins=int(d.get("bins", 10)),
            meta=dict(d.get("meta") or {}),
        )

    @classmethod
    def from_json(cls, text: str) -> ReferenceProfile:
        return cls.from_dict(json.loads(text))


# --------------------------------------------------------------------------- input handling


def _to_polars(data: Any, columns: Sequence[str] | None = None) -> pl.DataFrame:
    """A polars DataFrame from a polars DataFrame/LazyFrame, a DuckDB relation or an Arrow table."""
    import polars as pl

    if isinstance(data, pl.LazyFrame):
        data = data.select(columns).collect() if columns is not None else data.collect()
    if isinstance(data, pl.DataFrame):
        return data
    if hasattr(data, "pl") and hasattr(data, "columns"):  # duckdb relation
        if columns is not None:
            quoted = ", ".join('"' + c.replace('"', '""') + '"' for c in columns)
            data = data.project(quoted)
        frame = data.pl()
        assert isinstance(frame, pl.DataFrame)
        return frame
    frame = pl.DataFrame(data) if not hasattr(data, "schema") else pl.from_arrow(data)
    assert isinstance(frame, pl.DataFrame)
    return frame


def _is_numeric_dtype(dtype: Any) -> bool:
    import polars as pl

    return bool(
        dtype.is_numeric()
        or dtype in (pl.Date, pl.Time)
        or isinstance(dtype, (pl.Datetime, pl.Duration))
    )


def _dtype_name(dtype: Any) -> str:
    import polars as pl

    if dtype.is_integer():
        return "integer"
    if dtype.is_float() or dtype.is_decimal():
        return "float"
    if dtype == pl.Boolean:
        return "boolean"
    if dtype == pl.Date:
        return "date"
    if isinstance(dtype, pl.Datetime):
        return "timestamp"
    return "string"


def _finite_values(s: pl.Series) -> tuple[FloatArray, int]:
    """Finite float64 values of a numeric series and the number of nulls (NaN and inf included)."""
    import polars as pl

    if not s.dtype.is_numeric():
        s = s.to_physical()
    x = s.cast(pl.Float64).to_numpy()  # nulls become NaN
    finite = np.isfinite(x)
    if finite.all():
        return np.asarray(x, dtype=np.float64), 0
    kept = np.asarray(x[finite], dtype=np.float64)
    return kept, int(x.size - kept.size)


def _series(value: Any, frame: pl.DataFrame | None, name: str) -> pl.Series:
    import polars as pl

    if isinstance(value, str):
        if frame is None or value not in frame.columns:
            raise KeyError(f"prediction column {value!r} not in the data")
        return frame.get_column(value).alias(name)
    if isinstance(value, pl.Series):
        return value.alias(name)
    return pl.Series(name, np.asarray(value))


# --------------------------------------------------------------------------- building profiles


def _numeric_profile(
    name: str, s: pl.Series, bins: int, max_exact: int, grid_points: int
) -> NumericProfile:
    x, nulls = _finite_values(s)
    dtype = _dtype_name(s.dtype)
    n = int(x.size)
    if n == 0:
        empty_f = np.zeros(0, np.float64)
        empty_i = np.zeros(0, np.int64)
        return NumericProfile(
            name, 0, nulls, empty_f, empty_i, empty_i, empty_f, np.zeros(1, np.int64),
            float("nan"), float("nan"), True, dtype,
        )  # fmt: skip
    srt = np.sort(x)
    lo, hi = float(srt[0]), float(srt[-1])
    # PSI edges: inverted_cdf quantiles at k/bins, deduplicated, plus the minimum
    # (values below it fall in an out-of-range bin) and the next float after the
    # maximum (values above it likewise).
    ranks = np.ceil(np.arange(1, bins) * n / bins).astype(np.int64) - 1
    inner = np.unique(np.concatenate([[lo], srt[np.clip(ranks, 0, n - 1)]]))
    top = np.nextafter(hi, np.inf)
    edges = np.concatenate([inner, [top]])

    starts = np.flatnonzero(np.concatenate([[True], srt[1:] != srt[:-1]]))
    if starts.size <= max_exact:
        values = srt[starts]
        eq = np.diff(np.append(starts, n)).astype(np.int64)
        gap = np.zeros(values.size, np.int64)
        exact = True
    else:
        grid_ranks = np.unique(np.round(np.linspace(0, n - 1, grid_points)).astype(np.int64))
        values = np.unique(np.concatenate([srt[grid_ranks], inner]))
        left = np.searchsorted(srt, values, side="left")
        right = np.searchsorted(srt, values, side="right")
        eq = (right - left).astype(np.int64)
        gap = (left - np.concatenate([[0], right[:-1]])).astype(np.int64)
        exact = False
    # Bin counts from the cumulative counts below each edge (edges are sketch points,
    # except the last, which lies just above the maximum).
    below_inner = np.searchsorted(srt, inner, side="left")
    cum = np.concatenate([[0], below_inner, [n], [n]])
    bin_counts = np.diff(cum).astype(np.int64)
    return NumericProfile(
        name=name,
        n=n,
        nulls=nulls,
        values=np.asarray(values, np.float64),
        eq=eq,
        gap=gap,
        edges=np.asarray(edges, np.float64),
        bin_counts=bin_counts,
        mean=float(np.mean(srt)),
        std=float(np.std(srt)),
        exact=exact,
        dtype=dtype,
    )


def _value_counts(s: pl.Series) -> tuple[list[str], IntArray, int]:
    """Distinct non-null values as strings, their counts, and the null count."""
    import polars as pl

    if s.dtype != pl.String:
        s = s.cast(pl.String)
    nulls = int(s.null_count())
    count = "__count__" if s.name != "__count__" else "__count___"  # any column name works
    vc = s.drop_nulls().value_counts(sort=False, name=count)
    keys = [str(k) for k in vc.get_column(s.name).to_list()]
    counts = vc.get_column(count).to_numpy().astype(np.int64)
    return keys, counts, nulls


def _categorical_profile(name: str, s: pl.Series, max_categories: int) -> CategoricalProfile:
    keys, counts, nulls = _value_counts(s)
    order = sorted(range(len(keys)), key=lambda i: (-int(counts[i]), keys[i]))
    kept = order[:max_categories]
    other = int(counts[order[max_categories:]].sum()) if len(order) > max_categories else 0
    return CategoricalProfile(
        name=name,
        n=int(counts.sum()),
        nulls=nulls,
        categories=tuple(keys[i] for i in kept),
        counts=counts[kept] if kept else np.zeros(0, np.int64),
        other=other,
        dtype=_dtype_name(s.dtype),
    )


def _column_profile(
    name: str,
    s: pl.Series,
    kind: str,
    bins: int,
    max_exact: int,
    grid_points: int,
    max_categories: int,
) -> ColumnProfile:
    if kind == NUMERIC:
        return _numeric_profile(name, s, bins, max_exact, grid_points)
    return _categorical_profile(name, s, max_categories)


def build_profile(
    data: FrameLike,
    numeric: Iterable[str] | None = None,
    categorical: Iterable[str] | None = None,
    *,
    prediction: PredictionLike = None,
    bins: int = 10,
    max_exact: int = 2000,
    grid_points: int = 1000,
    max_categories: int = 1000,
    meta: Mapping[str, Any] | None = None,
) -> ReferenceProfile:
    """Profile a training frame (polars DataFrame/LazyFrame or DuckDB relation) once.

    ``numeric`` / ``categorical``: the feature columns (e.g. a FeatureSpec's);
    when both are None every column is used, numbers (and dates) as numeric,
    everything else as categorical. ``prediction``: the model's output on these
    rows (a column name, a polars Series or an array): probabilities of the
    positive class, regression predictions (numeric) or predicted labels.
    """
    if bins < 1:
        raise ValueError("bins must be >= 1")
    numeric_cols = list(numeric) if numeric is not None else None
    categorical_cols = list(categorical) if categorical is not None else None
    wanted: list[str] | None = None
    if numeric_cols is not None or categorical_cols is not None:
        wanted = [*(numeric_cols or []), *(categorical_cols or [])]
        if isinstance(prediction, str):
            wanted.append(prediction)
    frame = _to_polars(data, wanted)
    if numeric_cols is None and categorical_cols is None:
        skip = {prediction} if isinstance(prediction, str) else set()
        numeric_cols = [
            c for c in frame.columns if c not in skip and _is_numeric_dtype(frame.schema[c])
        ]
        categorical_cols = [c for c in frame.columns if c not in skip and c not in numeric_cols]
    kinds = {c: NUMERIC for c in numeric_cols or []}
    kinds.update({c: CATEGORICAL for c in categorical_cols or []})
    missing = [c for c in kinds if c not in frame.columns]
    if missing:
        raise KeyError(f"columns not in the data: {', '.join(missing)}")
    columns = {
        c: _column_profile(c, frame.get_column(c), k, bins, max_exact, grid_points, max_categories)
        for c, k in kinds.items()
    }
    pred_profile: ColumnProfile | None = None
    if prediction is not None:
        ps = _series(prediction, frame, PREDICTION)
        kind = NUMERIC if _is_numeric_dtype(ps.dtype) else CATEGORICAL
        pred_profile = _column_profile(
            PREDICTION, ps, kind, bins, max_exact, grid_points, max_categories
        )
    return ReferenceProfile(
        columns=columns,
        n_rows=frame.height,
        prediction=pred_profile,
        bins=bins,
        meta=dict(meta or {}),
    )
