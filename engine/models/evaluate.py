"""Stage 5, evaluate: holdout metrics and the gates that decide `promotable`."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.core.config import LOWER_IS_BETTER, Evaluation


def classification_metrics(
    y_true: np.ndarray, proba: np.ndarray, classes: list[Any]
) -> dict[str, float | None]:
    from sklearn.metrics import accuracy_score, f1_score, log_loss, roc_auc_score

    index = {c: i for i, c in enumerate(classes)}
    y_idx = np.array([index.get(v, -1) for v in y_true.tolist()])
    predicted = proba.argmax(axis=1)
    binary = len(classes) == 2
    metrics: dict[str, float | None] = {
        "accuracy": float(accuracy_score(y_idx, predicted)),
        "f1": float(
            f1_score(
                y_idx,
                predicted,
                average="binary" if binary else "macro",
                labels=None if binary else list(range(len(classes))),
                zero_division=0,
            )
        ),
    }
    present = np.unique(y_idx[y_idx >= 0])
    if len(present) < 2:
        metrics["roc_auc"] = None
    elif binary:
        metrics["roc_auc"] = float(roc_auc_score(y_idx, proba[:, 1]))
    else:
        metrics["roc_auc"] = float(
            roc_auc_score(y_idx, proba, multi_class="ovr", labels=list(range(len(classes))))
        )
    clipped = np.clip(proba, 1e-15, 1.0)
    clipped = clipped / clipped.sum(axis=1, keepdims=True)
    metrics["log_loss"] = float(log_loss(y_idx, clipped, labels=list(range(len(classes)))))
    return metrics


def regression_metrics(y_true: np.ndarray, predicted: np.ndarray) -> dict[str, float | None]:
    y = y_true.astype(np.float64)
    p = predicted.astype(np.float64).reshape(-1)
    residual = y - p
    ss_tot = float(((y - y.mean()) ** 2).sum())
    return {
        "rmse": float(math.sqrt(float((residual**2).mean()))),
        "mae": float(np.abs(residual).mean()),
        "r2": (1.0 - float((residual**2).sum()) / ss_tot) if ss_tot > 0 else None,
    }


@dataclass
class GateResult:
    promotable: bool
    checks: list[dict[str, Any]] = field(default_factory=list)
    champion: dict[str, Any] | None = None


def apply_gates(
    evaluation: Evaluation,
    task: str,
    metrics: dict[str, float | None],
    champion_version: int | None,
    champion_metrics: dict[str, float | None] | None,
) -> GateResult:
    """Floors and ceilings from config, and the largest allowed drop vs the champion."""
    result = GateResult(promotable=True)
    for metric, floor in evaluation.min.items():
        value = metrics.get(metric)
        ok = value is not None and value >= floor
        result.checks.append({"gate": f"{metric} >= {floor}", "value": value, "passed": ok})
        result.promotable &= ok
    for metric, ceiling in evaluation.max.items():
        value = metrics.get(metric)
        ok = value is not None and value <= ceiling
        result.checks.append({"gate": f"{metric} <= {ceiling}", "value": value, "passed": ok})
        result.promotable &= ok
    primary = evaluation.primary_for(task)
    if champion_metrics is not None:
        result.champion = {"version": champion_version, "metrics": champion_metrics}
        mine, theirs = metrics.get(primary), champion_metrics.get(primary)
        if evaluation.max_drop is not None and mine is not None and theirs is not None:
            drop = (mine - theirs) if primary in LOWER_IS_BETTER else (theirs - mine)
            ok = drop <= evaluation.max_drop
            result.checks.append(
                {
                    "gate": f"{primary} drop vs champion v{champion_version} <= {evaluation.max_drop}",
                    "value": drop,
                    "passed": ok,
                }
            )
            result.promotable &= ok
    if metrics.get(primary) is None:
        result.checks.append({"gate": f"{primary} is defined", "value": None, "passed": False})
        result.promotable = False
    return result


def better(primary: str, a: float | None, b: float | None) -> bool:
    """Whether metric value a is strictly better than b."""
    if a is None:
        return False
    if b is None:
        return True
    return a < b if primary in LOWER_IS_BETTER else a > b
