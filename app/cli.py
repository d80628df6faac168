"""The `mldeck` command line.

Heavy libraries (torch, sklearn, onnx, duckdb) are imported inside commands, so
`mldeck --help` starts fast. Exit codes: 0 ok, 1 the input or the project's
state was wrong (a clear message on stderr), 2 usage.
"""

from __future__ import annotations

import getpass
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from app import output
from engine.errors import MldeckError

if TYPE_CHECKING:
    from engine.events import Event
    from engine.project import Project

SAMPLE_DATA = Path(__file__).resolve().parent.parent / "sample_data"


class MldeckGroup(click.Group):
    """Turns engine errors into one clear line on stderr and exit code 1."""

    def invoke(self, ctx: click.Context) -> Any:
        from storage.errors import StorageError

        try:
            return super().invoke(ctx)
        except MldeckError as exc:
            output.error(exc.title, exc.msg)
            sys.exit(1)
        except StorageError as exc:
            output.error(exc.title, exc.msg)
            sys.exit(1)
        except KeyboardInterrupt:
            output.error("Interrupted", "stopped by the user")
            sys.exit(130)
        except click.exceptions.Exit:
            raise
        except click.ClickException:
            raise
        except Exception as exc:
            if os.environ.get("MLDECK_DEBUG"):
                raise
            output.error(
                "Internal error",
                f"{type(exc).__name__}: {exc} (this is a bug in mldeck; "
                "set MLDECK_DEBUG=1 to see the traceback)",
            )
            sys.exit(70)


def default_actor() -> str:
    return os.environ.get("MLDECK_ACTOR") or getpass.getuser()


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


def open_here(ctx: click.Context) -> Project:
    """Open the project for this command; refuse clearly when an engine holds it."""
    from engine.owner import read_owner
    from engine.project import STATE_DIR, find_root, open_project
    from engine.stage_runs import mark_interrupted

    root = find_root(Path(ctx.obj["project"]))
    owner = read_owner(root / STATE_DIR)
    if owner is not None:
        raise MldeckError(
            f"the project is held by `mldeck {' '.join(owner.parts)}` (process {owner.pid}, "
            f"{owner.url}); `mldeck {ctx.info_name}` cannot go through it yet: stop it first",
            title="Project in use",
        )
    project = open_project(root)
    mark_interrupted(project.catalog)
    ctx.call_on_close(project.close)
    return project


@click.group(cls=MldeckGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "-C",
    "--project",
    "project_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=".",
    envvar="MLDECK_PROJECT",
    show_default=True,
    help="Project folder (or any folder inside it). Env: MLDECK_PROJECT.",
)
@click.version_option(package_name="mldeck", prog_name="mldeck")
@click.pass_context
def cli(ctx: click.Context, project_dir: Path) -> None:
    """mldeck: MLOps for one team, in a terminal.

    Drop data files into data/incoming/; mldeck ingests and validates them,
    trains and registers models with their lineage, and keeps an audit log of
    every promotion and rollback.

    \b
    Quick start:
      mldeck init loans && cd loans
      cp ../sample_data/reference/*.csv data/incoming/
      mldeck ingest data/incoming/
      mldeck train
      mldeck models
    """
    ctx.ensure_object(dict)
    ctx.obj["project"] = project_dir


# ------------------------------------------------------------------ init


@cli.command()
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


# ------------------------------------------------------------------ ingest


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@json_option
@click.pass_context
def ingest(ctx: click.Context, paths: tuple[Path, ...], as_json: bool) -> None:
    """Ingest and validate data files (CSV, gzip CSV, Parquet) or every file in folders.

    Each file is taken once, by content hash; the same bytes under another name
    are recorded as a duplicate. A file that fails validation is copied into
    .mldeck/quarantine/ with its reasons; source files are never changed.
    Default PATHS: the project's data/incoming/.
    """
    from engine.ingest import expand_paths, ingest_file

    project = open_here(ctx)
    files = expand_paths(list(paths) or [project.incoming_dir])
    results = []
    for path in files:
        result = ingest_file(project, path)
        results.append(result)
        if not as_json:
            _print_ingest(result)
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


def _print_ingest(result: Any) -> None:
    from rich.markup import escape

    style = _STATUS_STYLE.get(result.status, "")
    line = f"[{style}]{result.status:<11}[/] {escape(result.path.name)}"
    if result.status in ("accepted", "warned"):
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


# ------------------------------------------------------------------ train


@cli.command()
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


# ------------------------------------------------------------------ registry


@cli.command()
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


@cli.command()
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


@cli.command()
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


# ------------------------------------------------------------------ serve


