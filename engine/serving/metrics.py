"""The endpoint's counters and latency histograms, written in the Prometheus text format
with label values escaped; versions the server does not know count under one label."""

from __future__ import annotations

import bisect
import itertools
import threading
from typing import Any

LATENCY_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


# ------------------------------------------------------------------ metrics


class Metrics:
    """Counters and a latency histogram, rendered in Prometheus text format.

    `observe` runs once per request on the event loop, so it only bumps one
    plain per-(endpoint, version, status) record (count, latency sum, rows and a
    bucket count found by bisection); the Prometheus series are aggregated from
    those records when `/metrics` is read.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: dict[tuple[str, str, int], list[Any]] = {}
        """(endpoint, version, status) -> [requests, latency sum, rows, per-bucket counts]."""

    def observe(self, endpoint: str, version: str, status: int, seconds: float, rows: int) -> None:
        record = self._records.get((endpoint, version, status))
        if record is None:
            with self._lock:
                record = self._records.setdefault(
                    (endpoint, version, status), [0, 0.0, 0, [0] * (len(LATENCY_BUCKETS_S) + 1)]
                )
        record[0] += 1
        record[1] += seconds
        record[2] += rows
        record[3][bisect.bisect_left(LATENCY_BUCKETS_S, seconds)] += 1

    @property
    def requests(self) -> dict[tuple[str, str], int]:
        """Requests by (endpoint, version)."""
        totals: dict[tuple[str, str], int] = {}
        for (endpoint, version, _), record in list(self._records.items()):
            totals[(endpoint, version)] = totals.get((endpoint, version), 0) + record[0]
        return totals

    @property
    def errors(self) -> dict[tuple[str, str, int], int]:
        """Requests answered 4xx or 5xx, by (endpoint, version, status)."""
        return {key: record[0] for key, record in list(self._records.items()) if key[2] >= 400}

    @property
    def rows(self) -> dict[str, int]:
        """Rows scored, by version (versions that scored none are left out)."""
        totals: dict[str, int] = {}
        for (_, version, _), record in list(self._records.items()):
            if record[2]:
                totals[version] = totals.get(version, 0) + record[2]
        return totals

    def _latency(self) -> tuple[dict[str, list[int]], dict[str, float]]:
        """Cumulative bucket counts (the last one is +Inf) and latency sums, by endpoint."""
        counts: dict[str, list[int]] = {}
        sums: dict[str, float] = {}
        for (endpoint, _, _), record in list(self._records.items()):
            per_bucket = counts.setdefault(endpoint, [0] * (len(LATENCY_BUCKETS_S) + 1))
            for i, n in enumerate(record[3]):
                per_bucket[i] += n
            sums[endpoint] = sums.get(endpoint, 0.0) + record[1]
        cumulative = {
            endpoint: list(itertools.accumulate(per_bucket))
            for endpoint, per_bucket in counts.items()
        }
        return cumulative, sums

    def render(self, champion: int, dropped_rows: int) -> str:
        requests, errors, rows = self.requests, self.errors, self.rows
        latency_counts, latency_sum = self._latency()
        # label values come from fixed sets and version numbers, escaped all the same
        requests = {(_label(e), _label(v)): n for (e, v), n in requests.items()}
        errors = {(_label(e), _label(v), s): n for (e, v, s), n in errors.items()}
        rows = {_label(v): n for v, n in rows.items()}
        latency_counts = {_label(e): c for e, c in latency_counts.items()}
        latency_sum = {_label(e): t for e, t in latency_sum.items()}
        lines = [
            "# HELP mldeck_requests_total Requests by endpoint and answering model version.",
            "# TYPE mldeck_requests_total counter",
        ]
        for (endpoint, version), n in sorted(requests.items()):
            lines.append(
                f'mldeck_requests_total{{endpoint="{endpoint}",model_version="{version}"}} {n}'
            )
        lines += [
            "# HELP mldeck_request_errors_total Requests answered with a 4xx or 5xx.",
            "# TYPE mldeck_request_errors_total counter",
        ]
        for (endpoint, version, status), n in sorted(errors.items()):
            lines.append(
                f'mldeck_request_errors_total{{endpoint="{endpoint}",model_version="{version}",status="{status}"}} {n}'
            )
        lines += [
            "# HELP mldeck_rows_scored_total Rows scored, by model version.",
            "# TYPE mldeck_rows_scored_total counter",
        ]
        for version, n in sorted(rows.items()):
            lines.append(f'mldeck_rows_scored_total{{model_version="{version}"}} {n}')
        lines += [
            "# HELP mldeck_request_duration_seconds Request latency, by endpoint.",
            "# TYPE mldeck_request_duration_seconds histogram",
        ]
        for endpoint, counts in sorted(latency_counts.items()):
            for bound, n in zip(LATENCY_BUCKETS_S, counts, strict=False):
                lines.append(
                    f'mldeck_request_duration_seconds_bucket{{endpoint="{endpoint}",le="{bound}"}} {n}'
                )
            lines.append(
                f'mldeck_request_duration_seconds_bucket{{endpoint="{endpoint}",le="+Inf"}} {counts[-1]}'
            )
            lines.append(
                f'mldeck_request_duration_seconds_sum{{endpoint="{endpoint}"}} {latency_sum[endpoint]}'
            )
            lines.append(
                f'mldeck_request_duration_seconds_count{{endpoint="{endpoint}"}} {counts[-1]}'
            )
        lines += [
            "# HELP mldeck_champion_version The model version the server answers with by default.",
            "# TYPE mldeck_champion_version gauge",
            f"mldeck_champion_version {champion}",
            "# HELP mldeck_prediction_log_dropped_rows_total Rows not logged: the log queue was full.",
            "# TYPE mldeck_prediction_log_dropped_rows_total counter",
            f"mldeck_prediction_log_dropped_rows_total {dropped_rows}",
        ]
        return "\n".join(lines) + "\n"


def _label(value: str) -> str:
    """A label value escaped as the Prometheus text format asks: backslash, quote, newline."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
