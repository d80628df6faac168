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
from engine.api import MldeckError

COMMANDS = {
    "init": "data",
    "ingest": "data",
    "train": "models",
    "models": "models",
    "promote": "models",
    "rollback": "models",
    "archive": "models",
    "serve": "serve",
    "daemon": "serve",
    "retrain": "retrain",
    "doctor": "doctor",
    "drift": "monitoring",
    "perf": "monitoring",
    "alerts": "monitoring",
    "report": "monitoring",
    "status": "status",
    "explain": "lineage",
    "lineage": "lineage",
    "reproduce": "lineage",
    "audit": "audit",
    "demo": "demo",
    "ui": "ui",
    "quarantine": "quarantine",
    "revalidate": "quarantine",
}
"""Each command and the module under app/commands/ that defines it (a function of
the same name). Only the command that runs is imported: `mldeck explain` does not
pay for the other eleven modules."""


class MldeckGroup(click.Group):
    """Loads commands on demand; turns engine errors into one clear line on stderr
    and exit code 1."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = COMMANDS.get(cmd_name)
        if module is None:
            return None
        from importlib import import_module

        command: click.Command = getattr(import_module(f"app.commands.{module}"), cmd_name)
        return command

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
        except BrokenPipeError:  # `mldeck ... | head`: the reader left, nothing to report
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            sys.exit(1)
        except click.exceptions.Exit:
            raise
        except click.ClickException:
            raise
        except Exception as exc:
            if os.environ.get("MLDECK_DEBUG"):
                raise
            if _is_unreadable_file(exc):
                output.error(
                    "Unreadable file",
                    f"{exc}; if it names .mldeck/catalog.duckdb, the catalog is damaged: "
                    "restore it from a backup",
                )
                sys.exit(1)
            output.error(
                "Internal error",
                f"{type(exc).__name__}: {exc} (this is a bug in mldeck; "
                "set MLDECK_DEBUG=1 to see the traceback)",
            )
            sys.exit(70)


def _is_unreadable_file(exc: Exception) -> bool:
    """DuckDB's I/O and corruption errors: a damaged file, not a bug in mldeck."""
    kind = type(exc)
    return kind.__module__.lstrip("_").startswith("duckdb") and kind.__name__ in {
        "IOException",
        "SerializationException",
    }


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
    from engine.api import CONFIG_NAME

    folder = start.resolve()
    return any((f / CONFIG_NAME).is_file() for f in (folder, *folder.parents))


def main() -> None:
    cli(prog_name="mldeck")


if __name__ == "__main__":
    main()
