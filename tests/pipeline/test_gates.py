"""The evaluation gates' rejections, each on a real training run: ONNX parity, the metric
floors and ceilings of `[evaluation.min]` / `[evaluation.max]`, and the largest drop allowed
against the champion. A rejected candidate is never promoted; one failing parity is not even
registered."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import engine.models.training
from engine.core.errors import RegistryError, TrainingError
from engine.core.project import Project
from engine.pipeline.intake import ingest_file
from engine.pipeline.training_run import train
from engine.records.registry import CHALLENGER, CHAMPION, alias_version, promote
from tests.helpers import LINEAR

SKEWED = '\n[models.skewed]\nkind = "linear"\n'


@pytest.fixture
def skew_exported_graph(monkeypatch: pytest.MonkeyPatch) -> None:
    """A test-only hook on the exporter's last step: the ONNX graph of the candidate named
    `skewed` gets its logistic intercepts shifted by 0.05 before it is serialised, so its
    outputs really differ from the native model (by ~0.01 in probability). Training,
    the parity check and registration run unchanged."""
    real_model_bytes = engine.models.training.model_bytes

    def skewed_model_bytes(model: Any) -> bytes:
        if model.graph.name == "skewed":
            (node,) = [n for n in model.graph.node if n.op_type == "LinearClassifier"]
            (intercepts,) = [a for a in node.attribute if a.name == "intercepts"]
            shifted = [v + 0.05 for v in intercepts.floats]
            del intercepts.floats[:]
            intercepts.floats.extend(shifted)
        return real_model_bytes(model)

    monkeypatch.setattr(engine.models.training, "model_bytes", skewed_model_bytes)


def versions(project: Project) -> list[dict[str, Any]]:
    return project.catalog.rows(
        "SELECT version, name, promotable, gates_json FROM model_versions ORDER BY version"
    )


def failed_gates(row: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for c in json.loads(row["gates_json"])["checks"] if not c["passed"]]


def test_a_candidate_whose_onnx_output_differs_is_not_registered(
    make_project: Callable[..., Path],
    open_proj: Callable[[Path], Project],
    small_reference: Path,
    skew_exported_graph: None,
) -> None:
    project = open_proj(make_project("loans", models=LINEAR + SKEWED))
    ingest_file(project, small_reference)
    result = train(project)

    by_name = {o.name: o for o in result.outcomes}
    skewed = by_name["skewed"]
    assert skewed.status == "failed" and skewed.version is None
    assert skewed.error is not None
    assert skewed.error.startswith("skewed: ONNX output differs from the native model by ")
    assert skewed.error.endswith("on the holdout (tolerance 0.0001); not registered")
    # the difference it reports is the shift's, far above the tolerance
    assert 1e-3 < float(skewed.error.split(" by ")[1].split()[0]) < 0.1
    # the healthy candidate is registered and promoted; nothing of the skewed one is
    assert by_name["linear"].status == "registered" and by_name["linear"].version == 1
    assert [(r["version"], r["name"]) for r in versions(project)] == [(1, "linear")]
    assert alias_version(project.catalog, CHAMPION) == 1
    assert alias_version(project.catalog, CHALLENGER) is None
    run = project.catalog.rows(
        "SELECT status, error FROM stage_runs WHERE stage = 'train'"
        " AND inputs_json LIKE '%\"skewed\"%'"
    )
    assert run == [{"status": "failed", "error": skewed.error}]
    training = project.catalog.rows(
        "SELECT status, error FROM training_runs WHERE candidate = 'skewed'"
    )
    assert training == [{"status": "failed", "error": skewed.error}]


def test_when_every_candidate_fails_parity_training_fails_and_registers_nothing(
    make_project: Callable[..., Path],
    open_proj: Callable[[Path], Project],
    small_reference: Path,
    skew_exported_graph: None,
) -> None:
    project = open_proj(make_project("loans", models=SKEWED))
    ingest_file(project, small_reference)
    with pytest.raises(
        TrainingError, match=r"every candidate failed: skewed: .*ONNX output differs"
    ):
        train(project)
    assert versions(project) == []
    assert alias_version(project.catalog, CHAMPION) is None


@pytest.mark.parametrize(
    ("section", "bound", "gate", "metric"),
    [
        ("min", "roc_auc = 0.9999", "roc_auc >= 0.9999", "roc_auc"),
        ("max", "log_loss = 0.0001", "log_loss <= 0.0001", "log_loss"),
    ],
)
def test_a_metric_bound_no_candidate_meets_promotes_nothing(
    make_project: Callable[..., Path],
    open_proj: Callable[[Path], Project],
    small_reference: Path,
    section: str,
    bound: str,
    gate: str,
    metric: str,
) -> None:
    root = make_project("loans", models=LINEAR)
    config = root / "mldeck.toml"
    config.write_text(config.read_text() + f"\n[evaluation.{section}]\n{bound}\n")
    project = open_proj(root)
    ingest_file(project, small_reference)
    result = train(project)

    (outcome,) = result.outcomes
    assert outcome.status == "registered" and outcome.version == 1
    assert outcome.promotable is False
    (row,) = versions(project)
    assert row["promotable"] is False
    value = project.catalog.scalar(
        "SELECT value FROM metrics WHERE version = 1 AND name = ?", [metric]
    )
    assert failed_gates(row) == [{"gate": gate, "value": value, "passed": False}]
    assert alias_version(project.catalog, CHAMPION) is None
    assert alias_version(project.catalog, CHALLENGER) is None
    with pytest.raises(RegistryError, match=rf"version 1 did not pass its gates \({gate}\)"):
        promote(project.catalog, 1, actor="tester", reason="try")


def test_a_candidate_worse_than_the_champion_by_more_than_max_drop_is_not_the_challenger(
    make_project: Callable[..., Path],
    open_proj: Callable[[Path], Project],
    small_reference: Path,
) -> None:
    stump = '\n[models.stump]\nkind = "random_forest"\nn_estimators = 1\nmax_depth = 1\n'
    root = make_project("loans", models=LINEAR + stump)
    config = root / "mldeck.toml"
    config.write_text(
        config.read_text().replace("[evaluation]\n", "[evaluation]\nmax_drop = 0.01\n", 1)
    )
    project = open_proj(root)
    ingest_file(project, small_reference)
    assert [o.version for o in train(project, only=["linear"]).outcomes] == [1]
    assert alias_version(project.catalog, CHAMPION) == 1

    result = train(project, only=["stump"])
    (outcome,) = result.outcomes
    assert outcome.status == "registered" and outcome.version == 2
    champion_auc = project.catalog.scalar(
        "SELECT value FROM metrics WHERE version = 1 AND name = 'roc_auc'"
    )
    stump_auc = outcome.metrics["roc_auc"]
    assert stump_auc is not None and champion_auc - stump_auc > 0.01
    rows = versions(project)
    assert rows[1]["promotable"] is False
    (check,) = failed_gates(rows[1])
    assert check["gate"] == "roc_auc drop vs champion v1 <= 0.01"
    assert check["value"] == pytest.approx(champion_auc - stump_auc)
    assert result.challenger is None and alias_version(project.catalog, CHALLENGER) is None
    assert alias_version(project.catalog, CHAMPION) == 1
    with pytest.raises(RegistryError, match=r"version 2 did not pass its gates \(roc_auc drop"):
        promote(project.catalog, 2, actor="tester", reason="try")
