"""Stage 8, monitor: data and prediction drift against a stored training reference.

Three steps, each small and storable, so that windows, history and the CLI are
thin layers on top:

1. ``build_profile(training_frame, numeric, categorical, prediction=...)`` runs
   ONCE (at training time) and returns a :class:`ReferenceProfile`, a JSON
   document (``to_json`` / ``from_json``) for the catalog. A drift check never
   rereads the training data.
2. ``summarize_window(profile, window_frame)`` reduces a window of recent
   inputs to a :class:`WindowSummary`: for every feature, counts of the window's
   values at (and between) the reference's sketch points, or per reference
   category. It is vectorised over whole columns (one ``np.sort`` per numeric
   column, one Polars ``value_counts`` per categorical column; no Python loop
   over rows). Summaries are small, JSON-serialisable and **additive**:
   ``a.merge(b)`` is the summary of the two windows together, so a 7-day window
   is the sum of seven daily summaries, and the drift history is a cheap query.
3. ``compare(profile, summary, thresholds=..., per_feature=...)`` turns the
   counts into tests and statuses (a :class:`DriftReport`).
   ``check_drift(profile, frame)`` is steps 2 and 3 together.

Reference sketch of a numeric column (exactness)
-------------------------------------------------
NaN, +inf and -inf are counted as nulls, never as values. Integers are read as
float64 (exact up to 2**53).

* If the column has at most ``max_exact`` (2,000) distinct values, the sketch is
  every distinct value with its count: the reference ECDF is exact, so KS (D and
  p-value), PSI, chi-square and Jensen-Shannon are exact, and Wasserstein is
  exact whenever the window's values lie on the reference's support.
* Otherwise the sketch is a grid of ``grid_points`` (1,000) reference quantiles
  (always including the minimum, the maximum and the PSI edges), each with the
  exact number of reference values equal to it and strictly between it and the
  previous grid point. PSI stays exact (its edges are grid points). The KS
  statistic is evaluated exactly at the grid points (left and right limits),
  which is a lower bound on the true D, off by at most the largest reference
  mass between two grid points (about 1 / grid_points = 0.001);
  ``TestResult.exact`` says which case applies. Wasserstein is approximated by
  treating the mass between two grid points as sitting on the upper one.

Tests and defaults (:class:`Thresholds`)
----------------------------------------
Numbers:

* PSI: ``bins`` (10) quantile bins of the reference (``inverted_cdf``
  quantiles, deduplicated, so a discrete column gets fewer bins), left-closed,
  plus two out-of-range bins (below the reference minimum, above its maximum)
  that are empty in the reference. A constant column gets three bins: below,
  equal, above. Proportions are floored at ``PSI_EPSILON`` = 1e-4 before
  ``sum((q - p) * ln(q / p))``, so a bin empty on both sides costs exactly 0.
  Warn at >= 0.1, alert at >= 0.2.
* Two-sample Kolmogorov-Smirnov: D = sup |F_ref - F_cur|; p-value from Smirnov's
  asymptotic distribution as ``scipy.stats.ks_2samp(method="asymp")``:
  ``kstwo.sf(D, en)`` with en = round(m n / (m + n)), exactly so up to
  en = 10,000; above that the limiting ``kstwobign.sf(sqrt(en) D)``, because
  kstwo.sf takes up to a second per call at en = 500,000 (|delta p| < 3e-3 at
  en = 10,000, less beyond). Alert when p < 0.05 AND D >= 0.1 (D is
  the effect size: a 200,000-row window makes D = 0.01 "significant", which is
  trivia).
* Wasserstein distance normed by the reference std (Evidently's
  ``wasserstein``: W1 / max(std_ref, 0.001)); reported always, judged only when
  ``wasserstein_alert`` is set (Evidently uses 0.1).

Categories (nulls are excluded and reported, like numbers; unseen categories
are counted, not dropped, and listed in ``new_categories``):

* Chi-square test of homogeneity on the 2 x k table (reference counts, window
  counts) over the union of categories, columns empty on both sides dropped, no
  Yates correction: ``scipy.stats.chi2_contingency(table, correction=False)``.
  Alert when p < 0.05 AND the effect size >= 0.1. The effect size is Cramér's V
  of that table with both samples weighted equally,
  ``sqrt(sum((p - q)**2 / (p + q)) / 2)`` over the category shares p, q: the
  plain V = sqrt(chi2 / N) shrinks as the reference grows, this one depends only
  on the two distributions (0 = same, 1 = disjoint).
* Jensen-Shannon distance, base 2 (``scipy.spatial.distance.jensenshannon(p, q,
  base=2)``, the square root of the divergence, 0..1). Alert at >= 0.1.

Distance scores (PSI, JS, Wasserstein) are noise on tiny windows (PSI on 30
rows from the reference itself is ~0.3), so with fewer than ``min_rows`` (100)
non-null window values they are reported but do not raise the status; the
hypothesis tests still can (their p-values account for the size). A feature
with no non-null value on either side has status ``"no data"``.

A feature's status is the worst of its tests (ok < warn < alert); ``method``,
``score``, ``p_value`` and ``threshold`` name the test that decided it (PSI for
numbers, JS for categories when all are ok). The dataset is drifted when the
share of features in "alert", among those with data, is >= ``dataset_share``
(default 0.25; Evidently uses 0.5, which waits until half the inputs have
moved). The model's output (probabilities of the positive class, regression
predictions or predicted labels) is profiled and tested like a feature and
reported separately (``DriftReport.prediction``); it does not count in the
share.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Union

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    import duckdb
    import polars as pl

    FrameLike = Union[pl.DataFrame, pl.LazyFrame, duckdb.DuckDBPyRelation]
    PredictionLike = Union[str, pl.Series, npt.ArrayLike, None]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

PROFILE_VERSION = 1
PSI_EPSILON = 1e-4
"""Floor for bin proportions in PSI (both sides), so an empty bin gives a finite score."""
WASSERSTEIN_STD_FLOOR = 0.001
"""Evidently's floor for the reference std that normalises the Wasserstein distance."""
KS_EXACT_MAX_N = 10_000
"""Largest effective n for which the KS p-value is scipy's kstwo.sf (as ks_2samp); see ks_pvalue."""
PREDICTION = "__prediction__"
"""Name of the model output's column in profiles and summaries."""

