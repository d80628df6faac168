"""The engine client: the same calls, either on the catalog directly or through
the control API of the engine that owns the project.

`LocalEngine` works on an open project. `RemoteEngine` sends the call to the
owning engine over HTTP on its loopback address with the project's token, and
raises the same `MldeckError`s with the same messages, so the CLI's output is
the same either way.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar

from engine.errors import MldeckError, ProjectError
from engine.owner import project_token, read_owner
from engine.project import STATE_DIR, Project, find_root

CONTROL_TIMEOUT_S = 30.0
T = TypeVar("T")


class EngineClient(Protocol):
    def promote(self, version: int, *, actor: str, reason: str, force: bool) -> dict[str, Any]: ...

    def rollback(self, *, actor: str, reason: str) -> dict[str, Any]: ...

    def status(self) -> dict[str, Any]: ...

    def archive(self, version: int, *, actor: str, reason: str) -> dict[str, Any]: ...

    def prompt_outcome(
        self, proposal_id: int, outcome: str, *, actor: str, reason: str
    ) -> dict[str, Any]: ...

    # Read-only views (engine.views), JSON-ready either way.
    def batches(self) -> list[dict[str, Any]]: ...

    def batch_issues(self, batch_id: int) -> list[dict[str, Any]]: ...

    def quarantined(self) -> list[dict[str, Any]]: ...

    def stage_lanes(self) -> dict[str, Any]: ...

    def versions(self) -> list[dict[str, Any]]: ...

    def lineage(self, version: int) -> dict[str, Any]: ...

    def drift_history(self) -> list[dict[str, Any]]: ...

    def drift_histogram(self, window_id: int, feature: str) -> dict[str, Any]: ...

    def serving_stats(self) -> dict[str, Any]: ...

    def audit(self, text: str | None = None) -> list[dict[str, Any]]: ...

    def alerts(self, status: str | None = None) -> list[dict[str, Any]]: ...

    def performance_windows(self) -> list[dict[str, Any]]: ...

    def retrain_proposals(self) -> list[dict[str, Any]]: ...


class LocalEngine:
    """Calls on a project this process has open.

    The project's catalog is one DuckDB connection, which must not be used by two
    threads at once; the UI calls from worker threads, so every call holds a lock.
    """

    def __init__(self, project: Project) -> None:
        self.project = project
        self._lock = threading.RLock()

    def _locked(self, call: Callable[[], T]) -> T:
        with self._lock:
            return call()

    def promote(self, version: int, *, actor: str, reason: str, force: bool) -> dict[str, Any]:
        from engine.registry import promote

        return self._locked(
            lambda: promote(self.project.catalog, version, actor=actor, reason=reason, force=force)
        )

    def rollback(self, *, actor: str, reason: str) -> dict[str, Any]:
        from engine.registry import rollback

        return self._locked(lambda: rollback(self.project.catalog, actor=actor, reason=reason))

    def archive(self, version: int, *, actor: str, reason: str) -> dict[str, Any]:
        from engine.registry import archive

        return self._locked(
            lambda: archive(self.project.catalog, version, actor=actor, reason=reason)
        )

    def prompt_outcome(
        self, proposal_id: int, outcome: str, *, actor: str, reason: str
    ) -> dict[str, Any]:
        from engine.prompts import record_prompt_outcome

        return self._locked(
            lambda: record_prompt_outcome(
                self.project.catalog, proposal_id, outcome, actor=actor, reason=reason
            )
        )

    def status(self) -> dict[str, Any]:
        from engine.status import project_status

        return self._locked(lambda: project_status(self.project))

    def batches(self) -> list[dict[str, Any]]:
        from engine.views import batches

        return self._locked(lambda: batches(self.project))

    def batch_issues(self, batch_id: int) -> list[dict[str, Any]]:
        from engine.views import batch_issues

        return self._locked(lambda: batch_issues(self.project, batch_id))

    def quarantined(self) -> list[dict[str, Any]]:
        from engine.views import quarantined

        return self._locked(lambda: quarantined(self.project))

    def stage_lanes(self) -> dict[str, Any]:
        from engine.views import stage_lanes

        return self._locked(lambda: stage_lanes(self.project))

    def versions(self) -> list[dict[str, Any]]:
        from engine.views import versions

        return self._locked(lambda: versions(self.project))

    def lineage(self, version: int) -> dict[str, Any]:
        from engine.views import lineage_summary

        return self._locked(lambda: lineage_summary(self.project, version))

    def drift_history(self) -> list[dict[str, Any]]:
        from engine.views import drift_history

        return self._locked(lambda: drift_history(self.project))

    def drift_histogram(self, window_id: int, feature: str) -> dict[str, Any]:
        from engine.views import drift_histogram

        return self._locked(lambda: drift_histogram(self.project, window_id, feature))

    def serving_stats(self) -> dict[str, Any]:
        from engine.views import serving_stats

        return self._locked(lambda: serving_stats(self.project))

    def audit(self, text: str | None = None) -> list[dict[str, Any]]:
        from engine.views import audit_entries

        return self._locked(lambda: audit_entries(self.project, text=text))

    def alerts(self, status: str | None = None) -> list[dict[str, Any]]:
        from engine.views import alerts

        return self._locked(lambda: alerts(self.project, status=status))

    def performance_windows(self) -> list[dict[str, Any]]:
        from engine.views import performance_windows

        return self._locked(lambda: performance_windows(self.project))

    def retrain_proposals(self) -> list[dict[str, Any]]:
        from engine.views import retrain_proposals

        return self._locked(lambda: retrain_proposals(self.project))


class RemoteEngine:
    """Calls sent to the engine that owns the project."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url.rstrip("/")
        self.token = token

    def _call(
        self, path: str, payload: dict[str, Any] | None, query: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        params = {k: v for k, v in (query or {}).items() if v is not None}
        request = urllib.request.Request(
            self.url + path + (f"?{urllib.parse.urlencode(params)}" if params else ""),
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

    def _items(self, path: str, **query: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self._call(path, None, query)["items"]
        return items

    def status(self) -> dict[str, Any]:
        return self._call("/control/status", None)

    def archive(self, version: int, *, actor: str, reason: str) -> dict[str, Any]:
        return self._call(
            "/control/archive", {"version": version, "actor": actor, "reason": reason}
        )

    def prompt_outcome(
        self, proposal_id: int, outcome: str, *, actor: str, reason: str
    ) -> dict[str, Any]:
        return self._call(
            "/control/prompt-outcome",
            {"proposal_id": proposal_id, "outcome": outcome, "actor": actor, "reason": reason},
        )

    def batches(self) -> list[dict[str, Any]]:
        return self._items("/control/batches")

    def batch_issues(self, batch_id: int) -> list[dict[str, Any]]:
        return self._items("/control/batch-issues", batch=batch_id)

    def quarantined(self) -> list[dict[str, Any]]:
        return self._items("/control/quarantine")

    def stage_lanes(self) -> dict[str, Any]:
        return self._call("/control/lanes", None)

    def versions(self) -> list[dict[str, Any]]:
        return self._items("/control/versions")

    def lineage(self, version: int) -> dict[str, Any]:
        return self._call("/control/lineage", None, {"version": version})

    def drift_history(self) -> list[dict[str, Any]]:
        return self._items("/control/drift-history")

    def drift_histogram(self, window_id: int, feature: str) -> dict[str, Any]:
        return self._call(
            "/control/drift-histogram", None, {"window": window_id, "feature": feature}
        )

    def serving_stats(self) -> dict[str, Any]:
        return self._call("/control/serving", None)

    def audit(self, text: str | None = None) -> list[dict[str, Any]]:
        return self._items("/control/audit", text=text)

    def alerts(self, status: str | None = None) -> list[dict[str, Any]]:
        return self._items("/control/alerts", status=status)

    def performance_windows(self) -> list[dict[str, Any]]:
        return self._items("/control/performance")

    def retrain_proposals(self) -> list[dict[str, Any]]:
        return self._items("/control/proposals")


def remote_engine(start: Path) -> RemoteEngine | None:
    """The owning engine's client when a live engine holds the project, else None."""
    state_dir = find_root(start) / STATE_DIR
    owner = read_owner(state_dir)
    if owner is None:
        return None
    return RemoteEngine(owner.url, project_token(state_dir))
