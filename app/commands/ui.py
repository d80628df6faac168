"""`mldeck ui` (also bare `mldeck` in a project folder): the terminal UI."""

from __future__ import annotations

from pathlib import Path

import click

from app.context import default_actor


@click.command()
@click.option(
    "--refresh",
    "refresh_s",
    type=click.FloatRange(min=0.2),
    default=5.0,
    show_default=True,
    help="Seconds between refreshes of the screen shown.",
)
@click.pass_context
def ui(ctx: click.Context, refresh_s: float) -> None:
    """Open the terminal UI on the project: pipeline, data, models, drift, performance,
    serving and audit on keys 1-7, ? for every key.

    When `mldeck serve` holds the project, the UI attaches to it through its
    control API; otherwise it opens the project in this process.
    """
    from app.ui.app import make_app

    app, close = make_app(Path(ctx.obj["project"]), actor=default_actor(), refresh_s=refresh_s)
    try:
        app.run()
    finally:
        close()
