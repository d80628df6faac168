"""Lineage and reproduction: `mldeck explain`, `lineage` and `reproduce`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from app import output
from app.context import default_actor, engine_client, json_option
from app.report import Section, out_option, print_sections, write_report

if TYPE_CHECKING:
    from engine.api import AuditEntry, ExplainAnswer, VersionRecord

SHOWN_ROWS = 20
"""Rows of a batch request shown in the terminal (files and --json get all)."""


def _short(digest: Any) -> str:
    return digest[:12] if isinstance(digest, str) and len(digest) == 64 else _plain(digest)


def _plain(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(", ", ": "), default=str)
    return str(value)


def _versions(entry: AuditEntry) -> str:
    before, after = entry.get("from_version"), entry.get("to_version")
    if before is None and after is None:
        return ""
    if before is None:
        return f"v{after}"
    return f"v{before} -> {'v' + str(after) if after is not None else 'none'}"


def history_rows(entries: list[AuditEntry]) -> list[list[Any]]:
    return [
        [
            e["entry_id"],
            output.fmt_time(e["recorded_at"]),
            e["actor"],
            e["action"] + (f" ({e['alias']})" if e.get("alias") else ""),
            _versions(e),
            e.get("reason") or "",
        ]
        for e in entries
    ]


HISTORY_COLUMNS = ["entry", "recorded (UTC)", "actor", "action", "versions", "reason"]


def _device(record: VersionRecord) -> str:
    """The device, and for an MLP how it was chosen (`auto -> cuda: 1M rows x ...`)."""
    choice = record["params"].get("device_choice")
    return f"{record['device']} ({choice})" if isinstance(choice, str) else record["device"]


def version_sections(record: VersionRecord) -> list[Section]:
    """A model version's lineage as report sections (shared by explain and lineage)."""
    v = record["version"]
    status = record["status"] + (f" ({', '.join(record['aliases'])})" if record["aliases"] else "")
    model = Section(
        f"Model version v{v}",
        [
            ("name / kind", f"{record['name']} / {record['kind']}"),
            ("task / target", f"{record['task']} / {record['target']}"),
            ("status", status),
            ("registered (UTC)", output.fmt_time(record["created_at"])),
            ("params", _plain(record["params"])),
            ("seed", record["seed"]),
            ("device", _device(record)),
            ("ONNX model", record["onnx_hash"]),
            ("native model", record["native_hash"]),
            ("ONNX parity", f"max |Δ| {record['parity_max_abs_diff']:.2e}"),
            ("gates", "passed" if record["promotable"] else "failed"),
            (
                "holdout metrics",
                ", ".join(
                    f"{output.metric_label(k)} {output.fmt_metric(m)}"
                    for k, m in record["metrics"].items()
                ),
            ),
        ],
    )
    dataset = record["dataset"] or {}
    run = record["training_run"] or {}
    data = Section(
        "Training data",
        [
            ("dataset", f"{dataset.get('dataset_id')} ({dataset.get('dataset_hash')})"),
            (
                "rows",
                f"{dataset.get('row_count')} = {dataset.get('train_rows')} train"
                f" + {dataset.get('holdout_rows')} holdout",
            ),
            ("split", _plain(dataset.get("split"))),
            (
                "trained (UTC)",
                f"{output.fmt_time(run.get('started_at'))}, {run.get('duration_s') or 0:.1f} s"
                f" (training run {run.get('training_run_id')})",
            ),
        ],
        ["batch", "file", "rows", "snapshot", "source sha256", "ingested (UTC)"],
        [
            [
                s.get("batch_id"),
                s.get("source_path") or s.get("source_name"),
                s.get("row_count"),
                _short(s.get("snapshot_hash")),
                _short(s.get("content_hash")),
                output.fmt_time(s.get("ingested_at")),
            ]
            for s in record["snapshots"]
        ],
        "no snapshots recorded",
    )
    spec = record["feature_definition"]["spec"] or {}
    features = Section(
        "Feature definition",
        [
            ("hash", record["feature_definition"]["hash"]),
            ("numeric", ", ".join(spec.get("numeric", []))),
            ("categorical", ", ".join(spec.get("categorical", []))),
            (
                "input names",
                "; ".join(f"{c} -> {n}" for c, n in spec.get("input_names", {}).items())
                or "the column names",
            ),
            (
                "processing",
                f"impute {spec.get('numeric_impute')}, scale {spec.get('numeric_scale')}, "
                f"{spec.get('categorical_encoding')} (unknown: {spec.get('unknown_category')})",
            ),
        ],
    )
    prov = record["provenance"]
    if not prov["recorded"]:
        commit = "not recorded"
    elif prov["git_commit"] is None:
        commit = "not a git repository"
    else:
        commit = prov["git_commit"] + (" (uncommitted changes)" if prov["git_dirty"] else "")
    code = Section(
        "Code, config and libraries",
        [
            ("mldeck", prov["mldeck_version"]),
            ("git commit", commit),
            ("config (mldeck.toml)", prov["config_hash"]),
            *sorted(record["library_versions"].items()),
        ],
    )
    history = Section(
        "Registry history",
        [],
        HISTORY_COLUMNS,
        history_rows(record["history"]),
        "never promoted, rolled back or reproduced",
    )
    return [model, data, features, code, history]


