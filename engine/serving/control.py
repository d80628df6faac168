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
from typing import Any

from engine.errors import MldeckError, NotFoundError
from engine.owner import read_owner
from engine.project import Project
from engine.registry import champion_history, promote, rollback
from engine.serving.model_slot import ModelSlot, load_model
from engine.status import project_status


class ControlError(Exception):
    def __init__(self, status: int, msg: str, title: str = "Control API") -> None:
        super().__init__(msg)
        self.status = status
        self.msg = msg
        self.title = title


class ControlApi:
    def __init__(self, project: Project, slot: ModelSlot, token: str) -> None:
        self.project = project
        self.slot = slot
        self.token = token

    def handle(
        self, method: str, path: str, headers: dict[bytes, bytes], body: bytes
    ) -> tuple[int, dict[str, Any]]:
        """Answer one control request: (status, JSON body)."""
        try:
            self._authorize(headers)
            if path == "/control/status" and method == "GET":
                return 200, self.status()
            if method != "POST":
                raise ControlError(405, f"{path} takes POST")
            payload = self._payload(body)
            if path == "/control/promote":
                return 200, self._promote(payload)
            if path == "/control/rollback":
                return 200, self._rollback(payload)
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

    def _rollback(self, payload: dict[str, Any]) -> dict[str, Any]:
        stack = champion_history(self.project.catalog)
        incoming = load_model(self.project, stack[-2]) if len(stack) >= 2 else None
        result = rollback(self.project.catalog, actor=payload["actor"], reason=payload["reason"])
        if incoming is None or incoming.version != result["champion"]:
            incoming = load_model(self.project, int(result["champion"]))
        self.slot.swap(incoming)
        return result
