"""Training and the registry: `mldeck train`, `models`, `promote`, `rollback`."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import click

from app import output
from app.context import default_actor, engine_client, json_option

if TYPE_CHECKING:
    import queue

    from engine.api import Event, TrainAnswer


@click.command()
@click.option("--only", multiple=True, help="Train only this candidate (repeatable).")
@json_option
@click.pass_context
def train(ctx: click.Context, only: tuple[str, ...], as_json: bool) -> None:
    """Prepare the dataset, train every configured candidate, evaluate and register them.

    While a daemon holds the project, the training is a job in its pipeline queue.
    """
    from engine.api import LocalEngine

    client = engine_client(ctx)
    if isinstance(client, LocalEngine):
        with _progress(client, enabled=not as_json):
            result = client.train(actor=default_actor(), only=list(only))
    else:
        result = client.train(actor=default_actor(), only=list(only))
    if as_json:
        output.print_json(result)
    else:
        _print_train(result)
    failed = [o for o in result["candidates"] if o["status"] == "failed"]
    for o in failed:
        output.error("Training failed", f"{o['name']}: {o['error']}")
    if failed:
        sys.exit(1)


@contextlib.contextmanager
def _progress(client: Any, enabled: bool) -> Iterator[None]:
    """Live progress bars on stderr (a terminal only) from the engine's events."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from engine.api import Progress as ProgressEvent
    from engine.api import StageFinished, StageStarted

    progress = Progress(
        TextColumn("{task.description:<28}"),
        BarColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        console=output.stderr,
        transient=True,
        disable=not enabled or not output.stderr.is_terminal,
    )
    tasks: dict[str, Any] = {}

    def on_event(event: Event) -> None:
        if not isinstance(event, StageStarted | ProgressEvent | StageFinished):
            return
        key = f"{event.stage}:{event.subject}"
        if isinstance(event, StageStarted):
            tasks[key] = progress.add_task(f"{event.stage} {event.subject}", total=None, detail="")
        elif isinstance(event, ProgressEvent):
            task = tasks.get(key) or progress.add_task(f"{event.stage} {event.subject}", detail="")
            tasks[key] = task
            progress.update(task, completed=event.done, total=event.total, detail=event.detail)
        elif key in tasks:
            progress.remove_task(tasks.pop(key))

    subscriber: queue.Queue[Event | None] = client.hub.subscribe(
        notify=lambda: _drain(subscriber, on_event)
    )
    try:
        with progress:
            yield
    finally:
        client.hub.unsubscribe(subscriber)


def _drain(subscriber: Any, on_event: Any) -> None:
    import queue

    while True:
        try:
            event = subscriber.get_nowait()
        except queue.Empty:
            return
        if event is not None:
            on_event(event)


def _print_train(result: TrainAnswer) -> None:
    from rich.markup import escape

    primary = result["primary_metric"]
    output.stdout.print(
        f"Dataset {result['dataset_id']}: {result['train_rows']} train / "
        f"{result['holdout_rows']} holdout rows; features {result['feature_hash'][:12]}"
    )
    outcomes = result["candidates"]
    metric_names = sorted({m for o in outcomes for m in o["metrics"]})
    rows = []
    for o in outcomes:
        if o["status"] != "registered":
            continue
        rows.append(
            [
                f"v{o['version']}",
                o["name"],
                o["kind"],
                *[output.fmt_metric(o["metrics"].get(m)) for m in metric_names],
                f"{o['parity']:.1e}",
                o["device"],
                "yes" if o["promotable"] else "no",
                f"{o['duration_s']:.1f}s",
            ]
        )
    if rows:
        output.stdout.print(
            output.table(
                f"Registered (holdout metrics; primary: {primary})",
                [
                    "version",
                    "name",
                    "kind",
                    *[output.metric_label(m) for m in metric_names],
                    "parity",
                    "device",
                    "gates",
                    "took",
                ],
                rows,
            )
        )
    for o in outcomes:
        if o["status"] != "registered":
            output.stdout.print(f"[red]failed[/] {escape(o['name'])}: {escape(o['error'] or '')}")
    if result["champion_holdout_metrics"] is not None:
        output.stdout.print(
            f"Champion v{result['champion_before']} on the same holdout: {primary} "
            f"{output.fmt_metric(result['champion_holdout_metrics'].get(primary))}"
        )
    if result["champion"] != result["champion_before"]:
        output.stdout.print(
            f"[green]v{result['champion']} is now the champion[/] (best promotable {primary} of the run)"
        )
    if result["challenger"] is not None:
        output.stdout.print(
            f"v{result['challenger']} is the challenger: `mldeck promote {result['challenger']} "
            "--reason ...` to make it champion"
        )


