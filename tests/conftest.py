"""Shared fixtures: throwaway projects in tmp dirs, built from sample_data/.

Plain helpers live in tests/helpers.py; the names below stay importable from here too.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from engine.core.project import Project, init_project, open_project
from tests.helpers import (
    FAST_MODELS,
    LINEAR,
    REFERENCE,
    REPO,
    SAMPLE,
    TWO_LINEAR,
    append_models,
    build_trained,
    free_port,
    run_cli,
    serve_in_thread,
    start_server,
    stop_server,
    until,
    wait_until,
)

__all__ = [
    "FAST_MODELS",
    "LINEAR",
    "REFERENCE",
    "REPO",
    "SAMPLE",
    "TWO_LINEAR",
    "append_models",
    "build_trained",
    "free_port",
    "run_cli",
    "serve_in_thread",
    "start_server",
    "stop_server",
    "until",
    "wait_until",
]


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
def open_proj() -> Iterator[Callable[[Path], Project]]:
    opened: list[Project] = []

    def opener(root: Path) -> Project:
        project = open_project(root)
        opened.append(project)
        return project

    yield opener
    for project in opened:
        project.close()


class TrainedTemplates:
    """Trained projects built once per (models, data) in a session (once per xdist worker),
    kept read-only as templates."""

    def __init__(self, folder: Path, default_data: Path) -> None:
        self._folder = folder
        self._default_data = default_data
        self._built: dict[tuple[str, Path], tuple[Path, list[int]]] = {}

    def get(self, models: str, data: Path | None = None) -> tuple[Path, list[int]]:
        """The template's root and its registered versions."""
        key = (models, data or self._default_data)
        if key not in self._built:
            root = self._folder / f"t{len(self._built)}" / "loans"
            versions = build_trained(root, key[1], models)
            self._built[key] = (root, versions)
        return self._built[key]


@pytest.fixture(scope="session")
def trained_templates(
    tmp_path_factory: pytest.TempPathFactory, small_reference: Path
) -> TrainedTemplates:
    return TrainedTemplates(tmp_path_factory.mktemp("trained"), small_reference)


@pytest.fixture
def trained_project(trained_templates: TrainedTemplates, tmp_path: Path) -> Callable[..., Path]:
    """A fresh copy of a trained project: `trained_project(models, data=None, name="loans")`
    initialises a project, ingests `data` (default: the first 3,000 reference rows), trains
    `models` (TOML text, default TWO_LINEAR -> v1 champion, v2), and returns the copy's root.
    The training runs once per session for each (models, data); each test gets its own copy."""

    def make(models: str = TWO_LINEAR, data: Path | None = None, name: str = "loans") -> Path:
        template, _ = trained_templates.get(models, data)
        copy = tmp_path / name
        shutil.copytree(template, copy)
        return copy

    return make


@pytest.fixture(scope="session")
def ui_template(tmp_path_factory: pytest.TempPathFactory, small_reference: Path) -> Path:
    """The UI tests' project (tests/app/ui_fixture.py), built once per session: copy, never open."""
    from tests.app.ui_fixture import build_ui_project

    root = tmp_path_factory.mktemp("ui") / "loans"
    built = build_ui_project(root, small_reference)
    assert built == {"versions": [1, 2], "statuses": ["warned", "warned", "quarantined"]}
    return root