def prediction_sections(found: ExplainAnswer, max_rows: int | None) -> list[Section]:
    promoted = found["promoted_by"]
    if promoted is None:
        how = "not promoted to champion before this was served (a /versions/N or shadow request)"
    else:
        how = (
            f"{promoted['action']} by {promoted['actor']} at {output.fmt_time(promoted['recorded_at'])}"
            f" UTC (audit entry {promoted['entry_id']}): {promoted['reason'] or '—'}"
        )
    rows = found["rows"] if max_rows is None else found["rows"][:max_rows]
    prediction = Section(
        f"Prediction {found['prediction_id']}",
        [
            ("served (UTC)", found["served_at"]),
            ("endpoint", found["endpoint"]),
            ("answered by", f"v{found['model_version']}"),
            (
                "champion then",
                "—"
                if found["champion_at_the_time"] is None
                else f"v{found['champion_at_the_time']}",
            ),
            ("promoted", how),
            ("latency", f"{found['latency_ms']:.2f} ms for the request"),
            *(
                [
                    (
                        "shadow",
                        f"also scored by v{found['shadow'][0]['model_version']} (not returned)",
                    )
                ]
                if found["shadow"]
                else []
            ),
        ],
        ["row", "inputs", "output"],
        [[r["row"], _plain(r["inputs"]), _plain(r["output"])] for r in rows],
    )
    if len(rows) < len(found["rows"]):
        prediction.fields.append(
            ("rows", f"{len(found['rows'])} (first {len(rows)} shown; --json or --out for all)")
        )
    return [prediction, *version_sections(found["model"])]


@click.command()
@click.argument("prediction_id")
@json_option
@out_option
@click.pass_context
def explain(ctx: click.Context, prediction_id: str, as_json: bool, out: Path | None) -> None:
    """Everything behind one served prediction.

    PREDICTION_ID is the request id a server answered with (x-request-id, or
    the OIP response's id); REQUEST_ID/ROW names one row of a batch request.
    Shows the version that answered, when, the inputs and output, that
    version's training snapshots, feature definition, params, seed, device,
    library and code versions, and who promoted it, when and why.
    """
    found = engine_client(ctx, read_only=True).explain(prediction_id)
    title = f"mldeck explain {prediction_id}"
    if out is not None:
        write_report(out, title, prediction_sections(found, None))
    if as_json:
        output.print_json(found)
        return
    print_sections(title, prediction_sections(found, SHOWN_ROWS))
    if out is not None:
        output.stdout.print(f"\nWrote {out}")


