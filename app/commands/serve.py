"""`mldeck serve`: the local model endpoint."""

from __future__ import annotations

import click

from app import output
from app.context import open_here
from engine.errors import MldeckError


@click.command()
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
