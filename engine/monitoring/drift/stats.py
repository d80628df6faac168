"""Drift statistics: thresholds and the tests (PSI, KS p-value, chi-square, Cramér's V,
Jensen-Shannon), on counts. The method is in engine.monitoring.drift's docstring."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Union

import numpy as np
import numpy.typing as npt

from engine.core.answers import DriftStatus

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

OK: Final = "ok"
WARN: Final = "warn"
ALERT: Final = "alert"
NO_DATA: Final = "no data"
STATUSES: tuple[DriftStatus, ...] = (OK, WARN, ALERT, NO_DATA)
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
