"""`mldeck status`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from app import output
from app.context import engine_client, json_option

if TYPE_CHECKING:
    from engine.api import StatusAnswer


@click.command()
@json_option
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """What the project holds and does: batches, quarantine, runs, champion, the engine's queue."""
    info = engine_client(ctx).status()
    if as_json:
        output.print_json(info)
        return
    _print_status(info)


def _print_status(info: StatusAnswer) -> None:
    from rich.markup import escape

    out = output.stdout
    out.print(f"[bold]{escape(info['name'])}[/]  {escape(info['root'])}")
    counts = info["batches"]
    out.print(
        "Batches: " + ", ".join(f"{n} {s}" for s, n in counts.items())
        if counts
        else "Batches: none"
    )
    out.print(f"Rows ingested: {info['rows']} ({info['labelled_rows']} labelled)")
    champion = info["champion"]
    if champion:
        out.print(
            f"Champion: [bold green]v{champion['version']}[/] {champion['name']} ({champion['kind']}) "
            + " ".join(f"{k} {output.fmt_metric(v)}" for k, v in champion["metrics"].items())
        )
    else:
        out.print("Champion: none")
    if info["challenger"]:
        out.print(f"Challenger: v{info['challenger']['version']} {info['challenger']['name']}")
    out.print(f"Model versions: {info['model_versions']}")
    serving = info.get("serving")
    if serving:
        out.print(
            f"Serving: v{serving['version']} as {escape(serving['name'])} at {serving['url']} "
            f"({serving['provider']})"
        )
    else:
        out.print("Serving: not running (`mldeck serve` or `mldeck daemon`)")
    engine = info.get("engine")
    if engine:
        queue = engine["queue"]
        jobs = ", ".join(f"{j['kind']} {escape(j['subject'])} ({j['status']})" for j in queue[:5])
        more = f" and {len(queue) - 5} more" if len(queue) > 5 else ""
        out.print(
            f"Engine: {' + '.join(engine['parts']) or 'control'} (process {engine['pid']}); "
            f"queue: {jobs + more if queue else 'idle'}"
        )
    for p in info["retrain_proposals"]:
        out.print(
            f"[yellow]Retrain proposed[/] #{p['proposal_id']} ({p['trigger']}, "
            f"{output.fmt_time(p['created_at'])}): `mldeck retrain --accept {p['proposal_id']} "
            "--reason ...` or --dismiss"
        )
    if info["quarantine"]:
        out.print(
            output.table(
                "Quarantine",
                ["batch", "file", "reason", "kept at"],
                [
                    [q["batch_id"], q["source_name"], q["reason"], q["quarantine_path"]]
                    for q in info["quarantine"]
                ],
            )
        )
    if info["recent_batches"]:
        out.print(
            output.table(
                "Recent batches",
                ["batch", "kind", "file", "status", "rows", "ingested (UTC)"],
                [
                    [
                        b["batch_id"],
                        b["kind"],
                        b["source_name"],
                        b["status"]
                        + (f" of {b['duplicate_of']}" if b["duplicate_of"] is not None else ""),
                        "—" if b["row_count"] is None else b["row_count"],
                        output.fmt_time(b["ingested_at"]),
                    ]
                    for b in info["recent_batches"]
                ],
            )
        )
    if info["recent_runs"]:
        out.print(
            output.table(
                "Recent stage runs",
                ["run", "stage", "status", "started (UTC)", "took", "error"],
                [
                    [
                        r["run_id"],
                        r["stage"],
                        r["status"],
                        output.fmt_time(r["started_at"]),
                        f"{r['duration_s']:.2f}s" if r["duration_s"] is not None else "—",
                        r["error"] or "",
                    ]
                    for r in info["recent_runs"]
                ],
            )
        )