@cli.command()
@click.option(
    "--host", default=None, help="Address to listen on [default: serving.host, 127.0.0.1]."
)
@click.option("--port", type=int, default=None, help="Port [default: serving.port in mldeck.toml].")
@click.option(
    "--shadow",
    metavar="VERSION|challenger",
    help="Also score every champion request with this version, off the request path; "
    "its outputs are logged (shadow) and never returned.",
)
@click.pass_context
def serve(ctx: click.Context, host: str | None, port: int | None, shadow: str | None) -> None:
    """Serve the champion over OIP v2 (/v2/...) and MLflow scoring (/invocations)."""
    from engine.owner import claim, release
    from engine.registry import CHALLENGER, alias_version
    from engine.serving.app import create_app
    from engine.serving.server import serve_app

    project = open_here(ctx)
    shadow_version = None
    if shadow == CHALLENGER:
        shadow_version = alias_version(project.catalog, CHALLENGER)
        if shadow_version is None:
            raise MldeckError("there is no challenger to shadow (mldeck models)")
    elif shadow is not None:
        if not shadow.isdigit():
            raise click.BadParameter("a version number or 'challenger'", param_hint="--shadow")
        shadow_version = int(shadow)
    app = create_app(project, shadow_version=shadow_version)
    host = host or project.config.serving_host
    port = project.config.serving_port if port is None else port
    # Other commands reach this engine's control API on loopback.
    local_host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    url_host = f"[{local_host}]" if ":" in local_host else local_host
    claim(project.state_dir, f"http://{url_host}:{port}", ("serve",))
    model = app.slot.model
    output.stdout.print(
        f"Serving [bold]{app.model_name}[/] v{model.version} ({model.provider}) "
        f"on http://{host}:{port}  (Ctrl-C stops)"
    )
    if app.shadow is not None:
        output.stdout.print(f"Shadow: v{app.shadow.model.version} (logged, never returned)")
    try:
        serve_app(app, host, port)  # granian, one worker, in this process
    finally:
        app.close()
        # The catalog is closed before the owner file goes: whoever sees the file
        # gone can open the catalog.
        project.close()
        release(project.state_dir)


# ------------------------------------------------------------------ status


@cli.command()
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
    from engine.monitor import batch_window, latest_window, merged_window, parse_span

    if sum([span is not None, batch_id is not None, last]) > 1:
        raise click.UsageError("use at most one of --window, --batch and --last")
    project = open_here(ctx)
    if span is not None:
        found = merged_window(project, parse_span(span))
        where = f"in the last {span}"
    elif batch_id is not None:
        found = batch_window(project, batch_id)
        where = f"for batch {batch_id}"
    else:
        found = latest_window(project)
        where = "yet"
    if found is None:
        raise MldeckError(
            f"no drift window {where}: drift is checked when a data batch is ingested while "
            "the champion has a reference profile (mldeck train, then mldeck ingest)",
            title="No drift window",
        )
    if as_json:
        info = found.to_dict()
        report = info.pop("report")
        output.print_json({**report, "window": info})
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


def _print_drift(window: Any) -> None:
    report = window.report
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
    if window.batch_ids and len(window.window_ids) == 1:
        what = f"batch {window.batch_ids[0]}"
    else:
        what = f"{len(window.window_ids)} windows (batches {', '.join(map(str, window.batch_ids))})"
    title = (
        f"Drift of {what}, {window.row_count} rows, vs champion v{window.model_version}'s "
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
    if window.skipped:
        out.print(f"[dim]{window.skipped} window(s) left out: counted against another reference[/]")


@cli.command()
@json_option
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """What the project holds: batches, quarantine, recent runs, champion."""
    from engine.client import LocalEngine, remote_engine

    client = remote_engine(Path(ctx.obj["project"])) or LocalEngine(open_here(ctx))
    info = client.status()
    if as_json:
        output.print_json(info)
        return
    _print_status(info)


def _print_status(info: dict[str, Any]) -> None:
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
        out.print("Serving: not running (`mldeck serve`)")
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


# ------------------------------------------------------------------ demo


@cli.command()
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
@click.pass_context
def demo(ctx: click.Context, folder: Path | None, sample_data: Path) -> None:
    """Run the main job on sample_data/: init, ingest the reference data, train, show the registry."""
    import shutil
    import tempfile

    if folder is None:
        folder = Path(tempfile.mkdtemp(prefix="mldeck-demo-")) / "loans"
    output.stdout.print(f"[bold]mldeck demo[/]: a project at {folder}")
    ctx.invoke(init, name=folder, target="default", id_column="loan_id", as_json=False)
    for source in sorted((sample_data / "reference").glob("*.csv")):
        shutil.copy(source, folder / "data" / "incoming" / source.name)
    ctx.obj["project"] = folder
    output.stdout.rule("mldeck ingest data/incoming/")
    ctx.invoke(ingest, paths=(), as_json=False)
    output.stdout.rule("mldeck train")
    ctx.invoke(train, only=(), as_json=False)
    output.stdout.rule("mldeck models")
    ctx.invoke(models, as_json=False)
    output.stdout.print(f"\nExplore it: cd {folder} && mldeck status")


def main() -> None:
    cli(prog_name="mldeck")


if __name__ == "__main__":
    main()
