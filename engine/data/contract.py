"""Stage 2, validate: the data contract, inferred from the first batch and checked on every batch.

Hard failures (the batch is quarantined): no rows, a missing feature or id
column, values that do not parse as the contract's type, null or duplicate ids.
Soft issues (recorded and shown): new categories, values outside the range,
more nulls than allowed, unexpected extra columns.

All checks are SQL over the whole batch table in DuckDB, one scan for the
per-column statistics.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import duckdb

from engine.core.answers import ColumnType, IssueSeverity, Task
from engine.core.config import ColumnContract, Config, Contract
from storage.sql import quote_ident, quote_literal

TARGET_NAMES = ("target", "label", "y", "class", "outcome", "default", "churn", "is_fraud")
MAX_CATEGORIES = 50


@dataclass(frozen=True)
class Issue:
    severity: IssueSeverity
    """error (the batch is quarantined) or warning."""
    column: str | None
    code: str
    message: str


def column_type(duckdb_type: str) -> ColumnType:
    """Map a DuckDB type name to a contract type."""
    t = duckdb_type.upper()
    if t in (
        "TINYINT",
        "SMALLINT",
        "INTEGER",
        "BIGINT",
        "HUGEINT",
        "UTINYINT",
        "USMALLINT",
        "UINTEGER",
        "UBIGINT",
    ):
        return "integer"
    if t in ("FLOAT", "DOUBLE", "REAL") or t.startswith("DECIMAL"):
        return "float"
    if t == "BOOLEAN":
        return "boolean"
    if t == "DATE":
        return "date"
    if t.startswith("TIMESTAMP"):
        return "timestamp"
    return "string"


SQL_TYPES = {
    "integer": "BIGINT",
    "float": "DOUBLE",
    "string": "VARCHAR",
    "boolean": "BOOLEAN",
    "date": "DATE",
    "timestamp": "TIMESTAMP",
}


def batch_schema(con: duckdb.DuckDBPyConnection, table: str) -> dict[str, ColumnType]:
    """Column name -> contract type of a loaded batch table."""
    rows = con.execute(f"DESCRIBE {quote_ident(table)}").fetchall()
    return {str(r[0]): column_type(str(r[1])) for r in rows}


def _round_up(value: float, digits: int = 2) -> float:
    scale = 10**digits
    return float(math.ceil(value * scale) / scale)


def _finite(value: Any) -> float | None:
    """A range bound, or None when there is none (no values, or inf / NaN in the data)."""
    if value is None:
        return None
    bound = float(value)
    return bound if math.isfinite(bound) else None


@dataclass(frozen=True)
class Inferred:
    contract: Contract
    target: str | None
    id_column: str | None
    task: Task | None
    ignore: tuple[str, ...]


def infer_contract(
    con: duckdb.DuckDBPyConnection, table: str, config: Config, source_name: str
) -> Inferred:
    """Infer the data contract (and target, id, task when unset) from the first batch."""
    schema = batch_schema(con, table)
    total = int(con.execute(f"SELECT count(*) FROM {quote_ident(table)}").fetchone()[0])  # type: ignore[index]
    columns: dict[str, ColumnContract] = {}
    distinct: dict[str, int] = {}
    # One scan for every column's statistics.
    exprs = []
    for name, ctype in schema.items():
        q = quote_ident(name)
        numeric = ctype in ("integer", "float")
        # Distinct counts serve categories, id and task inference; floats need none.
        exprs += [
            f"count(*) - count({q})",
            f"approx_count_distinct({q})" if ctype != "float" else "0",
            f"min({q})" if numeric else "NULL",
            f"max({q})" if numeric else "NULL",
        ]
    stats = con.execute(f"SELECT {', '.join(exprs)} FROM {quote_ident(table)}").fetchone()
    assert stats is not None
    for i, (name, ctype) in enumerate(schema.items()):
        nulls, n_distinct, lo, hi = stats[4 * i : 4 * i + 4]
        q = quote_ident(name)
        distinct[name] = int(n_distinct)
        null_fraction = nulls / total if total else 0.0
        max_null = None if nulls == 0 else min(1.0, _round_up(null_fraction * 1.5 + 0.01))
        categories = None
        if ctype == "string" and n_distinct <= MAX_CATEGORIES:
            categories = tuple(
                str(r[0])
                for r in con.execute(
                    f"SELECT DISTINCT {q} FROM {quote_ident(table)} WHERE {q} IS NOT NULL ORDER BY 1"
                ).fetchall()
            )
        columns[name] = ColumnContract(
            name=name,
            type=ctype,
            max_null_fraction=max_null,
            min=_finite(lo),
            max=_finite(hi),
            categories=categories,
        )

    target = config.target
    if target is None:
        by_name = [c for c in schema if c.lower() in TARGET_NAMES]
        target = by_name[0] if by_name else list(schema)[-1]
    id_column = config.id_column
    if id_column is None:
        for name, ctype in schema.items():
            looks_like_id = name.lower() == "id" or name.lower().endswith("_id")
            if looks_like_id and ctype in ("string", "integer") and distinct[name] >= 0.97 * total:
                exact = con.execute(
                    f"SELECT count(DISTINCT {quote_ident(name)}) = count(*), count(*) = count({quote_ident(name)}) "
                    f"FROM {quote_ident(table)}"
                ).fetchone()
                if exact and exact[0] and exact[1]:
                    id_column = name
                    break
    if id_column is not None and id_column in columns:
        # Ids are unique by contract; listing them as categories would be noise.
        col = columns[id_column]
        columns[id_column] = ColumnContract(name=col.name, type=col.type)
    task = config.task
    if task is None and target in schema:
        ttype = schema[target]
        few_values = distinct[target] <= 20
        task = (
            "classification"
            if ttype in ("string", "boolean") or (ttype == "integer" and few_values)
            else "regression"
        )
    ignore = config.ignore
    if not ignore:
        ignore = tuple(n for n, t in schema.items() if t in ("date", "timestamp"))
    return Inferred(
        contract=Contract(columns=columns, inferred_from=source_name),
        target=target,
        id_column=id_column,
        task=task,
        ignore=ignore,
    )


def _compatible(expected: str, found: str) -> bool:
    if expected == found:
        return True
    if expected == "float" and found == "integer":
        return True
    # Anything can be read as a string; a date column may arrive as a timestamp.
    return expected == "string" or (expected == "timestamp" and found == "date")


RESERVED_COLUMNS = {"__prediction__": "the model's output in drift profiles and windows"}
"""Column names a batch may not use (engine.monitoring.drift's PREDICTION)."""


def validate_batch(
    con: duckdb.DuckDBPyConnection,
    table: str,
    contract: Contract,
    config: Config,
    soft_checks: bool = True,
) -> tuple[list[Issue], bool]:
    """Check a loaded batch against the contract.

    Args:
        soft_checks: False for the batch the contract was just inferred from: its
            nulls, ranges and categories are the contract, so the scan is skipped.

    Returns:
        The issues found, and whether the batch is labelled (has the target column).
    """
    issues: list[Issue] = []
    schema = batch_schema(con, table)
    total = int(con.execute(f"SELECT count(*) FROM {quote_ident(table)}").fetchone()[0])  # type: ignore[index]
    if total == 0:
        return [Issue("error", None, "empty", "the file has a header but no rows")], False
    target = config.target
    labelled = target is not None and target in schema
    for name in schema:
        if name in RESERVED_COLUMNS:
            issues.append(
                Issue(
                    "error",
                    name,
                    "reserved_name",
                    f"column {name!r}: mldeck uses this name for {RESERVED_COLUMNS[name]}; "
                    "rename the column in the file",
                )
            )

    for name, col in contract.columns.items():
        if name in schema or name == target or name in config.ignore:
            continue
        issues.append(
            Issue("error", name, "missing_column", f"column {name!r} ({col.type}) is missing")
        )
    for name in schema:
        if name not in contract.columns:
            issues.append(
                Issue(
                    "warning",
                    name,
                    "extra_column",
                    f"column {name!r} is not in the contract and is ignored",
                )
            )

    checked: dict[str, ColumnContract] = {}
    for name, col in contract.columns.items():
        if name not in schema:
            continue
        found = schema[name]
        if _compatible(col.type, found):
            checked[name] = col
            continue
        q = quote_ident(name)
        bad = con.execute(
            f"SELECT count(*), any_value(CAST({q} AS VARCHAR)) FROM {quote_ident(table)} "
            f"WHERE {q} IS NOT NULL AND TRY_CAST({q} AS {SQL_TYPES[col.type]}) IS NULL"
        ).fetchone()
        assert bad is not None
        if bad[0]:
            issues.append(
                Issue(
                    "error",
                    name,
                    "bad_type",
                    f"column {name!r} should be {col.type} but {bad[0]} value(s) do not parse, "
                    f"e.g. {bad[1]!r}",
                )
            )
        else:
            checked[name] = col

    id_col = config.id_column
    has_id = bool(id_col) and id_col in schema
    q_id = quote_ident(id_col) if id_col else ""
    # The id checks ride along in the soft checks' scan when there is one.
    id_exprs = [f"count(*) - count({q_id})", f"count({q_id}) - count(DISTINCT {q_id})"]
    id_values: tuple[Any, ...] = (0, 0)
    if soft_checks:
        soft, extra = _soft_checks(
            con,
            table,
            checked,
            schema,
            total,
            id_col,
            config.default_max_null_fraction,
            id_exprs if has_id else [],
        )
        id_values = extra or id_values
    else:
        soft = []
        if has_id:
            id_values = tuple(
                con.execute(f"SELECT {', '.join(id_exprs)} FROM {quote_ident(table)}").fetchone()
                or (0, 0)
            )
    if has_id and id_col:
        nulls, dupes = id_values
        if nulls:
            issues.append(Issue("error", id_col, "null_id", f"{nulls} row(s) have no {id_col!r}"))
        if dupes:
            example = con.execute(
                f"SELECT {q_id} FROM {quote_ident(table)} WHERE {q_id} IS NOT NULL GROUP BY {q_id} "
                "HAVING count(*) > 1 LIMIT 1"
            ).fetchone()
            issues.append(
                Issue(
                    "error",
                    id_col,
                    "duplicate_id",
                    f"{dupes} duplicate {id_col!r} value(s), e.g. {example[0] if example else '?'!r}",
                )
            )
    issues.extend(soft)
    return issues, labelled


def _soft_checks(
    con: duckdb.DuckDBPyConnection,
    table: str,
    columns: dict[str, ColumnContract],
    schema: dict[str, ColumnType],
    total: int,
    id_col: str | None,
    default_max_null: float,
    extra_sql: list[str],
) -> tuple[list[Issue], tuple[Any, ...]]:
    """Null share, range and category checks, one aggregate scan for all columns.

    Returns:
        The issues, and the values of `extra_sql` computed in the same scan.
    """
    exprs: list[str] = list(extra_sql)
    plan: list[tuple[str, str]] = []
    for name, col in columns.items():
        q = quote_ident(name)
        # A column already of the contract's type needs no cast (most of them, and cheaper).
        cast = q if schema[name] == col.type else f"TRY_CAST({q} AS {SQL_TYPES[col.type]})"
        exprs.append(f"count(*) - count({q})")
        plan.append((name, "nulls"))
        if col.is_numeric and col.min is not None:
            exprs += [f"count(*) FILTER ({cast} < {float(col.min)!r})", f"min({cast})"]
            plan += [(name, "below"), (name, "min")]
        if col.is_numeric and col.max is not None:
            exprs += [f"count(*) FILTER ({cast} > {float(col.max)!r})", f"max({cast})"]
            plan += [(name, "above"), (name, "max")]
        if col.categories is not None and name != id_col:
            allowed = ", ".join(quote_literal(c) for c in col.categories) or "NULL"
            exprs.append(
                f"count(*) FILTER ({q} IS NOT NULL AND CAST({q} AS VARCHAR) NOT IN ({allowed}))"
            )
            plan.append((name, "new_categories"))
    if not exprs:
        return [], ()
    row = con.execute(f"SELECT {', '.join(exprs)} FROM {quote_ident(table)}").fetchone()
    assert row is not None
    extra, values = tuple(row[: len(extra_sql)]), row[len(extra_sql) :]
    stats: dict[str, dict[str, Any]] = {}
    for (name, what), value in zip(plan, values, strict=True):
        stats.setdefault(name, {})[what] = value

    issues: list[Issue] = []
    for name, s in stats.items():
        col = columns[name]
        null_fraction = s["nulls"] / total
        null_limit = default_max_null if col.max_null_fraction is None else col.max_null_fraction
        if s["nulls"] and null_fraction > null_limit:
            issues.append(
                Issue(
                    "warning",
                    name,
                    "nulls",
                    f"{s['nulls']} nulls ({null_fraction:.1%}) in {name!r}, above the allowed {null_limit:.1%}",
                )
            )
        if s.get("below"):
            issues.append(
                Issue(
                    "warning",
                    name,
                    "below_range",
                    f"{s['below']} value(s) of {name!r} below the contract's min {col.min:g} "
                    f"(lowest {s['min']:g})",
                )
            )
        if s.get("above"):
            issues.append(
                Issue(
                    "warning",
                    name,
                    "above_range",
                    f"{s['above']} value(s) of {name!r} above the contract's max {col.max:g} "
                    f"(highest {s['max']:g})",
                )
            )
        if s.get("new_categories"):
            q = quote_ident(name)
            allowed = ", ".join(quote_literal(c) for c in col.categories or ()) or "NULL"
            examples = con.execute(
                f"SELECT CAST({q} AS VARCHAR), count(*) FROM {quote_ident(table)} "
                f"WHERE {q} IS NOT NULL AND CAST({q} AS VARCHAR) NOT IN ({allowed}) "
                "GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 5"
            ).fetchall()
            shown = ", ".join(f"{v!r} ({n})" for v, n in examples)
            issues.append(
                Issue(
                    "warning",
                    name,
                    "new_category",
                    f"{s['new_categories']} row(s) of {name!r} have categories not in the contract: {shown}",
                )
            )
    return issues, extra
