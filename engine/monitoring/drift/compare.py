"""Comparing a window summary with its reference: tests, statuses and the report (step 3
of engine.monitoring.drift)."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Union

import numpy as np
import numpy.typing as npt

from engine.core.answers import DriftStatus
from engine.monitoring.drift.profile import (
    CategoricalProfile,
    ColumnProfile,
    NumericProfile,
    ReferenceProfile,
)
from engine.monitoring.drift.stats import (
    _RANK,
    ALERT,
    NO_DATA,
    OK,
    PREDICTION,
    WARN,
    WASSERSTEIN_STD_FLOOR,
    IntArray,
    ThresholdOverrides,
    Thresholds,
    chi_square,
    cramers_v_balanced,
    jensen_shannon,
    ks_pvalue,
    psi,
)
from engine.monitoring.drift.window import (
    CategoricalCounts,
    ColumnCounts,
    NumericCounts,
    WindowSummary,
    summarize_window,
)

if TYPE_CHECKING:
    import duckdb
    import polars as pl

    FrameLike = Union[pl.DataFrame, pl.LazyFrame, duckdb.DuckDBPyRelation]
    PredictionLike = Union[str, pl.Series, npt.ArrayLike, None]

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
    status: DriftStatus
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
    status: DriftStatus
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
    status: DriftStatus
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


def _level(score: float, warn: float | None, alert: float | None) -> DriftStatus:
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
    ks_status: DriftStatus = ALERT if (p < th.p_value and d >= th.ks_min_statistic) else OK
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
    chi_status: DriftStatus = ALERT if (p < th.p_value and v >= th.cramers_v_min) else OK
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
    status: DriftStatus
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