OK, WARN, ALERT, NO_DATA = "ok", "warn", "alert", "no data"
STATUSES = (OK, WARN, ALERT, NO_DATA)
_RANK = {NO_DATA: -1, OK: 0, WARN: 1, ALERT: 2}
NUMERIC, CATEGORICAL = "numeric", "categorical"


# --------------------------------------------------------------------------- thresholds


@dataclass(frozen=True)
class Thresholds:
    """When a test warns or alerts. Every field can be overridden per feature."""

    psi_warn: float = 0.1
    psi_alert: float = 0.2
    p_value: float = 0.05
    """KS and chi-square are significant below this p-value ..."""
    ks_min_statistic: float = 0.1
    """... and KS alerts only when its statistic D is also at least this."""
    cramers_v_min: float = 0.1
    """... and chi-square alerts only when the (balanced) Cramér's V is also at least this."""
    js_alert: float = 0.1
    js_warn: float | None = None
    wasserstein_alert: float | None = None
    """Normed Wasserstein alert level; None: reported, not judged (Evidently uses 0.1)."""
    min_rows: int = 100
    """Below this many non-null window values, PSI / JS / Wasserstein do not raise the status."""

    def override(self, changes: Thresholds | Mapping[str, Any]) -> Thresholds:
        """These thresholds with some fields replaced (unknown names raise ValueError)."""
        if isinstance(changes, Thresholds):
            return changes
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ValueError(
                f"unknown drift threshold(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        return dataclasses.replace(self, **dict(changes))


ThresholdOverrides = Mapping[str, Union[Thresholds, Mapping[str, Any]]]


# --------------------------------------------------------------------------- statistics
# Pure functions on count vectors: what compare() uses and the tests check against scipy.


def psi(reference_counts: npt.ArrayLike, current_counts: npt.ArrayLike) -> float:
    """Population stability index of two count vectors over the same bins.

    Proportions are floored at PSI_EPSILON (1e-4); ``sum((q - p) * ln(q / p))``.
    """
    r = np.asarray(reference_counts, dtype=np.float64)
    c = np.asarray(current_counts, dtype=np.float64)
    p = np.maximum(r / max(r.sum(), 1.0), PSI_EPSILON)
    q = np.maximum(c / max(c.sum(), 1.0), PSI_EPSILON)
    return float(np.sum((q - p) * np.log(q / p)))


def ks_pvalue(statistic: float, n1: int, n2: int) -> float:
    """Two-sided two-sample KS p-value from Smirnov's asymptotics, with the effective n.

    en = round(n1 n2 / (n1 + n2)). Up to KS_EXACT_MAX_N this is exactly
    ``ks_2samp(method="asymp")``: ``kstwo.sf(D, en)``. Above it, kstwo.sf costs
    up to a second per call (en = 500,000), so the limiting Kolmogorov
    distribution ``kstwobign.sf(sqrt(en) D)`` is used: |delta p| < 3e-3 at
    en = 10,000, shrinking like 1 / sqrt(en), about a microsecond.
    """
    if n1 <= 0 or n2 <= 0:
        return float("nan")
    en = float(np.round(float(n1) * float(n2) / (float(n1) + float(n2))))
    if en <= KS_EXACT_MAX_N:
        from scipy.stats import kstwo

        p = kstwo.sf(statistic, en)
    else:
        # kstwobign.sf is scipy.special.kolmogorov; scipy.special imports in a third of
        # the time of scipy.stats, which a big-window CLI run then never loads.
        from scipy.special import kolmogorov

        p = kolmogorov(math.sqrt(en) * statistic)
    return float(np.clip(p, 0.0, 1.0))


def chi_square(
    reference_counts: npt.ArrayLike, current_counts: npt.ArrayLike
) -> tuple[float, float, int]:
    """Chi-square test of homogeneity of the 2 x k table; (statistic, p-value, dof).

    Categories empty on both sides are dropped; no continuity correction (as
    ``chi2_contingency(table, correction=False)``). One category left: (0, 1, 0).
    """
    from scipy.special import chdtrc  # chi2.sf(x, dof) == chdtrc(dof, x)

    r = np.asarray(reference_counts, dtype=np.float64)
    c = np.asarray(current_counts, dtype=np.float64)
    keep = (r + c) > 0
    r, c = r[keep], c[keep]
    k = int(r.size)
    n_r, n_c = float(r.sum()), float(c.sum())
    if k < 2 or n_r == 0 or n_c == 0:
        return 0.0, 1.0, max(k - 1, 0)
    col = r + c
    total = n_r + n_c
    e_r = col * (n_r / total)
    e_c = col * (n_c / total)
    stat = float(np.sum((r - e_r) ** 2 / e_r) + np.sum((c - e_c) ** 2 / e_c))
    dof = k - 1
    return stat, float(chdtrc(dof, stat)), dof


def cramers_v_balanced(reference_counts: npt.ArrayLike, current_counts: npt.ArrayLike) -> float:
    """Cramér's V of the 2 x k table with both samples weighted equally.

    ``sqrt(sum((p - q)**2 / (p + q)) / 2)`` over the category shares: equal to
    ``scipy.stats.contingency.association(table, method="cramer")`` when both
    rows have the same total, and independent of the sample sizes otherwise.
    """
    r = np.asarray(reference_counts, dtype=np.float64)
    c = np.asarray(current_counts, dtype=np.float64)
    if r.sum() == 0 or c.sum() == 0:
        return float("nan")
    p, q = r / r.sum(), c / c.sum()
    s = p + q
    keep = s > 0
    return float(math.sqrt(0.5 * float(np.sum((p[keep] - q[keep]) ** 2 / s[keep]))))


def jensen_shannon(reference_counts: npt.ArrayLike, current_counts: npt.ArrayLike) -> float:
    """Jensen-Shannon distance, base 2 (sqrt of the divergence), as scipy's jensenshannon."""
    r = np.asarray(reference_counts, dtype=np.float64)
    c = np.asarray(current_counts, dtype=np.float64)
    if r.sum() == 0 or c.sum() == 0:
        return float("nan")
    p, q = r / r.sum(), c / c.sum()
    m = 0.5 * (p + q)

    def kl(a: FloatArray) -> float:
        nz = a > 0
        return float(np.sum(a[nz] * np.log(a[nz] / m[nz])))

    divergence = 0.5 * (kl(p) + kl(q)) / math.log(2.0)
    return float(math.sqrt(max(divergence, 0.0)))


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
    vc = s.drop_nulls().value_counts(sort=False, name="__count__")
    keys = [str(k) for k in vc.get_column(s.name).to_list()]
    counts = vc.get_column("__count__").to_numpy().astype(np.int64)
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


# --------------------------------------------------------------------------- comparing


@dataclass(frozen=True)
class TestResult:
    """One test of one feature."""

    __test__ = False  # not a pytest class

    method: str
    """psi, ks, wasserstein_normed, chi_square or jensen_shannon."""
    score: float
    """PSI, D, normed W1, chi-square statistic or JS distance."""
    p_value: float | None
    threshold: float | None
    """The alert level (the p-value level for hypothesis tests)."""
    status: str
    warn_threshold: float | None = None
    effect_size: float | None = None
    """D for KS, balanced Cramér's V for chi-square."""
    min_effect: float | None = None
    exact: bool = True
    judged: bool = True
    """False when the test is reported only (too few rows, or no threshold set)."""

    def to_dict(self) -> dict[str, Any]:
        return {k: _json_float(v) for k, v in dataclasses.asdict(self).items()}


@dataclass(frozen=True)
class FeatureDrift:
    """Drift verdict of one feature (or of the model output)."""

    feature: str
    kind: str
    status: str
    method: str | None
    score: float | None
    p_value: float | None
    threshold: float | None
    n_reference: int
    n_current: int
    nulls_reference: int
    nulls_current: int
    new_categories: dict[str, int] = field(default_factory=dict)
    tests: tuple[TestResult, ...] = ()
    note: str = ""

    @property
    def null_share_reference(self) -> float:
        total = self.n_reference + self.nulls_reference
        return self.nulls_reference / total if total else float("nan")

    @property
    def null_share_current(self) -> float:
        total = self.n_current + self.nulls_current
        return self.nulls_current / total if total else float("nan")

    def test(self, method: str) -> TestResult | None:
        return next((t for t in self.tests if t.method == method), None)

    def to_dict(self) -> dict[str, Any]:
        d = {k: _json_float(v) for k, v in dataclasses.asdict(self).items() if k != "tests"}
        d["tests"] = [t.to_dict() for t in self.tests]
        return d


@dataclass(frozen=True)
class DriftReport:
    features: tuple[FeatureDrift, ...]
    prediction: FeatureDrift | None
    n_reference: int
    n_current: int
    share_drifted: float
    """Features in alert / features with data (nan when none has data)."""
    dataset_share: float
    dataset_drift: bool
    status: str
    """alert (dataset drift), warn (some feature warns or alerts), ok, or no data."""
    missing: tuple[str, ...] = ()
    """Profile features absent from the window."""

    @property
    def drifted(self) -> tuple[str, ...]:
        return tuple(f.feature for f in self.features if f.status == ALERT)

    @property
    def warned(self) -> tuple[str, ...]:
        return tuple(f.feature for f in self.features if f.status == WARN)

    def feature(self, name: str) -> FeatureDrift:
        for f in self.features:
            if f.feature == name:
                return f
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "dataset_drift": self.dataset_drift,
            "share_drifted": _json_float(self.share_drifted),
            "dataset_share": self.dataset_share,
            "n_reference": self.n_reference,
            "n_current": self.n_current,
            "drifted": list(self.drifted),
            "warned": list(self.warned),
            "missing": list(self.missing),
            "features": [f.to_dict() for f in self.features],
            "prediction": None if self.prediction is None else self.prediction.to_dict(),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)