@click.command()
@click.argument("version", type=int)
@json_option
@out_option
@click.pass_context
def lineage(ctx: click.Context, version: int, as_json: bool, out: Path | None) -> None:
    """A model version's lineage, history and served predictions by day.

    The snapshots it was trained on (hashes, files, rows), feature definition,
    params, seed, device, library and code versions, every promotion,
    rollback and reproduction that touched it, and its logged predictions
    counted by day. Works for archived and superseded versions.
    """
    record = engine_client(ctx, read_only=True).lineage(version)
    days = record["predictions_by_day"]
    sections = [
        *version_sections(record),
        Section(
            "Predictions served, by day (UTC)",
            [
                (
                    "total",
                    f"{sum(d['served'] for d in days)} served, {sum(d['shadow'] for d in days)} in shadow",
                )
            ],
            ["day", "served", "shadow"],
            [[d["day"], d["served"], d["shadow"]] for d in days],
            "none logged",
        ),
    ]
    title = f"mldeck lineage v{version}"
    if out is not None:
        write_report(out, title, sections)
    if as_json:
        output.print_json(record)
        return
    print_sections(title, sections)
    if out is not None:
        output.stdout.print(f"\nWrote {out}")


VERDICT_STYLE = {"identical": "bold green", "equivalent": "green", "different": "bold red"}


@click.command()
@click.argument("version", type=int)
@click.option(
    "--actor",
    default=default_actor,
    show_default="$MLDECK_ACTOR or your user name",
    help="Who runs the check (audit log).",
)
@json_option
@click.pass_context
def reproduce(ctx: click.Context, version: int, actor: str, as_json: bool) -> None:
    """Retrain VERSION from its recorded inputs and compare with the registered model.

    Reads the exact snapshots (hash-verified) and the config as it was,
    retrains with the recorded seed and device, and compares the ONNX bytes'
    hash, the outputs on the recorded holdout and the metrics: identical,
    equivalent (within 1e-6) or different, with the reasons. The rebuilt
    model is not registered; the check is recorded in the audit log.
    Exit code 0 when identical or equivalent, 1 when different.
    """
    from rich.markup import escape

    from engine.api import TOLERANCE

    client = engine_client(ctx)
    with output.stderr.status(f"retraining v{version} from its recorded inputs"):
        result = client.reproduce(version, actor=actor)
    if as_json:
        output.print_json(result)
    else:
        style = VERDICT_STYLE[result["verdict"]]
        output.stdout.print(f"v{version}: [{style}]{result['verdict']}[/]")
        if result["max_abs_diff"] is not None:
            output.stdout.print(
                f"  outputs on {result['holdout_rows']} holdout rows: max |Δ| {result['max_abs_diff']:.3g}"
                f" (tolerance {TOLERANCE:g})"
            )
        if result["rebuilt_onnx_hash"] is not None:
            same = result["rebuilt_onnx_hash"] == result["recorded_onnx_hash"]
            output.stdout.print(
                f"  ONNX bytes: recorded {_short(result['recorded_onnx_hash'])}, rebuilt "
                f"{_short(result['rebuilt_onnx_hash'])} ({'same' if same else 'differ'})"
            )
        if result["metrics"]:
            output.stdout.print(
                output.table(
                    None,
                    ["metric", "recorded", "rebuilt", "|Δ|"],
                    [
                        [
                            name,
                            output.fmt_metric(m["recorded"], 6),
                            output.fmt_metric(m["rebuilt"], 6),
                            "—" if m["diff"] is None else f"{m['diff']:.2g}",
                        ]
                        for name, m in result["metrics"].items()
                    ],
                )
            )
        for reason in result["reasons"]:
            output.stdout.print(f"  [red]why[/]: {escape(reason)}")
        for note in result["notes"]:
            output.stdout.print(f"  note: {escape(note)}")
        output.stdout.print(
            f"Nothing was registered (the rebuilt model was discarded); "
            f"recorded as audit entry {result['audit_entry_id']}."
        )
    if result["verdict"] == "different":
        sys.exit(1)
