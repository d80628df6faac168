"""Stage 3, prepare: assemble the training dataset from recorded snapshots.

The dataset is every accepted, labelled data batch, read back from its
hash-verified Parquet snapshot, split into train and holdout by `features.split_sql`.
Its hash covers the snapshots, the columns and the split, and is recorded once.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import duckdb
import polars as pl

from engine.contract import quote
from engine.errors import TrainingError, as_mldeck_error
from engine.features import FeatureSpec, split_sql
from engine.project import Project
from storage.catalog import utcnow
from storage.errors import StorageError

HOLDOUT = "__holdout"


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


def training_batches(project: Project) -> list[dict[str, Any]]:
    return project.catalog.rows(
        "SELECT batch_id, snapshot_hash FROM batches WHERE kind = 'data' AND labelled "
        "AND status IN ('accepted', 'warned') ORDER BY batch_id"
    )


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
    select = ", ".join(quote(c) for c in keep)
    where = f"{quote(config.target)} IS NOT NULL"
    split = split_sql(config, columns + [config.target])
    file_list = "[" + ", ".join(f"'{p}'" for p in paths) + "]"
    con = duckdb.connect()
    try:
        frame = con.sql(
            f"SELECT {select}, {split} AS {HOLDOUT} FROM read_parquet({file_list}, union_by_name = true) "
            f"WHERE {where}"
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


def split_frame(
    frame: pl.DataFrame, target: str, task: str
) -> tuple[pl.DataFrame, pl.DataFrame, list[Any] | None]:
    """(train, holdout, sorted classes or None) from a `load_dataset` frame."""
    train = frame.filter(~pl.col(HOLDOUT)).drop(HOLDOUT)
    holdout = frame.filter(pl.col(HOLDOUT)).drop(HOLDOUT)
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
    batches = training_batches(project)
    if not batches:
        raise TrainingError(
            "no labelled batches to train on: ingest a file that has the target column "
            f"{config.target!r} first (mldeck ingest data/incoming/)"
        )
    batch_ids = [int(b["batch_id"]) for b in batches]
    hashes = [str(b["snapshot_hash"]) for b in batches]
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