def _json_float(v: Any) -> Any:
    """NaN / inf are not JSON: None instead."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _level(score: float, warn: float | None, alert: float | None) -> str:
    if alert is not None and score >= alert:
        return ALERT
    if warn is not None and score >= warn:
        return WARN
    return OK


def psi_bin_counts(ref: NumericProfile, cur: NumericCounts) -> IntArray:
    """The window's values per PSI bin of the reference (aligned with ``ref.bin_counts``)."""
    c_le = np.cumsum(cur.eq + cur.gap)
    c_lt = c_le - cur.eq
    # Counts below each edge; edges are sketch points except the last (just above the max).
    idx = np.searchsorted(ref.values, ref.edges[:-1])
    c_below = np.concatenate([[0], c_lt[idx], [c_le[-1]], [cur.n]])
    return np.diff(c_below).astype(np.int64)


def _numeric_tests(ref: NumericProfile, cur: NumericCounts, th: Thresholds) -> list[TestResult]:
    m, n = ref.n, cur.n
    enough = n >= th.min_rows
    # Cumulative counts at each sketch point: <= (right limit) and < (left limit).
    r_le = ref.cum_le
    r_lt = r_le - ref.eq
    c_le = np.cumsum(cur.eq + cur.gap)
    c_lt = c_le - cur.eq
    psi_score = psi(ref.bin_counts, psi_bin_counts(ref, cur))
    psi_status = _level(psi_score, th.psi_warn, th.psi_alert) if enough else OK
    tests = [
        TestResult("psi", psi_score, None, th.psi_alert, psi_status, th.psi_warn, judged=enough)
    ]
    # KS: sup |F_ref - F_cur| over left and right limits at every sketch point.
    d = float(max(np.max(np.abs(r_le / m - c_le / n)), np.max(np.abs(r_lt / m - c_lt / n))))
    p = ks_pvalue(d, m, n)
    ks_status = ALERT if (p < th.p_value and d >= th.ks_min_statistic) else OK
    tests.append(
        TestResult(
            "ks", d, p, th.p_value, ks_status,
            effect_size=d, min_effect=th.ks_min_statistic, exact=ref.exact,
        )
    )  # fmt: skip
    # Wasserstein-1 normed by the reference std: integral of |F_ref - F_cur| between points
    # (both taken at their right limits), plus the window's mass outside the reference range.
    widths = np.diff(ref.values)
    w = float(np.sum(np.abs(r_le[:-1] / m - c_le[:-1] / n) * widths))
    w += (cur.below_sum + cur.above_sum) / n
    wn = w / max(ref.std, WASSERSTEIN_STD_FLOOR)
    w_exact = ref.exact and not cur.gap[1:].any()
    judged = th.wasserstein_alert is not None and enough
    w_status = _level(wn, None, th.wasserstein_alert) if judged else OK
    tests.append(
        TestResult(
            "wasserstein_normed", wn, None, th.wasserstein_alert, w_status,
            exact=bool(w_exact), judged=judged,
        )
    )  # fmt: skip
    return tests


