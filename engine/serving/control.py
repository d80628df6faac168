"""The control API of the engine that owns a project: `/control/...` on its endpoint.

Other commands cannot open a catalog that this process holds, so they call
these routes with the project's bearer token (`engine.client.RemoteEngine`).
Each route calls the same method of an `EngineClient` that the command would
call on the catalog directly, and answers its JSON data, so a command prints
the same thing with or without a running engine. Errors answer
`{"error", "title"}` with the engine error's message.

    GET  /control/status | models | drift[?span=7d|?batch=N] | proposals | doctor
    GET  /control/batches | batch-issues?batch=N | quarantine | lanes | lineage-summary?version=N
         | drift-history | drift-histogram?window=N&feature=F | serving
         | audit-entries[?since=&until=&kinds=a,b&text=&limit=] | audit-verify
         | alerts[?status=open] | performance | explain?id=ID | lineage?version=N
    GET  /control/events                      server-sent events, one JSON object each
    POST /control/ingest      {"paths"}
    POST /control/train       {"actor", "only"}
    POST /control/promote     {"version", "actor", "reason", "force"}
    POST /control/rollback    {"actor", "reason"}
    POST /control/retrain     {"actor", "reason"}
    POST /control/archive     {"version", "actor", "reason"}
    POST /control/reproduce   {"version", "actor"}
    POST /control/alerts/ack  {"alert_id"}
    POST /control/log-drift   {"span"}      a new drift window over the prediction log
    POST /control/report      {"path"}      writes the HTML report there
    POST /control/proposals/accept | dismiss | snooze   {"proposal_id", "actor", "reason"}
    POST /control/revalidate  {"batch_id", "actor", "reason"}
"""

from __future__ import annotations

import hmac
import json
import urllib.parse
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import MldeckError, NotFoundError
from storage.errors import StorageError

