#!/usr/bin/env python3
"""Generate mldeck's sample loan-default dataset (synthetic, seeded, deterministic).

The story
---------
A consumer lender trained a default model on one quarter of labelled
applications (2024-01-01 .. 2024-03-31, ``reference/loans_reference.csv``)
and put it in production for the next quarter (2024-04-01 .. 2024-06-30).
Applications then arrive weekly (``stream/week_01.csv`` .. ``week_13.csv``,
no label), and whether each loan defaulted becomes known later
(``labels/labels_01.csv`` .. ``labels_13.csv``: ``loan_id,default``).

During the production quarter the world drifts, gradually and on purpose:

* **Income inflation** - wages (and so the *reported* ``annual_income``) rise
  by a factor that grows linearly week by week.  Prices rise just as much, so
  real risk depends on the *inflation-adjusted* income: a given nominal income
  is worth less every week.  The model learned nominal income, so it
  increasingly over-rates applicants (concept drift + covariate shift).
* **A new product** - "buy now, pay later" (``loan_purpose == "bnpl"``)
  launches in week 4 and takes a growing share of applications.  It never
  appears in the reference and it is much riskier than the average purpose.
* **A shifting applicant mix** - a younger cohort (the bnpl/app channel)
  grows, and credit-card utilization creeps upward.  Both are covariate
  shifts the model has seen the shape of, but they push more applicants
  towards the decision boundary.

Every other feature keeps exactly its reference distribution, so a drift
detector can be checked for true *and* false positives.  ``drift_truth.json``
is the machine-readable truth, ``README.md`` the measured effect on models.

Usage::

    python sample_data/generate.py                 # writes next to this file
    python sample_data/generate.py --seed 7 --out /tmp/sd

The committed files are exactly what ``--seed 7`` writes (numpy 2.x PCG64).
Only numpy and the standard library are used.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os

import numpy as np

# ---------------------------------------------------------------- constants
REFERENCE_ROWS = 20_000
WEEKS = 13
WEEK_ROWS = 1_500  # nominal; each week varies by a few percent
REFERENCE_START = dt.date(2024, 1, 1)  # Monday; 13 weeks = one quarter
STREAM_START = dt.date(2024, 4, 1)  # Monday right after the reference

# drift schedule (week w = 1..13; the reference is "week 0")
INFLATION_AT_WEEK_13 = 0.21  # nominal income = real income * (1 + 0.21 * w / 13)
BNPL_FROM_WEEK = 4
BNPL_SHARE_AT_WEEK_13 = 0.15  # linear from BNPL_SHARE_START at week 4
BNPL_SHARE_START = 0.03
YOUNG_SHARE_AT_WEEK_13 = 0.30  # share of applicants drawn from the young cohort
UTIL_ALPHA_SHIFT_AT_WEEK_13 = 1.2  # credit_utilization ~ Beta(2 + shift, 3)

# label model (the "real" risk) - see risk_logit()
TEMPERATURE = 4.5
INTERCEPT = -1.35

# intended accuracy path (recorded in drift_truth.json; measured in README.md)
ACC_WEEK_1 = 0.94
ACC_WEEK_13 = 0.81

HOME_OWNERSHIP = ["MORTGAGE", "RENT", "OWN", "OTHER"]
HOME_P = [0.42, 0.40, 0.16, 0.02]
PURPOSES = [
    "debt_consolidation",
    "credit_card",
    "home_improvement",
    "car",
    "major_purchase",
    "medical",
    "small_business",
    "other",
]
PURPOSE_P = [0.38, 0.20, 0.10, 0.09, 0.07, 0.05, 0.04, 0.07]
PURPOSE_RISK = {
    "debt_consolidation": 0.10,
    "credit_card": 0.0,
    "home_improvement": -0.25,
    "car": -0.30,
    "major_purchase": -0.10,
    "medical": 0.35,
    "small_business": 0.60,
    "other": 0.15,
    "bnpl": 2.40,
}
EMPLOYMENT = ["full_time", "part_time", "self_employed", "contract", "unemployed"]
EMPLOYMENT_P = [0.64, 0.12, 0.12, 0.08, 0.04]
EMPLOYMENT_RISK = {
    "full_time": -0.15,
    "part_time": 0.30,
    "self_employed": 0.20,
    "contract": 0.25,
    "unemployed": 1.20,
}
REGIONS = ["northeast", "midwest", "south", "west"]
REGION_P = [0.18, 0.21, 0.38, 0.23]

COLUMNS = [
    "loan_id",
    "application_date",
    "age",
    "annual_income",
    "loan_amount",
    "term_months",
    "interest_rate",
    "credit_score",
    "debt_to_income",
    "employment_years",
    "num_open_accounts",
    "num_delinquencies",
    "credit_utilization",
    "months_since_last_delinquency",
    "home_ownership",
    "loan_purpose",
    "employment_type",
    "region",
]


# ---------------------------------------------------------------- schedules
def inflation(week: int) -> float:
    return 1.0 + INFLATION_AT_WEEK_13 * week / WEEKS


def bnpl_share(week: int) -> float:
    if week < BNPL_FROM_WEEK:
        return 0.0
    frac = (week - BNPL_FROM_WEEK) / (WEEKS - BNPL_FROM_WEEK)
    return BNPL_SHARE_START + (BNPL_SHARE_AT_WEEK_13 - BNPL_SHARE_START) * frac


def young_share(week: int) -> float:
    return YOUNG_SHARE_AT_WEEK_13 * week / WEEKS


def util_shift(week: int) -> float:
    return UTIL_ALPHA_SHIFT_AT_WEEK_13 * week / WEEKS


# ---------------------------------------------------------------- sampling
def sample_block(rng: np.random.Generator, n: int, week: int) -> dict:
    """Draw n applications for a week (0 = reference) plus their labels."""
    # age: base population N(42, 12); a younger cohort N(25, 4) grows in
    age = np.clip(rng.normal(42.0, 12.0, n), 18, 80)
    young = rng.random(n) < young_share(week)
    age = np.where(young, np.clip(rng.normal(25.0, 4.0, n), 18, 80), age)
    age = np.round(age).astype(np.int64)

    real_income = np.clip(rng.lognormal(np.log(56_000), 0.45, n), 12_000, 450_000)
    annual_income = np.round(real_income * inflation(week) / 100.0) * 100.0

    loan_amount = (
        np.round(np.clip(rng.lognormal(np.log(12_000), 0.6, n), 1_000, 60_000) / 50.0) * 50.0
    )
    term_months = rng.choice(np.array([36, 60]), size=n, p=[0.7, 0.3])
    credit_score = np.round(np.clip(rng.normal(690, 60, n), 300, 850)).astype(np.int64)
    interest_rate = np.clip(
        5.0 + 0.05 * (760 - credit_score) + 1.5 * (term_months == 60) + rng.normal(0.0, 1.2, n),
        3.0,
        29.99,
    )
    debt_to_income = np.clip(rng.beta(2.5, 8.0, n) * 0.9, 0.0, 0.9)
    employment_years = np.clip(rng.gamma(1.6, 4.0, n), 0.0, 45.0)
    num_open_accounts = rng.poisson(7.0, n) + 1
    # delinquencies: likelier for low credit scores (credit_score is undrifted)
    p_any = 1.0 / (1.0 + np.exp((credit_score - 640) / 35.0))
    has_delinq = rng.random(n) < (0.08 + 0.55 * p_any)
    num_delinquencies = np.where(has_delinq, rng.geometric(0.55, n), 0)
    months_since = rng.integers(1, 121, n)
    credit_utilization = rng.beta(2.0 + util_shift(week), 3.0, n)

    home = rng.choice(len(HOME_OWNERSHIP), size=n, p=HOME_P)
    purpose = rng.choice(len(PURPOSES), size=n, p=PURPOSE_P)
    purpose = np.array(PURPOSES, dtype=object)[purpose]
    bnpl = rng.random(n) < bnpl_share(week)
    purpose = np.where(bnpl, "bnpl", purpose)
    employment = np.array(EMPLOYMENT, dtype=object)[
        rng.choice(len(EMPLOYMENT), size=n, p=EMPLOYMENT_P)
    ]
    region = np.array(REGIONS, dtype=object)[rng.choice(len(REGIONS), size=n, p=REGION_P)]
    home = np.array(HOME_OWNERSHIP, dtype=object)[home]

    block = {
        "age": age,
        "annual_income": annual_income,
        "loan_amount": loan_amount,
        "term_months": term_months,
        "interest_rate": interest_rate,
        "credit_score": credit_score,
        "debt_to_income": debt_to_income,
        "employment_years": employment_years,
        "num_open_accounts": num_open_accounts,
        "num_delinquencies": num_delinquencies,
        "credit_utilization": credit_utilization,
        "months_since_last_delinquency": np.where(num_delinquencies > 0, months_since, -1),
        "home_ownership": home,
        "loan_purpose": purpose,
        "employment_type": employment,
        "region": region,
    }
    z = risk_logit(block, real_income)
    p = 1.0 / (1.0 + np.exp(-TEMPERATURE * z))
    block["default"] = (rng.random(n) < p).astype(np.int64)
    return block


def risk_logit(b: dict, real_income: np.ndarray) -> np.ndarray:
    """The real (hidden) risk; depends on inflation-adjusted income."""
    log_real = np.log(real_income)
    lti = np.log(b["loan_amount"]) - log_real  # loan-to-(real)-income
    recent = (b["num_delinquencies"] > 0) & (b["months_since_last_delinquency"] < 18)
    z = (
        INTERCEPT
        + 1.00 * (690 - b["credit_score"]) / 60.0
        + 0.70 * (b["debt_to_income"] - 0.22) / 0.10
        + 0.80 * (b["credit_utilization"] - 0.40) / 0.20
        + 0.90 * (lti + 1.53) / 0.75
        - 0.90 * (log_real - np.log(56_000)) / 0.45
        + 0.40 * np.minimum(b["num_delinquencies"], 4)
        + 0.60 * recent
        + 0.30 * np.maximum(0, 30 - b["age"]) / 6.0
        + 0.25 * (b["term_months"] == 60)
        - 0.02 * np.minimum(b["employment_years"], 15)
    )
    z = z + np.array([PURPOSE_RISK[x] for x in b["loan_purpose"]])
    z = z + np.array([EMPLOYMENT_RISK[x] for x in b["employment_type"]])
    return z


# ---------------------------------------------------------------- assembly
def dated(rng: np.random.Generator, block: dict, start: dt.date, days: int) -> dict:
    """Attach application dates in [start, start+days) and sort rows by date."""
    n = len(block["age"])
    offs = rng.integers(0, days, n)
    order = np.lexsort((rng.random(n), offs))
    out = {k: v[order] for k, v in block.items()}
    out["application_date"] = np.array(
        [(start + dt.timedelta(days=int(d))).isoformat() for d in offs[order]], dtype=object
    )
    return out


def generate(seed: int = 7) -> dict:
    """Return {"reference": block, 1: block, ..., 13: block} with loan_ids."""
    rng = np.random.default_rng(seed)
    blocks = {
        "reference": dated(rng, sample_block(rng, REFERENCE_ROWS, 0), REFERENCE_START, 7 * WEEKS)
    }
    for w in range(1, WEEKS + 1):
        n = int(rng.integers(WEEK_ROWS - 60, WEEK_ROWS + 61))
        blocks[w] = dated(
            rng, sample_block(rng, n, w), STREAM_START + dt.timedelta(days=7 * (w - 1)), 7
        )
    next_id = 1
    for key in blocks:
        n = len(blocks[key]["age"])
        blocks[key]["loan_id"] = np.array(
            [f"L{i:07d}" for i in range(next_id, next_id + n)], dtype=object
        )
        next_id += n
    return blocks


# ---------------------------------------------------------------- truth file
def drift_truth(seed: int, blocks: dict) -> dict:
    weeks = list(range(1, WEEKS + 1))
    r4 = lambda x: round(float(x), 4)  # noqa: E731
    undrifted = {c: {"drifted": False} for c in COLUMNS[2:]}
    features = dict(undrifted)
    features["annual_income"] = {
        "drifted": True,
        "kind": "scale",
        "from_week": 1,
        "description": "reported (nominal) income = real income * factor; the real risk "
        "depends on real income, so this is also concept drift",
        "concept_drift": True,
        "factor_by_week": [r4(inflation(w)) for w in weeks],
    }
    features["loan_purpose"] = {
        "drifted": True,
        "kind": "new_category",
        "from_week": BNPL_FROM_WEEK,
        "new_category": "bnpl",
        "description": "new 'buy now, pay later' product, absent from the reference, much "
        "riskier than average; other purposes shrink proportionally",
        "concept_drift": True,
        "share_by_week": [r4(bnpl_share(w)) for w in weeks],
    }
    features["age"] = {
        "drifted": True,
        "kind": "mixture",
        "from_week": 1,
        "description": "a growing share of applicants comes from a younger cohort "
        "N(25, 4) instead of the base N(42, 12) (both clipped 18..80)",
        "concept_drift": False,
        "young_share_by_week": [r4(young_share(w)) for w in weeks],
    }
    features["credit_utilization"] = {
        "drifted": True,
        "kind": "location",
        "from_week": 1,
        "description": "Beta(2 + shift, 3): the mean creeps up from 0.40",
        "concept_drift": False,
        "mean_by_week": [r4((2 + util_shift(w)) / (5 + util_shift(w))) for w in weeks],
    }
    start, end = ACC_WEEK_1, ACC_WEEK_13
    return {
        "generator": "sample_data/generate.py",
        "seed": seed,
        "weeks": WEEKS,
        "reference": {
            "file": "reference/loans_reference.csv",
            "rows": len(blocks["reference"]["age"]),
            "date_from": REFERENCE_START.isoformat(),
            "date_to": (REFERENCE_START + dt.timedelta(days=7 * WEEKS - 1)).isoformat(),
        },
        "stream": [
            {
                "week": w,
                "file": f"stream/week_{w:02d}.csv",
                "labels": f"labels/labels_{w:02d}.csv",
                "rows": len(blocks[w]["age"]),
                "date_from": (STREAM_START + dt.timedelta(days=7 * (w - 1))).isoformat(),
                "date_to": (STREAM_START + dt.timedelta(days=7 * w - 1)).isoformat(),
            }
            for w in weeks
        ],
        "label": {
            "column": "default",
            "positive": 1,
            "default_rate_reference": r4(np.mean(blocks["reference"]["default"])),
            "default_rate_by_week": [r4(np.mean(blocks[w]["default"])) for w in weeks],
            "note": "the default rate rises over the stream (bnpl, younger applicants, "
            "higher utilization): label/prior shift",
        },
        "features": features,
        "drifted_features": [c for c in COLUMNS[2:] if features[c]["drifted"]],
        "undrifted_features": [c for c in COLUMNS[2:] if not features[c]["drifted"]],
        "new_categories": {"loan_purpose": {"category": "bnpl", "first_week": BNPL_FROM_WEEK}},
        "intended_accuracy_path": {
            "model": "HistGradientBoostingClassifier trained on the reference "
            "(one-hot categoricals, median-imputed numerics), threshold 0.5",
            "week_1": start,
            "week_13": end,
            "shape": "roughly steady decay",
            "by_week": [r4(start + (end - start) * (w - 1) / (WEEKS - 1)) for w in weeks],
            "retrain": {
                "train_on": "labelled stream weeks 7-12 (the latest six)",
                "week_13_accuracy_at_least": r4(start - 0.03),
            },
            "measured": "see README.md (python sample_data/measure.py)",
        },
    }


# ---------------------------------------------------------------- writing
FORMATS = {
    "loan_id": str,
    "application_date": str,
    "age": lambda v: str(int(v)),
    "annual_income": lambda v: str(int(v)),
    "loan_amount": lambda v: str(int(v)),
    "term_months": lambda v: str(int(v)),
    "interest_rate": lambda v: f"{v:.2f}",
    "credit_score": lambda v: str(int(v)),
    "debt_to_income": lambda v: f"{v:.3f}",
    "employment_years": lambda v: f"{v:.1f}",
    "num_open_accounts": lambda v: str(int(v)),
    "num_delinquencies": lambda v: str(int(v)),
    "credit_utilization": lambda v: f"{v:.3f}",
    "months_since_last_delinquency": lambda v: "" if v < 0 else str(int(v)),
    "home_ownership": str,
    "loan_purpose": str,
    "employment_type": str,
    "region": str,
    "default": lambda v: str(int(v)),
}


def write_csv(path: str, block: dict, columns: list) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    cols = [[FORMATS[c](v) for v in block[c].tolist()] for c in columns]
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(",".join(columns) + "\n")
        for row in zip(*cols, strict=True):
            fh.write(",".join(row) + "\n")


def write_all(blocks: dict, out: str) -> None:
    write_csv(
        os.path.join(out, "reference", "loans_reference.csv"),
        blocks["reference"],
        COLUMNS + ["default"],
    )
    for w in range(1, WEEKS + 1):
        write_csv(os.path.join(out, "stream", f"week_{w:02d}.csv"), blocks[w], COLUMNS)
        write_csv(
            os.path.join(out, "labels", f"labels_{w:02d}.csv"), blocks[w], ["loan_id", "default"]
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)))
    args = ap.parse_args()
    blocks = generate(args.seed)
    write_all(blocks, args.out)
    with open(
        os.path.join(args.out, "drift_truth.json"), "w", encoding="utf-8", newline="\n"
    ) as fh:
        fh.write(json.dumps(drift_truth(args.seed, blocks), indent=2) + "\n")
    rows = sum(len(b["age"]) for b in blocks.values())
    print(f"wrote {rows} rows (seed {args.seed}) to {args.out}")


if __name__ == "__main__":
    main()
