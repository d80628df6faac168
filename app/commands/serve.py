"""`mldeck serve` and `mldeck daemon`: one engine service with different parts switched on."""

from __future__ import annotations

import os
import sys
import threading
from typing import TYPE_CHECKING

import click

from app import output
from app.context import open_here
from engine.api import MldeckError

if TYPE_CHECKING:
    from engine.api import EngineService, Project

host_option = click.option(
    "--host", default=None, help="Address to listen on [default: serving.host, 127.0.0.1]."
)
port_option = click.option(
    "--port", type=int, default=None, help="Port [default: serving.port in mldeck.toml]."
)


@click.command()
@host_option
@port_option
@click.option(
    "--shadow",
    metavar="VERSION|challenger",
    help="Also score every champion request with this version, off the request path; "
    "its outputs are logged (shadow) and never returned.",
)
@click.pass_context
def serve(ctx: click.Context, host: str | None, port: int | None, shadow: str | None) -> None:
    """Serve the champion over OIP v2 (/v2/...) and MLflow scoring (/invocations)."""
    from engine.api import CHALLENGER, alias_version

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
    run_engine(project, ("serve",), host, port, shadow_version)


@click.command()
@host_option
@port_option
@click.option(
    "--no-serve", is_flag=True, help="Do not serve the champion (the control API still answers)."
)
@click.pass_context
def daemon(ctx: click.Context, host: str | None, port: int | None, no_serve: bool) -> None:
    """Run the engine: watched folders, pipeline queue, retrain scheduler, model endpoint.

    \b
    Files landing in data/incoming/ (and data/labels/) are ingested once each,
    in order. The retrain policy of mldeck.toml ([retrain]) decides what its
    triggers do. Other mldeck commands go through this engine while it runs.
    SIGTERM or Ctrl-C stops it cleanly.
    """
    parts = ("watcher", "scheduler") if no_serve else ("serve", "watcher", "scheduler")
    run_engine(open_here(ctx), parts, host, port, None)


def run_engine(
    project: Project,
    parts: tuple[str, ...],
    host: str | None,
    port: int | None,
    shadow_version: int | None,
) -> None:
    """Own the project and run the engine service until SIGINT/SIGTERM; exit 0 after a clean stop."""
    from engine.api import (
        Access,
        EngineService,
        check_token_file,
        claim,
        is_loopback_address,
        project_token,
        release,
        serve_app,
    )

    service = EngineService(project, parts, shadow_version=shadow_version)
    app = service.open_endpoint()
    if "watcher" not in parts and app is None:
        raise MldeckError("there is no champion to serve yet (run `mldeck train`)")
    host = host or project.config.serving_host
    port = project.config.serving_port if port is None else port
    # Other commands reach this engine's control API on loopback.
    local_host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    url_host = f"[{local_host}]" if ":" in local_host else local_host
    for note in check_token_file(project.state_dir):
        output.stderr.print(note)
    claim(project.state_dir, f"http://{url_host}:{port}", parts)
    settings = project.config.serving
    exposed = not is_loopback_address(host)
    need_token = settings.auth == "token" or (settings.auth == "auto" and exposed)
    service.front.access = Access(
        loopback_only=not exposed,
        token=project_token(project.state_dir) if need_token else None,
    )
    if exposed:
        guard = (
            f"they need the token in {project.state_dir / 'token'}"
            if need_token
            else 'they are open to anyone who can reach it ([serving] auth = "none")'
        )
        output.stderr.print(
            f"[bold]Exposed beyond loopback on {host}:{port}[/]: inference (/invocations, "
            f"/v2/models/.../infer), model metadata and /metrics: {guard}; health checks are "
            "open; the control API always needs the token."
        )
    if app is not None:
        model = app.slot.model
        output.stdout.print(
            f"Serving [bold]{app.model_name}[/] v{model.version} ({model.provider}) "
            f"on http://{host}:{port}  (Ctrl-C stops)"
        )
        if app.shadow is not None:
            output.stdout.print(f"Shadow: v{app.shadow.model.version} (logged, never returned)")
    if "watcher" in parts:
        output.stdout.print(
            f"Engine [bold]{' + '.join(parts)}[/] on http://{host}:{port}: watching "
            f"{project.incoming_dir} and {project.labels_dir}  (Ctrl-C stops)"
        )
        threading.Thread(target=_log_events, args=(service,), daemon=True).start()
    finished = True
    try:
        service.start()
        serve_app(
            service.front,
            host,
            port,
            on_stop=service.begin_stop,
            header_timeout_s=settings.header_timeout_s,
        )
    finally:
        finished = service.close()
        # The catalog is closed before the owner file goes: whoever sees the file
        # gone can open the catalog.
        release(project.state_dir)
    if not finished:
        # The running job did not finish in time: leave without waiting for it. The
        # catalog is consistent (its transactions commit whole), and the job's journal
        # entry makes the next start redo it.
        output.stderr.print("stopped mid-job; it runs again at the next start")
        sys.stdout.flush()
        os._exit(0)


def _log_events(service: EngineService) -> None:
    """One line on stderr per finished job and per retrain proposal (diagnostics, not data)."""
    from engine.api import JobFinished, RetrainProposed

    for event in service.events():
        if isinstance(event, JobFinished) and event.kind != "recover":
            mark = "[red]failed[/]" if event.status == "failed" else "done"
            output.stderr.print(f"{mark} {event.kind} {event.subject} {event.detail}".rstrip())
        elif isinstance(event, RetrainProposed):
            output.stderr.print(
                f"retrain proposed #{event.proposal_id} ({event.trigger}): {event.detail}"
            )
