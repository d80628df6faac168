"""Stage 3, prepare: assemble the training dataset from recorded snapshots.

The dataset is every accepted data batch that has labels, read back from its
hash-verified Parquet snapshot, split into train and holdout by `features.split_sql`.
A batch has labels when it carried the target column, or when files in data/labels/
named its ids later: those rows are joined with their latest labels and written as
one more content-addressed snapshot, so a retrain is reproducible from recorded
objects alone. `[training] recent_batches` keeps only the newest batches (a model
that decayed with its data is retrained on what the world looks like now).
Its hash covers the snapshots, the columns and the split, and is recorded once.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from dataclasses import dataclass
from typing import Any

import duckdb
import polars as pl

from engine.core.config import Config
from engine.core.errors import ConfigError, TrainingError, as_mldeck_error
from engine.core.project import Project
from engine.data.features import FeatureSpec, split_sql
from engine.data.labels import LATEST_LABELS, label_type_sql
from storage.catalog import utcnow
from storage.errors import StorageError
from storage.sql import quote_ident, quote_literal, sql_list

HOLDOUT = "__holdout"


def holdout_flag(columns: list[str]) -> str:
    """The holdout flag's column name: `HOLDOUT`, with underscores added while a data
    column already has that name (any header works, this one too)."""
    name = HOLDOUT
    while name in columns:
        name += "_"
    return name


@dataclass
class Dataset:
    dataset_id: int
    dataset_hash: str
    batch_ids: list[int]
    snapshot_hashes: list[str]
    train: pl.DataFrame
    holdout: pl.DataFrame
    task: str
    target: str
    classes: list[Any] | None
    """Sorted class labels for classification."""


def training_batches(project: Project) -> tuple[list[int], list[str]]:
    """The batches to train on, oldest first, and the snapshots that hold their labelled rows."""
    catalog = project.catalog
    accepted = catalog.rows(
        "SELECT batch_id, snapshot_hash, labelled FROM batches WHERE kind = 'data' "
        "AND status IN ('accepted', 'warned') AND snapshot_hash IS NOT NULL ORDER BY batch_id"
    )
    later = _batches_labelled_later(project, [b for b in accepted if not b["labelled"]])
    chosen = [b for b in accepted if b["labelled"] or int(b["batch_id"]) in later]
    if project.config.recent_batches:
        chosen = chosen[-project.config.recent_batches :]
    hashes = [str(b["snapshot_hash"]) for b in chosen if b["labelled"]]
    joined = [b for b in chosen if not b["labelled"]]
    if joined:
        hashes.append(_labelled_snapshot(project, joined))
    return [int(b["batch_id"]) for b in chosen], hashes


def _snapshot_paths(project: Project, batches: list[dict[str, Any]]) -> list[str]:
    try:
        return [str(project.objects.verified_path(str(b["snapshot_hash"]))) for b in batches]
    except StorageError as exc:
        raise as_mldeck_error(exc) from exc


def _batches_labelled_later(project: Project, batches: list[dict[str, Any]]) -> set[int]:
    """Of these unlabelled batches, those with at least one id in the labels table."""
    id_column = project.config.id_column
    if not batches or id_column is None:
        return set()
    if not project.catalog.scalar("SELECT count(*) FROM labels"):
        return set()
    paths = _snapshot_paths(project, batches)
    batch_of = {path: int(b["batch_id"]) for path, b in zip(paths, batches, strict=True)}
    found = project.catalog.rows(
        f"SELECT DISTINCT s.filename FROM read_parquet({sql_list(paths)}, "
        f"union_by_name = true, filename = true) s JOIN ({LATEST_LABELS}) l "
        f"ON CAST(s.{quote_ident(id_column)} AS VARCHAR) = l.row_id"
    )
    return {batch_of[str(r["filename"])] for r in found}


def _labelled_snapshot(project: Project, batches: list[dict[str, Any]]) -> str:
    """Join these batches' rows with their labels into one stored Parquet snapshot; its hash."""
    config = project.config
    assert config.target is not None and config.id_column is not None
    label = "l.label"
    type_sql = label_type_sql(project)
    if type_sql is not None:
        label = f"CAST(l.label AS {type_sql})"
    ident = quote_ident(config.id_column)
    with project.objects.staging_path(".parquet") as staged:
        try:
            project.catalog.execute(
                f"COPY (SELECT s.*, {label} AS {quote_ident(config.target)} "
                f"FROM read_parquet({sql_list(_snapshot_paths(project, batches))}, union_by_name = true) s "
                f"JOIN ({LATEST_LABELS}) l ON CAST(s.{ident} AS VARCHAR) = l.row_id "
                f"ORDER BY s.{ident}) TO {quote_literal(staged)} (FORMAT parquet, COMPRESSION snappy)"
            )
        except duckdb.Error as exc:
            raise TrainingError(f"cannot join the batches with their labels: {exc}") from exc
        return project.objects.adopt(staged)


