"""`mldeck demo`: the main job on sample_data/, a quarter of drifting loans played week by week."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from app import output
from app.context import SAMPLE_DATA, default_actor, json_option

if TYPE_CHECKING:
    from engine.api import Event, ProposeAnswer, Week


UI_PACE_S = 3.0
"""A week every few seconds: drift builds and a retrain prompt appears within minutes."""
HEADLESS_PACE_S = 0.5


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
@click.option(
    "--policy",
    type=click.Choice(["prompt", "auto", "off"]),
    default="prompt",
    show_default=True,
    help="The retrain policy: store proposals, retrain and promote through the gates, or nothing.",
)
@click.option(
    "--pace",
    type=click.FloatRange(min=0),
    default=None,
    help=f"Seconds per week (default: {UI_PACE_S:g} in the UI, {HEADLESS_PACE_S:g} headless;"
    " 0: as fast as it goes).",
)
@click.option(
    "--floor",
    type=click.FloatRange(0, 1),
    default=0.90,
    show_default=True,
    help="The live accuracy floor: below it an alert fires.",
)
@click.option(
    "--recent",
    "recent_batches",
    type=click.IntRange(min=0),
    default=4,
    show_default=True,
    help="A retrain learns from the newest N labelled batches (0: all).",
)
@click.option(
    "--headless",
    is_flag=True,
    help="Print each week instead of opening the UI (also when stdout is not a terminal).",
)
@json_option
def demo(
    folder: Path | None,
    sample_data: Path,
    policy: str,
    pace: float | None,
    floor: float,
    recent_batches: int,
    headless: bool,
    as_json: bool,
) -> None:
    """Play sample_data/'s quarter into a new project, week by week.

    The reference data trains the first champion; each week's loans then land
    in data/incoming/ and their outcomes in data/labels/. In a terminal the UI
    opens on the project and shows it happen: drift builds, live accuracy
    falls, and a retrain prompt asks what to do (--policy auto retrains and
    promotes when the gates allow, and accuracy recovers). With --headless
    (or --json, or stdout not a terminal) each week is printed instead: the
    drifted features, the champion's live accuracy, the alerts and what the
    retrain policy did about them.
    """
    import tempfile

    from engine.api import create_demo_project

    if folder is None:
        folder = Path(tempfile.mkdtemp(prefix="mldeck-demo-")) / "loans"
    create_demo_project(
        folder, sample_data, policy=policy, floor=floor, recent_batches=recent_batches
    )
    if headless or as_json or not sys.stdout.isatty():
        _play_headless(
            folder, sample_data, policy, HEADLESS_PACE_S if pace is None else pace, as_json
        )
    else:
        _play_in_ui(folder, sample_data, UI_PACE_S if pace is None else pace)


def _play_in_ui(folder: Path, sample_data: Path, pace_s: float) -> None:
    """The UI on the demo project, its in-process engine fed the quarter by a `QuarterFeed`."""
    from app.ui.app import make_app
    from engine.api import CONFIG_NAME, QuarterFeed, drop_reference, load_config

    config = load_config(folder / CONFIG_NAME)
    incoming_dir, labels_dir = folder / config.incoming_dir, folder / config.labels_dir
    drop_reference(sample_data, incoming_dir)  # the engine's watcher ingests it first
    app, close = make_app(folder, actor=default_actor())
    feed = QuarterFeed(
        app.client, sample_data, incoming_dir=incoming_dir, labels_dir=labels_dir, pace_s=pace_s
    )
    app.feed = feed
    try:
        app.run()
    finally:
        feed.stop()
        close()
    out = output.stdout
    out.print(f"The demo project is at {folder}: cd there and run mldeck (or mldeck status).")
    if feed.error is not None:
        output.stderr.print(f"[red]The demo feed stopped:[/] {feed.error}")


def _play_headless(
    folder: Path, sample_data: Path, policy: str, pace_s: float, as_json: bool
) -> None:
    from engine.api import open_project, play_weeks, train_reference

    out = output.stdout
    if not as_json:
        out.print(f"[bold]mldeck demo[/]: a project at {folder} (policy {policy})")
        out.rule("the reference data: ingest, train")
    weeks: list[dict[str, Any]] = []
    with open_project(folder) as project:
        on_event = _print_event if not as_json else _ignore
        trained = train_reference(project, sample_data, on_event)
        if not as_json:
            out.print(f"Champion: [bold green]v{trained['champion']}[/]")
            out.rule("the quarter, week by week")
        for week in play_weeks(project, sample_data, pace_s=pace_s):
            if as_json:
                weeks.append(dataclasses.asdict(week))
            else:
                _print_week(week)
    if as_json:
        output.print_json({"project": str(folder), "policy": policy, "weeks": weeks})
    else:
        out.print(f"\nExplore it: cd {folder} && mldeck status  (or mldeck perf, drift, alerts)")


def _ignore(event: Event) -> None:
    """--json: the weeks are the output."""


def _print_event(event: Event) -> None:
    from engine.api import StageFinished

    if isinstance(event, StageFinished) and event.stage == "register":
        output.stdout.print(f"  registered {event.subject}: {event.detail}")


def _print_week(week: Week) -> None:
    from rich.markup import escape

    acc = "—" if week.accuracy is None else f"{week.accuracy:.3f}"
    if week.accuracy is not None and week.holdout_accuracy is not None:
        colour = "red" if any(a["rule"].startswith("performance") for a in week.alerts) else "green"
        acc = f"[{colour}]{acc}[/] (holdout {week.holdout_accuracy:.3f})"
    drifted = ", ".join(week.drifted) if week.drifted else "none"
    output.stdout.print(
        f"[bold]week {week.week:>2}[/]  {week.rows} loans, v{week.champion}  accuracy {acc}"
        f"  drifted: {escape(drifted)}"
    )
    for alert in week.alerts:
        style = "bold red" if alert["severity"] == "alert" else "yellow"
        output.stdout.print(f"    [{style}]{alert['severity']}[/] {escape(alert['message'])}")
    for answer in week.triggers:
        output.stdout.print(f"    -> {_trigger_line(answer, week)}")


def _trigger_line(answer: ProposeAnswer, week: Week) -> str:
    trigger, action = answer["trigger"], answer["action"]
    if action == "proposed":
        return f"retrain proposed (#{answer['proposal_id']}, {trigger}): mldeck retrain --list"
    if action == "pending":
        return f"retrain proposal #{answer['proposal_id']} still waits for a person"
    if action == "retrained":
        promoted = answer["retrain"].get("promoted")
        if promoted:
            return (
                f"[bold green]retrained ({trigger}): v{promoted} promoted[/] (was v{week.champion})"
            )
        return f"retrained ({trigger}): no new version beat v{week.champion}; it stays champion"
    return f"{trigger} trigger ignored (policy off)"
