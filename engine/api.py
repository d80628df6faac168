"""The one surface app/ imports: the client protocol and its two clients, the engine
service, the typed answers, events and errors, and the few constants and helpers the CLI
and UI use.

Names load on first use (PEP 562), so `mldeck --help` and the UI's first paint import only what
they touch; under type checking they are ordinary imports. A name app/ needs is one row of
`_WHERE` (tests/test_import_cycles.py checks the rows against the imports above).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.core.answers import (
        AuditEntry,
        AuditVerifyAnswer,
        DriftAnswer,
        DriftHistoryWindow,
        ExplainAnswer,
        IngestAnswer,
        LineageAnswer,
        PerformanceWindow,
        Proposal,
        ProposeAnswer,
        RetrainAnswer,
        ServingStatsAnswer,
        StatusAnswer,
        TrainAnswer,
        VersionRecord,
        VersionRow,
    )
    from engine.core.config_parse import load_config
    from engine.core.errors import MldeckError
    from engine.core.events import (
        Event,
        JobFinished,
        Progress,
        RetrainProposed,
        StageFinished,
        StageStarted,
    )
    from engine.core.formatting import fmt_num
    from engine.core.owner import check_token_file, claim, project_token, read_owner, release
    from engine.core.project import (
        CONFIG_NAME,
        STATE_DIR,
        Project,
        find_root,
        init_project,
        open_project,
    )
    from engine.monitoring.alerts import OPEN
    from engine.pipeline.reproduce import TOLERANCE
    from engine.records.crash_recovery import recover_on_open
    from engine.records.registry import CHALLENGER, alias_version
    from engine.records.stage_runs import mark_interrupted
    from engine.service.client import LocalEngine, RemoteEngine, remote_engine
    from engine.service.demo import (
        QuarterFeed,
        Week,
        create_demo_project,
        drop_reference,
        play_weeks,
        train_reference,
    )
    from engine.service.engine_service import EngineService
    from engine.service.operations import EngineClient
    from engine.serving.access import Access, is_loopback_address
    from engine.serving.server import serve_app

_WHERE: dict[str, str] = {
    "Access": "engine.serving.access",
    "AuditEntry": "engine.core.answers",
    "AuditVerifyAnswer": "engine.core.answers",
    "CHALLENGER": "engine.records.registry",
    "CONFIG_NAME": "engine.core.project",
    "DriftAnswer": "engine.core.answers",
    "DriftHistoryWindow": "engine.core.answers",
    "EngineClient": "engine.service.operations",
    "EngineService": "engine.service.engine_service",
    "Event": "engine.core.events",
    "ExplainAnswer": "engine.core.answers",
    "IngestAnswer": "engine.core.answers",
    "JobFinished": "engine.core.events",
    "LineageAnswer": "engine.core.answers",
    "LocalEngine": "engine.service.client",
    "MldeckError": "engine.core.errors",
    "OPEN": "engine.monitoring.alerts",
    "PerformanceWindow": "engine.core.answers",
    "Progress": "engine.core.events",
    "Project": "engine.core.project",
    "Proposal": "engine.core.answers",
    "ProposeAnswer": "engine.core.answers",
    "QuarterFeed": "engine.service.demo",
    "RemoteEngine": "engine.service.client",
    "RetrainAnswer": "engine.core.answers",
    "RetrainProposed": "engine.core.events",
    "STATE_DIR": "engine.core.project",
    "ServingStatsAnswer": "engine.core.answers",
    "StageFinished": "engine.core.events",
    "StageStarted": "engine.core.events",
    "StatusAnswer": "engine.core.answers",
    "TOLERANCE": "engine.pipeline.reproduce",
    "TrainAnswer": "engine.core.answers",
    "VersionRecord": "engine.core.answers",
    "VersionRow": "engine.core.answers",
    "Week": "engine.service.demo",
    "alias_version": "engine.records.registry",
    "check_token_file": "engine.core.owner",
    "claim": "engine.core.owner",
    "create_demo_project": "engine.service.demo",
    "drop_reference": "engine.service.demo",
    "find_root": "engine.core.project",
    "fmt_num": "engine.core.formatting",
    "init_project": "engine.core.project",
    "is_loopback_address": "engine.serving.access",
    "load_config": "engine.core.config_parse",
    "mark_interrupted": "engine.records.stage_runs",
    "open_project": "engine.core.project",
    "play_weeks": "engine.service.demo",
    "project_token": "engine.core.owner",
    "read_owner": "engine.core.owner",
    "recover_on_open": "engine.records.crash_recovery",
    "release": "engine.core.owner",
    "remote_engine": "engine.service.client",
    "serve_app": "engine.serving.server",
    "train_reference": "engine.service.demo",
}
"""Each name app/ may use, and the module that defines it."""

__all__ = [
    "Access",
    "AuditEntry",
    "AuditVerifyAnswer",
    "CHALLENGER",
    "CONFIG_NAME",
    "DriftAnswer",
    "DriftHistoryWindow",
    "EngineClient",
    "EngineService",
    "Event",
    "ExplainAnswer",
    "IngestAnswer",
    "JobFinished",
    "LineageAnswer",
    "LocalEngine",
    "MldeckError",
    "OPEN",
    "PerformanceWindow",
    "Progress",
    "Project",
    "Proposal",
    "ProposeAnswer",
    "QuarterFeed",
    "RemoteEngine",
    "RetrainAnswer",
    "RetrainProposed",
    "STATE_DIR",
    "ServingStatsAnswer",
    "StageFinished",
    "StageStarted",
    "StatusAnswer",
    "TOLERANCE",
    "TrainAnswer",
    "VersionRecord",
    "VersionRow",
    "Week",
    "alias_version",
    "check_token_file",
    "claim",
    "create_demo_project",
    "drop_reference",
    "find_root",
    "fmt_num",
    "init_project",
    "is_loopback_address",
    "load_config",
    "mark_interrupted",
    "open_project",
    "play_weeks",
    "project_token",
    "read_owner",
    "recover_on_open",
    "release",
    "remote_engine",
    "serve_app",
    "train_reference",
]


def __getattr__(name: str) -> Any:
    try:
        module = _WHERE[name]
    except KeyError:
        raise AttributeError(f"module 'engine.api' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
