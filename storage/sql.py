"""The one way a name, a text value or a path enters SQL text.

Values go in as bound parameters wherever DuckDB takes them (`?`, `$name`). Where
it does not (identifiers, `COPY ... TO` targets, the file lists of
`read_parquet`, literals that DuckDB needs constant at bind time), the text goes
through these helpers, so a column called `a"; DROP TABLE batches; --` or a
project folder called `it's mine` stays one identifier or one string.
`tests/test_sql_quoting.py` fails on SQL built from anything else.
"""

from __future__ import annotations

from collections.abc import Iterable
from os import PathLike


def quote_ident(name: str) -> str:
    """A column or table name as a DuckDB identifier: double quotes, inner ones doubled."""
    if "\x00" in name:
        raise ValueError("an identifier cannot hold a NUL character")
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str | PathLike[str]) -> str:
    """A text value or a path as a DuckDB string literal: single quotes, inner ones doubled."""
    text = str(value)
    if "\x00" in text:
        raise ValueError("a string literal cannot hold a NUL character")
    return "'" + text.replace("'", "''") + "'"


def sql_list(values: Iterable[str | PathLike[str]]) -> str:
    """A DuckDB list literal of strings, e.g. the files of `read_parquet([...])`."""
    return "[" + ", ".join(quote_literal(v) for v in values) + "]"
