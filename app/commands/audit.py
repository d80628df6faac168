"""The audit log: `mldeck audit [--since ...]` lists it, `mldeck audit verify` checks it."""

from __future__ import annotations

import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import click

from app import output
from app.commands.lineage import HISTORY_COLUMNS, history_rows
from app.context import engine_client, json_option
from app.report import Section, out_option, print_sections, write_report

if TYPE_CHECKING:
    from engine.api import AuditEntry, AuditVerifyAnswer

DATE_FORMATS = ("%Y-%m-%d", "%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S")


def _moment(ctx: click.Context, param: click.Parameter, value: str | None) -> datetime | None:
    """A UTC date or date-time; a bare --until date includes that whole day."""
    if value is None:
        return None
    for fmt in DATE_FORMATS:
        try:
            moment = datetime.strptime(value.removesuffix("Z"), fmt)
        except ValueError:
            continue
        if fmt == "%Y-%m-%d" and param.name == "until":
            moment += timedelta(days=1)
        return moment
    raise click.BadParameter(f"{value!r}: use YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS] (UTC)")


@click.group(invoke_without_command=True)
@click.option("--since", callback=_moment, help="From this UTC date or time (YYYY-MM-DD[THH:MM]).")
@click.option(
    "--until", callback=_moment, help="Up to this UTC date (included) or time (excluded)."
)
@click.option(
    "--kind",
    "kinds",
    multiple=True,
    help="Only this kind of entry (repeatable): promote, rollback, retrain, quarantine, alert, ...",
)
@json_option
@out_option
@click.pass_context
def audit(
    ctx: click.Context,
    since: datetime | None,
    until: datetime | None,
    kinds: tuple[str, ...],
    as_json: bool,
    out: Path | None,
) -> None:
    """Every promotion, rollback, retrain, quarantine, alert and reproduction in a period.

    Without a subcommand, lists the audit log (all of it, or --since/--until,
    in UTC) and says whether its hash chain is intact. `mldeck audit verify`
    checks the chain and names the first altered entry.

    \b
    Examples:
      mldeck audit --since 2026-01-01 --out audit.md
      mldeck audit --kind promote --kind rollback --json
      mldeck audit verify
    """
    if ctx.invoked_subcommand is not None:
        return
    client = engine_client(ctx, read_only=True)
    entries = client.audit_entries(since=since, until=until, kinds=list(kinds) or None)
    chain = client.audit_verify()
    if as_json:
        output.print_json({"entries": entries, "chain": chain})
    title = "mldeck audit"
    sections = [_listing(entries, chain, since, until, kinds)]
    if out is not None:
        write_report(out, title, sections)
    if not as_json:
        print_sections(title, sections)
        if out is not None:
            output.stdout.print(f"\nWrote {out}")


def _period(since: datetime | None, until: datetime | None) -> str:
    if since is None and until is None:
        return "all time"
    start = since.isoformat(sep=" ") if since else "the start"
    end = until.isoformat(sep=" ") if until else "now"
    return f"{start} to {end} (UTC, end excluded)"


def _chain_line(chain: AuditVerifyAnswer) -> str:
    if chain["intact"]:
        return f"intact: {chain['entries']} entries, head {chain['head_hash'] or '—'}"
    broken = chain["first_broken"]
    assert broken is not None  # not intact: verify_audit names the first broken entry
    return f"BROKEN at entry {broken['entry_id']} ({broken['action']}): {broken['problem']}"


def _listing(
    entries: list[AuditEntry],
    chain: AuditVerifyAnswer,
    since: datetime | None,
    until: datetime | None,
    kinds: tuple[str, ...],
) -> Section:
    return Section(
        "Audit log",
        [
            ("period", _period(since, until)),
            ("kinds", ", ".join(kinds) or "all"),
            ("entries", len(entries)),
            ("hash chain", _chain_line(chain)),
        ],
        HISTORY_COLUMNS,
        history_rows(entries),
        "no entries in this period",
    )


@audit.command()
@json_option
@click.pass_context
def verify(ctx: click.Context, as_json: bool) -> None:
    """Recompute the audit log's hash chain; exit 1 naming the first broken entry."""
    chain = engine_client(ctx, read_only=True).audit_verify()
    if as_json:
        output.print_json(chain)
    elif chain["intact"]:
        output.stdout.print(f"Audit log {_chain_line(chain)}")
    if not chain["intact"]:
        if not as_json:
            broken = chain["first_broken"]
            assert broken is not None  # not intact: verify_audit names the first broken entry
            output.error(
                "Audit log altered",
                f"entry {broken['entry_id']} ({broken['action']} by {broken['actor']}, "
                f"{output.fmt_time(broken['recorded_at'])} UTC): {broken['problem']}",
            )
        sys.exit(1)
