"""What a training run trains on: batches with the target inline, batches labelled later
through data/labels/, and `[training] recent_batches`."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from engine.core.project import Project, init_project, open_project
from engine.data.dataset import prepare_dataset
from engine.data.features import feature_spec
from engine.pipeline.intake import ingest_file, ingest_labels_file
from tests.conftest import SAMPLE

LINEAR = '\n[models.linear]\nkind = "linear"\n'
WEEKS = [SAMPLE / "stream" / f"week_0{w}.csv" for w in (1, 2)]
LABELS_1 = SAMPLE / "labels" / "labels_01.csv"


def _project(tmp_path: Path, small_reference: Path, extra: str = "") -> Project:
    root = tmp_path / "loans"
    init_project(root, target="default", id_column="loan_id")
    text = (root / "mldeck.toml").read_text()
    if extra:
        text = text.replace("[training]\nseed = 42\n", f"[training]\nseed = 42\n{extra}\n")
    (root / "mldeck.toml").write_text(text + LINEAR)
    project = open_project(root)
    for path in [small_reference, *WEEKS]:
        assert ingest_file(project, path).status in ("accepted", "warned")
    return project


def _dataset(project: Project):  # type: ignore[no-untyped-def]
    return prepare_dataset(project, feature_spec(project.config, "linear"))


def test_a_batch_labelled_later_joins_the_training_data(
    tmp_path: Path, small_reference: Path
) -> None:
    project = _project(tmp_path, small_reference)
    try:
        before = _dataset(project)
        assert len(before.batch_ids) == 1  # only the reference carries the target
        assert ingest_labels_file(project, LABELS_1).status == "accepted"
        after = _dataset(project)
        reference_rows = before.train.height + before.holdout.height
        week_1 = pl.read_csv(LABELS_1)
        assert len(after.batch_ids) == 2  # week 2 has no labels yet
        assert after.train.height + after.holdout.height == reference_rows + week_1.height
        # The joined rows carry exactly the labels of the file, matched by id.
        rows = pl.concat([after.train, after.holdout]).filter(
            pl.col("loan_id").is_in(week_1["loan_id"].implode())
        )
        joined = rows.select("loan_id", "default").sort("loan_id")
        assert joined.equals(week_1.sort("loan_id").cast(joined.schema))
        # The joined rows are a recorded, verifiable object: the same data gives the same dataset.
        joined_hash = after.snapshot_hashes[-1]
        assert project.objects.verified_path(joined_hash).exists()
        assert _dataset(project).dataset_hash == after.dataset_hash
    finally:
        project.close()


def test_a_later_labels_file_corrects_an_earlier_one(tmp_path: Path, small_reference: Path) -> None:
    project = _project(tmp_path, small_reference, "recent_batches = 1")
    try:
        ingest_labels_file(project, LABELS_1)
        first = _dataset(project)
        labels = pl.read_csv(LABELS_1)
        flipped = labels.head(100).with_columns((1 - pl.col("default")).alias("default"))
        fix = tmp_path / "labels_01_fix.csv"
        flipped.write_csv(fix)
        assert ingest_labels_file(project, fix).status == "accepted"
        second = _dataset(project)
        assert second.dataset_hash != first.dataset_hash

        def positives(dataset) -> int:  # type: ignore[no-untyped-def]
            return int(pl.concat([dataset.train, dataset.holdout])["default"].sum())

        delta = int(flipped["default"].sum()) - int(labels.head(100)["default"].sum())
        assert positives(second) - positives(first) == delta
    finally:
        project.close()


@pytest.mark.parametrize("recent", [1, 2])
def test_recent_batches_keeps_the_newest(
    tmp_path: Path, small_reference: Path, recent: int
) -> None:
    project = _project(tmp_path, small_reference, f"recent_batches = {recent}")
    try:
        ingest_labels_file(project, LABELS_1)
        ingest_labels_file(project, SAMPLE / "labels" / "labels_02.csv")
        dataset = _dataset(project)
        batches = project.catalog.rows(
            "SELECT batch_id, source_name FROM batches WHERE kind = 'data' ORDER BY batch_id"
        )
        assert dataset.batch_ids == [int(b["batch_id"]) for b in batches][-recent:]
        expected = sum(pl.read_csv(w).height for w in WEEKS[-recent:])
        assert dataset.train.height + dataset.holdout.height == expected
    finally:
        project.close()
