#!/usr/bin/env python3
"""Measure how models trained on the reference decay over the 13 stream weeks.

Reproduces the figures in ``sample_data/README.md``::

    python sample_data/measure.py                # reads the files next to this script
    python sample_data/measure.py --data DIR     # e.g. the output of generate.py --out DIR

Needs numpy and scikit-learn (this script is *not* used by the generator).

Procedure: numeric columns are median-imputed (the only nulls are in
``months_since_last_delinquency``), the four categorical columns are one-hot
encoded with unknown categories ignored (so "bnpl" becomes all zeros for a
model that never saw it).  Models: HistGradientBoostingClassifier
(random_state=0, defaults otherwise) and StandardScaler + LogisticRegression
(max_iter=2000).  Both are fitted on ``reference/loans_reference.csv`` and
scored against ``labels/labels_WW.csv`` for every ``stream/week_WW.csv``
(threshold 0.5).  The majority-class baseline predicts the reference's majority
class (0 = no default).  Retraining: the same HistGradientBoosting pipeline is
refitted on labelled stream weeks and scored on week 13.
"""

from __future__ import annotations

import argparse
import csv
import os

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

NUMERIC = [
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
]
CATEGORICAL = ["home_ownership", "loan_purpose", "employment_type", "region"]
WEEKS = 13


class Features:
    """Median-impute numerics, one-hot categoricals (unknown -> all zeros)."""

    def fit(self, b: dict) -> "Features":
        self.imp = SimpleImputer(strategy="median").fit(self._num(b))
        self.ohe = OneHotEncoder(handle_unknown="ignore", sparse_output=False).fit(self._cat(b))
        return self

    def transform(self, b: dict) -> np.ndarray:
        return np.hstack([self.imp.transform(self._num(b)), self.ohe.transform(self._cat(b))])

    @staticmethod
    def _num(b: dict) -> np.ndarray:
        cols = []
        for c in NUMERIC:
            v = np.asarray(b[c], dtype=float)
            if c == "months_since_last_delinquency":  # -1 sentinel from generate.py
                v = np.where(v < 0, np.nan, v)
            cols.append(v)
        return np.column_stack(cols)

    @staticmethod
    def _cat(b: dict) -> np.ndarray:
        return np.column_stack([np.asarray(b[c], dtype=object) for c in CATEGORICAL])


def make_model(kind: str):
    if kind == "hgb":
        return HistGradientBoostingClassifier(random_state=0)
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))


def fit(kind: str, b: dict):
    feats = Features().fit(b)
    model = make_model(kind).fit(feats.transform(b), np.asarray(b["default"]))
    return feats, model


def score(fitted, b: dict) -> tuple[float, float]:
    feats, model = fitted
    X, y = feats.transform(b), np.asarray(b["default"])
    p = model.predict_proba(X)[:, 1]
    return accuracy_score(y, (p >= 0.5).astype(int)), roc_auc_score(y, p)


def concat(blocks: list) -> dict:
    return {k: np.concatenate([np.asarray(b[k]) for b in blocks]) for k in blocks[0]}


def evaluate(ref: dict, weeks: dict) -> dict:
    """weeks: {1: block-with-default, ..., 13: ...}.  Returns a results dict."""
    hgb, lr = fit("hgb", ref), fit("lr", ref)
    majority = int(np.mean(ref["default"]) >= 0.5)
    rows = []
    for w in range(1, WEEKS + 1):
        b = weeks[w]
        y = np.asarray(b["default"])
        ha, hauc = score(hgb, b)
        la, lauc = score(lr, b)
        rows.append(
            {
                "week": w,
                "rows": len(y),
                "default_rate": float(y.mean()),
                "majority_acc": float((y == majority).mean()),
                "hgb_acc": ha,
                "hgb_auc": hauc,
                "lr_acc": la,
                "lr_auc": lauc,
            }
        )
    retrain = {"(no retrain: reference model)": score(hgb, weeks[13])}
    windows = {
        "reference + weeks 1-12": [ref] + [weeks[w] for w in range(1, 13)],
        "weeks 1-12": [weeks[w] for w in range(1, 13)],
        "weeks 7-12 (recommended: the latest six)": [weeks[w] for w in range(7, 13)],
        "weeks 9-12": [weeks[w] for w in range(9, 13)],
        "weeks 11-12": [weeks[w] for w in range(11, 13)],
    }
    for name, parts in windows.items():
        retrain[name] = score(fit("hgb", concat(parts)), weeks[13])
    n = len(ref["default"])
    cut = int(n * 0.8)
    head = {k: np.asarray(v)[:cut] for k, v in ref.items()}
    tail = {k: np.asarray(v)[cut:] for k, v in ref.items()}
    holdout = score(fit("hgb", head), tail)
    return {
        "weeks": rows,
        "retrain_week13": retrain,
        "reference_holdout_hgb": holdout,
        "reference_default_rate": float(np.mean(ref["default"])),
    }


def read_csv(path: str) -> dict:
    with open(path, newline="", encoding="utf-8") as fh:
        r = csv.reader(fh)
        header = next(r)
        data = list(zip(*r, strict=True))
    out = {}
    for c, col in zip(header, data, strict=True):
        if c in NUMERIC or c == "default":
            out[c] = np.array([float(x) if x != "" else -1.0 for x in col])
        else:
            out[c] = np.array(col, dtype=object)
    return out


def load(data: str) -> tuple[dict, dict]:
    ref = read_csv(os.path.join(data, "reference", "loans_reference.csv"))
    weeks = {}
    for w in range(1, WEEKS + 1):
        b = read_csv(os.path.join(data, "stream", f"week_{w:02d}.csv"))
        lab = read_csv(os.path.join(data, "labels", f"labels_{w:02d}.csv"))
        assert list(b["loan_id"]) == list(lab["loan_id"])
        b["default"] = lab["default"]
        weeks[w] = b
    return ref, weeks


def report(res: dict) -> str:
    lines = [
        "| week | rows | default rate | majority acc | HGB acc | HGB AUC | LR acc | LR AUC |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in res["weeks"]:
        lines.append(
            f"| {r['week']} | {r['rows']} | {r['default_rate']:.3f} | "
            f"{r['majority_acc']:.3f} | {r['hgb_acc']:.3f} | {r['hgb_auc']:.3f} | "
            f"{r['lr_acc']:.3f} | {r['lr_auc']:.3f} |"
        )
    ha, hauc = res["reference_holdout_hgb"]
    lines.append("")
    lines.append(
        f"reference default rate {res['reference_default_rate']:.3f}; "
        f"HGB on a time-ordered 80/20 split of the reference: acc {ha:.3f}, AUC {hauc:.3f}"
    )
    lines.append("")
    lines.append("| HGB retrained on | week-13 acc | week-13 AUC |")
    lines.append("|---|---:|---:|")
    for name, (a, auc) in res["retrain_week13"].items():
        lines.append(f"| {name} | {a:.3f} | {auc:.3f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=os.path.dirname(os.path.abspath(__file__)))
    args = ap.parse_args()
    print(report(evaluate(*load(args.data))))


if __name__ == "__main__":
    main()
