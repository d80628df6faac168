"""Stage 8, monitor: data and prediction drift against a stored training reference.

The package: `stats` (thresholds and tests on counts), `profile` (step 1), `window`
(step 2), `compare` (step 3); the names other modules use are re-exported here.

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

from engine.monitoring.drift.compare import DriftReport, check_drift, compare, psi_bin_counts
from engine.monitoring.drift.profile import (
    ColumnProfile,
    NumericProfile,
    ReferenceProfile,
    build_profile,
)
from engine.monitoring.drift.stats import (
    ALERT,
    KS_EXACT_MAX_N,
    NO_DATA,
    NUMERIC,
    OK,
    PREDICTION,
    PSI_EPSILON,
    WARN,
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

__all__ = [
    "ALERT",
    "CategoricalCounts",
    "ColumnCounts",
    "ColumnProfile",
    "DriftReport",
    "KS_EXACT_MAX_N",
    "NO_DATA",
    "NUMERIC",
    "NumericCounts",
    "NumericProfile",
    "OK",
    "PREDICTION",
    "PSI_EPSILON",
    "ReferenceProfile",
    "Thresholds",
    "WARN",
    "WindowSummary",
    "build_profile",
    "check_drift",
    "chi_square",
    "compare",
    "cramers_v_balanced",
    "jensen_shannon",
    "ks_pvalue",
    "psi",
    "psi_bin_counts",
    "summarize_window",
]
