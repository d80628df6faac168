"""The control API of the engine that owns a project: `/control/...` on its endpoint.

Other commands (`mldeck promote`, `mldeck rollback`) cannot open a catalog that
this process holds, so they call these routes with the project's bearer token
(`engine.client.RemoteEngine`). A promotion loads the new champion first
(hash-verified), then moves the alias with its audit entry, then swaps the
served model: a model that cannot load is never promoted, and requests in
flight finish on the model they started with.
"""

from __future__ import annotations

import hmac
import json
import urllib.parse
from collections.abc import Callable
from typing import Any

from engine import views
from engine.errors import MldeckError, NotFoundError
from engine.owner import read_owner
from engine.project import Project
from engine.prompts import record_prompt_outcome
from engine.registry import archive, champion_history, promote, rollback
from engine.serving.model_slot import ModelSlot, load_model
from engine.status import project_status

_LIST_VIEWS: dict[str, Callable[[Project, dict[str, str]], list[dict[str, Any]]]] = {
    "/control/batches": lambda p, q: views.batches(p),
    "/control/batch-issues": lambda p, q: views.batch_issues(p, _int_param(q, "batch")),
    "/control/quarantine": lambda p, q: views.quarantined(p),
    "/control/versions": lambda p, q: views.versions(p),
    "/control/drift-history": lambda p, q: views.drift_history(p),
    "/control/audit": lambda p, q: views.audit_entries(p, text=q.get("text")),
    "/control/alerts": lambda p, q: views.alerts(p, status=q.get("status")),
    "/control/performance": lambda p, q: views.performance_windows(p),
    "/control/proposals": lambda p, q: views.retrain_proposals(p),
}
"""Read-only GET routes answering {"items": [...]} (engine.views)."""

_VIEWS: dict[str, Callable[[Project, dict[str, str]], dict[str, Any]]] = {
    "/control/lanes": lambda p, q: views.stage_lanes(p),
    "/control/lineage": lambda p, q: views.lineage_summary(p, _int_param(q, "version")),
    "/control/drift-histogram": lambda p, q: views.drift_histogram(
        p, _int_param(q, "window"), q.get("feature", "")
    ),
}
"""Read-only GET routes answering one object (engine.views)."""


class ControlError(Exception):
    def __init__(self, status: int, msg: str, title: str = "Control API") -> None:
        super().__init__(msg)
        self.status = status
        self.msg = msg
        self.title = title


def _int_param(query: dict[str, str], name: str) -> int:
    try:
        return int(query[name])
    except (KeyError, ValueError):
        raise ControlError(400, f"the query parameter {name!r} must be an integer") from None


class ControlApi:
    def __init__(
        self,
        project: Project,
        slot: ModelSlot,
        token: str,
        live_traffic: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.project = project
        self.slot = slot
        self.token = token
        self.live_traffic = live_traffic
        """The serving app's own counters (requests, errors, shadow) since it started."""

    def handle(
        self,
        method: str,
        path: str,
        headers: dict[bytes, bytes],
        body: bytes,
        query_string: bytes = b"",
    ) -> tuple[int, dict[str, Any]]:
        """Answer one control request: (status, JSON body)."""
        try:
            self._authorize(headers)
            if method == "GET":
                query = dict(urllib.parse.parse_qsl(query_string.decode("latin-1")))
                if path == "/control/status":
                    return 200, self.status()
                if path == "/control/serving":
                    return 200, self.serving()
                if path in _LIST_VIEWS:
                    return 200, {"items": _LIST_VIEWS[path](self.project, query)}
                if path in _VIEWS:
                    return 200, _VIEWS[path](self.project, query)
            if method != "POST":
                raise ControlError(405, f"{path} takes POST")
            payload = self._payload(body)
            if path == "/control/promote":
                return 200, self._promote(payload)
            if path == "/control/rollback":
                return 200, self._rollback(payload)
            if path == "/control/archive":
                return 200, self._archive(payload)
            if path == "/control/prompt-outcome":
                return 200, self._prompt_outcome(payload)
            raise ControlError(404, f"no control route {path}")
        except ControlError as exc:
            return exc.status, {"error": exc.msg, "title": exc.title}
        except NotFoundError as exc:
            return 404, {"error": exc.msg, "title": exc.title}
        except MldeckError as exc:
            return 409, {"error": exc.msg, "title": exc.title}

    def status(self) -> dict[str, Any]:
        """The project's status plus what this engine serves."""
        model = self.slot.model
        owner = read_owner(self.project.state_dir)
        serving = {
            "url": owner.url if owner else None,
            "version": model.version,
            "name": self.project.config.name,
            "provider": model.provider,
        }
        return project_status(self.project, serving=serving)

    def serving(self) -> dict[str, Any]:
        """Traffic from the prediction log plus this endpoint's address and live counters."""
        stats = views.serving_stats(self.project)
        owner = read_owner(self.project.state_dir)
        stats["endpoint"] = {
            "url": owner.url if owner else None,
            "version": self.slot.model.version,
            "provider": self.slot.model.provider,
            **(self.live_traffic() if self.live_traffic else {}),
        }
        return stats

    def _authorize(self, headers: dict[bytes, bytes]) -> None:
        given = headers.get(b"authorization", b"").decode("latin-1")
        expected = f"Bearer {self.token}"
        if not hmac.compare_digest(given.encode(), expected.encode()):
            raise ControlError(401, "missing or wrong control token", "Unauthorized")

    @staticmethod
    def _payload(body: bytes) -> dict[str, Any]:
        try:
            payload = json.loads(body or b"{}")
        except ValueError as exc:
            raise ControlError(400, f"the body is not JSON: {exc}") from exc
        if not isinstance(payload, dict):
            raise ControlError(400, "the body must be a JSON object")
        for key in ("actor", "reason"):
            if not isinstance(payload.get(key), str):
                raise ControlError(400, f"{key!r} must be a string")
        return payload

    def _promote(self, payload: dict[str, Any]) -> dict[str, Any]:
        version = payload.get("version")
        if isinstance(version, bool) or not isinstance(version, int):
            raise ControlError(400, "'version' must be an integer")
        incoming = load_model(self.project, version)  # NotFoundError for an unknown version
        result = promote(
            self.project.catalog,
            version,
            actor=payload["actor"],
            reason=payload["reason"],
            force=bool(payload.get("force", False)),
        )
        self.slot.swap(incoming)
        return result

    def _archive(self, payload: dict[str, Any]) -> dict[str, Any]:
        version = payload.get("version")
        if isinstance(version, bool) or not isinstance(version, int):
            raise ControlError(400, "'version' must be an integer")
        return archive(
            self.project.catalog, version, actor=payload["actor"], reason=payload["reason"]
        )

    def _prompt_outcome(self, payload: dict[str, Any]) -> dict[str, Any]:
        proposal_id = payload.get("proposal_id")
        if isinstance(proposal_id, bool) or not isinstance(proposal_id, int):
            raise ControlError(400, "'proposal_id' must be an integer")
        return record_prompt_outcome(
            self.project.catalog,
            proposal_id,
            str(payload.get("outcome")),
            actor=payload["actor"],
            reason=payload["reason"],
        )

    def _rollback(self, payload: dict[str, Any]) -> dict[str, Any]:
        stack = champion_history(self.project.catalog)
        incoming = load_model(self.project, stack[-2]) if len(stack) >= 2 else None
        result = rollback(self.project.catalog, actor=payload["actor"], reason=payload["reason"])
        if incoming is None or incoming.version != result["champion"]:
            incoming = load_model(self.project, int(result["champion"]))
        self.slot.swap(incoming)
        return result
