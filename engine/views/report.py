"""``mldeck report``: one self-contained HTML file a person can open anywhere.

Inline CSS and inline SVG charts drawn here (no scripts, no fonts, no links to
fetch): the latest drift window's table, reference vs current histograms per
feature (the reference's PSI bins for numbers, categories for the others, both
as shares), the drift scores of every batch window over time, live
performance per window against the holdout figures, and the alerts. Everything
comes from what the catalog stores (profiles, window summaries, performance
windows); no data is reread.
"""

from __future__ import annotations

import html
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from engine.core.errors import MldeckError
from engine.core.formatting import fmt_num
from engine.core.project import Project
from storage.catalog import utcnow

PALETTE = (
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd",
)  # fmt: skip
REFERENCE_COLOR, CURRENT_COLOR = "#9aa5b1", "#d62728"
STATUS_CLASS = {"ok": "ok", "warn": "warn", "alert": "alert", "no data": "nodata"}

CSS = """
body { font-family: system-ui, -apple-system, Segoe UI, sans-serif; margin: 2rem; color: #1b1f24; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.2rem; margin-top: 2rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.85rem; }
th, td { padding: 0.25rem 0.6rem; border-bottom: 1px solid #eee; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.ok { color: #2ca02c; } .warn { color: #b8860b; font-weight: 600; }
.alert { color: #d62728; font-weight: 700; } .nodata { color: #888; }
.grid { display: flex; flex-wrap: wrap; gap: 1rem; }
.card { border: 1px solid #e3e3e3; border-radius: 6px; padding: 0.5rem; }
.card h3 { font-size: 0.9rem; margin: 0 0 0.3rem 0; }
.muted { color: #666; font-size: 0.85rem; }
svg text { font-size: 10px; fill: #333; }
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


# ------------------------------------------------------------------ SVG charts


def bar_chart(
    labels: Sequence[str],
    reference: Sequence[float],
    current: Sequence[float],
    *,
    width: int = 340,
    height: int = 170,
) -> str:
    """Grouped bars: reference vs current share per bin or category."""
    pad_l, pad_b, pad_t = 34, 38, 8
    n = max(len(labels), 1)
    top = max([*reference, *current, 1e-9])
    plot_w, plot_h = width - pad_l - 4, height - pad_b - pad_t
    slot = plot_w / n
    bar = max(slot * 0.38, 1.0)
    parts = [f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img">']
    for frac in (0.0, 0.5, 1.0):
        y = pad_t + plot_h * (1 - frac)
        parts.append(
            f'<line x1="{pad_l}" y1="{y:.1f}" x2="{width - 4}" y2="{y:.1f}" stroke="#eee"/>'
            f'<text x="{pad_l - 3}" y="{y + 3:.1f}" text-anchor="end">{top * frac:.0%}</text>'
        )
    for i, label in enumerate(labels):
        x0 = pad_l + i * slot + (slot - 2 * bar) / 2
        for j, (value, color) in enumerate(
            ((reference[i], REFERENCE_COLOR), (current[i], CURRENT_COLOR))
        ):
            h = plot_h * value / top
            parts.append(
                f'<rect x="{x0 + j * bar:.1f}" y="{pad_t + plot_h - h:.1f}" width="{bar:.1f}"'
                f' height="{h:.1f}" fill="{color}"><title>{_e(label)}: {value:.1%}</title></rect>'
            )
        if n <= 14:
            cx = pad_l + (i + 0.5) * slot
            parts.append(
                f'<text x="{cx:.1f}" y="{height - pad_b + 10}" text-anchor="end"'
                f' transform="rotate(-35 {cx:.1f} {height - pad_b + 10})">{_e(label[:12])}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


def line_chart(
    x_labels: Sequence[str],
    series: Mapping[str, Sequence[float | None]],
    *,
    reference_lines: dict[str, float] | None = None,
    width: int = 720,
    height: int = 260,
) -> str:
    """Lines over windows (gaps for None), with optional dashed horizontal reference lines."""
    pad_l, pad_r, pad_b, pad_t = 46, 150, 42, 10
    values = [v for s in series.values() for v in s if v is not None and math.isfinite(v)]
    values += list((reference_lines or {}).values())
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5, hi + 0.5
    margin = (hi - lo) * 0.05
    lo, hi = lo - margin, hi + margin
    plot_w, plot_h = width - pad_l - pad_r, height - pad_b - pad_t
    n = max(len(x_labels), 1)

    def x(i: int) -> float:
        return pad_l + (plot_w * (i + 0.5) / n)

    def y(v: float) -> float:
        return pad_t + plot_h * (1 - (v - lo) / (hi - lo))

    parts = [f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img">']
    for k in range(5):
        tick = lo + (hi - lo) * k / 4
        parts.append(
            f'<line x1="{pad_l}" y1="{y(tick):.1f}" x2="{pad_l + plot_w}" y2="{y(tick):.1f}"'
            f' stroke="#eee"/><text x="{pad_l - 4}" y="{y(tick) + 3:.1f}" text-anchor="end">'
            f"{tick:.3g}</text>"
        )
    step = max(1, math.ceil(n / 16))
    for i, label in enumerate(x_labels):
        if i % step == 0:
            parts.append(
                f'<text x="{x(i):.1f}" y="{height - pad_b + 12}" text-anchor="end"'
                f' transform="rotate(-30 {x(i):.1f} {height - pad_b + 12})">{_e(label[:16])}</text>'
            )
    legend_y = pad_t + 4
    for k, (name, level) in enumerate((reference_lines or {}).items()):
        color = PALETTE[k % len(PALETTE)]
        parts.append(
            f'<line x1="{pad_l}" y1="{y(level):.1f}" x2="{pad_l + plot_w}" y2="{y(level):.1f}"'
            f' stroke="{color}" stroke-dasharray="5 4"><title>{_e(name)}: {level:.4g}</title></line>'
        )
    for k, (name, points) in enumerate(series.items()):
        color = PALETTE[k % len(PALETTE)]
        segment: list[str] = []
        segments: list[list[str]] = []
        for i, v in enumerate(points):
            if v is None or not math.isfinite(v):
                if segment:
                    segments.append(segment)
                segment = []
                continue
            segment.append(f"{x(i):.1f},{y(v):.1f}")
            parts.append(
                f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="2.5" fill="{color}">'
                f"<title>{_e(name)} @ {_e(x_labels[i])}: {v:.4g}</title></circle>"
            )
        if segment:
            segments.append(segment)
        for seg in segments:
            parts.append(
                f'<polyline points="{" ".join(seg)}" fill="none" stroke="{color}" stroke-width="1.6"/>'
            )
        ly = legend_y + 13 * k
        parts.append(
            f'<rect x="{pad_l + plot_w + 10}" y="{ly - 7}" width="10" height="3" fill="{color}"/>'
            f'<text x="{pad_l + plot_w + 24}" y="{ly - 3}">{_e(name[:22])}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


# ------------------------------------------------------------------ sections


def _histograms(
    profile: Any, summary: Any
) -> list[tuple[str, list[str], list[float], list[float]]]:
    """(feature, bin labels, reference shares, current shares) for every feature with data."""
    import numpy as np

    from engine.monitoring.drift import (
        CategoricalCounts,
        NumericCounts,
        NumericProfile,
        psi_bin_counts,
    )

    out = []
    for name, ref in profile.columns.items():
        cur = summary.columns.get(name)
        if cur is None or ref.n == 0 or cur.n == 0:
            continue
        if isinstance(ref, NumericProfile) and isinstance(cur, NumericCounts):
            r = ref.bin_counts.astype(np.float64)
            c = psi_bin_counts(ref, cur).astype(np.float64)
            edges = [f"{e:.4g}" for e in ref.edges]
            labels = (
                [f"< {edges[0]}"] + [f"≥ {e}" for e in edges[:-1]] + [f"> {ref.values[-1]:.4g}"]
            )
        elif isinstance(cur, CategoricalCounts):
            labels = [*ref.categories, *(["(other)"] if ref.other or cur.other else [])]
            r = np.asarray([*ref.counts, *([ref.other] if ref.other or cur.other else [])], float)
            c = np.asarray([*cur.counts, *([cur.other] if ref.other or cur.other else [])], float)
            new = sorted(cur.new.items(), key=lambda kv: -kv[1])
            labels += [f"{k} (new)" for k, _ in new]
            r = np.concatenate([r, np.zeros(len(new))])
            c = np.concatenate([c, [v for _, v in new]])
        else:
            continue
        out.append((name, labels, list(r / r.sum()), list(c / max(c.sum(), 1.0))))
    return out


def _drift_table(report: dict[str, Any]) -> str:
    rows = []
    entries = [*report["features"], *([report["prediction"]] if report.get("prediction") else [])]
    for f in entries:
        status = f["status"]
        new = ", ".join(f"{k} ({v})" for k, v in (f.get("new_categories") or {}).items())
        rows.append(
            "<tr>"
            f"<td>{_e(f['feature'])}</td><td>{_e(f['kind'])}</td><td>{_e(f['method'] or '—')}</td>"
            f'<td class="num">{fmt_num(f["score"])}</td><td class="num">{fmt_num(f["p_value"])}</td>'
            f'<td class="num">{fmt_num(f["threshold"])}</td>'
            f'<td class="{STATUS_CLASS.get(status, "")}">{_e(status)}</td><td>{_e(new or "—")}</td>'
            "</tr>"
        )
    head = "".join(
        f"<th>{h}</th>"
        for h in (
            "feature",
            "kind",
            "method",
            "score",
            "p-value",
            "threshold",
            "status",
            "new categories",
        )
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _feature_score(f: dict[str, Any]) -> float | None:
    """The distance score charted over time: PSI for numbers, Jensen-Shannon for categories."""
    method = "psi" if f["kind"] == "numeric" else "jensen_shannon"
    for t in f.get("tests", []):
        if t["method"] == method:
            return t["score"]  # type: ignore[no-any-return]
    return None


def build_report(project: Project) -> str:
    """The report as one HTML document (a string)."""
    from engine.monitoring.alerts import list_alerts
    from engine.monitoring.drift import WindowSummary
    from engine.monitoring.monitor import load_reference_profile
    from engine.monitoring.performance import performance_windows

    catalog = project.catalog
    windows = catalog.rows(
        "SELECT w.window_id, w.model_version, w.source, w.batch_id, w.window_start, w.window_end,"
        " w.row_count, w.summary_json, w.report_json, b.source_name FROM drift_windows w"
        " LEFT JOIN batches b USING (batch_id) ORDER BY w.window_id"
    )
    if not windows:
        raise MldeckError(
            "nothing to report yet: no drift window is stored (mldeck train, then mldeck ingest "
            "new batches, or mldeck drift --source log while serving)",
            title="No drift window",
        )
    batch_windows = [w for w in windows if w["source"] == "batch"] or windows
    latest = batch_windows[-1]
    report = json.loads(latest["report_json"])
    profile = load_reference_profile(project, int(latest["model_version"]))
    summary = WindowSummary.from_json(latest["summary_json"])

    def label(w: dict[str, Any]) -> str:
        if w["batch_id"] is not None:
            return str(w["source_name"] or f"batch {w['batch_id']}")
        return f"log {w['window_end']:%m-%d %H:%M}"

    latest_label = label(latest)
    sections = [
        f"<h1>mldeck drift report: {_e(project.config.name)}</h1>",
        f'<p class="muted">Generated {utcnow():%Y-%m-%d %H:%M} UTC. Latest window: {_e(latest_label)}'
        f" ({latest['row_count']} rows) vs model v{latest['model_version']}'s training reference"
        f" ({report['n_reference']} rows). Dataset: "
        + (
            '<span class="alert">DRIFTED</span>'
            if report["dataset_drift"]
            else '<span class="ok">not drifted</span>'
        )
        + f" ({len(report['drifted'])} features in alert).</p>",
        "<h2>Drift table (latest window)</h2>",
        _drift_table(report),
    ]
    if profile is not None and summary.profile == profile.fingerprint:
        cards = []
        status = {f["feature"]: f["status"] for f in report["features"]}
        for name, labels, ref, cur in _histograms(profile, summary):
            css = STATUS_CLASS.get(status.get(name, ""), "")
            cards.append(
                f'<div class="card"><h3>{_e(name)} <span class="{css}">{_e(status.get(name, ""))}'
                f"</span></h3>{bar_chart(labels, ref, cur)}</div>"
            )
        sections += [
            "<h2>Reference vs current (latest window)</h2>",
            f'<p class="muted"><span style="color:{REFERENCE_COLOR}">■</span> reference '
            f'<span style="color:{CURRENT_COLOR}">■</span> current; shares per PSI bin of the '
            "reference (numbers) or per category.</p>",
            f'<div class="grid">{"".join(cards)}</div>',
        ]
    x_labels = [label(w) for w in batch_windows]
    reports = [json.loads(w["report_json"]) for w in batch_windows]
    names = [f["feature"] for f in reports[-1]["features"]]
    scores: dict[str, list[float | None]] = {n: [] for n in names}
    for r in reports:
        by_name = {f["feature"]: f for f in r["features"]}
        for n in names:
            scores[n].append(_feature_score(by_name[n]) if n in by_name else None)
    drifted = {n for r in reports for n in r["drifted"]}
    shown = {n: s for n, s in scores.items() if n in drifted} or scores
    sections += [
        "<h2>Drift over time</h2>",
        '<p class="muted">PSI (numbers) or Jensen-Shannon distance (categories) per window'
        + (", features that drifted in some window" if drifted else "")
        + "; dashed: the PSI alert level.</p>",
        line_chart(
            x_labels,
            shown,
            reference_lines={"PSI alert": project.config.drift.thresholds.get("psi_alert", 0.2)},
        ),
        line_chart(
            x_labels,
            {"features in alert": [float(len(r["drifted"])) for r in reports]},
            height=180,
        ),
    ]
    perf = performance_windows(project)
    sections.append("<h2>Live performance over time</h2>")
    if perf:
        metric_names: list[str] = [
            m for m in ("accuracy", "roc_auc", "f1", "rmse", "mae") if m in perf[0]["metrics"]
        ]
        series = {m: [w["metrics"].get(m) for w in perf] for m in metric_names}
        holdout = {
            f"{m} (holdout)": value
            for m in metric_names
            if (value := perf[-1]["holdout"].get(m)) is not None
        }
        sections.append(
            line_chart([w["window_ref"] for w in perf], series, reference_lines=holdout)
        )
        rows = "".join(
            f"<tr><td>{_e(w['window_ref'])}</td><td>v{w['model_version']}</td>"
            f'<td class="num">{w["n_labelled"]}</td>'
            + "".join(
                f'<td class="num">{fmt_num(w["metrics"].get(m))} ({fmt_num(w["holdout"].get(m))})</td>'
                for m in metric_names
            )
            + "</tr>"
            for w in perf
        )
        head = "".join(f"<th>{_e(m)} (holdout)</th>" for m in metric_names)
        sections.append(
            f"<table><thead><tr><th>window</th><th>version</th><th>labelled</th>{head}</tr></thead>"
            f"<tbody>{rows}</tbody></table>"
        )
    else:
        sections.append('<p class="muted">No labels yet.</p>')
    alerts = list_alerts(catalog)
    sections.append("<h2>Alerts</h2>")
    if alerts:
        rows = "".join(
            f"<tr><td>{a['alert_id']}</td><td>{a['raised_at']:%Y-%m-%d %H:%M}</td>"
            f'<td class="{STATUS_CLASS.get(a["severity"], "")}">{_e(a["severity"])}</td>'
            f"<td>{_e(a['rule'])}</td><td>{_e(a['model_version'])}</td><td>{_e(a['message'])}</td>"
            f"<td>{_e(a['status'])}</td></tr>"
            for a in alerts
        )
        sections.append(
            "<table><thead><tr><th>id</th><th>raised (UTC)</th><th>severity</th><th>rule</th>"
            f"<th>version</th><th>message</th><th>status</th></tr></thead><tbody>{rows}</tbody></table>"
        )
    else:
        sections.append('<p class="muted">No alerts.</p>')
    body = "\n".join(sections)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>mldeck drift report: {_e(project.config.name)}</title>\n"
        f"<style>{CSS}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    )


def write_report(project: Project, out: Path) -> Path:
    """Write the report to ``out`` (a temporary name, then an atomic rename)."""
    text = build_report(project)
    out.parent.mkdir(parents=True, exist_ok=True)
    temp = out.with_name(f".{out.name}.tmp")
    temp.write_text(text, encoding="utf-8")
    os.replace(temp, out)
    return out
