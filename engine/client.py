"""The engine client: the same calls, either on the catalog directly or through
the control API of the engine that owns the project.

`LocalEngine` works on an open project. `RemoteEngine` sends the call to the
owning engine over HTTP on its loopback address with the project's token, and
raises the same `MldeckError`s with the same messages, so the CLI's output is
the same either way.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Protocol

from engine.errors import MldeckError, ProjectError
from engine.owner import project_token, read_owner
from engine.project import STATE_DIR, Project, find_root

CONTROL_TIMEOUT_S = 30.0


class EngineClient(Protocol):
    def promote(self, version: int, *, actor: str, reason: str, force: bool) -> dict[str, Any]: ...

    def rollback(self, *, actor: str, reason: str) -> dict[str, Any]: ...

    def status(self) -> dict[str, Any]: ...


class LocalEngine:
    """Calls on a project this process has open."""

    def __init__(self, project: Project) -> None:
        self.project = project

    def promote(self, version: int, *, actor: str, reason: str, force: bool) -> dict[str, Any]:
        from engine.registry import promote

        return promote(self.project.catalog, version, actor=actor, reason=reason, force=force)

    def rollback(self, *, actor: str, reason: str) -> dict[str, Any]:
        from engine.registry import rollback

        return rollback(self.project.catalog, actor=actor, reason=reason)

    def status(self) -> dict[str, Any]:
        from engine.status import project_status

        return project_status(self.project)


class RemoteEngine:
    """Calls sent to the engine that owns the project."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url.rstrip("/")
        self.token = token

    def _call(self, path: str, payload: dict[str, Any] | None) -> dict[str, Any]:
        request = urllib.request.Request(
            self.url + path,
            data=None if payload is None else json.dumps(payload).encode(),
            method="GET" if payload is None else "POST",
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {self.token}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=CONTROL_TIMEOUT_S) as response:
                result: dict[str, Any] = json.loads(response.read())
                return result
        except urllib.error.HTTPError as exc:
            try:
                body = json.loads(exc.read())
            except ValueError:
                body = {}
            raise MldeckError(
                body.get("error", f"the engine at {self.url} answered HTTP {exc.code}"),
                title=body.get("title"),
            ) from exc
        except (urllib.error.URLError, OSError) as exc:
            raise ProjectError(f"the engine at {self.url} does not answer: {exc}") from exc

    def promote(self, version: int, *, actor: str, reason: str, force: bool) -> dict[str, Any]:
        return self._call(
            "/control/promote",
            {"version": version, "actor": actor, "reason": reason, "force": force},
        )

    def rollback(self, *, actor: str, reason: str) -> dict[str, Any]:
        return self._call("/control/rollback", {"actor": actor, "reason": reason})

    def status(self) -> dict[str, Any]:
        return self._call("/control/status", None)


def remote_engine(start: Path) -> RemoteEngine | None:
    """The owning engine's client when a live engine holds the project, else None."""
    state_dir = find_root(start) / STATE_DIR
    owner = read_owner(state_dir)
    if owner is None:
        return None
    return RemoteEngine(owner.url, project_token(state_dir))
