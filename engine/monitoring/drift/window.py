"""Window summaries: a window's counts at the reference's sketch points, additive (step 2
of engine.monitoring.drift)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Union

import numpy as np
import numpy.typing as npt

from engine.monitoring.drift.profile import (
    CategoricalProfile,
    ColumnProfile,
    NumericProfile,
    ReferenceProfile,
    _as_list,
    _finite_values,
    _series,
    _to_polars,
    _value_counts,
)
from engine.monitoring.drift.stats import (
    CATEGORICAL,
    NUMERIC,
    PREDICTION,
    PROFILE_VERSION,
    IntArray,
)

if TYPE_CHECKING:
    import duckdb
    import polars as pl

    FrameLike = Union[pl.DataFrame, pl.LazyFrame, duckdb.DuckDBPyRelation]
    PredictionLike = Union[str, pl.Series, npt.ArrayLike, None]

# --------------------------------------------------------------------------- window summaries


@dataclass(frozen=True, eq=False)
class NumericCounts:
    """A window's values counted at the reference sketch points of one column (additive)."""

    n: int
    nulls: int
    eq: IntArray
    """Window values equal to each reference point."""
    gap: IntArray
    """Window values strictly between the previous point and this one (gap[0]: below the first)."""
    above: int
    """Window values above the last point."""
    below_sum: float
    """Sum of (first point - x) over window values below the first point (for Wasserstein)."""
    above_sum: float
    """Sum of (x - last point) over window values above the last point."""
    total: float
    total_sq: float
    kind: str = NUMERIC

    @property
    def mean(self) -> float:
        return self.total / self.n if self.n else float("nan")

    def merge(self, other: NumericCounts) -> NumericCounts:
        return NumericCounts(
            n=self.n + other.n,
            nulls=self.nulls + other.nulls,
            eq=self.eq + other.eq,
            gap=self.gap + other.gap,
            above=self.above + other.above,
            below_sum=self.below_sum + other.below_sum,
            above_sum=self.above_sum + other.above_sum,
            total=self.total + other.total,
            total_sq=self.total_sq + other.total_sq,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": NUMERIC,
            "n": self.n,
            "nulls": self.nulls,
            "eq": _as_list(self.eq),
            "gap": _as_list(self.gap),
            "above": self.above,
            "below_sum": self.below_sum,
            "above_sum": self.above_sum,
            "total": self.total,
            "total_sq": self.total_sq,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> NumericCounts:
        return cls(
            n=int(d["n"]),
            nulls=int(d["nulls"]),
            eq=np.asarray(d["eq"], dtype=np.int64),
            gap=np.asarray(d["gap"], dtype=np.int64),
            above=int(d["above"]),
            below_sum=float(d["below_sum"]),
            above_sum=float(d["above_sum"]),
            total=float(d["total"]),
            total_sq=float(d["total_sq"]),
        )


@dataclass(frozen=True, eq=False)
class CategoricalCounts:
    """A window's category counts aligned to the reference categories (additive)."""

    n: int
    nulls: int
    counts: IntArray
    """Per reference category, in the profile's order."""
    other: int
    """Values not among the stored categories of a truncated reference profile."""
    new: dict[str, int]
    """Categories the reference never saw, with their counts (untruncated profiles)."""
    kind: str = CATEGORICAL

    def merge(self, other: CategoricalCounts) -> CategoricalCounts:
        new = dict(self.new)
        for k, v in other.new.items():
            new[k] = new.get(k, 0) + v
        return CategoricalCounts(
            n=self.n + other.n,
            nulls=self.nulls + other.nulls,
            counts=self.counts + other.counts,
            other=self.other + other.other,
            new=new,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": CATEGORICAL,
            "n": self.n,
            "nulls": self.nulls,
            "counts": _as_list(self.counts),
            "other": self.other,
            "new": dict(sorted(self.new.items())),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CategoricalCounts:
        return cls(
            n=int(d["n"]),
            nulls=int(d["nulls"]),
            counts=np.asarray(d["counts"], dtype=np.int64),
            other=int(d["other"]),
            new={str(k): int(v) for k, v in d["new"].items()},
        )


ColumnCounts = Union[NumericCounts, CategoricalCounts]


def _counts_from_dict(d: Mapping[str, Any]) -> ColumnCounts:
    return NumericCounts.from_dict(d) if d["kind"] == NUMERIC else CategoricalCounts.from_dict(d)


@dataclass(frozen=True, eq=False)
class WindowSummary:
    """One window of inputs reduced to counts against a reference profile; additive."""

    profile: str
    """Fingerprint of the profile the counts refer to."""
    n_rows: int
    columns: dict[str, ColumnCounts]
    prediction: ColumnCounts | None = None

    def merge(self, other: WindowSummary) -> WindowSummary:
        """The summary of both windows together (same profile required)."""
        if other.profile != self.profile:
            raise ValueError("cannot merge window summaries counted against different profiles")
        columns = {
            name: _merge(c, other.columns[name])
            for name, c in self.columns.items()
            if name in other.columns
        }
        pred = None
        if self.prediction is not None and other.prediction is not None:
            pred = _merge(self.prediction, other.prediction)
        return WindowSummary(self.profile, self.n_rows + other.n_rows, columns, pred)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": PROFILE_VERSION,
            "profile": self.profile,
            "n_rows": self.n_rows,
            "columns": {k: v.to_dict() for k, v in self.columns.items()},
            "prediction": None if self.prediction is None else self.prediction.to_dict(),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> WindowSummary:
        d = json.loads(text)
        pred = d.get("prediction")
        return cls(
            profile=str(d["profile"]),
            n_rows=int(d["n_rows"]),
            columns={k: _counts_from_dict(v) for k, v in d["columns"].items()},
            prediction=None if pred is None else _counts_from_dict(pred),
        )


def _merge(a: ColumnCounts, b: ColumnCounts) -> ColumnCounts:
    if isinstance(a, NumericCounts) and isinstance(b, NumericCounts):
        return a.merge(b)
    if isinstance(a, CategoricalCounts) and isinstance(b, CategoricalCounts):
        return a.merge(b)
    raise ValueError("cannot merge counts of different kinds")


def _numeric_counts(ref: NumericProfile, s: pl.Series) -> NumericCounts:
    x, nulls = _finite_values(s)
    n = int(x.size)
    g = ref.values.size
    if g == 0:  # the reference had no values: nothing to count against
        z = np.zeros(0, np.int64)
        total = float(x.sum()) if n else 0.0
        return NumericCounts(n, nulls, z, z, n, 0.0, 0.0, total, float(np.dot(x, x)))
    srt = np.sort(x)
    left = np.searchsorted(srt, ref.values, side="left")
    right = np.searchsorted(srt, ref.values, side="right")
    eq = (right - left).astype(np.int64)
    gap = (left - np.concatenate([[0], right[:-1]])).astype(np.int64)
    above = n - int(right[-1])
    first, last = float(ref.values[0]), float(ref.values[-1])
    n_below = int(left[0])
    below_sum = n_below * first - float(srt[:n_below].sum()) if n_below else 0.0
    above_sum = float(srt[n - above :].sum()) - above * last if above else 0.0
    return NumericCounts(
        n=n,
        nulls=nulls,
        eq=eq,
        gap=gap,
        above=above,
        below_sum=below_sum,
        above_sum=above_sum,
        total=float(srt.sum()),
        total_sq=float(np.dot(srt, srt)),
    )


def _categorical_counts(ref: CategoricalProfile, s: pl.Series) -> CategoricalCounts:
    keys, counts, nulls = _value_counts(s)
    index = {c: i for i, c in enumerate(ref.categories)}
    aligned = np.zeros(len(ref.categories), np.int64)
    other = 0
    new: dict[str, int] = {}
    for k, v in zip(keys, counts.tolist(), strict=True):  # distinct values, not rows
        i = index.get(k)
        if i is not None:
            aligned[i] = v
        elif ref.truncated:
            other += v
        else:
            new[k] = v
    return CategoricalCounts(n=int(counts.sum()), nulls=nulls, counts=aligned, other=other, new=new)


def _column_counts(ref: ColumnProfile, s: pl.Series) -> ColumnCounts:
    if isinstance(ref, NumericProfile):
        return _numeric_counts(ref, s)
    return _categorical_counts(ref, s)


def summarize_window(
    profile: ReferenceProfile, data: FrameLike, *, prediction: PredictionLike = None
) -> WindowSummary:
    """Count a window of inputs against the reference profile (vectorised per column).

    Columns of the profile that the window lacks are skipped (reported as
    missing by compare); ``prediction`` as in build_profile.
    """
    frame = _to_polars(data)
    columns = {
        name: _column_counts(ref, frame.get_column(name))
        for name, ref in profile.columns.items()
        if name in frame.columns
    }
    pred: ColumnCounts | None = None
    if prediction is not None and profile.prediction is not None:
        pred = _column_counts(profile.prediction, _series(prediction, frame, PREDICTION))
    return WindowSummary(profile.fingerprint, frame.height, columns, pred)
