"""The `mldeck` command line.

Heavy libraries (torch, sklearn, onnx, duckdb) are imported inside commands, so
`mldeck --help` starts fast. Exit codes: 0 ok, 1 the input or the project's
state was wrong (a clear message on stderr), 2 usage.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from app import output
from engine.errors import MldeckError


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


@click.group(
    cls=MldeckGroup,
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
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
    """mldeck: MLOps for one team, in a terminal. With no command in a project
    folder, opens the UI (`mldeck ui`).

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
    if ctx.invoked_subcommand is None:
        if _in_project(project_dir):
            from app.commands.ui import ui

            ctx.invoke(ui)
        else:
            click.echo(ctx.get_help())


def _in_project(start: Path) -> bool:
    from engine.config import CONFIG_NAME

    folder = start.resolve()
    return any((f / CONFIG_NAME).is_file() for f in (folder, *folder.parents))


def _add_commands() -> None:
    from app.commands import (
        audit,
        data,
        demo,
        doctor,
        lineage,
        models,
        monitoring,
        quarantine,
        retrain,
        serve,
        status,
        ui,
    )

    for command in (
        data.init,
        data.ingest,
        models.train,
        models.models,
        models.promote,
        models.rollback,
        models.archive,
        serve.serve,
        serve.daemon,
        retrain.retrain,
        doctor.doctor,
        monitoring.drift,
        monitoring.perf,
        monitoring.alerts,
        monitoring.report,
        status.status,
        lineage.explain,
        lineage.lineage,
        audit.audit,
        lineage.reproduce,
        demo.demo,
        ui.ui,
        quarantine.quarantine,
        quarantine.revalidate,
    ):
        cli.add_command(command)


_add_commands()


def main() -> None:
    cli(prog_name="mldeck")


if __name__ == "__main__":
    main()
