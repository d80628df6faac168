"""Monitoring: `mldeck drift`, `mldeck perf`, `mldeck alerts`, `mldeck report`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from app import output
from app.context import engine_client, json_option
from app.output import fmt_metric, fmt_num, fmt_time, metric_label

if TYPE_CHECKING:
    from engine.api import DriftAnswer


@click.command()
@click.option(
    "--window", "span", metavar="SPAN", help="Merge the windows of the last SPAN (7d, 12h, 2w)."
)
@click.option("--batch", "batch_id", type=int, metavar="N", help="The window of ingested batch N.")
@click.option("--last", is_flag=True, help="The latest window (the default).")
@click.option(
    "--source",
    type=click.Choice(["batch", "log"]),
    default="batch",
    show_default=True,
    help="Ingested batches, or the served prediction log (a new window over the last SPAN, 1h by default).",
)
@json_option
@click.pass_context
def drift(
    ctx: click.Context,
    span: str | None,
    batch_id: int | None,
    last: bool,
    source: str,
    as_json: bool,
) -> None:
    """Data and prediction drift against the champion's training reference.

    Each accepted batch ingested while a champion exists is checked against the
    champion's reference profile (stored at registration). By default the latest
    window is shown; --window 7d merges the windows of the last 7 days.
    --source log computes (and stores) a window over the rows the server
    answered in the last SPAN, with its serving error rate and latency.
    Thresholds: [drift] in mldeck.toml (defaults PSI 0.1 warn / 0.2 alert, KS and
    chi-square p < 0.05 with an effect size >= 0.1, Jensen-Shannon 0.1).
    """
    if sum([span is not None, batch_id is not None, last]) > 1:
        raise click.UsageError("use at most one of --window, --batch and --last")
    if source == "log" and (batch_id is not None or last):
        raise click.UsageError("--source log takes --window SPAN only")
    client = engine_client(ctx)
    found = client.log_drift(span or "1h") if source == "log" else client.drift(span, batch_id)
    serving = found.get("serving")
    if as_json:
        output.print_json(found)
        return
    _print_drift(found)
    if serving is not None:
        rate = serving["error_rate"]
        p99 = serving["p99_latency_ms"]
        output.stdout.print(
            f"Serving: {serving['requests']} scoring requests, {serving['errors']} failed"
            f" ({'—' if rate is None else f'{rate:.1%}'}), p99 latency"
            f" {'—' if p99 is None else f'{p99:.1f} ms'}"
        )


_DRIFT_STYLE = {"ok": "green", "warn": "yellow", "alert": "bold red", "no data": "dim"}


def _drift_row(f: dict[str, Any]) -> list[str]:
    from rich.markup import escape

    style = _DRIFT_STYLE.get(f["status"], "")
    methods = ", ".join(t["method"] for t in f.get("tests", []))
    new = ", ".join(f"{escape(str(k))} ({v})" for k, v in (f.get("new_categories") or {}).items())
    return [
        escape(f["feature"]),
        f["kind"],
        escape(f["method"] or "—") + (f" [dim]({methods})[/]" if methods else ""),
        fmt_num(f["score"]),
        fmt_num(f["p_value"]),
        fmt_num(f["threshold"]),
        f"[{style}]{f['status']}[/]",
        new or "—",
    ]


def _print_drift(report: DriftAnswer) -> None:
    from rich.markup import escape

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
    if window["source"] == "log":
        what = (
            f"the served log {fmt_time(window['window_start'])} .. {fmt_time(window['window_end'])}"
        )
    elif batch_ids and len(window_ids) == 1:
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
        out.print(f"[yellow]Missing from the window:[/] {escape(', '.join(report['missing']))}")
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


@click.command()
@json_option
@click.pass_context
def perf(ctx: click.Context, as_json: bool) -> None:
    """Live performance per window as delayed labels arrive, next to the holdout figures.

    Labels files of (id, label) in data/labels/ are joined by id to the
    champion's output on monitored batches (one window per batch) and to served
    predictions whose request carried the id column (one window per day).
    """
    windows = engine_client(ctx).performance()
    if as_json:
        output.print_json(windows)
        return
    if not windows:
        output.stdout.print(
            "No live performance yet: labels files of (id, label) in data/labels/ are joined to "
            "monitored batches and served predictions (mldeck ingest)."
        )
        return
    names = list(dict.fromkeys(n for w in windows for n in w["metrics"]))
    columns = ["window", "version", "rows", "labelled"]
    columns += [f"{metric_label(n)} (holdout)" for n in names]
    rows = []
    for w in windows:
        cells = [w["window_ref"], f"v{w['model_version']}", w["n_rows"], w["n_labelled"]]
        for name in names:
            live, base = w["metrics"].get(name), w["holdout"].get(name)
            cells.append(f"{fmt_metric(live)} ({fmt_metric(base)})")
        rows.append(cells)
    output.stdout.print(output.table("Live performance (holdout at registration)", columns, rows))


_SEVERITY_STYLE = {"warn": "yellow", "alert": "bold red"}


@click.command()
@click.option("--all", "show_all", is_flag=True, help="Include acknowledged alerts.")
@click.option(
    "--ack", "ack_ids", type=int, multiple=True, metavar="ID", help="Acknowledge alert ID."
)
@json_option
@click.pass_context
def alerts(ctx: click.Context, show_all: bool, ack_ids: tuple[int, ...], as_json: bool) -> None:
    """What crossed a threshold, when, on which model version (open alerts by default).

    Rules: [alerts] in mldeck.toml (drift on N features, prediction drift, live
    performance below a floor or down from the holdout, serving error rate and
    p99 latency). Each is judged when a new window is stored.
    """
    from rich.markup import escape

    from engine.api import OPEN

    client = engine_client(ctx)
    for alert_id in ack_ids:
        client.acknowledge_alert(alert_id)
    found = client.alerts(None if show_all else OPEN)
    if as_json:
        output.print_json(found)
        return
    if not found:
        output.stdout.print("No alerts." if show_all else "No open alerts.")
        return
    rows = [
        [
            a["alert_id"],
            fmt_time(a["raised_at"]),
            f"[{_SEVERITY_STYLE.get(a['severity'], '')}]{a['severity']}[/]",
            a["rule"],
            "—" if a["model_version"] is None else f"v{a['model_version']}",
            escape(a["window_ref"]),
            escape(a["message"]),
            a["status"],
        ]
        for a in found
    ]
    columns = ["id", "raised (UTC)", "severity", "rule", "version", "window", "message", "status"]
    output.stdout.print(output.table("Alerts", columns, rows))


@click.command()
@click.option(
    "--out",
    "out_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default="drift.html",
    show_default=True,
    help="The HTML file to write.",
)
@json_option
@click.pass_context
def report(ctx: click.Context, out_path: Path, as_json: bool) -> None:
    """Write one self-contained HTML report: drift table, reference vs current histograms,
    drift and live performance over time (inline CSS and SVG; opens with no network)."""
    # An absolute path: the engine that writes it may run in another folder.
    written = engine_client(ctx).report(str(out_path.resolve()))
    if as_json:
        output.print_json(written)
        return
    output.stdout.print(f"Wrote {out_path} ({written['bytes'] // 1024} KiB)")