def _categorical_tests(
    ref: CategoricalProfile, cur: CategoricalCounts, th: Thresholds
) -> list[TestResult]:
    enough = cur.n >= th.min_rows
    new_counts = np.asarray(list(cur.new.values()), dtype=np.int64)
    r = np.concatenate([ref.counts, [ref.other], np.zeros(new_counts.size, np.int64)])
    c = np.concatenate([cur.counts, [cur.other], new_counts])
    stat, p, _dof = chi_square(r, c)
    v = cramers_v_balanced(r, c)
    chi_status = ALERT if (p < th.p_value and v >= th.cramers_v_min) else OK
    js = jensen_shannon(r, c)
    js_status = _level(js, th.js_warn, th.js_alert) if enough else OK
    return [
        TestResult("jensen_shannon", js, None, th.js_alert, js_status, th.js_warn, judged=enough),
        TestResult(
            "chi_square", stat, p, th.p_value, chi_status,
            effect_size=v, min_effect=th.cramers_v_min,
        ),
    ]  # fmt: skip


def compare_column(
    name: str, ref: ColumnProfile, cur: ColumnCounts, thresholds: Thresholds
) -> FeatureDrift:
    """Tests and status of one column from its reference profile and window counts."""
    new = (
        dict(sorted(cur.new.items(), key=lambda kv: (-kv[1], kv[0])))
        if isinstance(cur, CategoricalCounts)
        else {}
    )
    base = {
        "feature": name,
        "kind": ref.kind,
        "n_reference": ref.n,
        "n_current": cur.n,
        "nulls_reference": ref.nulls,
        "nulls_current": cur.nulls,
        "new_categories": new,
    }
    if ref.n == 0 or cur.n == 0:
        side = "reference" if ref.n == 0 else "window"
        return FeatureDrift(
            status=NO_DATA, method=None, score=None, p_value=None, threshold=None,
            note=f"no non-null values in the {side}", **base,  # type: ignore[arg-type]
        )  # fmt: skip
    if isinstance(ref, NumericProfile) and isinstance(cur, NumericCounts):
        tests = _numeric_tests(ref, cur, thresholds)
    elif isinstance(ref, CategoricalProfile) and isinstance(cur, CategoricalCounts):
        tests = _categorical_tests(ref, cur, thresholds)
    else:
        raise ValueError(f"{name}: window counts do not match the profile's column kind")
    worst = max(tests, key=lambda t: _RANK[t.status])  # first of the worst, in test order
    note = ""
    if cur.n < thresholds.min_rows:
        note = f"{cur.n} window values (< {thresholds.min_rows}): distance scores not judged"
    return FeatureDrift(
        status=worst.status,
        method=worst.method,
        score=worst.score,
        p_value=worst.p_value,
        threshold=worst.threshold,
        tests=tuple(tests),
        note=note,
        **base,  # type: ignore[arg-type]
    )


