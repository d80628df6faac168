"""Shared fixtures: throwaway projects in tmp dirs, built from sample_data/."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from app.cli import cli
from engine.project import Project, init_project, open_project

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "sample_data"
REFERENCE = SAMPLE / "reference" / "loans_reference.csv"

# Small, fast candidates: the tests check behaviour, not model quality.
FAST_MODELS = """
[models.linear]
kind = "linear"

[models.forest]
kind = "random_forest"
n_estimators = 15
max_depth = 6

[models.boost]
kind = "gradient_boosting"
n_estimators = 15

[models.mlp]
kind = "mlp"
hidden = [16]
epochs = 3
"""


@pytest.fixture(autouse=True)
def _quiet_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLDECK_ACTOR", "tester")
    monkeypatch.delenv("MLDECK_PROJECT", raising=False)


@pytest.fixture(scope="session")
def small_reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 3,000 rows of the reference data (header included)."""
    path = tmp_path_factory.mktemp("data") / "loans_small.csv"
    with open(REFERENCE) as src, open(path, "w") as dst:
        for i, line in enumerate(src):
            if i > 3000:
                break
            dst.write(line)
    return path


def append_models(root: Path, models: str = FAST_MODELS) -> None:
    config = root / "mldeck.toml"
    config.write_text(config.read_text() + models)


@pytest.fixture
def make_project(tmp_path: Path) -> Callable[..., Path]:
    """Create a project folder; returns its root."""

    def make(
        name: str = "proj",
        target: str | None = "default",
        id_column: str | None = "loan_id",
        models: str | None = FAST_MODELS,
    ) -> Path:
        root = tmp_path / name
        init_project(root, target=target, id_column=id_column)
        if models:
            append_models(root, models)
        return root

    return make


@pytest.fixture
def open_proj() -> Callable[[Path], Project]:
    opened: list[Project] = []

    def opener(root: Path) -> Project:
        project = open_project(root)
        opened.append(project)
        return project

    yield opener  # type: ignore[misc]
    for project in opened:
        project.close()


def run_cli(args: list[str], cwd: Path | None = None) -> Result:
    """Invoke the CLI in-process (stdout and stderr kept apart)."""
    runner = CliRunner()
    old = os.getcwd()
    if cwd is not None:
        os.chdir(cwd)
    try:
        return runner.invoke(cli, args, catch_exceptions=False)
    finally:
        os.chdir(old)
