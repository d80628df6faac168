"""The append-only, hash-chained audit log.

Each entry's hash covers its content and the previous entry's hash, so changing
or deleting a row breaks the chain from that row on; `verify_chain` names the
first entry that no longer fits.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from storage.catalog import Catalog, utcnow

GENESIS_HASH = "0" * 64


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _entry_hash(entry: dict[str, Any], prev_hash: str) -> str:
    content = {
        "entry_id": entry["entry_id"],
        "recorded_at": _iso(entry["recorded_at"]),
        "actor": entry["actor"],
        "action": entry["action"],
        "alias": entry["alias"],
        "from_version": entry["from_version"],
        "to_version": entry["to_version"],
        "reason": entry["reason"],
        "details_json": entry["details_json"],
        "prev_hash": prev_hash,
    }
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def append_entry(
    catalog: Catalog,
    *,
    actor: str,
    action: str,
    reason: str | None = None,
    alias: str | None = None,
    from_version: int | None = None,
    to_version: int | None = None,
    details: dict[str, Any] | None = None,
) -> int:
    """Append one entry (call inside the transaction that made the change)."""
    with catalog.transaction():
        last = catalog.row(
            "SELECT entry_id, entry_hash FROM audit_log ORDER BY entry_id DESC LIMIT 1"
        )
        prev_hash = last["entry_hash"] if last else GENESIS_HASH
        entry = {
            "entry_id": (last["entry_id"] + 1) if last else 1,
            "recorded_at": utcnow(),
            "actor": actor,
            "action": action,
            "alias": alias,
            "from_version": from_version,
            "to_version": to_version,
            "reason": reason,
            "details_json": json.dumps(details, sort_keys=True) if details else None,
        }
        entry_hash = _entry_hash(entry, prev_hash)
        catalog.execute(
            "INSERT INTO audit_log VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [*entry.values(), prev_hash, entry_hash],
        )
    return int(str(entry["entry_id"]))


def first_broken_entry(catalog: Catalog) -> tuple[dict[str, Any], str] | None:
    """The first entry that does not fit the chain and why, or None if all do.

    An entry fits when it links to the hash of the entry before it and its own
    hash still matches its content. A deleted or inserted entry breaks the link
    of the one after it; an edited entry no longer matches its hash.
    """
    prev_hash = GENESIS_HASH
    expected_id = 1
    for entry in catalog.rows("SELECT * FROM audit_log ORDER BY entry_id"):
        if entry["entry_id"] != expected_id:
            return entry, f"expected entry {expected_id} here: an entry is missing"
        if entry["prev_hash"] != prev_hash:
            return (
                entry,
                "its link to the previous entry does not match (an entry before it was removed or replaced)",
            )
        if _entry_hash(entry, prev_hash) != entry["entry_hash"]:
            return entry, "its content no longer matches its hash (the entry was altered)"
        prev_hash = entry["entry_hash"]
        expected_id += 1
    return None


def verify_chain(catalog: Catalog) -> int | None:
    """Return the id of the first entry whose hash does not fit, or None if all do."""
    broken = first_broken_entry(catalog)
    return None if broken is None else int(str(broken[0]["entry_id"]))