@click.command()
@json_option
@click.pass_context
def models(ctx: click.Context, as_json: bool) -> None:
    """The model registry: versions, metrics, parity, aliases."""
    versions = engine_client(ctx).models()
    if as_json:
        output.print_json(versions)
        return
    if not versions:
        output.stdout.print("No model versions yet: run `mldeck train`.")
        return
    metric_names = sorted({m for v in versions for m in v["metrics"]})
    rows = []
    for v in versions:
        alias = ", ".join(v["aliases"])
        if "champion" in v["aliases"]:
            alias = f"[bold green]{alias}[/]"
        if v["status"] != "registered":
            alias = f"{alias} ({v['status']})".strip()
        rows.append(
            [
                f"v{v['version']}",
                v["name"],
                v["kind"],
                *[output.fmt_metric(v["metrics"].get(m)) for m in metric_names],
                f"{v['parity_max_abs_diff']:.1e}",
                v["device"],
                "pass" if v["promotable"] else "fail",
                alias,
                output.fmt_time(v["created_at"]),
            ]
        )
    output.stdout.print(
        output.table(
            "Model registry (holdout metrics)",
            [
                "version",
                "name",
                "kind",
                *[output.metric_label(m) for m in metric_names],
                "parity",
                "device",
                "gates",
                "alias",
                "created (UTC)",
            ],
            rows,
        )
    )


@click.command()
@click.argument("version", type=int)
@click.option("--reason", required=True, help="Why: recorded in the audit log.")
@click.option("--force", is_flag=True, help="Promote even if the version failed its gates.")
@click.option(
    "--actor",
    default=default_actor,
    show_default="$MLDECK_ACTOR or your user name",
    help="Who is promoting (audit log).",
)
@json_option
@click.pass_context
def promote(
    ctx: click.Context, version: int, reason: str, force: bool, actor: str, as_json: bool
) -> None:
    """Make VERSION the champion (recorded in the audit log)."""
    result = engine_client(ctx).promote(version, actor=actor, reason=reason, force=force)
    if as_json:
        output.print_json(result)
    else:
        before = f"v{result['previous']}" if result["previous"] else "none"
        output.stdout.print(f"Champion: {before} -> [bold green]v{result['champion']}[/]")


@click.command()
@click.option("--reason", required=True, help="Why: recorded in the audit log.")
@click.option(
    "--actor",
    default=default_actor,
    show_default="$MLDECK_ACTOR or your user name",
    help="Who is rolling back (audit log).",
)
@json_option
@click.pass_context
def rollback(ctx: click.Context, reason: str, actor: str, as_json: bool) -> None:
    """Put the previous champion back (recorded in the audit log)."""
    result = engine_client(ctx).rollback(actor=actor, reason=reason)
    if as_json:
        output.print_json(result)
    else:
        output.stdout.print(
            f"Champion: v{result['previous']} -> [bold green]v{result['champion']}[/] (rolled back)"
        )


@click.command()
@click.argument("version", type=int)
@click.option("--reason", required=True, help="Why: recorded in the audit log.")
@click.option(
    "--actor",
    default=default_actor,
    show_default="$MLDECK_ACTOR or your user name",
    help="Who is archiving (audit log).",
)
@json_option
@click.pass_context
def archive(ctx: click.Context, version: int, reason: str, actor: str, as_json: bool) -> None:
    """Archive VERSION: kept with its lineage, never promoted again (recorded in the audit log)."""
    result = engine_client(ctx).archive(version, actor=actor, reason=reason)
    if as_json:
        output.print_json(result)
    else:
        output.stdout.print(f"v{result['archived']} archived")
