"""The audit trail for people: entries in a period, and the chain check.

The entries themselves are written by the actions they record (promote,
rollback, set_challenger, quarantine, reproduce, and any kind other parts
add); see `storage.audit` for the hash chain.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, cast

from engine.core.answers import AuditEntry, AuditVerifyAnswer
from engine.core.errors import MldeckError
from engine.core.jsonable import iso
from storage.audit import first_broken_entry
from storage.catalog import Catalog

KNOWN_KINDS = (
    "promote",
    "rollback",
    "set_challenger",
    "retrain",
    "quarantine",
    "refuse",
    "alert",
    "reproduce",
)
"""Kinds a filter may name even before the log holds one of them."""


def _entry(row: dict[str, Any]) -> AuditEntry:
    entry = {key: iso(value) for key, value in row.items()}
    details = entry.pop("details_json")
    entry["details"] = None if details is None else json.loads(details)
    return cast(AuditEntry, entry)


def audit_kinds(catalog: Catalog) -> list[str]:
    """The kinds a filter accepts: the known ones and any the log holds."""
    held = [r["action"] for r in catalog.rows("SELECT DISTINCT action FROM audit_log")]
    return sorted({*KNOWN_KINDS, *held})


def audit_entries(
    catalog: Catalog,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    kinds: list[str] | None = None,
    text: str | None = None,
    limit: int | None = None,
) -> list[AuditEntry]:
    """Audit entries recorded in [since, until), oldest first, optionally of some kinds only;
    `text` keeps those whose actor, action, reason, versions or details contain it
    (case-insensitive); `limit` keeps the newest that many.

    Raises:
        MldeckError: a kind that is neither known nor in the log, or since >= until.
    """
    if since is not None and until is not None and since >= until:
        raise MldeckError(f"--since {iso(since)} is not before --until {iso(until)}", "Audit")
    if kinds:
        accepted = audit_kinds(catalog)
        unknown = [k for k in kinds if k not in accepted]
        if unknown:
            raise MldeckError(
                f"unknown kind(s) {', '.join(unknown)}; kinds: {', '.join(accepted)}", "Audit"
            )
    where: list[str] = ["TRUE"]
    params: list[Any] = []
    if since is not None:
        where.append("recorded_at >= ?")
        params.append(since)
    if until is not None:
        where.append("recorded_at < ?")
        params.append(until)
    if kinds:
        where.append("list_contains(?, action)")
        params.append(kinds)
    if text:
        where.append(
            "concat_ws(' ', actor, action, alias, reason, 'v' || from_version,"
            " 'v' || to_version, details_json) ILIKE ?"
        )
        params.append(f"%{text}%")
    newest = "" if limit is None else f" ORDER BY entry_id DESC LIMIT {int(limit)}"
    rows = catalog.rows(
        "SELECT * FROM (SELECT * EXCLUDE (prev_hash, entry_hash) FROM audit_log"
        f" WHERE {' AND '.join(where)}{newest}) ORDER BY entry_id",
        params,
    )
    return [_entry(row) for row in rows]


def verify_audit(catalog: Catalog) -> AuditVerifyAnswer:
    """Recompute the hash chain: how many entries, the head hash, the first broken entry."""
    count = int(catalog.scalar("SELECT count(*) FROM audit_log"))
    head = catalog.scalar("SELECT entry_hash FROM audit_log ORDER BY entry_id DESC LIMIT 1")
    broken = first_broken_entry(catalog)
    return {
        "entries": count,
        "intact": broken is None,
        "head_hash": head,
        "first_broken": None
        if broken is None
        else {
            **_entry({k: v for k, v in broken[0].items() if k not in ("prev_hash", "entry_hash")}),
            "problem": broken[1],
        },
    }
