"""A project folder: its config, catalog, object store and quarantine.

mldeck.toml
data/incoming/  data/labels/
.mldeck/catalog.duckdb  .mldeck/objects/  .mldeck/quarantine/
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from engine.core.errors import MldeckError, ProjectError, as_mldeck_error
from storage.catalog import Catalog
from storage.errors import StorageError

if TYPE_CHECKING:
    from engine.core.config import Config
    from storage.objects import ObjectStore

CONFIG_NAME = "mldeck.toml"
STATE_DIR = ".mldeck"


@dataclass
class Project:
    root: Path
    config: Config
    catalog: Catalog
    objects: ObjectStore

    @property
    def state_dir(self) -> Path:
        return self.root / STATE_DIR

    @property
    def quarantine_dir(self) -> Path:
        return self.state_dir / "quarantine"

    @property
    def incoming_dir(self) -> Path:
        return self.root / self.config.incoming_dir

    @property
    def labels_dir(self) -> Path:
        return self.root / self.config.labels_dir

    def reload_config(self) -> Config:
        from engine.core.config_parse import load_config

        self.config = load_config(self.root / CONFIG_NAME)
        return self.config

    def close(self) -> None:
        self.catalog.close()

    def __enter__(self) -> Project:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def find_root(start: Path) -> Path:
    """The nearest folder at or above `start` holding mldeck.toml."""
    start = start.resolve()
    for folder in (start, *start.parents):
        if (folder / CONFIG_NAME).is_file():
            return folder
    raise ProjectError(
        f"no {CONFIG_NAME} in {start} or any folder above it; "
        "run `mldeck init NAME` or pass --project DIR"
    )


def init_project(root: Path, target: str | None = None, id_column: str | None = None) -> Path:
    """Create a project folder (or complete one); never overwrites an existing config."""
    config_path = root / CONFIG_NAME
    if config_path.exists():
        raise ProjectError(f"{config_path} already exists; nothing to do")
    if root.exists() and not root.is_dir():
        raise ProjectError(f"{root} exists and is not a folder")
    for sub in ("data/incoming", "data/labels", f"{STATE_DIR}/objects", f"{STATE_DIR}/quarantine"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    from engine.core.config_template import render_template

    temp = root / f".{CONFIG_NAME}.tmp"
    temp.write_text(render_template(root.resolve().name, target, id_column), encoding="utf-8")
    os.replace(temp, config_path)
    with open_project(root):
        pass  # creates and migrates the catalog
    return config_path


def open_project(start: Path, read_only: bool = False) -> Project:
    """Open the project that holds `start`.

    Args:
        read_only: for commands that only look things up: the catalog is opened
            read-only (see `Catalog.open`) and the state folders are not created.
    """
    # Imported here, not at the top: commands that only find the project to reach
    # its running engine need neither (~30 ms).
    from engine.core.config_parse import load_config
    from storage.objects import ObjectStore

    root = find_root(start)
    config = load_config(root / CONFIG_NAME)
    state = root / STATE_DIR
    objects = ObjectStore(state / "objects")
    try:
        if not read_only:
            objects.ensure()
            (state / "quarantine").mkdir(parents=True, exist_ok=True)
        catalog = Catalog.open(state / "catalog.duckdb", read_only=read_only)
    except StorageError as exc:
        raise as_mldeck_error(exc) from exc
    except MldeckError:
        raise
    return Project(root=root, config=config, catalog=catalog, objects=objects)
