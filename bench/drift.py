"""Drift benchmark: mldeck's drift check against a plain numpy/scipy implementation.

Generates a seeded reference and current set (20 features: 16 numeric, 4
categorical; 6 of them shifted in the current set: 4 numeric, 2 categorical,
one of which gains a new category), at 200,000 vs 200,000 and 1,000,000 vs
1,000,000 rows, and measures, per size, in fresh child processes:

  profile build   engine.monitoring.drift.build_profile on the reference frame (once, at training time)
  mldeck check    engine.monitoring.drift.check_drift(profile, current frame): the stored profile
                  (loaded from its JSON) against the current polars frame
  numpy/scipy     the same tests straight from the raw reference and current arrays:
                  np.quantile edges + np.histogram for PSI, scipy.stats.ks_2samp
                  (method="asymp"), np.unique counts + scipy.stats.chi2_contingency
                  (correction=False) and scipy.spatial.distance.jensenshannon(base=2)

Times are the best of N repetitions of the operation alone (data generation and
imports are outside the timer; scipy is imported before either is timed). The
ratio is mldeck check / numpy-scipy. Peak RSS is the VmHWM of a separate child
that only loads the profile JSON, builds the current frame and runs the check.
The run also checks that both implementations agree (PSI, chi-square and JS to
1e-9; KS D within the sketch's documented bound) and that exactly the 6
shifted features are flagged.

Targets: ratio <= 1.0x at 200k; at 1M the check under 2 s with peak RSS under 2 GB.

Usage:
    .venv/bin/python bench/drift.py                    # 200k and 1M, 3 repetitions
    .venv/bin/python bench/drift.py --sizes 200000 --repeat 5

Exits 0 whatever the verdict: it is a measurement.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

TARGET_RATIO = 1.0
TARGET_SECONDS_1M = 2.0
TARGET_RSS_MB = 2048.0
N_NUMERIC, N_CATEGORICAL = 16, 4
SHIFTED = ("num_00", "num_03", "num_07", "num_12", "cat_0", "cat_2")
CATEGORIES = [
    ["north", "south", "east", "west", "central"],
    ["RENT", "MORTGAGE", "OWN", "OTHER"],
    ["full_time", "part_time", "self_employed", "unemployed", "retired", "student"],
    ["credit_card", "debt_consolidation", "home_improvement", "car", "medical", "other"],
]


# --------------------------------------------------------------------------- data


def generate(rows: int, seed: int, shifted: bool) -> dict[str, Any]:
    """20 columns as numpy arrays: 16 numeric (floats, ints, some NaN), 4 string categoricals."""
    import numpy as np

    rng = np.random.default_rng(seed)
    cols: dict[str, Any] = {}
    for i in range(N_NUMERIC):
        name = f"num_{i:02d}"
        moved = shifted and name in SHIFTED
        kind = i % 4
        if kind == 0:  # normal
            x = rng.normal(50.0 + (6.0 if moved else 0.0), 10.0, rows)
        elif kind == 1:  # lognormal (income-like), scale shift
            x = rng.lognormal(10.5, 0.5, rows) * (1.25 if moved else 1.0)
        elif kind == 2:  # integer counts
            x = rng.poisson(4.0 if not moved else 5.0, rows).astype(np.int64)
        else:  # beta share with 2 % missing
            x = rng.beta(2.0 + (1.0 if moved else 0.0), 3.0, rows)
            x[rng.random(rows) < 0.02] = np.nan
        cols[name] = x
    for j, cats in enumerate(CATEGORIES):
        name = f"cat_{j}"
        k = len(cats)
        probs = np.linspace(2.0, 1.0, k)
        values = list(cats)
        if shifted and name in SHIFTED:
            probs = probs[::-1].copy()  # reversed mix
            if j == 0:
                values.append("new_region")  # a category the reference never saw
                probs = np.append(probs, probs.sum() * 0.1)
        probs = probs / probs.sum()
        cols[name] = np.asarray(values)[rng.choice(len(values), size=rows, p=probs)]
    return cols


def to_frame(cols: dict[str, Any]) -> Any:
    import polars as pl

    return pl.DataFrame({k: pl.Series(k, v) for k, v in cols.items()}).with_columns(
        pl.col(f"num_{i:02d}").fill_nan(None) for i in range(3, N_NUMERIC, 4)
    )


# --------------------------------------------------------------------------- baseline


def baseline(
    ref: dict[str, Any], cur: dict[str, Any], bins: int = 10
) -> dict[str, dict[str, float]]:
    """The same tests straight from the raw arrays with numpy / scipy."""
    import numpy as np
    from scipy.spatial.distance import jensenshannon
    from scipy.stats import chi2_contingency, ks_2samp

    eps = 1e-4
    out: dict[str, dict[str, float]] = {}
    for name, r in ref.items():
        c = cur[name]
        if r.dtype.kind in "fi":
            r = r[np.isfinite(r)]
            c = c[np.isfinite(c)]
            qs = np.quantile(r, np.arange(1, bins) / bins, method="inverted_cdf")
            lo, hi = r.min(), r.max()
            inner = np.unique(np.concatenate([[lo], qs]))
            edges = np.concatenate([[-np.inf], inner, [np.nextafter(hi, np.inf), np.inf]])
            hr = np.histogram(r, edges)[0]
            hc = np.histogram(c, edges)[0]
            p = np.maximum(hr / hr.sum(), eps)
            q = np.maximum(hc / hc.sum(), eps)
            ks = ks_2samp(r, c, method="asymp")
            out[name] = {
                "psi": float(np.sum((q - p) * np.log(q / p))),
                "ks": float(ks.statistic),
                "ks_p": float(ks.pvalue),
            }
        else:
            ur, nr = np.unique(r, return_counts=True)
            uc, nc = np.unique(c, return_counts=True)
            union = np.union1d(ur, uc)
            tr = np.zeros(union.size)
            tc = np.zeros(union.size)
            tr[np.searchsorted(union, ur)] = nr
            tc[np.searchsorted(union, uc)] = nc
            chi = chi2_contingency(np.vstack([tr, tc]), correction=False)
            out[name] = {
                "chi2": float(chi.statistic),
                "chi2_p": float(chi.pvalue),
                "js": float(jensenshannon(tr / tr.sum(), tc / tc.sum(), base=2)),
            }
    return out


# --------------------------------------------------------------------------- children


def _peak_rss_mb() -> float:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _best(fn: Any, repeat: int) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t)
    return best, result


def timing_child(rows: int, repeat: int, profile_path: str, queue: Any) -> None:
    import scipy.spatial.distance  # noqa: F401  (imports outside the timers)
    import scipy.stats  # noqa: F401

    from engine.monitoring.drift import ReferenceProfile, build_profile, check_drift

    ref = generate(rows, seed=1, shifted=False)
    cur = generate(rows, seed=2, shifted=True)
    ref_frame, cur_frame = to_frame(ref), to_frame(cur)
    t_profile, profile = _best(lambda: build_profile(ref_frame), max(1, repeat - 1))
    ref_frame = None  # the check never sees the reference data again
    text = profile.to_json()
    Path(profile_path).write_text(text)
    t_load, stored = _best(lambda: ReferenceProfile.from_json(text), repeat)
    check_drift(stored, cur_frame.head(1000))  # warm-up (first scipy calls)
    t_mldeck, report = _best(lambda: check_drift(stored, cur_frame), repeat)
    t_numpy, base = _best(lambda: baseline(ref, cur), repeat)

    # Agreement between the two implementations.
    diffs = {"psi": 0.0, "ks": 0.0, "ks_p": 0.0, "chi2_rel": 0.0, "chi2_p": 0.0, "js": 0.0}
    for f in report.features:
        b = base[f.feature]
        if f.kind == "numeric":
            psi_t, ks_t = f.test("psi"), f.test("ks")
            assert psi_t is not None and ks_t is not None and ks_t.p_value is not None
            diffs["psi"] = max(diffs["psi"], abs(psi_t.score - b["psi"]))
            diffs["ks"] = max(diffs["ks"], abs(ks_t.score - b["ks"]))
            diffs["ks_p"] = max(diffs["ks_p"], abs(ks_t.p_value - b["ks_p"]))
        else:
            chi_t, js_t = f.test("chi_square"), f.test("jensen_shannon")
            assert chi_t is not None and js_t is not None and chi_t.p_value is not None
            diffs["chi2_rel"] = max(diffs["chi2_rel"], abs(chi_t.score / b["chi2"] - 1.0))
            diffs["chi2_p"] = max(diffs["chi2_p"], abs(chi_t.p_value - b["chi2_p"]))
            diffs["js"] = max(diffs["js"], abs(js_t.score - b["js"]))
    queue.put(
        {
            "profile_s": t_profile,
            "profile_kb": len(text) / 1024.0,
            "load_s": t_load,
            "mldeck_s": t_mldeck,
            "numpy_s": t_numpy,
            "flagged": sorted(report.drifted + report.warned),
            "diffs": diffs,
            "exact": all(t.exact for f in report.features for t in f.tests if t.method == "ks"),
            "child_rss_mb": _peak_rss_mb(),
        }
    )


def rss_child(rows: int, profile_path: str, queue: Any) -> None:
    from engine.monitoring.drift import ReferenceProfile, check_drift

    cur_frame = to_frame(generate(rows, seed=2, shifted=True))
    profile = ReferenceProfile.from_json(Path(profile_path).read_text())
    t = time.perf_counter()
    report = check_drift(profile, cur_frame)
    elapsed = time.perf_counter() - t
    queue.put({"rss_mb": _peak_rss_mb(), "cold_s": elapsed, "drifted": len(report.drifted)})


def run_child(target: Any, *args: Any) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=target, args=(*args, queue))
    proc.start()
    result: dict[str, Any] = queue.get()
    proc.join()
    return result


# --------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--sizes", default="200000,1000000", help="comma-separated row counts")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]

    print(
        f"drift bench: {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs"
    )
    print(f"20 features (16 numeric, 4 categorical); shifted: {', '.join(SHIFTED)}")
    verdicts: list[tuple[str, bool]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for rows in sizes:
            path = str(Path(tmp) / f"profile_{rows}.json")
            t = run_child(timing_child, rows, args.repeat, path)
            m = run_child(rss_child, rows, path)
            ratio = t["mldeck_s"] / t["numpy_s"]
            print(f"\n{rows:,} vs {rows:,} rows")
            print(
                f"  profile build (once)   {t['profile_s'] * 1e3:8.1f} ms   ({t['profile_kb']:.0f} KB JSON, load {t['load_s'] * 1e3:.1f} ms)"
            )
            print(f"  mldeck check           {t['mldeck_s'] * 1e3:8.1f} ms")
            print(f"  numpy/scipy            {t['numpy_s'] * 1e3:8.1f} ms")
            print(f"  ratio                  {ratio:8.3f}x")
            print(
                f"  check child peak RSS   {m['rss_mb']:8.0f} MB   (cold check {m['cold_s'] * 1e3:.0f} ms incl. scipy import)"
            )
            print(
                f"  timing child peak RSS  {t['child_rss_mb']:8.0f} MB   (both data sets, profile build and baseline)"
            )
            d = t["diffs"]
            print(
                "  agreement (max |diff|) "
                f"PSI {d['psi']:.1e}  KS D {d['ks']:.1e}  KS p {d['ks_p']:.1e}  "
                f"chi2 rel {d['chi2_rel']:.1e}  chi2 p {d['chi2_p']:.1e}  JS {d['js']:.1e}"
                f"  (KS sketch {'exact' if t['exact'] else 'grid'})"
            )
            flagged_ok = t["flagged"] == sorted(SHIFTED)
            print(
                f"  flagged                {', '.join(t['flagged'])}  ({'= shifted' if flagged_ok else 'MISMATCH'})"
            )
            agree = d["psi"] < 1e-9 and d["js"] < 1e-9 and d["chi2_rel"] < 1e-9 and d["ks"] <= 2e-3
            verdicts.append((f"{rows:,}: flags exactly the shifted features", flagged_ok))
            verdicts.append((f"{rows:,}: agrees with numpy/scipy", agree))
            if rows <= 200_000:
                verdicts.append(
                    (f"{rows:,}: ratio {ratio:.3f}x <= {TARGET_RATIO}x", ratio <= TARGET_RATIO)
                )
            if rows >= 1_000_000:
                verdicts.append(
                    (
                        f"{rows:,}: check {t['mldeck_s']:.3f} s < {TARGET_SECONDS_1M} s",
                        t["mldeck_s"] < TARGET_SECONDS_1M,
                    )
                )
                verdicts.append(
                    (
                        f"{rows:,}: peak RSS {m['rss_mb']:.0f} MB < {TARGET_RSS_MB:.0f} MB",
                        m["rss_mb"] < TARGET_RSS_MB,
                    )
                )
    print()
    for text, ok in verdicts:
        print(f"{'PASS' if ok else 'FAIL'}  {text}")
    print("PASS" if all(ok for _, ok in verdicts) else "FAIL")
    return 0


if __name__ == "__main__":
    sys.exit(main())
