"""Stage 9, retrain: triggers, the policy that decides what a trigger does, and the retrain job.

A trigger (a schedule, a monitoring alert, enough new labels, a person) calls
`propose`; `due_triggers` says which automatic ones are due. The policy in `[retrain]` of mldeck.toml decides:

- `prompt`: a pending proposal is stored with its evidence, for a person to
  accept (`mldeck retrain --accept ID`) or dismiss;
- `auto`: the retrain job runs now;
- `off`: a log line, nothing else.

The retrain job trains every candidate on the recorded snapshots (the same
dataset a `mldeck train` would build, identified by its hash, so it can be
reproduced), and promotes the best new version only if it passed its gates and
beats the champion on the same holdout. Each step is an audit log entry.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

from engine.core.answers import (
    DecideAnswer,
    Proposal,
    ProposalStatus,
    ProposalTrigger,
    ProposeAnswer,
    RetrainAnswer,
    SnoozeAnswer,
)
from engine.core.errors import MldeckError, NotFoundError, RegistryError
from engine.core.events import EventSink, RetrainProposed, ignore_events
from engine.core.jsonable import jsonable
from engine.core.project import Project
from engine.records.registry import CHALLENGER, CHAMPION, alias_version
from storage.audit import append_entry
from storage.catalog import utcnow
from storage.sql import quote_literal

if TYPE_CHECKING:
    from engine.models.base import Trainer

log = logging.getLogger(__name__)

TRIGGERS = ("schedule", "alert", "labels", "person")


def propose(
    project: Project,
    trigger: ProposalTrigger,
    evidence: dict[str, Any],
    on_event: EventSink = ignore_events,
    actor: str = "mldeck",
    trainer: Trainer | None = None,
) -> ProposeAnswer:
    """Apply the retrain policy to a trigger.

    Args:
        trigger: what fired: schedule | alert | labels | person.
        evidence: why, as JSON-ready data (shown with the proposal).
        trainer: see `engine.pipeline.training_run.train`.

    Returns:
        What happened: `{"policy", "trigger", "action": "proposed" | "pending" |
        "retrained" | "ignored", ...}`.
    """
    policy = project.config.retrain.policy
    if policy == "off":
        log.info("retrain trigger %s ignored (policy off): %s", trigger, evidence)
        return {"policy": policy, "trigger": trigger, "action": "ignored"}
    if policy == "auto":
        result = run_retrain(
            project,
            actor=actor,
            reason=f"{trigger} trigger (policy auto)",
            trigger=trigger,
            evidence=evidence,
            on_event=on_event,
            trainer=trainer,
        )
        return {"policy": policy, "trigger": trigger, "action": "retrained", "retrain": result}
    catalog = project.catalog
    pending = catalog.scalar(
        "SELECT proposal_id FROM retrain_proposals WHERE status = 'pending' AND trigger = ?"
        " ORDER BY proposal_id LIMIT 1",
        [trigger],
    )
    if pending is not None:  # one open proposal per trigger: a person decides once
        return {
            "policy": policy,
            "trigger": trigger,
            "action": "pending",
            "proposal_id": int(pending),
        }
    proposal_id = int(
        catalog.scalar(
            "INSERT INTO retrain_proposals (created_at, trigger, evidence_json, status)"
            " VALUES (?, ?, ?, 'pending') RETURNING proposal_id",
            [utcnow(), trigger, json.dumps(jsonable(evidence), sort_keys=True)],
        )
    )
    on_event(RetrainProposed(proposal_id, trigger, _summary(evidence)))
    return {"policy": policy, "trigger": trigger, "action": "proposed", "proposal_id": proposal_id}


def run_retrain(
    project: Project,
    *,
    actor: str,
    reason: str,
    trigger: ProposalTrigger = "person",
    evidence: dict[str, Any] | None = None,
    on_event: EventSink = ignore_events,
    trainer: Trainer | None = None,
) -> RetrainAnswer:
    """Train on the recorded snapshots. The best new version that passes its gates and beats
    the champion on the same holdout becomes the challenger; under the `auto` policy it is
    promoted.

    Returns:
        `{"trigger", "reason", "dataset_id", "versions", "champion_before",
        "champion", "challenger", "promoted", "train"}`; `promoted` is None unless a version
        was promoted.
    """
    from engine.pipeline.training_run import train, train_result_dict

    if not reason.strip():
        raise RegistryError("a reason is required: it goes to the audit log")
    catalog = project.catalog
    before = alias_version(catalog, CHAMPION)
    details = {"trigger": trigger, "evidence": jsonable(evidence or {})}
    append_entry(catalog, actor=actor, action="retrain_started", reason=reason, details=details)
    auto = project.config.retrain.policy == "auto"
    try:
        result = train(
            project,
            events=on_event,
            actor=actor,
            trainer=trainer,
            promote_challenger=f"retrain ({reason})" if auto else None,
        )
    except MldeckError as exc:
        append_entry(
            catalog,
            actor=actor,
            action="retrain_failed",
            reason=reason,
            details={**details, "error": exc.msg},
        )
        raise
    promoted = None
    # Under `auto` the engine promotes; otherwise the new best is the challenger and a
    # person promotes it (mldeck promote, or `p` in the UI).
    if result.challenger is not None and auto:  # promoted with its registration
        promoted = result.challenger
    elif result.champion != before:  # the project's first champion, promoted by train
        promoted = result.champion
    versions = [o.version for o in result.outcomes if o.version is not None]
    champion = alias_version(catalog, CHAMPION)
    append_entry(
        catalog,
        actor=actor,
        action="retrain_finished",
        reason=reason,
        alias=CHAMPION,
        from_version=before,
        to_version=champion,
        details={"dataset_id": result.dataset_id, "versions": versions, "promoted": promoted},
    )
    return {
        "trigger": trigger,
        "reason": reason,
        "dataset_id": result.dataset_id,
        "versions": versions,
        "champion_before": before,
        "champion": champion,
        "challenger": alias_version(catalog, CHALLENGER),
        "promoted": promoted,
        "train": train_result_dict(result),
    }


def list_proposals(project: Project, status: ProposalStatus | None = None) -> list[Proposal]:
    """Retrain proposals, newest first (only `status` ones when given)."""
    where_sql, params = ("WHERE status = ?", [status]) if status else ("", [])
    rows = project.catalog.rows(
        "SELECT proposal_id, created_at, trigger, evidence_json, status, decided_at, decided_by,"
        f" decision_reason FROM retrain_proposals {where_sql} ORDER BY proposal_id DESC",
        params,
    )
    for row in rows:
        row["evidence"] = json.loads(row.pop("evidence_json"))
    result: list[Proposal] = jsonable(rows)
    return result


def decide(
    project: Project,
    proposal_id: int,
    *,
    accept: bool,
    actor: str,
    reason: str,
    on_event: EventSink = ignore_events,
    trainer: Trainer | None = None,
    resumed: bool = False,
) -> DecideAnswer:
    """Accept (and run the retrain) or dismiss a pending proposal; audit-logged.

    Args:
        resumed: this decision was started by an engine that stopped before it
            finished (the jobs journal): if it was recorded already, only the
            accepted proposal's retrain runs (again).

    Returns:
        `{"proposal_id", "status", "retrain"}`; `retrain` is `run_retrain`'s
        answer for an accepted proposal, None for a dismissed one.
    """
    if not reason.strip():
        raise RegistryError("a reason is required: it goes to the audit log")
    catalog = project.catalog
    row = catalog.row(
        "SELECT trigger, status, evidence_json FROM retrain_proposals WHERE proposal_id = ?",
        [proposal_id],
    )
    if row is None:
        raise NotFoundError(f"no retrain proposal {proposal_id} (mldeck retrain --list)")
    status: ProposalStatus = "accepted" if accept else "dismissed"
    recorded = resumed and row["status"] == status
    if row["status"] != "pending" and not recorded:
        raise RegistryError(f"retrain proposal {proposal_id} is already {row['status']}")
    if not recorded:
        with catalog.transaction():
            catalog.execute(
                "UPDATE retrain_proposals SET status = ?, decided_at = ?, decided_by = ?,"
                " decision_reason = ? WHERE proposal_id = ?",
                [status, utcnow(), actor, reason, proposal_id],
            )
            append_entry(
                catalog,
                actor=actor,
                action=f"retrain_{status}",
                reason=reason,
                details={"proposal_id": proposal_id, "trigger": row["trigger"]},
            )
    retrain = None
    if accept:
        retrain = run_retrain(
            project,
            actor=actor,
            reason=f"proposal {proposal_id} accepted: {reason}",
            trigger=row["trigger"],  # a ProposalTrigger, as stored
            evidence=json.loads(row["evidence_json"]),
            on_event=on_event,
            trainer=trainer,
        )
    return {"proposal_id": proposal_id, "status": status, "retrain": retrain}


def snooze(project: Project, proposal_id: int, *, actor: str, reason: str) -> SnoozeAnswer:
    """A person put a pending proposal off: it stays pending; the answer is audit-logged."""
    if not reason.strip():
        raise RegistryError("a reason is required: it goes to the audit log")
    catalog = project.catalog
    row = catalog.row(
        "SELECT trigger, status FROM retrain_proposals WHERE proposal_id = ?", [proposal_id]
    )
    if row is None:
        raise NotFoundError(f"no retrain proposal {proposal_id} (mldeck retrain --list)")
    if row["status"] != "pending":
        raise RegistryError(f"retrain proposal {proposal_id} is already {row['status']}")
    append_entry(
        catalog,
        actor=actor,
        action="retrain_snoozed",
        reason=reason,
        details={"proposal_id": proposal_id, "trigger": row["trigger"]},
    )
    return {"proposal_id": proposal_id, "status": "pending", "snoozed": True}


def schedule_due(
    project: Project, now: datetime, last_fired: datetime | None = None
) -> dict[str, Any] | None:
    """The schedule trigger's evidence when `[retrain] every` has passed, else None.

    Due once the latest of (the last registered version, the last schedule
    proposal, `last_fired`) is older than `every`.
    """
    every = project.config.retrain.every
    if every is None:
        return None
    from engine.core.spans import parse_span

    since = _since(project, "schedule", last_fired)
    if since is None:
        return None
    last_training = project.catalog.scalar("SELECT max(created_at) FROM model_versions")
    due_at = since + parse_span(every)
    if now < due_at:
        return None
    evidence: dict[str, Any] = jsonable(
        {"every": every, "last_training": last_training, "due_at": due_at}
    )
    return evidence


RETRAIN_ALERT_RULES = ("drift", "performance_min", "performance_max", "performance_drop")
"""Alerts a retrain can answer (serving errors and latency are not the model's data)."""


def _since(project: Project, trigger: str, last_fired: datetime | None) -> datetime | None:
    """The latest of: the last registered version, the last proposal for this trigger,
    `last_fired`. None before the first training (there is nothing to retrain yet)."""
    catalog = project.catalog
    last_training = catalog.scalar("SELECT max(created_at) FROM model_versions")
    if last_training is None:
        return None
    last_proposal = catalog.scalar(
        "SELECT max(created_at) FROM retrain_proposals WHERE trigger = ?", [trigger]
    )
    return max(t for t in (last_training, last_proposal, last_fired) if t is not None)


def alert_due(project: Project, last_fired: datetime | None = None) -> dict[str, Any] | None:
    """The alert trigger's evidence: alerts a retrain can answer, raised since the last
    training (and since the last alert proposal), else None."""
    since = _since(project, "alert", last_fired)
    if since is None:
        return None
    rules = ", ".join(quote_literal(r) for r in RETRAIN_ALERT_RULES)
    alerts = project.catalog.rows(
        "SELECT alert_id, raised_at, rule, model_version, window_ref, message FROM alerts"
        f" WHERE severity = 'alert' AND rule IN ({rules}) AND raised_at > ? ORDER BY alert_id",
        [since],
    )
    if not alerts:
        return None
    evidence: dict[str, Any] = jsonable({"alerts": alerts})
    return evidence


def labels_due(project: Project, last_fired: datetime | None = None) -> dict[str, Any] | None:
    """The new-labels trigger's evidence once `[retrain] min_new_labels` labelled rows
    arrived since the last training (and the last labels proposal), else None."""
    needed = project.config.retrain.min_new_labels
    if needed is None:
        return None
    since = _since(project, "labels", last_fired)
    if since is None:
        return None
    count = int(
        project.catalog.scalar("SELECT count(*) FROM labels WHERE received_at > ?", [since])
    )
    if count < needed:
        return None
    evidence: dict[str, Any] = jsonable(
        {"new_labels": count, "min_new_labels": needed, "since": since}
    )
    return evidence


def due_triggers(
    project: Project, now: datetime, last_fired: dict[str, datetime]
) -> list[tuple[ProposalTrigger, dict[str, Any]]]:
    """The automatic triggers due now, as (trigger, evidence); `last_fired` holds when this
    process last fired each one (the `off` policy stores nothing to remember it by)."""
    due: list[tuple[ProposalTrigger, dict[str, Any]]] = []
    checks: tuple[tuple[ProposalTrigger, dict[str, Any] | None], ...] = (
        ("schedule", schedule_due(project, now, last_fired.get("schedule"))),
        ("alert", alert_due(project, last_fired.get("alert"))),
        ("labels", labels_due(project, last_fired.get("labels"))),
    )
    for trigger, evidence in checks:
        if evidence is not None:
            due.append((trigger, evidence))
    return due


def _summary(evidence: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in evidence.items())[:200]
