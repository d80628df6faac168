"""What a model version was built with beyond its data: the config and the code.

At registration the config file's bytes go to the object store (so `reproduce`
can read the exact file back, hash-verified) and the code version is recorded:
the installed mldeck and, when the project folder is inside a git repository,
its HEAD commit and whether tracked files had uncommitted changes. Library
versions are recorded by `engine.pipeline.register.register_version` itself.

Versions registered before this was recorded have no row; readers get
`NOT_RECORDED` in place of each value.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from storage.catalog import Catalog, utcnow

NOT_RECORDED = "not recorded"
GIT_TIMEOUT_S = 5.0


def mldeck_version() -> str:
    # Imported here: it costs ~50 ms, and `explain` reads provenance but never writes it.
    from importlib import metadata

    try:
        return metadata.version("mldeck")
    except metadata.PackageNotFoundError:
        return "not installed"


def _git(root: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(root), *args],
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def git_state(root: Path) -> tuple[str | None, bool | None]:
    """(HEAD commit, dirty) of the repository holding `root`; (None, None) outside one.

    Dirty means tracked files differ from HEAD. `.mldeck/` is left out: the
    catalog changes with every command and is not code.
    """
    head = _git(root, "rev-parse", "--verify", "HEAD")
    if head is None:
        return None, None
    changes = _git(root, "status", "--porcelain", "--untracked-files=no", "--", ".", ":!.mldeck")
    return head.strip(), None if changes is None else bool(changes.strip())


def record_provenance(catalog: Catalog, version: int, *, config_hash: str, root: Path) -> None:
    """Record the config object and the code version a new model version was trained with."""
    commit, dirty = git_state(root)
    catalog.execute(
        "INSERT INTO model_provenance VALUES (?, ?, ?, ?, ?, ?)",
        [version, config_hash, mldeck_version(), commit, dirty, utcnow()],
    )


def version_provenance(catalog: Catalog, version: int) -> dict[str, Any]:
    """The recorded config hash and code version; `NOT_RECORDED` for older versions."""
    row = catalog.row("SELECT * FROM model_provenance WHERE model_version = ?", [version])
    if row is None:
        return {
            "recorded": False,
            "config_hash": NOT_RECORDED,
            "mldeck_version": NOT_RECORDED,
            "git_commit": NOT_RECORDED,
            "git_dirty": NOT_RECORDED,
        }
    return {
        "recorded": True,
        "config_hash": row["config_hash"],
        "mldeck_version": row["mldeck_version"],
        "git_commit": row["git_commit"],  # None: the project is not in a git repository
        "git_dirty": row["git_dirty"],
    }
