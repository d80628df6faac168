"""The control API of the engine that owns a project: `/control/...` on its endpoint.

Other commands cannot open a catalog that this process holds, so they call
these routes with the project's bearer token (`engine.service.client.RemoteEngine`).
Each route calls the same method of an `EngineClient` that the command would
call on the catalog directly, and answers its JSON data, so a command prints
the same thing with or without a running engine. Errors answer
`{"error", "title"}` with the engine error's message.

The routes are the operations' (engine.service.operations: each one's method, path and
arguments, decoded here by their annotated types); `GET /control/events` streams the engine's
events as server-sent events (engine.service.front).
"""

from __future__ import annotations

import hmac
import json
import urllib.parse
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from engine.core.errors import MldeckError, NotFoundError
from engine.service.operations import OPERATIONS, Arg, EngineClient, Operation
from storage.errors import StorageError


class ControlError(Exception):
    def __init__(self, status: int, msg: str, title: str = "Control API") -> None:
        super().__init__(msg)
        self.status = status
        self.msg = msg
        self.title = title


class ControlApi:
    def __init__(self, engine: EngineClient, token: str, root: Path | None = None) -> None:
        self.engine = engine
        self.token = token
        self.root = None if root is None else root.resolve()
        """The project folder: the paths an operation takes (its `project_paths`) must
        resolve inside it (None: not checked)."""

    def _inside(self, text: str) -> str:
        """A path from a request, resolved; 403 when it lies outside the project folder."""
        if self.root is None:
            return text
        if "\x00" in text:
            raise ControlError(400, "a path must not hold a NUL character")
        path = (self.root / text).resolve()  # an absolute `text` replaces the root
        if not path.is_relative_to(self.root):
            raise ControlError(
                403,
                f"{text[:200]!r} is outside the project folder {self.root}: the control API "
                "reads and writes only inside it",
                "Outside the project",
            )
        return str(path)

    def handle(
        self, method: str, path: str, query: str, authorization: str | None, body: bytes
    ) -> tuple[int, Any]:
        """Answer one control request: (status, JSON data). May wait for a pipeline job."""
        from engine.core.errors import EngineStopping

        try:
            self.authorize(authorization)
            if method not in ("GET", "POST"):
                raise ControlError(405, f"{path} takes GET or POST")
            found = ROUTES.get((method, path))
            if found is None:
                raise ControlError(404, f"no control route {method} {path}")
            op, fixed = found
            if method == "GET":
                query_args = {k: v[0] for k, v in urllib.parse.parse_qs(query).items()}
                kwargs = {arg.name: _from_query(arg, query_args) for arg in op.args}
            else:
                payload = self._payload(body)
                kwargs = {arg.name: _from_body(arg, payload) for arg in op.args}
            for name in op.project_paths:
                value = kwargs[name]
                kwargs[name] = (
                    [self._inside(v) for v in value]
                    if isinstance(value, list)
                    else self._inside(value)
                )
            return 200, getattr(self.engine, op.name)(**kwargs, **fixed)
        except ControlError as exc:
            return exc.status, {"error": exc.msg, "title": exc.title}
        except NotFoundError as exc:
            return 404, {"error": exc.msg, "title": exc.title}
        except EngineStopping as exc:
            return 503, {"error": exc.msg, "title": exc.title}
        except MldeckError as exc:
            return 409, {"error": exc.msg, "title": exc.title}
        except StorageError as exc:
            return 409, {"error": exc.msg, "title": exc.title}

    def authorize(self, authorization: str | None) -> None:
        """Accept only the project's token (the request's Authorization header)."""
        given = authorization or ""
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
        return payload


ROUTES: dict[tuple[str, str], tuple[Operation, Mapping[str, Any]]] = {
    (op.method, route): (op, fixed)
    for op in OPERATIONS.values()
    for route, fixed in op.routes().items()
}
"""(method, path) -> the operation and the arguments its route fixes."""


def _from_query(arg: Arg, query: dict[str, str]) -> Any:
    """One argument from the query string, by its kind."""
    if arg.wire not in query:
        if arg.optional:
            return arg.default
        if arg.kind == "int":
            raise ControlError(400, f"the query parameter {arg.wire!r} must be an integer")
        raise ControlError(400, f"the query parameter {arg.wire!r} is required")
    raw = query[arg.wire]
    if arg.kind == "int":
        try:
            value = int(raw)
        except ValueError:
            raise ControlError(
                400, f"the query parameter {arg.wire!r} must be an integer"
            ) from None
        if not 0 <= value < 2**63:  # ids and limits; the catalog's integers are 64-bit
            raise ControlError(400, f"the query parameter {arg.wire!r} must be from 0 to 2**63-1")
        return value
    if arg.kind == "time":
        try:
            return datetime.fromisoformat(raw)
        except ValueError:
            raise ControlError(
                400, f"the query parameter {arg.wire!r} must be an ISO date"
            ) from None
    if arg.kind == "strs":
        return raw.split(",") if raw else None
    if arg.kind == "bool":
        return raw.lower() in ("1", "true", "yes")
    return raw


def _from_body(arg: Arg, payload: dict[str, Any]) -> Any:
    """One argument from the JSON body, checked against its kind."""
    if arg.wire not in payload and arg.kind == "strs":
        return []
    if arg.wire not in payload and arg.kind == "bool":
        return bool(arg.default)
    value = payload.get(arg.wire)
    if value is None and arg.optional:
        return arg.default
    if arg.kind == "int" and (isinstance(value, bool) or not isinstance(value, int)):
        raise ControlError(400, f"{arg.wire!r} must be an integer")
    if arg.kind == "str" and not isinstance(value, str):
        raise ControlError(400, f"{arg.wire!r} must be a string")
    if arg.kind == "bool" and not isinstance(value, bool):
        raise ControlError(400, f"{arg.wire!r} must be true or false")
    if arg.kind == "strs" and (
        not isinstance(value, list) or not all(isinstance(v, str) for v in value)
    ):
        raise ControlError(400, f"{arg.wire!r} must be a list of strings")
    if arg.kind == "time":
        raise ControlError(400, f"{arg.wire!r}: times go in the query string")
    return value
