"""What every command shares: the project it works on, who is acting, --json."""

from __future__ import annotations

import getpass
import os
from pathlib import Path
from typing import TYPE_CHECKING

import click

from engine.api import MldeckError

if TYPE_CHECKING:
    from engine.api import EngineClient, Project

SAMPLE_DATA = Path(__file__).resolve().parent.parent / "sample_data"


def default_actor() -> str:
    return os.environ.get("MLDECK_ACTOR") or getpass.getuser()


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


def engine_client(ctx: click.Context, read_only: bool = False) -> EngineClient:
    """The engine this command talks to: the one that holds the project, if one does
    (its control API), else the catalog opened here.

    Args:
        read_only: the command only looks things up: a catalog opened here is opened
            read-only, which starts ~150 ms sooner (see `Catalog.open`).
    """
    from engine.api import LocalEngine, remote_engine

    remote = remote_engine(Path(ctx.obj["project"]))
    return remote or LocalEngine(open_here(ctx, recover=not read_only, read_only=read_only))


def open_here(ctx: click.Context, recover: bool = True, read_only: bool = False) -> Project:
    """Open the project for this command; refuse clearly when an engine holds it.

    Args:
        recover: tidy what a dead process left (`engine.records.crash_recovery.recover_on_open`).
        read_only: open the catalog read-only (`Catalog.open`).
    """
    from engine.api import STATE_DIR, find_root, open_project, read_owner, recover_on_open

    root = find_root(Path(ctx.obj["project"]))
    owner = read_owner(root / STATE_DIR)
    if owner is not None:
        raise MldeckError(
            f"the project is held by `{owner.command}` (process {owner.pid}, "
            f"{owner.url}); `mldeck {ctx.info_name}` cannot run beside it: stop it first",
            title="Project in use",
        )
    project = open_project(root, read_only=read_only)
    if recover:
        recover_on_open(project)
    ctx.call_on_close(project.close)
    return project
