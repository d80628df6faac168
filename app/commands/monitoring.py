"""Monitoring: `mldeck drift`."""

from __future__ import annotations

from typing import Any

import click

from app import output
from app.context import engine_client, json_option


@click.command()
@click.option(
    "--window", "span", metavar="SPAN", help="Merge the windows of the last SPAN (7d, 12h, 2w)."
)
@click.option("--batch", "batch_id", type=int, metavar="N", help="The window of ingested batch N.")
@click.option("--last", is_flag=True, help="The latest window (the default).")
@json_option
@click.pass_context
def drift(
    ctx: click.Context, span: str | None, batch_id: int | None, last: bool, as_json: bool
) -> None:
    """Data and prediction drift of recent batches against the champion's training reference.

    Each accepted batch ingested while a champion exists is checked against the
    champion's reference profile (stored at registration). By default the latest
    window is shown; --window 7d merges the windows of the last 7 days.
    Thresholds are the defaults (PSI 0.1 warn / 0.2 alert, KS and chi-square
    p < 0.05 with an effect size >= 0.1, Jensen-Shannon 0.1).
    """
    if sum([span is not None, batch_id is not None, last]) > 1:
        raise click.UsageError("use at most one of --window, --batch and --last")
    found = engine_client(ctx).drift(span, batch_id)
    if as_json:
        output.print_json(found)
        return
    _print_drift(found)


_DRIFT_STYLE = {"ok": "green", "warn": "yellow", "alert": "bold red", "no data": "dim"}


def _fmt_num(value: Any, digits: int = 4) -> str:
    if value is None:
        return "—"
    if isinstance(value, float) and value != 0 and abs(value) < 10**-digits:
        return f"{value:.1e}"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _drift_row(f: dict[str, Any]) -> list[str]:
    from rich.markup import escape

    style = _DRIFT_STYLE.get(f["status"], "")
    methods = ", ".join(t["method"] for t in f.get("tests", []))
    new = ", ".join(f"{escape(str(k))} ({v})" for k, v in (f.get("new_categories") or {}).items())
    return [
        escape(f["feature"]),
        f["kind"],
        escape(f["method"] or "—") + (f" [dim]({methods})[/]" if methods else ""),
        _fmt_num(f["score"]),
        _fmt_num(f["p_value"]),
        _fmt_num(f["threshold"]),
        f"[{style}]{f['status']}[/]",
        new or "—",
    ]


def _print_drift(report: dict[str, Any]) -> None:
    window = report["window"]
    columns = [
        "feature",
        "kind",
        "method (tests)",
        "score",
        "p-value",
        "threshold",
        "status",
        "new categories",
    ]
    batch_ids, window_ids = window["batch_ids"], window["window_ids"]
    if batch_ids and len(window_ids) == 1:
        what = f"batch {batch_ids[0]}"
    else:
        what = f"{len(window_ids)} windows (batches {', '.join(map(str, batch_ids))})"
    title = (
        f"Drift of {what}, {window['row_count']} rows, vs champion v{window['model_version']}'s "
        f"reference ({report['n_reference']} rows)"
    )
    out = output.stdout
    out.print(output.table(title, columns, [_drift_row(f) for f in report["features"]]))
    pred = report.get("prediction")
    if pred is not None:
        out.print(output.table("Prediction drift (model output)", columns, [_drift_row(pred)]))
    elif report.get("prediction_error"):
        out.print(f"Prediction drift: not computed ({report['prediction_error']})")
    if report.get("missing"):
        out.print(f"[yellow]Missing from the window:[/] {', '.join(report['missing'])}")
    share = report["share_drifted"]
    share_text = "—" if share is None else f"{share:.0%}"
    verdict = "[bold red]DRIFTED[/]" if report["dataset_drift"] else "[green]not drifted[/]"
    out.print(
        f"Dataset: {verdict} ({len(report['drifted'])} features in alert, {share_text} of those "
        f"with data; drifted at >= {report['dataset_share']:.0%}); status "
        f"[{_DRIFT_STYLE.get(report['status'], '')}]{report['status']}[/]"
    )
    if window["skipped_windows"]:
        out.print(
            f"[dim]{window['skipped_windows']} window(s) left out: counted against another reference[/]"
        )
