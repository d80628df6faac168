"""Stage 9: `mldeck retrain` (now, or decide on a proposal)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from app import output
from app.context import default_actor, engine_client, json_option

if TYPE_CHECKING:
    from engine.api import Proposal, RetrainAnswer


@click.command()
@click.option("--reason", help="Why: recorded in the audit log (needed unless --list).")
@click.option("--list", "show", is_flag=True, help="List the retrain proposals.")
@click.option("--accept", type=int, metavar="ID", help="Accept proposal ID: retrain now.")
@click.option("--dismiss", type=int, metavar="ID", help="Dismiss proposal ID.")
@click.option(
    "--actor",
    default=default_actor,
    show_default="$MLDECK_ACTOR or your user name",
    help="Who decides (audit log).",
)
@json_option
@click.pass_context
def retrain(
    ctx: click.Context,
    reason: str | None,
    show: bool,
    accept: int | None,
    dismiss: int | None,
    actor: str,
    as_json: bool,
) -> None:
    """Retrain now on the recorded snapshots, or list / accept / dismiss retrain proposals.

    A retrain trains every candidate and promotes the best new version only if
    it passed its gates and beats the champion on the same holdout; each step
    is in the audit log. Triggers (the [retrain] schedule in mldeck.toml) store
    a proposal under `policy = "prompt"`; accept one with --accept ID. While a
    daemon holds the project, the retrain is a job in its pipeline queue.
    """
    if sum([show, accept is not None, dismiss is not None]) > 1:
        raise click.UsageError("use at most one of --list, --accept and --dismiss")
    client = engine_client(ctx)
    if show:
        proposals = client.proposals()
        if as_json:
            output.print_json(proposals)
        else:
            _print_proposals(proposals)
        return
    if not reason:
        raise click.UsageError("--reason is required: it goes to the audit log")
    if accept is not None or dismiss is not None:
        proposal_id = accept if accept is not None else dismiss
        assert proposal_id is not None
        decided = client.decide(proposal_id, accept=accept is not None, actor=actor, reason=reason)
        if as_json:
            output.print_json(decided)
            return
        output.stdout.print(f"Proposal #{proposal_id} {decided['status']}.")
        if decided["retrain"] is not None:
            _print_retrain(decided["retrain"])
        return
    result = client.retrain(actor=actor, reason=reason)
    if as_json:
        output.print_json(result)
    else:
        _print_retrain(result)


def _print_retrain(result: RetrainAnswer) -> None:
    versions = ", ".join(f"v{v}" for v in result["versions"]) or "none"
    output.stdout.print(
        f"Retrained on dataset {result['dataset_id']}: registered {versions} "
        f"({result['train']['primary_metric']} on the holdout)"
    )
    if result["promoted"] is not None:
        output.stdout.print(
            f"[green]v{result['promoted']} is now the champion[/] (passed its gates"
            + (
                f", beats v{result['champion_before']})"
                if result["champion_before"] is not None
                else ")"
            )
        )
    else:
        output.stdout.print(
            f"Champion unchanged: v{result['champion']} (no new version passed its gates and beat it)"
        )


def _print_proposals(proposals: list[Proposal]) -> None:
    from rich.markup import escape

    if not proposals:
        output.stdout.print("No retrain proposals.")
        return
    output.stdout.print(
        output.table(
            "Retrain proposals",
            ["id", "proposed (UTC)", "trigger", "evidence", "status", "decided by", "reason"],
            [
                [
                    p["proposal_id"],
                    output.fmt_time(p["created_at"]),
                    p["trigger"],
                    escape(", ".join(f"{k}: {v}" for k, v in p["evidence"].items())),
                    p["status"],
                    p["decided_by"] or "",
                    escape(p["decision_reason"] or ""),
                ]
                for p in proposals
            ],
        )
    )
