"""`mldeck doctor`: an integrity check of the project."""

from __future__ import annotations

import sys

import click

from app import output
from app.context import json_option


@click.command()
@click.option(
    "--fix",
    is_flag=True,
    help="First tidy what a crash left: mark runs of dead processes interrupted, remove "
    "staging files (what any writing command does when it opens the project).",
)
@json_option
@click.pass_context
def doctor(ctx: click.Context, fix: bool, as_json: bool) -> None:
    """Check the catalog and object store; exit 1 naming each problem.

    Every referenced object exists and hashes to its name; the aliases point at
    registered versions whose ONNX graph verifies and loads; no content was
    ingested twice; no stage run is left running by a process that is gone;
    the audit chain verifies; every version was registered whole; no training
    job or staging file was left by a crash.
    """
    from pathlib import Path

    from app.context import open_here
    from engine.api import LocalEngine, remote_engine

    # Without --fix, report what a dead process left instead of tidying it. An engine
    # that holds the project tidied it when it started.
    client = remote_engine(Path(ctx.obj["project"])) or LocalEngine(open_here(ctx, recover=fix))
    report = client.doctor()
    if as_json:
        output.print_json(report)
    else:
        checked = ", ".join(
            f"{n} {what.replace('_', ' ')}" for what, n in report["checked"].items()
        )
        output.stdout.print(f"Checked {checked}.")
        if report["ok"]:
            output.stdout.print("[green]No problems found.[/]")
    for problem in report["problems"]:
        output.error("Integrity", problem)
    if not report["ok"]:
        sys.exit(1)