def load_dataset(
    project: Project,
    spec: FeatureSpec,
    batch_ids: list[int],
    snapshot_hashes: list[str],
) -> tuple[pl.DataFrame, dict[str, Any]]:
    """Read the snapshots (hash-verified) into one frame with a holdout flag column."""
    config = project.config
    assert config.target is not None
    try:
        paths = [str(project.objects.verified_path(h)) for h in snapshot_hashes]
    except StorageError as exc:
        raise as_mldeck_error(exc) from exc
    columns = list(spec.columns)
    keep = ([config.id_column] if config.id_column else []) + columns + [config.target]
    select_sql = ", ".join(quote_ident(c) for c in keep)
    holdout_sql = split_sql(config, columns + [config.target])
    source_sql = f"read_parquet({sql_list(paths)}, union_by_name = true)"
    con = duckdb.connect()
    try:
        present = [
            str(r[0]) for r in con.execute(f"DESCRIBE SELECT * FROM {source_sql}").fetchall()
        ]
        _check_columns(config, keep, present)
        frame = con.sql(
            f"SELECT {select_sql}, {holdout_sql} AS {quote_ident(holdout_flag(keep))}"
            f" FROM {source_sql}"
            f" WHERE {quote_ident(config.target)} IS NOT NULL"
        ).pl()
    except duckdb.Error as exc:
        raise TrainingError(f"cannot read the training snapshots: {exc}") from exc
    finally:
        con.close()
    split_spec = {
        "key": config.id_column or "row values",
        "seed": config.split_seed,
        "holdout_fraction": config.holdout_fraction,
        "method": "md5_number(seed:key) % 1e6",
    }
    meta = {
        "batch_ids": batch_ids,
        "snapshots": snapshot_hashes,
        "columns": keep,
        "split": split_spec,
    }
    return frame, meta


def _check_columns(config: Config, wanted: list[str], present: list[str]) -> None:
    """One line naming the first wanted column no training snapshot has, and its config key."""
    missing = [c for c in wanted if c not in present]
    if not missing:
        return
    name = missing[0]
    if name == config.target:
        where = f"[data] target = {name!r}"
    elif name == config.id_column:
        where = f"[data] id = {name!r}"
    else:
        where = f"[contract.columns] {name!r}"
    close = difflib.get_close_matches(name, present, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ConfigError(
        f"{config.path.name}: {where}: no training batch has this column{hint} "
        f"(their columns: {', '.join(repr(c) for c in present)})"
    )


def split_frame(
    frame: pl.DataFrame, target: str, task: str
) -> tuple[pl.DataFrame, pl.DataFrame, list[Any] | None]:
    """(train, holdout, sorted classes or None) from a `load_dataset` frame."""
    flag = frame.columns[-1]  # `load_dataset` puts the holdout flag last
    train = frame.filter(~pl.col(flag)).drop(flag)
    holdout = frame.filter(pl.col(flag)).drop(flag)
    if train.height < 10 or holdout.height < 2:
        raise TrainingError(
            f"too few labelled rows to train: {train.height} train and {holdout.height} holdout"
        )
    classes = None
    if task == "classification":
        classes = sorted(train[target].unique().to_list())
        if len(classes) < 2:
            raise TrainingError(f"the target {target!r} has only one class: {classes}")
    return train, holdout, classes


def dataset_hash_of(meta: dict[str, Any]) -> str:
    """The dataset's version: a hash over its snapshots, columns and split."""
    return hashlib.sha256(json.dumps(meta, sort_keys=True).encode()).hexdigest()


def prepare_dataset(project: Project, spec: FeatureSpec) -> Dataset:
    config = project.config
    batch_ids, hashes = training_batches(project)
    if not batch_ids:
        raise TrainingError(
            "no labelled batches to train on: ingest a file that has the target column "
            f"{config.target!r}, or labels for a batch's ids in data/labels/ "
            "(mldeck ingest data/incoming/)"
        )
    frame, meta = load_dataset(project, spec, batch_ids, hashes)
    assert config.target is not None
    task = config.task or "classification"
    train, holdout, classes = split_frame(frame, config.target, task)
    dataset_hash = dataset_hash_of(meta)
    catalog = project.catalog
    with catalog.transaction():
        found = catalog.row(
            "SELECT dataset_id FROM datasets WHERE dataset_hash = ?", [dataset_hash]
        )
        if found:
            dataset_id = int(found["dataset_id"])
        else:
            dataset_id = int(
                catalog.scalar(
                    "INSERT INTO datasets (dataset_hash, batch_ids_json, snapshot_hashes_json, split_json,"
                    " row_count, train_rows, holdout_rows, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                    " RETURNING dataset_id",
                    [
                        dataset_hash,
                        json.dumps(batch_ids),
                        json.dumps(hashes),
                        json.dumps(meta["split"]),
                        frame.height,
                        train.height,
                        holdout.height,
                        utcnow(),
                    ],
                )
            )
    return Dataset(
        dataset_id=dataset_id,
        dataset_hash=dataset_hash,
        batch_ids=batch_ids,
        snapshot_hashes=hashes,
        train=train,
        holdout=holdout,
        task=task,
        target=config.target,
        classes=classes,
    )
