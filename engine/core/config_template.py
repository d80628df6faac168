"""Writing `mldeck.toml`: the file `mldeck init` writes (every default shown, commented) and the
inferred settings written back into it, keeping the user's comments."""

from __future__ import annotations

import json
import os
from pathlib import Path

from engine.core.config import Contract

TEMPLATE = """\
# mldeck project configuration. Only data.target is needed; mldeck infers the
# rest from the first batch and writes what it inferred back into this file.

[project]
name = {name}

[data]
{target_line}
{id_line}
# task = "classification"        # or "regression"; inferred from the target if absent
# ignore = []                    # columns that are not features (dates are ignored by default)
incoming = "data/incoming"
labels = "data/labels"

[split]
holdout_fraction = 0.2           # rows go to the holdout by a hash of their id: stable as data grows
seed = 42

[training]
seed = 42
# recent_batches = 6             # train on the newest 6 labelled batches only (default 0: all of them)
# Each table under [models] is a candidate: kind = linear | random_forest |
# gradient_boosting | mlp, plus the estimator's parameters. Without any, all
# four kinds are trained with sensible defaults.
# [models.forest]
# kind = "random_forest"
# n_estimators = 200

[evaluation]
# primary_metric = "roc_auc"     # classification: accuracy | f1 | roc_auc | log_loss; regression: rmse | mae | r2
# max_drop = 0.01                # the largest worsening of the primary metric allowed vs the champion
# [evaluation.min]               # floors, e.g. roc_auc = 0.7 (for rmse/mae/log_loss use [evaluation.max])

[validation]
max_null_fraction = 0.05         # default for columns that had no nulls in the first batch

[serving]
host = "127.0.0.1"
port = 8765
# auth = "auto"                  # auto: the token for inference and /metrics only beyond loopback | token | none
# max_body_mb = 10               # per request (413 beyond)
# max_rows = 100000              # rows per scoring request (413 beyond)
# max_columns = 1000             # distinct columns/keys per request (400 beyond)
# max_depth = 32                 # JSON nesting (400 beyond)
# max_id_length = 128            # a client's request id (400 beyond)
# header_timeout_s = 10          # slow clients: headers, then the whole body (408)
# body_timeout_s = 30

[drift]
# psi_warn = 0.1                 # PSI (numbers): warn / alert levels
# psi_alert = 0.2
# p_value = 0.05                 # KS and chi-square: significant below this p-value ...
# ks_min_statistic = 0.1         # ... and only an alert with KS D at least this
# cramers_v_min = 0.1            # ... or a chi-square effect size (Cramér's V) at least this
# js_alert = 0.1                 # Jensen-Shannon distance (categories)
# dataset_share = 0.25           # the dataset drifts when this share of features is in alert
# [drift.features.age]           # per-feature overrides of any threshold above
# psi_alert = 0.3

[alerts]
# drifted_features = 3           # alert when this many features drift (default: the dataset verdict)
# prediction_drift = true        # alert when the model's output drifts
# min_labelled = 100             # live performance is judged from this many labelled rows
# max_error_rate = 0.05          # serving: share of scoring requests that failed
# max_p99_latency_ms = 250       # serving: p99 scoring latency
# [alerts.min]                   # live performance floors, e.g. accuracy = 0.9
# [alerts.max]                   # ceilings for rmse / mae / log_loss
# [alerts.max_drop]              # the largest drop from the holdout figure, e.g. roc_auc = 0.05

[retrain]
policy = "prompt"                # prompt: store a proposal for a person | auto: retrain, promote through the gates | off
# every = "7d"                   # propose a retrain when the last training is this old

[watch]                          # `mldeck daemon` watches data.incoming and data.labels
polling = false                  # true on network file systems (no close events): wait for quiet files
quiet_seconds = 2.0              # polling: a file is taken once its size stopped changing this long
follow_symlinks = false          # true: take links in the watched folders that point outside the project
"""


def toml_string(value: str) -> str:
    """`value` as a TOML basic string (JSON's escapes are TOML's, but for DEL)."""
    return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")


def render_template(name: str, target: str | None, id_column: str | None) -> str:
    target_line = (
        f"target = {toml_string(target)}"
        if target
        else '# target = "..."                # the column to predict; inferred from the first batch if absent'
    )
    id_line = (
        f"id = {toml_string(id_column)}"
        if id_column
        else '# id = "..."                    # a unique row id; inferred if a column looks like one'
    )
    return TEMPLATE.format(name=toml_string(name), target_line=target_line, id_line=id_line)


def write_inferred(
    path: Path,
    *,
    target: str | None = None,
    id_column: str | None = None,
    task: str | None = None,
    ignore: tuple[str, ...] | None = None,
    contract: Contract | None = None,
) -> None:
    """Write inferred settings into mldeck.toml, keeping comments; atomic rename."""
    import tomlkit

    doc = tomlkit.parse(path.read_text(encoding="utf-8"))
    data = doc.setdefault("data", tomlkit.table())
    for key, value in (("target", target), ("id", id_column), ("task", task)):
        if value is not None:
            data[key] = value
    if ignore is not None:
        data["ignore"] = list(ignore)
    if contract is not None:
        table = tomlkit.table()
        table.add(tomlkit.comment("The data contract: inferred from the first batch; edit freely."))
        if contract.inferred_from:
            table["inferred_from"] = contract.inferred_from
        columns = tomlkit.table()
        for col in contract.columns.values():
            entry = tomlkit.inline_table()
            entry["type"] = col.type
            if col.max_null_fraction is not None:
                entry["max_null_fraction"] = col.max_null_fraction
            for bound in ("min", "max"):
                value = getattr(col, bound)
                if value is not None:
                    entry[bound] = int(value) if col.type == "integer" else value
            if col.categories is not None:
                entry["categories"] = list(col.categories)
            columns[col.name] = entry
        table["columns"] = columns
        doc["contract"] = table
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_text(tomlkit.dumps(doc), encoding="utf-8")
    os.replace(temp, path)
