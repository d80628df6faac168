"""Input data: `mldeck init` and `mldeck ingest`."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from app import output
from app.context import engine_client, json_option

if TYPE_CHECKING:
    from engine.api import IngestAnswer


@click.command()
@click.argument("name", type=click.Path(path_type=Path))
@click.option("--target", help="The column to predict (inferred from the first batch if absent).")
@click.option("--id", "id_column", help="A unique row id column (inferred if absent).")
@json_option
def init(name: Path, target: str | None, id_column: str | None, as_json: bool) -> None:
    """Create a project folder NAME with mldeck.toml, data/ and .mldeck/."""
    from engine.api import init_project

    config_path = init_project(name, target=target, id_column=id_column)
    root = config_path.parent
    if as_json:
        output.print_json({"project": str(root.resolve()), "config": str(config_path.resolve())})
        return
    output.stdout.print(f"Created project [bold]{root}[/]")
    output.stdout.print(f"  config     {config_path}")
    output.stdout.print(f"  drop data  {root / 'data' / 'incoming'}/")
    output.stdout.print(f"  labels     {root / 'data' / 'labels'}/")
    output.stdout.print(
        f"Next: cd {root} && cp <your csv files> data/incoming/ && mldeck ingest data/incoming/"
    )


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@json_option
@click.pass_context
def ingest(ctx: click.Context, paths: tuple[Path, ...], as_json: bool) -> None:
    """Ingest and validate data files (CSV, gzip CSV, Parquet) or every file in folders.

    Each file is taken once, by content hash; the same bytes under another name
    are recorded as a duplicate. A file that fails validation is copied into
    .mldeck/quarantine/ with its reasons; source files are never changed.
    Files under data/labels/ are delayed labels (id, label), joined by id to
    what the champion predicted. Default PATHS: data/incoming/, then data/labels/.
    Only regular files are read: a FIFO, socket or device file, or a link in
    a watched folder that leads out of the project, is refused with the reason.
    While a daemon holds the project, the files are ingested by it, in its
    pipeline queue.
    """
    # Absolute paths: the engine that ingests may run in another folder. Links are
    # not resolved here: the engine decides whether a link may be followed.
    results = engine_client(ctx).ingest([os.path.abspath(p) for p in paths])
    if as_json:
        output.print_json(results)
    elif not results:
        output.stdout.print("No files to ingest.")
    for result in results:
        if not as_json:
            _print_ingest(result)
    quarantined = [r for r in results if r["status"] == "quarantined"]
    for r in quarantined:
        name = Path(r["path"]).name
        reasons = "; ".join(i["message"] for i in r["issues"] if i["severity"] == "error")
        if not reasons.startswith(name):
            reasons = f"{name}: {reasons}"
        output.error("Quarantined", f"{reasons} (kept at {r['quarantine_path']})")
    for r in results:
        if r["status"] == "refused":
            output.error("Refused", "; ".join(i["message"] for i in r["issues"]))
    if quarantined or any(r["status"] == "refused" for r in results):
        sys.exit(1)


_STATUS_STYLE = {
    "accepted": "green",
    "warned": "yellow",
    "quarantined": "bold red",
    "duplicate": "cyan",
    "skipped": "dim",
    "refused": "bold red",
}


def _print_ingest(result: IngestAnswer) -> None:
    from rich.markup import escape

    status = result["status"]
    style = _STATUS_STYLE.get(status, "")
    line = f"[{style}]{status:<11}[/] {escape(Path(result['path']).name)}"
    if status in ("accepted", "warned") and result["kind"] == "labels":
        line += f"  labels {result['batch_id']}, {result['rows']} rows"
    elif status in ("accepted", "warned"):
        kind = "labelled" if result["labelled"] else "unlabelled"
        line += f"  batch {result['batch_id']}, {result['rows']} rows, {kind}"
    elif status == "duplicate":
        line += f"  same bytes as batch {result['duplicate_of']}"
    elif status == "skipped":
        line += f"  already ingested (batch {result['batch_id']}, {result['previous_status']})"
    elif status == "quarantined":
        line += f"  -> {escape(str(result['quarantine_path']))}"
    elif status == "refused":
        line += "  not read"
    output.stdout.print(line)
    for issue in result["issues"]:
        mark = "[red]✗[/]" if issue["severity"] == "error" else "[yellow]![/]"
        output.stdout.print(f"    {mark} {escape(issue['message'])}")
