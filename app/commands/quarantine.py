"""The quarantine: `mldeck quarantine` lists it, `mldeck revalidate` validates a file again."""

from __future__ import annotations

import sys

import click

from app import output
from app.context import default_actor, engine_client, json_option


@click.command()
@json_option
@click.pass_context
def quarantine(ctx: click.Context, as_json: bool) -> None:
    """The quarantined files: batch, kind, file, when, and every reason.

    Each file is kept byte for byte in .mldeck/quarantine/. After editing the
    contract in mldeck.toml, `mldeck revalidate BATCH` checks a file again.
    """
    held = engine_client(ctx).quarantined()
    if as_json:
        output.print_json(held)
        return
    if not held:
        output.stdout.print("Nothing is quarantined.")
        return
    rows = [
        [q["batch_id"], q["kind"], q["source_name"], output.fmt_time(q["ingested_at"]), q["reason"]]
        for q in held
    ]
    output.stdout.print(
        output.table("Quarantine", ["batch", "kind", "file", "ingested (UTC)", "reason"], rows)
    )
    output.stdout.print(
        "Edit the contract in mldeck.toml, then `mldeck revalidate BATCH --reason ...`."
    )


@click.command()
@click.argument("batch", type=int)
@click.option("--reason", required=True, help="Why: recorded in the audit log.")
@click.option(
    "--actor",
    default=default_actor,
    show_default="$MLDECK_ACTOR or your user name",
    help="Who asks (audit log).",
)
@json_option
@click.pass_context
def revalidate(ctx: click.Context, batch: int, reason: str, actor: str, as_json: bool) -> None:
    """Validate quarantined BATCH again under the contract as mldeck.toml has it now.

    The kept copy is ingested again: if it passes it becomes a new batch linked
    to the quarantined one; if not it stays quarantined with the new reasons
    (exit 1). Hard errors are never waved through: a file that cannot be read
    or lacks a column only passes once the contract no longer asks for it.
    While a daemon holds the project, this is a job in its pipeline queue.
    """
    from rich.markup import escape

    result = engine_client(ctx).revalidate(batch, actor=actor, reason=reason)
    errors = [i["message"] for i in result["issues"] if i["severity"] == "error"]
    if as_json:
        output.print_json(result)
    elif not errors:
        output.stdout.print(
            f"[green]{result['status']}[/] {escape(result['source_name'])}: batch {batch} "
            f"re-validated as batch {result['new_batch_id']}, {result['rows']} rows"
        )
        for issue in result["issues"]:
            output.stdout.print(f"    [yellow]![/] {escape(issue['message'])}")
    if errors:
        output.error(
            "Still quarantined",
            f"batch {batch} ({result['source_name']}): {'; '.join(errors)}",
        )
        sys.exit(1)
