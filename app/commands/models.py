"""Training and the registry: `mldeck train`, `models`, `promote`, `rollback`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from app import output
from app.context import default_actor, json_option, open_here

if TYPE_CHECKING:
    from engine.events import Event


@click.command()
@click.option("--only", multiple=True, help="Train only this candidate (repeatable).")
@json_option
@click.pass_context
def train(ctx: click.Context, only: tuple[str, ...], as_json: bool) -> None:
    """Prepare the dataset, train every configured candidate, evaluate and register them."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from engine.events import Progress as ProgressEvent
    from engine.events import StageFinished, StageStarted
    from engine.pipeline import train as run_training

    project = open_here(ctx)
    progress = Progress(
        TextColumn("{task.description:<28}"),
        BarColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        console=output.stderr,
        transient=True,
        disable=as_json or not output.stderr.is_terminal,
    )
    tasks: dict[str, Any] = {}

    def on_event(event: Event) -> None:
        key = f"{event.stage}:{event.subject}"
        if isinstance(event, StageStarted):
            tasks[key] = progress.add_task(f"{event.stage} {event.subject}", total=None, detail="")
        elif isinstance(event, ProgressEvent):
            task = tasks.get(key) or progress.add_task(f"{event.stage} {event.subject}", detail="")
            tasks[key] = task
            progress.update(task, completed=event.done, total=event.total, detail=event.detail)
        elif isinstance(event, StageFinished):
            if key in tasks:
                progress.remove_task(tasks.pop(key))
            if not as_json and event.status == "failed":
                output.stderr.print(f"[red]failed[/] {event.stage} {event.subject}: {event.detail}")

    with progress:
        result = run_training(project, events=on_event, actor=default_actor(), only=list(only))
    if as_json:
        output.print_json(
            {
                "dataset_id": result.dataset_id,
                "train_rows": result.train_rows,
                "holdout_rows": result.holdout_rows,
                "feature_hash": result.feature_hash,
                "primary_metric": result.primary_metric,
                "candidates": [vars(o) for o in result.outcomes],
                "champion_before": result.champion_before,
                "champion": result.champion,
                "challenger": result.challenger,
                "champion_holdout_metrics": result.champion_holdout_metrics,
            }
        )
    else:
        _print_train(result)
    failed = [o for o in result.outcomes if o.status == "failed"]
    if failed:
        if as_json:  # otherwise each failure was already reported on stderr as it happened
            for o in failed:
                output.error("Training failed", f"{o.name}: {o.error}")
        sys.exit(1)


def _print_train(result: Any) -> None:
    from rich.markup import escape

    primary = result.primary_metric
    output.stdout.print(
        f"Dataset {result.dataset_id}: {result.train_rows} train / {result.holdout_rows} holdout "
        f"rows; features {result.feature_hash[:12]}"
    )
    metric_names = sorted({m for o in result.outcomes for m in o.metrics})
    rows = []
    for o in result.outcomes:
        if o.status != "registered":
            continue
        rows.append(
            [
                f"v{o.version}",
                o.name,
                o.kind,
                *[output.fmt_metric(o.metrics.get(m)) for m in metric_names],
                f"{o.parity:.1e}",
                o.device,
                "yes" if o.promotable else "no",
                f"{o.duration_s:.1f}s",
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
    for o in result.outcomes:
        if o.status != "registered":
            output.stdout.print(f"[red]failed[/] {escape(o.name)}: {escape(o.error or '')}")
    if result.champion_holdout_metrics is not None:
        output.stdout.print(
            f"Champion v{result.champion_before} on the same holdout: {primary} "
            f"{output.fmt_metric(result.champion_holdout_metrics.get(primary))}"
        )
    if result.champion != result.champion_before:
        output.stdout.print(
            f"[green]v{result.champion} is now the champion[/] (best promotable {primary} of the run)"
        )
    if result.challenger is not None:
        output.stdout.print(
            f"v{result.challenger} is the challenger: `mldeck promote {result.challenger} "
            "--reason ...` to make it champion"
        )


@click.command()
@json_option
@click.pass_context
def models(ctx: click.Context, as_json: bool) -> None:
    """The model registry: versions, metrics, parity, aliases."""
    from engine.registry import list_versions

    project = open_here(ctx)
    versions = list_versions(project.catalog)
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
    from engine.client import LocalEngine, remote_engine

    client = remote_engine(Path(ctx.obj["project"])) or LocalEngine(open_here(ctx))
    result = client.promote(version, actor=actor, reason=reason, force=force)
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
    from engine.client import LocalEngine, remote_engine

    client = remote_engine(Path(ctx.obj["project"])) or LocalEngine(open_here(ctx))
    result = client.rollback(actor=actor, reason=reason)
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
    from engine.client import LocalEngine, remote_engine

    client = remote_engine(Path(ctx.obj["project"])) or LocalEngine(open_here(ctx))
    result = client.archive(version, actor=actor, reason=reason)
    if as_json:
        output.print_json(result)
    else:
        output.stdout.print(f"v{result['archived']} archived")