if TYPE_CHECKING:
    from engine.client import EngineClient


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
        """The project folder: paths given to /control/ingest and /control/report must
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
        from engine.jobs import EngineStopping

        try:
            self.authorize(authorization)
            if method == "GET":
                return 200, self._get(path, urllib.parse.parse_qs(query))
            if method != "POST":
                raise ControlError(405, f"{path} takes GET or POST")
            return 200, self._post(path, self._payload(body))
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

    def _get(self, path: str, query: dict[str, list[str]]) -> Any:
        if path == "/control/status":
            return self.engine.status()
        if path == "/control/models":
            return self.engine.models()
        if path == "/control/drift":
            span = query.get("span", [None])[0]
            batch = query.get("batch", [None])[0]
            if batch is not None and not batch.isdigit():
                raise ControlError(400, "'batch' must be a batch number")
            return self.engine.drift(span, None if batch is None else int(batch))
        if path == "/control/proposals":
            return self.engine.proposals()
        if path == "/control/doctor":
            return self.engine.doctor()
        engine = self.engine
        one = {k: v[0] for k, v in query.items()}
        if path == "/control/batches":
            return engine.batches()
        if path == "/control/batch-issues":
            return engine.batch_issues(_int(one, "batch"))
        if path == "/control/quarantine":
            return engine.quarantined()
        if path == "/control/lanes":
            return engine.stage_lanes()
        if path == "/control/lineage-summary":
            return engine.lineage_summary(_int(one, "version"))
        if path == "/control/drift-history":
            return engine.drift_history()
        if path == "/control/drift-histogram":
            return engine.drift_histogram(_int(one, "window"), one.get("feature", ""))
        if path == "/control/serving":
            return engine.serving_stats()
        if path == "/control/audit-entries":
            return engine.audit_entries(
                since=_time(one, "since"),
                until=_time(one, "until"),
                kinds=one["kinds"].split(",") if one.get("kinds") else None,
                text=one.get("text"),
                limit=_int(one, "limit") if "limit" in one else None,
            )
        if path == "/control/audit-verify":
            return engine.audit_verify()
        if path == "/control/explain":
            if not one.get("id"):
                raise ControlError(400, "the query parameter 'id' is required")
            return engine.explain(one["id"])
        if path == "/control/lineage":
            return engine.lineage(_int(one, "version"))
        if path == "/control/alerts":
            return engine.alerts(one.get("status"))
        if path == "/control/performance":
            return engine.performance()
        raise ControlError(404, f"no control route GET {path}")

    def _post(self, path: str, payload: dict[str, Any]) -> Any:
        if path == "/control/alerts/ack":
            alert_id = payload.get("alert_id")
            if isinstance(alert_id, bool) or not isinstance(alert_id, int):
                raise ControlError(400, "'alert_id' must be an integer")
            return self.engine.acknowledge_alert(alert_id)
        if path == "/control/log-drift":
            return self.engine.log_drift(_text(payload, "span"))
        if path == "/control/report":
            return self.engine.report(self._inside(_text(payload, "path")))
        if path == "/control/ingest":
            paths = payload.get("paths", [])
            if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
                raise ControlError(400, "'paths' must be a list of strings")
            return self.engine.ingest([self._inside(p) for p in paths])
        actor = _text(payload, "actor")
        if path == "/control/reproduce":
            version = payload.get("version")
            if isinstance(version, bool) or not isinstance(version, int):
                raise ControlError(400, "'version' must be an integer")
            return self.engine.reproduce(version, actor=actor)
        if path == "/control/train":
            only = payload.get("only", [])
            if not isinstance(only, list) or not all(isinstance(o, str) for o in only):
                raise ControlError(400, "'only' must be a list of candidate names")
            return self.engine.train(actor=actor, only=only)
        reason = _text(payload, "reason")
        if path == "/control/promote":
            version = payload.get("version")
            if isinstance(version, bool) or not isinstance(version, int):
                raise ControlError(400, "'version' must be an integer")
            force = bool(payload.get("force", False))
            return self.engine.promote(version, actor=actor, reason=reason, force=force)
        if path == "/control/rollback":
            return self.engine.rollback(actor=actor, reason=reason)
        if path == "/control/retrain":
            return self.engine.retrain(actor=actor, reason=reason)
        if path == "/control/archive":
            version = payload.get("version")
            if isinstance(version, bool) or not isinstance(version, int):
                raise ControlError(400, "'version' must be an integer")
            return self.engine.archive(version, actor=actor, reason=reason)
        if path.startswith("/control/proposals/"):
            proposal_id = payload.get("proposal_id")
            if isinstance(proposal_id, bool) or not isinstance(proposal_id, int):
                raise ControlError(400, "'proposal_id' must be an integer")
            answer = path.rsplit("/", 1)[1]
            if answer == "snooze":
                return self.engine.snooze(proposal_id, actor=actor, reason=reason)
            if answer in ("accept", "dismiss"):
                accept = answer == "accept"
                return self.engine.decide(proposal_id, accept=accept, actor=actor, reason=reason)
        if path == "/control/revalidate":
            batch_id = payload.get("batch_id")
            if isinstance(batch_id, bool) or not isinstance(batch_id, int):
                raise ControlError(400, "'batch_id' must be an integer")
            return self.engine.revalidate(batch_id, actor=actor, reason=reason)
        raise ControlError(404, f"no control route POST {path}")

    @staticmethod
    def _payload(body: bytes) -> dict[str, Any]:
        try:
            payload = json.loads(body or b"{}")
        except ValueError as exc:
            raise ControlError(400, f"the body is not JSON: {exc}") from exc
        if not isinstance(payload, dict):
            raise ControlError(400, "the body must be a JSON object")
        return payload


def _int(query: dict[str, str], key: str) -> int:
    try:
        value = int(query[key])
    except (KeyError, ValueError):
        raise ControlError(400, f"the query parameter {key!r} must be an integer") from None
    if not 0 <= value < 2**63:  # ids and limits; the catalog's integers are 64-bit
        raise ControlError(400, f"the query parameter {key!r} must be from 0 to 2**63-1")
    return value


def _time(query: dict[str, str], key: str) -> datetime | None:
    if key not in query:
        return None
    try:
        return datetime.fromisoformat(query[key])
    except ValueError:
        raise ControlError(400, f"the query parameter {key!r} must be an ISO date") from None


def _text(payload: dict[str, Any], key: str) -> str:
    value = payload.get(key)
    if not isinstance(value, str):
        raise ControlError(400, f"{key!r} must be a string")
    return value
