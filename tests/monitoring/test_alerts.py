"""[drift] thresholds in the verdicts, and the [alerts] rules (engine.monitoring.alerts)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from engine.core.config import DriftSettings
from engine.core.errors import NotFoundError
from engine.core.events import AlertRaised, Event
from engine.core.project import Project, init_project, open_project
from engine.monitoring.alerts import (
    ACKNOWLEDGED,
    OPEN,
    acknowledge_alert,
    check_drift,
    check_performance,
    check_serving,
    list_alerts,
)
from engine.monitoring.drift import build_profile, summarize_window
from engine.monitoring.monitor import drift_verdict


def test_drift_thresholds_and_per_feature_overrides_decide_the_verdict() -> None:
    rng = np.random.default_rng(3)
    reference = pl.DataFrame({"x": rng.normal(0, 1, 5000), "y": rng.normal(0, 1, 5000)})
    window = pl.DataFrame({"x": rng.normal(0.45, 1, 3000), "y": rng.normal(0.45, 1, 3000)})
    profile = build_profile(reference, numeric=["x", "y"])
    summary = summarize_window(profile, window)
    default = drift_verdict(DriftSettings(), profile, summary)
    psi_x = default.feature("x").test("psi")
    assert psi_x is not None and 0.2 < psi_x.score < 0.5
    # KS would flag the shift on its own (D ~ 0.18 >= 0.1): raise its effect size too.
    lenient = {"psi_alert": 0.5, "psi_warn": 0.45, "ks_min_statistic": 0.5}
    settings = DriftSettings(features={"x": lenient, "nope": {"psi_alert": 0.9}})
    overridden = drift_verdict(settings, profile, summary)
    assert default.feature("x").status == "alert" and overridden.feature("x").status == "ok"
    assert overridden.feature("y").status == "alert"  # only x was overridden
    # One of two features in alert: drifted at the default share (0.25), not at 0.6.
    assert overridden.share_drifted == 0.5 and overridden.dataset_drift is True
    strict = DriftSettings(features={"x": lenient}, dataset_share=0.6)
    assert drift_verdict(strict, profile, summary).dataset_drift is False


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    root = tmp_path / "p"
    init_project(root, target="default", id_column="loan_id")
    config = root / "mldeck.toml"
    config.write_text(
        config.read_text().replace(
            "[alerts]\n",
            "[alerts]\ndrifted_features = 2\nmin_labelled = 50\nmax_p99_latency_ms = 100\n"
            "min = { accuracy = 0.9 }\nmax = { log_loss = 0.5 }\nmax_drop = { roc_auc = 0.05 }\n",
            1,
        )
    )
    opened = open_project(root)
    yield opened
    opened.close()


def _report(drifted: list[str], prediction_status: str = "ok") -> dict[str, object]:
    features = [
        {"feature": n, "method": "psi", "score": 0.3, "p_value": None, "status": "alert"}
        for n in drifted
    ]
    prediction = {"method": "psi", "score": 0.25, "p_value": None, "threshold": 0.2}
    return {
        "drifted": drifted,
        "features": features,
        "dataset_drift": False,
        "n_current": 500,
        "prediction": {**prediction, "status": prediction_status},
    }


def test_drift_rules_fire_on_n_features_and_prediction_once_per_window(project: Project) -> None:
    events: list[Event] = []
    assert check_drift(project, _report(["a"]), model_version=1, window_kind="batch",
                       window_ref="batch 1", events=events.append) == []  # fmt: skip
    raised = check_drift(project, _report(["a", "b"], "alert"), model_version=1,
                         window_kind="batch", window_ref="batch 2", events=events.append)  # fmt: skip
    assert len(raised) == 2
    alerts = list_alerts(project.catalog)
    assert [(a["rule"], a["severity"], a["window_ref"]) for a in alerts] == [
        ("drift", "alert", "batch 2"),
        ("prediction_drift", "warn", "batch 2"),
    ]
    assert alerts[0]["evidence"]["drifted"] == ["a", "b"] and alerts[0]["model_version"] == 1
    assert [e.alert_id for e in events if isinstance(e, AlertRaised)] == raised
    # The same window judged again raises nothing new.
    again = check_drift(project, _report(["a", "b"], "alert"), model_version=1,
                        window_kind="batch", window_ref="batch 2")  # fmt: skip
    assert again == [] and len(list_alerts(project.catalog)) == 2


def _window(n: int, **metrics: float) -> dict[str, object]:
    return {
        "window_ref": "batch 7",
        "model_version": 3,
        "n_labelled": n,
        "metrics": metrics,
        "holdout": {"accuracy": 0.95, "roc_auc": 0.98, "log_loss": 0.2},
    }


def test_performance_rules_floor_ceiling_and_drop(project: Project) -> None:
    # Too few labelled rows: not judged.
    assert check_performance(project, _window(10, accuracy=0.5)) == []
    # Within every bound: nothing.
    assert check_performance(project, _window(80, accuracy=0.93, roc_auc=0.97, log_loss=0.3)) == []
    raised = check_performance(project, _window(80, accuracy=0.85, roc_auc=0.9, log_loss=0.7))
    assert len(raised) == 3
    by_rule = {a["rule"]: a for a in list_alerts(project.catalog)}
    assert set(by_rule) == {"performance_min", "performance_max", "performance_drop"}
    drop = by_rule["performance_drop"]["evidence"]["breaches"][0]
    assert drop["metric"] == "roc_auc" and drop["drop"] == pytest.approx(0.08)
    assert "accuracy 0.8500 below the floor 0.9" in by_rule["performance_min"]["message"]
    assert all(a["window_kind"] == "labels" and a["model_version"] == 3 for a in by_rule.values())


def test_serving_rules_and_listing(project: Project) -> None:
    stats = {"model_version": 2, "requests": 40, "errors": 4, "error_rate": 0.1,
             "p99_latency_ms": 120.0}  # fmt: skip
    raised = check_serving(project, stats, window_ref="log a/b")
    assert len(raised) == 2
    calm = {**stats, "errors": 1, "error_rate": 0.025, "p99_latency_ms": 20.0}
    assert check_serving(project, calm, window_ref="log b/c") == []
    first, second = raised
    assert [a["alert_id"] for a in list_alerts(project.catalog, since_id=first)] == [second]
    acknowledge_alert(project.catalog, first)
    assert [a["alert_id"] for a in list_alerts(project.catalog, status=OPEN)] == [second]
    assert [a["alert_id"] for a in list_alerts(project.catalog, status=ACKNOWLEDGED)] == [first]
    with pytest.raises(NotFoundError):
        acknowledge_alert(project.catalog, 999)
