"""One engine owns a project at a time; `.mldeck/engine.json` says which and where.

`mldeck serve` (later the daemon and the UI's in-process engine) holds the
catalog open for writing, which DuckDB allows one process at a time. It writes
its pid and control address here; other commands read this file and go through
its control API instead of opening the catalog. A file whose pid is dead is
stale and ignored. The control API is protected by a per-project token kept in
`.mldeck/token` with mode 0600.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from engine.core.errors import ProjectError
from storage.catalog import utcnow

OWNER_FILE = "engine.json"
TOKEN_FILE = "token"


@dataclass(frozen=True)
class Owner:
    pid: int
    url: str
    """Base URL of the control API, e.g. http://127.0.0.1:8765."""
    parts: tuple[str, ...]
    """What the engine runs: serve, watcher, scheduler, ..."""
    started_at: str

    @property
    def command(self) -> str:
        """The command that runs this engine, as a person would type it."""
        return "mldeck daemon" if "watcher" in self.parts else "mldeck serve"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def project_token(state_dir: Path) -> str:
    """The project's control token, created on first use (readable by its owner only)."""
    path = state_dir / TOKEN_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text(encoding="ascii", errors="replace").strip()
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        import secrets  # ~10 ms, once per project

        handle.write(secrets.token_urlsafe(32))
    return path.read_text(encoding="ascii").strip()


def check_token_file(state_dir: Path) -> list[str]:
    """Make the token file fit for an engine start: a new token in place of an empty
    (or unreadable) one, mode 0600 in place of a looser one. What was fixed, in words."""
    import secrets
    import stat

    path = state_dir / TOKEN_FILE
    notes: list[str] = []
    token = project_token(state_dir)
    if len(token) < 16 or not token.isascii() or not token.isprintable():
        temp = state_dir / f".{TOKEN_FILE}.tmp"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(secrets.token_urlsafe(32))
        os.replace(temp, path)
        notes.append(f"{path} held no usable token: wrote a new one")
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        os.chmod(path, 0o600)
        notes.append(f"{path} was readable by others (mode {mode:04o}): set to 0600")
    return notes


def read_owner(state_dir: Path) -> Owner | None:
    """The live engine holding this project, or None (no file, unreadable or stale)."""
    path = state_dir / OWNER_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        owner = Owner(
            pid=int(data["pid"]),
            url=str(data["url"]),
            parts=tuple(data.get("parts", ())),
            started_at=str(data.get("started_at", "")),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if owner.pid != os.getpid() and not pid_alive(owner.pid):
        return None
    return owner


def claim(state_dir: Path, url: str, parts: tuple[str, ...]) -> Owner:
    """Advertise this process as the project's engine (call once the catalog is open)."""
    current = read_owner(state_dir)
    if current is not None and current.pid != os.getpid():
        raise ProjectError(
            f"this project is held by `{current.command}` (process {current.pid}, "
            f"{current.url}); stop it first"
        )
    check_token_file(state_dir)
    owner = Owner(pid=os.getpid(), url=url, parts=parts, started_at=utcnow().isoformat() + "Z")
    temp = state_dir / f".{OWNER_FILE}.tmp"
    temp.write_text(json.dumps(asdict(owner)), encoding="utf-8")
    os.replace(temp, state_dir / OWNER_FILE)
    return owner


def release(state_dir: Path) -> None:
    """Remove the owner file if this process wrote it."""
    current = read_owner(state_dir)
    if current is not None and current.pid == os.getpid():
        (state_dir / OWNER_FILE).unlink(missing_ok=True)
