"""engine.monitoring.drift: the statistics against scipy / hand computation, edge cases, and sample_data.

Exactness: with at most 2,000 distinct reference values the sketch is exact and
PSI, KS (D and p), chi-square, Cramér's V, JS and Wasserstein are compared to
1e-9. Past that the KS statistic comes from a 1,000-point quantile grid and is
checked against its documented bound (the largest reference mass between two
grid points).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats import chi2_contingency, ks_2samp, kstwo, wasserstein_distance
from scipy.stats.contingency import association

from engine.monitoring.drift import (
    ALERT,
    KS_EXACT_MAX_N,
    NO_DATA,
    OK,
    PREDICTION,
    PSI_EPSILON,
    WARN,
    ReferenceProfile,
    Thresholds,
    WindowSummary,
    build_profile,
    check_drift,
    chi_square,
    compare,
    cramers_v_balanced,
    jensen_shannon,
    ks_pvalue,
    psi,
    summarize_window,
)

SAMPLE = Path(__file__).resolve().parents[2] / "sample_data"
TOL = 1e-9


def hand_psi(ref_counts: np.ndarray, cur_counts: np.ndarray) -> float:
    """PSI written out independently: shares floored at 1e-4, sum (q - p) ln(q / p)."""
    total = 0.0
    rn, cn = float(sum(ref_counts)), float(sum(cur_counts))
    for r, c in zip(ref_counts, cur_counts, strict=True):
        p = max(r / rn, 1e-4)
        q = max(c / cn, 1e-4)
        total += (q - p) * math.log(q / p)
    return total


def histogram_psi(ref: np.ndarray, cur: np.ndarray, edges: np.ndarray) -> float:
    bins = np.concatenate([[-np.inf], edges, [np.inf]])
    return hand_psi(np.histogram(ref, bins)[0], np.histogram(cur, bins)[0])


def one_column(values: np.ndarray | list, name: str = "x", dtype: pl.DataType | None = None):
    return pl.DataFrame({name: pl.Series(name, values, dtype=dtype)})


# --------------------------------------------------------------------------- pure functions


def test_psi_by_hand_with_empty_bins() -> None:
    ref = np.array([50, 30, 20, 0])
    cur = np.array([0, 30, 30, 40])
    p = np.array([0.5, 0.3, 0.2, PSI_EPSILON])
    q = np.array([PSI_EPSILON, 0.3, 0.3, 0.4])
    expected = float(np.sum((q - p) * np.log(q / p)))
    assert psi(ref, cur) == pytest.approx(expected, abs=TOL)
    assert psi(ref, cur) == pytest.approx(hand_psi(ref, cur), abs=TOL)
    # A bin empty on both sides costs exactly nothing.
    assert psi([10, 0, 10], [5, 0, 5]) == 0.0


def test_chi_square_js_and_cramers_v_match_scipy() -> None:
    rng = np.random.default_rng(1)
    for _ in range(20):
        k = int(rng.integers(2, 9))
        ref = rng.integers(0, 400, k)
        cur = rng.integers(0, 300, k)
        ref[0] = 0  # a category only the window has
        cur[-1] = 0  # and one only the reference has
        stat, p, dof = chi_square(ref, cur)
        keep = (ref + cur) > 0
        sp = chi2_contingency(np.vstack([ref, cur])[:, keep], correction=False)
        assert stat == pytest.approx(sp.statistic, rel=TOL, abs=TOL)
        assert p == pytest.approx(sp.pvalue, abs=TOL)
        assert dof == sp.dof
        js = jensen_shannon(ref, cur)
        assert js == pytest.approx(jensenshannon(ref / ref.sum(), cur / cur.sum(), base=2), abs=TOL)
        # Balanced Cramér's V == scipy's V on the table with equal row totals.
        equal_rows = np.vstack([ref * cur.sum(), cur * ref.sum()])[:, keep]
        assert cramers_v_balanced(ref, cur) == pytest.approx(
            association(equal_rows, method="cramer", correction=False), abs=TOL
        )


def test_chi_square_degenerate_tables() -> None:
    assert chi_square([10], [5]) == (0.0, 1.0, 0)
    assert chi_square([10, 0], [5, 0]) == (0.0, 1.0, 0)
    assert cramers_v_balanced([3, 0], [0, 3]) == pytest.approx(1.0)
    assert jensen_shannon([3, 0], [0, 3]) == pytest.approx(1.0)
    assert jensen_shannon([3, 1], [6, 2]) == pytest.approx(0.0, abs=1e-12)


def test_ks_pvalue_is_ks_2samp_asymp_up_to_the_switch_then_close() -> None:
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=3000), rng.normal(0.05, 1, size=2500)
    ref = ks_2samp(a, b, method="asymp")
    assert ks_pvalue(ref.statistic, a.size, b.size) == pytest.approx(ref.pvalue, abs=TOL)
    # Past KS_EXACT_MAX_N the limiting distribution: within 3e-3 of kstwo.
    en = 4 * KS_EXACT_MAX_N
    for z in (0.5, 1.0, 1.36, 2.0):
        d = z / math.sqrt(en)
        assert abs(ks_pvalue(d, 2 * en, 2 * en) - kstwo.sf(d, en)) < 3e-3


# --------------------------------------------------------------------------- numeric drift


def test_numeric_psi_and_ks_match_numpy_and_scipy_exact_sketch() -> None:
    rng = np.random.default_rng(3)
    for shift in (0.0, 0.15, 0.6):
        ref = np.round(rng.normal(size=1800), 6)  # <= 2,000 distinct: exact sketch
        cur = np.round(rng.normal(shift, 1.2, size=700), 6)
        profile = build_profile(one_column(ref))
        col = profile.columns["x"]
        assert col.exact
        # The edges are the reference minimum and its inverted_cdf deciles (dedup), then
        # the next float above the maximum.
        deciles = np.quantile(ref, np.arange(1, 10) / 10, method="inverted_cdf")
        expected_edges = np.concatenate(
            [np.unique(np.concatenate([[ref.min()], deciles])), [np.nextafter(ref.max(), np.inf)]]
        )
        np.testing.assert_array_equal(col.edges, expected_edges)
        f = check_drift(profile, one_column(cur)).feature("x")
        assert f.test("psi").score == pytest.approx(histogram_psi(ref, cur, col.edges), abs=TOL)
        sp = ks_2samp(ref, cur, method="asymp")
        assert f.test("ks").score == pytest.approx(sp.statistic, abs=TOL)
        assert f.test("ks").p_value == pytest.approx(sp.pvalue, abs=TOL)
        assert f.test("ks").exact
        w = wasserstein_distance(ref, cur) / ref.std()
        # Continuous window values fall between reference points: the Wasserstein
        # approximation puts them on the next point; close, not exact.
        assert f.test("wasserstein_normed").score == pytest.approx(w, rel=0.05, abs=0.01)


def test_ks_and_wasserstein_exact_with_ties_on_integer_data() -> None:
    rng = np.random.default_rng(4)
    ref = rng.poisson(6, size=5000)
    cur = rng.poisson(7, size=1200)
    # Window values on the reference support, or outside its range.
    cur = np.where(np.isin(cur, ref), cur, ref.max() + 3)
    cur[:5] = ref.max() + 7
    cur[5:8] = ref.min() - 2  # and below its minimum
    profile = build_profile(one_column(ref))
    f = check_drift(profile, one_column(cur)).feature("x")
    sp = ks_2samp(ref, cur, method="asymp")
    assert f.test("ks").score == pytest.approx(sp.statistic, abs=TOL)
    assert f.test("ks").p_value == pytest.approx(sp.pvalue, abs=TOL)
    assert f.test("psi").score == pytest.approx(
        histogram_psi(ref, cur, profile.columns["x"].edges), abs=TOL
    )
    wt = f.test("wasserstein_normed")
    assert wt.exact  # every window value lies on the reference support or outside its range
    assert wt.score == pytest.approx(wasserstein_distance(ref, cur) / ref.std(), abs=TOL)
    assert f.status == ALERT


def test_ks_grid_sketch_is_a_lower_bound_within_the_documented_error() -> None:
    rng = np.random.default_rng(5)
    ref = rng.normal(size=60_000)
    cur = rng.normal(0.03, 1.0, size=9_000)
    profile = build_profile(one_column(ref))
    col = profile.columns["x"]
    assert not col.exact and col.values.size <= 1000 + 12
    bound = col.gap.max() / col.n
    f = check_drift(profile, one_column(cur)).feature("x")
    sp = ks_2samp(ref, cur, method="asymp")
    d = f.test("ks").score
    assert d <= sp.statistic + TOL
    assert sp.statistic - d <= bound + TOL
    assert not f.test("ks").exact
    # PSI stays exact on a grid: the edges are grid points.
    assert f.test("psi").score == pytest.approx(histogram_psi(ref, cur, col.edges), abs=TOL)


def test_constant_column() -> None:
    profile = build_profile(one_column(np.full(500, 5.0)))
    col = profile.columns["x"]
    assert col.edges.tolist() == [5.0, np.nextafter(5.0, np.inf)]  # bins: < 5, == 5, > 5
    same = check_drift(profile, one_column(np.full(300, 5.0))).feature("x")
    assert same.status == OK
    assert same.test("psi").score == 0.0 and same.test("ks").score == 0.0
    moved = check_drift(profile, one_column(np.full(300, 6.0))).feature("x")
    eps = PSI_EPSILON
    # p = (eps, 1, eps), q = (eps, eps, 1)
    assert moved.test("psi").score == pytest.approx(2 * (1 - eps) * math.log(1 / eps), abs=TOL)
    assert moved.test("ks").score == 1.0
    assert moved.status == ALERT
    # Wasserstein of a constant reference: std floored at 0.001.
    assert moved.test("wasserstein_normed").score == pytest.approx(1.0 / 0.001, rel=TOL)


def test_psi_empty_bins_in_the_window() -> None:
    rng = np.random.default_rng(6)
    ref = rng.uniform(0, 10, 1500)
    cur = rng.uniform(0, 1, 400)  # every window value in the first decile
    profile = build_profile(one_column(ref))
    f = check_drift(profile, one_column(cur)).feature("x")
    assert f.test("psi").score == pytest.approx(
        histogram_psi(ref, cur, profile.columns["x"].edges), abs=TOL
    )
    assert f.status == ALERT


def test_all_null_columns_and_nan_are_no_data() -> None:
    frame = pl.DataFrame(
        {
            "x": pl.Series([None] * 50, dtype=pl.Float64),
            "y": pl.Series([float("nan")] * 25 + [float("inf")] * 25),
            "z": pl.Series(list(range(50)), dtype=pl.Int64),
            "c": pl.Series([None] * 50, dtype=pl.String),
        }
    )
    profile = build_profile(frame, ["x", "y", "z"], ["c"])
    assert profile.columns["x"].nulls == 50 and profile.columns["y"].nulls == 50
    window = pl.DataFrame(
        {
            "x": pl.Series([1.0, 2.0]),
            "y": pl.Series([1.0, 2.0]),
            "z": pl.Series([None, None], dtype=pl.Int64),
            "c": pl.Series(["a", None]),
        }
    )
    report = check_drift(profile, window)
    for name in ("x", "y", "z", "c"):
        assert report.feature(name).status == NO_DATA, name
    assert report.feature("z").nulls_current == 2
    assert report.status == NO_DATA and math.isnan(report.share_drifted)
    json.loads(report.to_json())  # NaN-free JSON


def test_single_row_window() -> None:
    rng = np.random.default_rng(7)
    frame = pl.DataFrame({"x": rng.normal(size=2000), "c": rng.choice(["a", "b", "c"], 2000)})
    profile = build_profile(frame)
    report = check_drift(profile, pl.DataFrame({"x": [0.1], "c": ["b"]}))
    x, c = report.feature("x"), report.feature("c")
    assert x.n_current == 1 and c.n_current == 1
    # Distance scores are computed but not judged on one row; the tests' p-values are large.
    assert not x.test("psi").judged and x.test("psi").score > 0.2
    assert x.test("ks").p_value > 0.05
    assert x.status == OK and c.status == OK
    assert "not judged" in x.note
    sp = ks_2samp(frame["x"].to_numpy(), np.array([0.1]), method="asymp")
    assert x.test("ks").score == pytest.approx(sp.statistic, abs=TOL)


def test_unseen_categories_are_counted_not_dropped() -> None:
    rng = np.random.default_rng(8)
    cats = np.array(["a", "b", "c", "d"])
    ref = rng.choice(cats, 5000, p=[0.4, 0.3, 0.2, 0.1])
    cur = np.concatenate([rng.choice(cats, 900, p=[0.4, 0.3, 0.2, 0.1]), ["new"] * 80, ["zz"] * 20])
    profile = build_profile(pl.DataFrame({"c": ref}))
    f = check_drift(profile, pl.DataFrame({"c": cur})).feature("c")
    assert f.new_categories == {"new": 80, "zz": 20}
    assert f.n_current == 1000
    union = ["a", "b", "c", "d", "new", "zz"]
    r = np.array([(ref == u).sum() for u in union])
    c = np.array([(cur == u).sum() for u in union])
    sp = chi2_contingency(np.vstack([r, c]), correction=False)
    assert f.test("chi_square").score == pytest.approx(sp.statistic, rel=TOL)
    assert f.test("chi_square").p_value == pytest.approx(sp.pvalue, abs=TOL)
    assert f.test("jensen_shannon").score == pytest.approx(
        jensenshannon(r / r.sum(), c / c.sum(), base=2), abs=TOL
    )
    assert f.status == ALERT  # 10 % of the window in categories never seen


def test_categorical_profile_truncation_lumps_the_tail() -> None:
    values = [f"v{i}" for i in range(30) for _ in range(30 - i)]
    profile = build_profile(pl.DataFrame({"c": values}), max_categories=10)
    col = profile.columns["c"]
    assert len(col.categories) == 10 and col.truncated and col.other == sum(range(1, 21))
    f = check_drift(profile, pl.DataFrame({"c": values + ["brand_new"] * 5})).feature("c")
    assert f.new_categories == {}  # ambiguous against a truncated profile: counted as "other"
    assert f.status == OK


# --------------------------------------------------------------------------- profile and windows


def test_profile_json_round_trip_and_additive_windows() -> None:
    rng = np.random.default_rng(9)
    n = 3000
    frame = pl.DataFrame(
        {
            "a": rng.normal(size=n),
            "b": rng.integers(0, 5, n),
            "c": rng.choice(["x", "y", "z"], n),
            "d": pl.Series(np.where(rng.random(n) < 0.1, np.nan, rng.exponential(size=n))),
            "p": rng.random(n),
        }
    )
    profile = build_profile(frame, ["a", "b", "d"], ["c"], prediction="p", meta={"model": "v3"})
    text = profile.to_json()
    back = ReferenceProfile.from_json(text)
    assert back.to_json() == text and back.fingerprint == profile.fingerprint
    assert back.meta == {"model": "v3"} and back.prediction is not None
    window = frame.with_columns(pl.col("a") + 0.3).with_columns(
        pl.when(pl.int_range(n) < 100).then(pl.lit("w")).otherwise(pl.col("c")).alias("c")
    )
    one = check_drift(profile, window, prediction="p")
    two = check_drift(back, window, prediction="p")
    assert one.to_json() == two.to_json()
    # Window summaries: JSON round trip, and the sum of two halves is the whole.
    whole = summarize_window(profile, window, prediction="p")
    halves = summarize_window(profile, window.head(1000), prediction="p").merge(
        summarize_window(profile, window.tail(n - 1000), prediction="p")
    )
    restored = WindowSummary.from_json(halves.to_json())
    for s in (halves, restored):
        assert compare(profile, s).to_json() == compare(profile, whole).to_json()
    assert one.feature("a").status == ALERT and one.feature("c").new_categories == {"w": 100}


def test_duckdb_relation_gives_the_same_profile() -> None:
    rng = np.random.default_rng(10)
    frame = pl.DataFrame({"a": rng.normal(size=500), "c": rng.choice(["x", "y"], 500)})
    con = duckdb.connect()
    rel = con.sql("SELECT * FROM frame")
    assert build_profile(rel).to_json() == build_profile(frame).to_json()
    assert build_profile(rel, ["a"], ["c"]).to_json() == build_profile(frame).to_json()
    con.close()


def test_thresholds_per_feature_and_dataset_share() -> None:
    rng = np.random.default_rng(11)
    n = 4000
    ref = pl.DataFrame({f"f{i}": rng.normal(size=n) for i in range(4)})
    cur = pl.DataFrame({f"f{i}": rng.normal(0.5 if i == 0 else 0.0, 1, n) for i in range(4)})
    profile = build_profile(ref)
    report = check_drift(profile, cur)
    assert report.drifted == ("f0",) and report.share_drifted == 0.25 and report.dataset_drift
    assert not check_drift(profile, cur, dataset_share=0.5).dataset_drift
    relaxed = check_drift(
        profile,
        cur,
        per_feature={"f0": {"psi_alert": 10.0, "psi_warn": 10.0, "ks_min_statistic": 0.9}},
    )
    assert relaxed.feature("f0").status == OK and relaxed.status == OK
    warn_only = check_drift(
        profile, cur, per_feature={"f0": {"psi_alert": 10.0, "ks_min_statistic": 0.9}}
    )
    assert warn_only.feature("f0").status == WARN and warn_only.feature("f0").method == "psi"
    strict = check_drift(profile, cur, thresholds=Thresholds(psi_warn=0.0, psi_alert=0.0))
    assert all(f.status == ALERT for f in strict.features)
    with pytest.raises(ValueError, match="unknown drift threshold"):
        check_drift(profile, cur, per_feature={"f0": {"psi_typo": 1.0}})
    with pytest.raises(ValueError, match="unknown feature"):
        check_drift(profile, cur, per_feature={"nope": {"psi_alert": 1.0}})


def test_prediction_drift_is_reported_apart() -> None:
    rng = np.random.default_rng(12)
    n = 3000
    ref = pl.DataFrame({"a": rng.normal(size=n)})
    profile = build_profile(ref, prediction=rng.beta(2, 5, n))
    report = check_drift(
        profile, pl.DataFrame({"a": rng.normal(size=n)}), prediction=rng.beta(4, 4, n)
    )
    assert report.prediction is not None and report.prediction.feature == PREDICTION
    assert report.prediction.status == ALERT
    assert report.drifted == () and report.status == WARN  # not a feature: no dataset drift


# --------------------------------------------------------------------------- sample data


@pytest.fixture(scope="module")
def sample_profile() -> ReferenceProfile:
    ref = pl.read_csv(SAMPLE / "reference" / "loans_reference.csv")
    return build_profile(ref.drop("loan_id", "application_date", "default"))


def test_sample_week_13_flags_exactly_the_generator_truth(sample_profile: ReferenceProfile) -> None:
    truth = json.loads((SAMPLE / "drift_truth.json").read_text())
    drifted = {k for k, v in truth["features"].items() if v["drifted"]}
    report = check_drift(sample_profile, pl.read_csv(SAMPLE / "stream" / "week_13.csv"))
    flagged = {f.feature for f in report.features if f.status in (WARN, ALERT)}
    assert flagged == drifted
    assert {f.feature for f in report.features if f.status == OK} == set(
        truth["features"]
    ) - drifted
    for name, info in truth.get("new_categories", {}).items():
        assert info["category"] in report.feature(name).new_categories


def test_sample_week_1_flags_nothing(sample_profile: ReferenceProfile) -> None:
    report = check_drift(sample_profile, pl.read_csv(SAMPLE / "stream" / "week_01.csv"))
    assert [f.feature for f in report.features if f.status != OK] == []
    assert report.status == OK
