"""Input data: `mldeck init` and `mldeck ingest`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from app import output
from app.context import json_option, open_here


@click.command()
@click.argument("name", type=click.Path(path_type=Path))
@click.option("--target", help="The column to predict (inferred from the first batch if absent).")
@click.option("--id", "id_column", help="A unique row id column (inferred if absent).")
@json_option
def init(name: Path, target: str | None, id_column: str | None, as_json: bool) -> None:
    """Create a project folder NAME with mldeck.toml, data/ and .mldeck/."""
    from engine.project import init_project

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
    """
    from engine.ingest import expand_paths, ingest_file
    from engine.labels import ingest_labels_file

    project = open_here(ctx)
    default = [project.incoming_dir] + ([project.labels_dir] if project.labels_dir.is_dir() else [])
    files = expand_paths(list(paths) or default)
    labels_dir = project.labels_dir.resolve()
    results = []
    for path in files:
        is_labels = path.resolve().is_relative_to(labels_dir)
        result = ingest_labels_file(project, path) if is_labels else ingest_file(project, path)
        results.append(result)
        if not as_json:
            _print_ingest(result, is_labels)
    if as_json:
        output.print_json(
            [
                {
                    "path": str(r.path),
                    "status": r.status,
                    "sha256": r.content_hash,
                    "batch_id": r.batch_id,
                    "rows": r.rows,
                    "labelled": r.labelled,
                    "snapshot": r.snapshot_hash,
                    "duplicate_of": r.duplicate_of,
                    "previous_status": r.previous_status,
                    "quarantine_path": str(r.quarantine_path) if r.quarantine_path else None,
                    "issues": [vars(i) for i in r.issues],
                }
                for r in results
            ]
        )
    elif not files:
        output.stdout.print("No files to ingest.")
    quarantined = [r for r in results if r.status == "quarantined"]
    for r in quarantined:
        reasons = "; ".join(i.message for i in r.issues if i.severity == "error")
        if not reasons.startswith(r.path.name):
            reasons = f"{r.path.name}: {reasons}"
        output.error("Quarantined", f"{reasons} (kept at {r.quarantine_path})")
    if quarantined:
        sys.exit(1)


_STATUS_STYLE = {
    "accepted": "green",
    "warned": "yellow",
    "quarantined": "bold red",
    "duplicate": "cyan",
    "skipped": "dim",
}


def _print_ingest(result: Any, is_labels: bool) -> None:
    from rich.markup import escape

    style = _STATUS_STYLE.get(result.status, "")
    line = f"[{style}]{result.status:<11}[/] {escape(result.path.name)}"
    if result.status in ("accepted", "warned") and is_labels:
        line += f"  labels {result.batch_id}, {result.rows} rows"
    elif result.status in ("accepted", "warned"):
        kind = "labelled" if result.labelled else "unlabelled"
        line += f"  batch {result.batch_id}, {result.rows} rows, {kind}"
    elif result.status == "duplicate":
        line += f"  same bytes as batch {result.duplicate_of}"
    elif result.status == "skipped":
        line += f"  already ingested (batch {result.batch_id}, {result.previous_status})"
    elif result.status == "quarantined":
        line += f"  -> {escape(str(result.quarantine_path))}"
    output.stdout.print(line)
    for issue in result.issues:
        mark = "[red]✗[/]" if issue.severity == "error" else "[yellow]![/]"
        output.stdout.print(f"    {mark} {escape(issue.message)}")
