"""`mldeck demo`: the main job on sample_data/."""

from __future__ import annotations

from pathlib import Path

import click

from app import output
from app.commands.data import ingest, init
from app.commands.models import models, train
from app.context import SAMPLE_DATA


@click.command()
@click.option(
    "--dir",
    "folder",
    type=click.Path(path_type=Path),
    help="Where to create the demo project (default: a new temporary folder).",
)
@click.option(
    "--sample-data",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=SAMPLE_DATA,
    show_default=True,
    help="The sample_data/ folder.",
)
@click.pass_context
def demo(ctx: click.Context, folder: Path | None, sample_data: Path) -> None:
    """Run the main job on sample_data/: init, ingest the reference data, train, show the registry."""
    import shutil
    import tempfile

    if folder is None:
        folder = Path(tempfile.mkdtemp(prefix="mldeck-demo-")) / "loans"
    output.stdout.print(f"[bold]mldeck demo[/]: a project at {folder}")
    ctx.invoke(init, name=folder, target="default", id_column="loan_id", as_json=False)
    for source in sorted((sample_data / "reference").glob("*.csv")):
        shutil.copy(source, folder / "data" / "incoming" / source.name)
    ctx.obj["project"] = folder
    output.stdout.rule("mldeck ingest data/incoming/")
    ctx.invoke(ingest, paths=(), as_json=False)
    output.stdout.rule("mldeck train")
    ctx.invoke(train, only=(), as_json=False)
    output.stdout.rule("mldeck models")
    ctx.invoke(models, as_json=False)
    output.stdout.print(f"\nExplore it: cd {folder} && mldeck status")
