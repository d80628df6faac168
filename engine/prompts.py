"""What a person answered to a retrain prompt, recorded in the audit log.

The prompts themselves (retrain proposals raised by drift or performance
triggers under the `prompt` policy) come from the retrain trigger; this module
only records the answer, so the decision is traceable like a promotion.
"""

from __future__ import annotations

from typing import Any

from engine.errors import MldeckError
from storage.audit import append_entry
from storage.catalog import Catalog

OUTCOMES = ("retrain", "dismiss", "snooze")


def record_prompt_outcome(
    catalog: Catalog,
    proposal_id: int,
    outcome: str,
    *,
    actor: str,
    reason: str,
    snooze_s: float | None = None,
) -> dict[str, Any]:
    """Append the answer to retrain proposal `proposal_id`; returns the audit entry id."""
    if outcome not in OUTCOMES:
        raise MldeckError(
            f"{outcome!r} is not an answer to a retrain prompt: use {', '.join(OUTCOMES)}",
            title="Retrain prompt",
        )
    details: dict[str, Any] = {"proposal_id": proposal_id, "outcome": outcome}
    if snooze_s is not None:
        details["snooze_s"] = snooze_s
    entry_id = append_entry(
        catalog, actor=actor, action=f"retrain_prompt_{outcome}", reason=reason, details=details
    )
    return {"entry_id": entry_id, "proposal_id": proposal_id, "outcome": outcome}
