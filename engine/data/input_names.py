"""Raw column names -> the names of a model's ONNX inputs: the one mapping.

A team's headers are whatever their spreadsheet wrote ("Loan Amount (€)",
"Interest Rate %", "Âge", `a"; DROP TABLE x; --`). ONNX converters rewrite
such names on their own (skl2onnx turns every non-word character into `_`),
after which a feed by raw name no longer fits the graph. So every model input
gets a name chosen here, recorded in the feature definition
(`FeatureSpec.input_names`, part of its hash and lineage), and everything
outside the graph (ingest, validation, drift, serving requests and their log,
the report, the UI) keeps the raw names.

A name that is already a plain identifier stays as it is; any other is
transliterated to ASCII, with a few symbols spelled out so that "Rate" and
"Rate %" stay apart. Two columns that end up with one name are an error
naming both.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable

from engine.core.errors import ConfigError

PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
RESERVED = frozenset({"label", "probabilities", "prediction", "features"})
"""Names of the graphs' own outputs and intermediate tensors: an input must not take them."""
MAX_LENGTH = 64
SYMBOLS = {
    "%": "pct",
    "‰": "permille",
    "€": "eur",
    "$": "usd",
    "£": "gbp",
    "¥": "yen",
    "#": "num",
    "&": "and",
    "+": "plus",
    "@": "at",
}


def _digest(column: str) -> str:
    return hashlib.sha256(column.encode("utf-8", "surrogatepass")).hexdigest()[:8]


def safe_input_name(column: str) -> str:
    """The ONNX input name for `column`: `[A-Za-z_][A-Za-z0-9_]*`, at most 64 characters."""
    if (
        PLAIN.match(column)
        and len(column) <= MAX_LENGTH
        and column not in RESERVED
        and not column.startswith("mldeck_")
    ):
        return column
    parts = []
    for char in unicodedata.normalize("NFKD", column):
        if unicodedata.combining(char):  # the accent of a decomposed "Â"
            continue
        if char in SYMBOLS:
            parts.append(f"_{SYMBOLS[char]}_")
        elif char.isascii() and (char.isalnum() or char == "_"):
            parts.append(char)
        else:
            parts.append("_")
    name = re.sub("_+", "_", "".join(parts)).strip("_")
    if not name:  # nothing ASCII in it ("年龄"): a name from its hash
        name = f"column_{_digest(column)}"
    if name[0].isdigit() or name.startswith("mldeck_"):
        name = f"c_{name}"
    if name in RESERVED:
        name = f"{name}_input"
    if len(name) > MAX_LENGTH:
        name = f"{name[: MAX_LENGTH - 9]}_{_digest(column)}"
    return name


def input_names(columns: Iterable[str]) -> dict[str, str]:
    """Each column's input name, in order.

    Raises:
        ConfigError: two columns get the same input name (naming both).
    """
    names: dict[str, str] = {}
    taken: dict[str, str] = {}
    for column in columns:
        name = safe_input_name(column)
        other = taken.get(name)
        if other is not None:
            raise ConfigError(
                f"columns {other!r} and {column!r} both become the model input name {name!r}: "
                "rename one of them in the data, or list one in [data] ignore in mldeck.toml"
            )
        taken[name] = column
        names[column] = name
    return names