def compare(
    profile: ReferenceProfile,
    summary: WindowSummary,
    *,
    thresholds: Thresholds | None = None,
    per_feature: ThresholdOverrides | None = None,
    dataset_share: float = 0.25,
) -> DriftReport:
    """The drift report of a window summary against the reference profile."""
    if summary.profile != profile.fingerprint:
        raise ValueError("the window summary was counted against another profile")
    default = thresholds or Thresholds()
    overrides = dict(per_feature or {})
    unknown = sorted(set(overrides) - set(profile.columns) - {PREDICTION})
    if unknown:
        raise ValueError(f"thresholds for unknown feature(s): {', '.join(unknown)}")

    def th(name: str) -> Thresholds:
        return default.override(overrides[name]) if name in overrides else default

    features = tuple(
        compare_column(name, ref, summary.columns[name], th(name))
        for name, ref in profile.columns.items()
        if name in summary.columns
    )
    missing = tuple(n for n in profile.columns if n not in summary.columns)
    pred = None
    if profile.prediction is not None and summary.prediction is not None:
        pred = compare_column(PREDICTION, profile.prediction, summary.prediction, th(PREDICTION))
    judged = [f for f in features if f.status != NO_DATA]
    share = sum(f.status == ALERT for f in judged) / len(judged) if judged else float("nan")
    dataset_drift = bool(judged) and share >= dataset_share
    if not judged:
        status = NO_DATA
    elif dataset_drift:
        status = ALERT
    elif any(f.status in (WARN, ALERT) for f in judged) or (
        pred is not None and pred.status in (WARN, ALERT)
    ):
        status = WARN
    else:
        status = OK
    return DriftReport(
        features=features,
        prediction=pred,
        n_reference=profile.n_rows,
        n_current=summary.n_rows,
        share_drifted=share,
        dataset_share=dataset_share,
        dataset_drift=dataset_drift,
        status=status,
        missing=missing,
    )


def check_drift(
    profile: ReferenceProfile,
    data: FrameLike,
    *,
    prediction: PredictionLike = None,
    thresholds: Thresholds | None = None,
    per_feature: ThresholdOverrides | None = None,
    dataset_share: float = 0.25,
) -> DriftReport:
    """Drift of a window (polars DataFrame or DuckDB relation) against the stored profile."""
    summary = summarize_window(profile, data, prediction=prediction)
    return compare(
        profile,
        summary,
        thresholds=thresholds,
        per_feature=per_feature,
        dataset_share=dataset_share,
    )
