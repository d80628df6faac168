"""Stages 1 and 2: ingest and validate, on real files, a real catalog and a real object store.

Expected values come from the input files themselves (read independently with
DuckDB or the csv module) or from sample_data/drift_truth.json, never from
mldeck's own output.
"""

from __future__ import annotations

import csv
import gzip
import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest

from engine.core.config_parse import load_config
from engine.core.errors import InputFileError
from engine.core.project import CONFIG_NAME, Project, init_project, open_project
from engine.data.batches import IngestResult
from engine.data.read import expand_paths
from engine.pipeline.intake import ingest_file, ingest_paths
from engine.records.stage_runs import mark_interrupted, stage_run
from storage.objects import sha256_file
from tests.conftest import REFERENCE, SAMPLE

REPO = Path(__file__).resolve().parents[2]
TRUTH = json.loads((SAMPLE / "drift_truth.json").read_text())
TARGET = TRUTH["label"]["column"]
ID = "loan_id"


# ---------------------------------------------------------------- helpers


def csv_lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines(keepends=True)


def header_of(path: Path) -> list[str]:
    with open(path, newline="") as handle:
        return next(csv.reader(handle))


def data_rows(path: Path) -> int:
    with open(path, newline="") as handle:
        return sum(1 for _ in csv.reader(handle)) - 1


def set_field(line: str, column: str, value: str, header: list[str]) -> str:
    fields = line.rstrip("\n").split(",")
    fields[header.index(column)] = value
    return ",".join(fields) + "\n"


def drop_column(lines: list[str], column: str, header: list[str]) -> str:
    i = header.index(column)
    out = []
    for line in lines:
        fields = line.rstrip("\n").split(",")
        del fields[i]
        out.append(",".join(fields) + "\n")
    return "".join(out)


def batches(project: Project) -> list[dict[str, object]]:
    return project.catalog.rows("SELECT * FROM batches ORDER BY batch_id")


def object_digests(project: Project) -> set[str]:
    return set(project.objects.iter_digests())


def snapshot_count(path: Path) -> int:
    con = duckdb.connect()
    try:
        return int(con.execute("SELECT count(*) FROM read_parquet(?)", [str(path)]).fetchone()[0])  # type: ignore[index]
    finally:
        con.close()


@dataclass
class FileState:
    sha256: str
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: Path) -> FileState:
        st = path.stat()
        return cls(sha256_file(path), st.st_size, st.st_mtime_ns)


@pytest.fixture
def project(make_project: Callable[..., Path], open_proj: Callable[[Path], Project]) -> Project:
    """An empty project whose config names the target and the id."""
    return open_proj(make_project(models=None))


@pytest.fixture(scope="module")
def contracted_template(tmp_path_factory: pytest.TempPathFactory, small_reference: Path) -> Path:
    """A project that has ingested the small reference (so it has a contract); copied per test."""
    root = tmp_path_factory.mktemp("template") / "proj"
    init_project(root, target=TARGET, id_column=ID)
    with open_project(root) as proj:
        assert ingest_file(proj, small_reference).status == "accepted"
    return root


@pytest.fixture
def contracted(
    contracted_template: Path, tmp_path: Path, open_proj: Callable[[Path], Project]
) -> Project:
    root = tmp_path / "contracted"
    shutil.copytree(contracted_template, root)
    return open_proj(root)


# ---------------------------------------------------------------- a good first batch


def test_a_csv_is_ingested_with_rows_schema_snapshot_and_contract(
    project: Project, small_reference: Path
) -> None:
    header = header_of(small_reference)
    expected_rows = data_rows(small_reference)
    result = ingest_file(project, small_reference)

    assert result.status == "accepted", result.issues
    assert result.rows == expected_rows
    assert result.labelled is True
    assert result.content_hash == sha256_file(small_reference)

    [batch] = batches(project)
    assert batch["batch_id"] == result.batch_id
    assert batch["status"] == "accepted" and batch["kind"] == "data"
    assert batch["row_count"] == expected_rows
    assert batch["content_hash"] == result.content_hash
    assert batch["size_bytes"] == small_reference.stat().st_size
    assert batch["source_path"] == str(small_reference.resolve())
    assert batch["source_name"] == small_reference.name
    assert batch["format"] == "csv"
    assert [c["name"] for c in json.loads(str(batch["schema_json"]))] == header
    assert project.catalog.scalar("SELECT count(*) FROM validation_issues") == 0

    # The snapshot: an immutable Parquet object holding the same rows and values.
    assert batch["snapshot_hash"] == result.snapshot_hash
    assert result.snapshot_hash is not None
    snapshot = project.objects.verified_path(result.snapshot_hash)
    assert snapshot.read_bytes()[:4] == b"PAR1"
    con = duckdb.connect()
    try:
        assert snapshot_count(snapshot) == expected_rows
        assert [
            r[0]
            for r in con.execute(
                "DESCRIBE SELECT * FROM read_parquet(?)", [str(snapshot)]
            ).fetchall()
        ] == header
        # Same ids and same incomes as the source, read independently.
        differing = con.execute(
            "SELECT count(*) FROM (SELECT loan_id, annual_income, loan_purpose FROM read_csv(?) "
            "EXCEPT SELECT loan_id, annual_income, loan_purpose FROM read_parquet(?))",
            [str(small_reference), str(snapshot)],
        ).fetchone()
        assert differing == (0,)
    finally:
        con.close()

    assert list(project.objects.tmp_dir.glob("*")) == []  # no staging leftovers

    # The contract, inferred from this batch, is now explicit in mldeck.toml.
    text = (project.root / CONFIG_NAME).read_text()
    assert "[contract.columns]" in text
    config = load_config(project.root / CONFIG_NAME)
    assert config.contract is not None
    assert list(config.contract.columns) == header
    assert config.contract.inferred_from == small_reference.name
    assert config.task == "classification"  # a 0/1 target
    assert "application_date" in config.ignore  # dates are not features by default
    assert project.config == config  # the open project sees what was written


def test_the_inferred_contract_matches_the_data(project: Project, small_reference: Path) -> None:
    ingest_file(project, small_reference)
    contract = project.config.contract
    assert contract is not None
    con = duckdb.connect()
    try:
        lo, hi, purposes, nulls = con.execute(
            "SELECT min(annual_income), max(annual_income), list(DISTINCT loan_purpose ORDER BY loan_purpose),"
            " count(*) - count(months_since_last_delinquency) FROM read_csv(?)",
            [str(small_reference)],
        ).fetchone()  # type: ignore[misc]
    finally:
        con.close()
    income = contract.columns["annual_income"]
    assert (income.type, income.min, income.max) == ("integer", lo, hi)
    assert contract.columns["loan_purpose"].categories == tuple(purposes)
    assert contract.columns["interest_rate"].type == "float"
    assert contract.columns[ID].type == "string" and contract.columns[ID].categories is None
    # A column with nulls in the first batch is allowed at least that share of nulls.
    assert nulls > 0
    allowed = contract.columns["months_since_last_delinquency"].max_null_fraction
    assert allowed is not None and allowed >= nulls / data_rows(small_reference)
    assert contract.columns["age"].max_null_fraction is None  # no nulls: the project default


def test_the_source_file_is_never_modified_or_deleted(
    project: Project, small_reference: Path, tmp_path: Path
) -> None:
    incoming = project.incoming_dir
    good = incoming / "good.csv"
    bad = incoming / "bad.csv"
    shutil.copyfile(small_reference, good)
    bad.write_bytes(b"\x00\x01garbage" * 50)
    before = {p.name: FileState.of(p) for p in incoming.iterdir()}
    results = ingest_paths(project, [incoming])
    assert sorted(r.status for r in results) == ["accepted", "quarantined"]
    after = {p.name: FileState.of(p) for p in incoming.iterdir()}
    assert after == before


def test_reingesting_the_same_path_is_skipped(project: Project, small_reference: Path) -> None:
    first = ingest_file(project, small_reference)
    runs = project.catalog.scalar("SELECT count(*) FROM stage_runs")
    objects = object_digests(project)
    again = ingest_file(project, small_reference)
    assert again.status == "skipped"
    assert again.batch_id == first.batch_id
    assert again.content_hash == first.content_hash
    assert len(batches(project)) == 1
    assert project.catalog.scalar("SELECT count(*) FROM stage_runs") == runs
    assert object_digests(project) == objects


def test_the_same_bytes_under_another_name_are_a_duplicate(
    project: Project, small_reference: Path, tmp_path: Path
) -> None:
    first = ingest_file(project, small_reference)
    copy = tmp_path / "renamed_copy.csv"
    shutil.copyfile(small_reference, copy)
    objects = object_digests(project)
    dup = ingest_file(project, copy)
    assert dup.status == "duplicate"
    assert dup.duplicate_of == first.batch_id
    assert dup.content_hash == first.content_hash
    rows = batches(project)
    assert [r["status"] for r in rows] == ["accepted", "duplicate"]
    assert rows[1]["duplicate_of"] == first.batch_id
    assert rows[1]["source_name"] == "renamed_copy.csv"
    assert rows[1]["snapshot_hash"] is None
    assert object_digests(project) == objects  # nothing stored twice
    # ... and the duplicate itself is skipped when seen again.
    assert ingest_file(project, copy).status == "skipped"
    assert len(batches(project)) == 2


def test_a_changed_file_at_the_same_path_is_a_new_batch(
    project: Project, small_reference: Path, tmp_path: Path
) -> None:
    path = tmp_path / "rolling.csv"
    lines = csv_lines(small_reference)
    path.write_text("".join(lines[:1001]))
    first = ingest_file(project, path)
    path.write_text(lines[0] + "".join(lines[1001:1501]))
    second = ingest_file(project, path)
    assert first.status == "accepted"
    assert second.status in ("accepted", "warned")  # may stray outside the first's ranges
    assert (first.rows, second.rows) == (1000, 500)
    assert first.batch_id != second.batch_id


def _write_gzip(src: Path, dst: Path) -> None:
    dst.write_bytes(gzip.compress(src.read_bytes()))


def _write_parquet(src: Path, dst: Path) -> None:
    con = duckdb.connect()
    try:
        con.execute(f"COPY (SELECT * FROM read_csv('{src}')) TO '{dst}' (FORMAT parquet)")
    finally:
        con.close()


@pytest.mark.parametrize(
    ("name", "writer", "fmt"),
    [("loans.csv.gz", _write_gzip, "csv.gz"), ("loans.parquet", _write_parquet, "parquet")],
)
def test_gzip_csv_and_parquet_inputs(
    project: Project,
    small_reference: Path,
    tmp_path: Path,
    name: str,
    writer: Callable[[Path, Path], None],
    fmt: str,
) -> None:
    path = tmp_path / name
    writer(small_reference, path)
    result = ingest_file(project, path)
    assert result.status == "accepted", result.issues
    assert result.rows == data_rows(small_reference)
    assert result.content_hash == sha256_file(path)
    [batch] = batches(project)
    assert batch["format"] == fmt
    assert result.snapshot_hash is not None
    snapshot = project.objects.verified_path(result.snapshot_hash)
    con = duckdb.connect()
    try:
        differing = con.execute(
            'SELECT count(*) FROM (SELECT loan_id, annual_income, "default" FROM read_csv(?) '
            'EXCEPT SELECT loan_id, annual_income, "default" FROM read_parquet(?))',
            [str(small_reference), str(snapshot)],
        ).fetchone()
    finally:
        con.close()
    assert differing == (0,)
    assert project.config.contract is not None
    assert list(project.config.contract.columns) == header_of(small_reference)


def test_an_unlabelled_batch_is_accepted_as_unlabelled(contracted: Project) -> None:
    week = SAMPLE / "stream" / "week_01.csv"
    assert TARGET not in header_of(week)
    result = ingest_file(contracted, week)
    assert result.status in ("accepted", "warned"), result.issues
    assert result.labelled is False
    assert result.rows == TRUTH["stream"][0]["rows"]
    assert not [i for i in result.issues if i.severity == "error"]
    row = contracted.catalog.row(
        "SELECT labelled, row_count FROM batches WHERE batch_id = ?", [result.batch_id]
    )
    assert row == {"labelled": False, "row_count": TRUTH["stream"][0]["rows"]}


def test_a_later_labelled_batch_is_labelled(contracted: Project, tmp_path: Path) -> None:
    lines = csv_lines(REFERENCE)
    path = tmp_path / "more.csv"
    path.write_text(lines[0] + "".join(lines[5001:5201]))
    result = ingest_file(contracted, path)
    assert result.status in ("accepted", "warned") and result.labelled is True
    assert result.rows == 200


# ---------------------------------------------------------------- the stream drifts


@dataclass
class StreamRun:
    root: Path
    reference: IngestResult
    weeks: list[IngestResult]
    reference_max_income: int
    """max(annual_income) of the reference, read independently."""
    new_category_rows: list[int]
    """Per week, rows with the truth's new loan_purpose category, read independently."""
    above_income_rows: list[int]
    """Per week, rows with annual_income above the reference's max, read independently."""


NEW_CATEGORY = TRUTH["new_categories"]["loan_purpose"]["category"]
NEW_CATEGORY_WEEK = TRUTH["new_categories"]["loan_purpose"]["first_week"]


@pytest.fixture(scope="module")
def stream_run(tmp_path_factory: pytest.TempPathFactory) -> StreamRun:
    """The full reference, then all 13 weeks, ingested in order into one project."""
    root = tmp_path_factory.mktemp("stream") / "loans"
    init_project(root, target=TARGET, id_column=ID)
    with open_project(root) as proj:
        reference = ingest_file(proj, REFERENCE)
        weeks = [ingest_file(proj, SAMPLE / w["file"]) for w in TRUTH["stream"]]
    files = [str(SAMPLE / w["file"]) for w in TRUTH["stream"]]
    con = duckdb.connect()
    try:
        ref_max = int(
            con.execute("SELECT max(annual_income) FROM read_csv(?)", [str(REFERENCE)]).fetchone()[
                0
            ]  # type: ignore[index]
        )
        counts = {
            name: (int(new), int(above))
            for name, new, above in con.execute(
                "SELECT filename, count(*) FILTER (loan_purpose = ?), count(*) FILTER (annual_income > ?)"
                " FROM read_csv(?, filename = true) GROUP BY filename",
                [NEW_CATEGORY, ref_max, files],
            ).fetchall()
        }
    finally:
        con.close()
    return StreamRun(
        root,
        reference,
        weeks,
        ref_max,
        [counts[f][0] for f in files],
        [counts[f][1] for f in files],
    )


def _issues(result: IngestResult, column: str, code: str) -> list[str]:
    return [i.message for i in result.issues if i.column == column and i.code == code]


def test_stream_weeks_are_accepted_unlabelled(stream_run: StreamRun) -> None:
    assert stream_run.reference.status == "accepted"
    assert stream_run.reference.rows == TRUTH["reference"]["rows"]
    for week, result in zip(TRUTH["stream"], stream_run.weeks, strict=True):
        assert result.status in ("accepted", "warned"), (week["week"], result.issues)
        assert result.rows == week["rows"]
        assert result.labelled is False
        assert not [i for i in result.issues if i.severity == "error"]


def test_the_new_loan_product_is_flagged_from_the_week_it_appears(stream_run: StreamRun) -> None:
    assert list(TRUTH["new_categories"]) == ["loan_purpose"]
    for week, result, count in zip(
        TRUTH["stream"], stream_run.weeks, stream_run.new_category_rows, strict=True
    ):
        flagged = _issues(result, "loan_purpose", "new_category")
        if week["week"] < NEW_CATEGORY_WEEK:
            assert count == 0 and flagged == [], week
        else:
            assert count > 0, week
            assert len(flagged) == 1, (week, result.issues)
            assert f"{count} row(s)" in flagged[0] and repr(NEW_CATEGORY) in flagged[0]


def test_undrifted_categories_raise_no_new_category_warning(stream_run: StreamRun) -> None:
    undrifted = set(TRUTH["undrifted_features"])
    for result in stream_run.weeks:
        flagged = {i.column for i in result.issues if i.code == "new_category"}
        assert not flagged & undrifted, result.issues


def test_inflated_incomes_go_out_of_range_in_late_weeks(stream_run: StreamRun) -> None:
    factors = TRUTH["features"]["annual_income"]["factor_by_week"]
    assert factors == sorted(factors) and factors[-1] > 1.1  # the truth: incomes inflate
    ref_max = stream_run.reference_max_income
    contract = load_config(stream_run.root / CONFIG_NAME).contract
    assert contract is not None and contract.columns["annual_income"].max == ref_max
    above = stream_run.above_income_rows
    for week, result, count in zip(TRUTH["stream"], stream_run.weeks, above, strict=True):
        flagged = _issues(result, "annual_income", "above_range")
        # The warning appears exactly when rows exceed the reference's max, and counts them.
        if count:
            assert len(flagged) == 1 and flagged[0].startswith(f"{count} value(s)"), week
            assert f"max {ref_max:g}" in flagged[0]
        else:
            assert flagged == [], week
    # With the strongest inflation, the last weeks exceed the reference's range,
    # and more often than the first weeks do.
    assert above[-1] > 0
    assert sum(above[-3:]) > sum(above[:3])


def test_the_stream_state_survives_reopening(stream_run: StreamRun) -> None:
    with open_project(stream_run.root) as proj:
        statuses = [r["status"] for r in batches(proj)]
        assert len(statuses) == 1 + len(TRUTH["stream"])
        warnings = proj.catalog.scalar(
            "SELECT count(*) FROM validation_issues WHERE code = 'new_category' AND column_name = 'loan_purpose'"
        )
    assert warnings == TRUTH["weeks"] - NEW_CATEGORY_WEEK + 1


# ---------------------------------------------------------------- hard failures


@dataclass
class BadCase:
    name: str
    make: Callable[[Path], bytes]
    """Builds the bad file's bytes from the reference CSV."""
    expect: tuple[str, ...]
    """Substrings the error message(s) must contain (case-insensitive)."""


def _lines() -> list[str]:
    return csv_lines(REFERENCE)


def _header() -> list[str]:
    return header_of(REFERENCE)


def _small(n: int = 60) -> str:
    return "".join(_lines()[: n + 1])


def _numeric_text(_: Path) -> bytes:
    lines, header = _lines(), _header()
    body = lines[3001:3040] + [set_field(lines[3040], "annual_income", "lots", header)]
    return (lines[0] + "".join(body)).encode()


def _duplicate_ids(_: Path) -> bytes:
    lines = _lines()
    return (lines[0] + "".join(lines[3001:3050]) + lines[3010]).encode()


def _null_ids(_: Path) -> bytes:
    lines, header = _lines(), _header()
    body = lines[3001:3050]
    body[3] = set_field(body[3], ID, "", header)
    body[20] = set_field(body[20], ID, "", header)
    return (lines[0] + "".join(body)).encode()


def _ragged(_: Path) -> bytes:
    lines = _lines()
    body = lines[3001:3030]
    body[9] = body[9].rstrip("\n") + ",extra,fields\n"  # file line 11
    return (lines[0] + "".join(body)).encode()


def _truncated_gzip(_: Path) -> bytes:
    data = gzip.compress(_small(500).encode())
    return data[: len(data) // 2]


def _truncated_parquet(tmp: Path) -> bytes:
    full = tmp / "full.parquet"
    csv_path = tmp / "part.csv"
    csv_path.write_text(_small(300))
    _write_parquet(csv_path, full)
    data = full.read_bytes()
    return data[: len(data) * 2 // 3]


def _late_latin1(_: Path) -> bytes:
    # Valid UTF-8 for well over the first 64 KiB, then one Latin-1 byte on file line 2002.
    lines = _lines()
    text = "".join(lines[:2001]) + set_field(lines[2001], "region", "nordé", _header())
    data = text.encode("latin-1")
    assert len(data.split(b"\xe9")[0]) > 64 * 1024
    return data


BAD_CASES = [
    BadCase("empty.csv", lambda _: b"", ("empty file (0 bytes)",)),
    BadCase("header_only.csv", lambda _: _lines()[0].encode(), ("header but no rows",)),
    BadCase(
        "no_feature.csv",
        lambda _: drop_column(_lines()[:60], "credit_score", _header()).encode(),
        ("column 'credit_score'", "missing"),
    ),
    BadCase(
        "no_id.csv",
        lambda _: drop_column(_lines()[:60], ID, _header()).encode(),
        (f"column '{ID}'", "missing"),
    ),
    BadCase("numeric_text.csv", _numeric_text, ("column 'annual_income'", "integer", "'lots'")),
    BadCase("duplicate_ids.csv", _duplicate_ids, (f"duplicate '{ID}'", "L0003010")),
    BadCase("null_ids.csv", _null_ids, (f"2 row(s) have no '{ID}'",)),
    BadCase(
        "garbage.csv",
        lambda _: bytes(range(256)) * 40,
        ("garbage.csv", "binary"),
    ),
    BadCase(
        "latin1.csv",
        lambda _: (_small(20).replace("full_time", "full_timé")).encode("latin-1"),
        ("latin1.csv", "not utf-8"),
    ),
    BadCase("latin1_late.csv", _late_latin1, ("latin1_late.csv", "utf-8", "2002")),
    BadCase("truncated.csv.gz", _truncated_gzip, ("truncated.csv.gz", "gzip", "truncated")),
    BadCase("truncated.parquet", _truncated_parquet, ("truncated.parquet", "parquet")),
    BadCase(
        "ragged.csv",
        _ragged,
        ("ragged.csv", "line 11 has 21 fields but the header has 19"),
    ),
    BadCase(
        "letter.txt",
        lambda _: (
            b"Dear risk team,\n"
            b"please find this week's loans attached; the numbers look fine.\n"
            b"Call me if anything, as usual, looks odd, or late, or wrong.\n"
            b"Best regards\n"
        ),
        ("letter.txt", "not a table"),
    ),
    BadCase(
        # A title line above the header: no line may be silently skipped to make it parse.
        "with_title.csv",
        lambda _: ("Loans export, week 14\n" + _lines()[0] + "".join(_lines()[3001:3031])).encode(),
        ("with_title.csv", "line 2 has 19 fields but the header has 2"),
    ),
    BadCase(
        "note.txt",
        lambda _: b"Loans for week 14\nNothing unusual this week\nSee you Monday\n",
        ("note.txt", "not a table"),
    ),
]


def _assert_quarantined(
    project: Project, source: Path, result: IngestResult, expect: tuple[str, ...]
) -> None:
    assert result.status == "quarantined", result.issues
    errors = [i for i in result.issues if i.severity == "error"]
    assert errors
    joined = " | ".join(i.message for i in errors).lower()
    for part in expect:
        assert part.lower() in joined, (part, joined)
    for issue in result.issues:
        assert "Traceback" not in issue.message

    # Byte for byte in the quarantine, with every reason beside it.
    assert result.quarantine_path is not None
    assert result.quarantine_path.parent == project.quarantine_dir
    assert result.quarantine_path.read_bytes() == source.read_bytes()
    reason = Path(str(result.quarantine_path) + ".reason.txt").read_text()
    assert str(source.resolve()) in reason and result.content_hash in reason
    for issue in result.issues:
        assert issue.message in reason

    # The catalog says the same, and holds no snapshot for it.
    batch = project.catalog.row("SELECT * FROM batches WHERE batch_id = ?", [result.batch_id])
    assert batch is not None
    assert batch["status"] == "quarantined"
    assert batch["snapshot_hash"] is None
    assert batch["quarantine_path"] == str(result.quarantine_path)
    assert batch["content_hash"] == sha256_file(source)
    recorded = project.catalog.rows(
        "SELECT severity, column_name, code, message FROM validation_issues WHERE batch_id = ?",
        [result.batch_id],
    )
    assert sorted(
        (r["severity"], r["column_name"], r["code"], r["message"]) for r in recorded
    ) == sorted((i.severity, i.column, i.code, i.message) for i in result.issues)
    assert list(project.quarantine_dir.glob(".*.tmp")) == []  # no half-written copies
    assert list(project.objects.tmp_dir.glob("*")) == []
    ingest_run = project.catalog.row(
        "SELECT status, ended_at FROM stage_runs WHERE stage = 'ingest' ORDER BY run_id DESC LIMIT 1"
    )
    assert ingest_run is not None
    assert ingest_run["status"] == "quarantined" and ingest_run["ended_at"] is not None


@pytest.mark.parametrize("case", BAD_CASES, ids=[c.name for c in BAD_CASES])
def test_a_hard_failure_is_quarantined_byte_for_byte(
    contracted: Project, tmp_path: Path, case: BadCase
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    source = tmp_path / case.name
    source.write_bytes(case.make(work))
    before = FileState.of(source)
    config_before = (contracted.root / CONFIG_NAME).read_bytes()
    objects_before = object_digests(contracted)
    batches_before = len(batches(contracted))

    result = ingest_file(contracted, source)

    _assert_quarantined(contracted, source, result, case.expect)
    assert FileState.of(source) == before  # the source is untouched and still there
    assert (contracted.root / CONFIG_NAME).read_bytes() == config_before  # contract unchanged
    assert object_digests(contracted) == objects_before  # no snapshot stored
    assert len(batches(contracted)) == batches_before + 1
    # Seen once: the same file again is skipped, not quarantined twice.
    assert ingest_file(contracted, source).status == "skipped"
    assert len(list(contracted.quarantine_dir.glob(f"*{case.name}"))) == 1


@pytest.mark.parametrize(
    ("name", "make", "expect"),
    [
        (
            "unlabelled_first.csv",
            lambda: (
                "".join(_lines()[:200])
                .replace(",0\n", "\n")
                .replace(",1\n", "\n")
                .replace(f",{TARGET}\n", "\n")
            ),
            (f"target column '{TARGET}' is missing",),
        ),
        (
            "dup_first.csv",
            lambda: "".join(_lines()[:200]) + _lines()[7],
            (f"duplicate '{ID}'",),
        ),
        (
            "no_id_first.csv",
            lambda: drop_column(_lines()[:200], ID, _header()),
            (f"'{ID}' is missing",),
        ),
    ],
)
def test_a_bad_first_batch_is_quarantined_and_writes_no_contract(
    project: Project, tmp_path: Path, name: str, make: Callable[[], str], expect: tuple[str, ...]
) -> None:
    source = tmp_path / name
    source.write_text(make())
    config_before = (project.root / CONFIG_NAME).read_bytes()
    result = ingest_file(project, source)
    _assert_quarantined(project, source, result, expect)
    assert (project.root / CONFIG_NAME).read_bytes() == config_before
    assert project.config.contract is None
    # A good batch afterwards becomes the contract.
    good = tmp_path / "good.csv"
    good.write_text("".join(_lines()[:300]))
    assert ingest_file(project, good).status == "accepted"
    assert project.config.contract is not None
    assert project.config.contract.inferred_from == "good.csv"


def test_after_many_failures_the_catalog_is_consistent_and_still_works(
    contracted: Project, tmp_path: Path
) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    for case in BAD_CASES:
        (drop / case.name).write_bytes(case.make(tmp_path))
    good = drop / "zz_good.csv"
    good.write_text(_lines()[0] + "".join(_lines()[3001:3101]))
    results = ingest_paths(contracted, [drop])
    by_name = {r.path.name: r.status for r in results}
    assert by_name.pop("zz_good.csv") in ("accepted", "warned")
    assert set(by_name.values()) == {"quarantined"} and len(by_name) == len(BAD_CASES)
    root = contracted.root
    contracted.close()

    # A fresh process sees every batch, each quarantined one with its reasons and its copy.
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import json
                from pathlib import Path
                from storage.catalog import Catalog
                with Catalog.open(Path({str(root / ".mldeck" / "catalog.duckdb")!r})) as cat:
                    print(json.dumps(cat.rows(
                        "SELECT b.batch_id, b.source_name, b.status, b.quarantine_path, count(v.batch_id) AS errors"
                        " FROM batches b LEFT JOIN validation_issues v"
                        " ON v.batch_id = b.batch_id AND v.severity = 'error'"
                        " GROUP BY ALL ORDER BY b.batch_id"
                    )))
                    print(cat.scalar("SELECT count(*) FROM stage_runs WHERE status = 'running'"))
                """
            ),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert probe.returncode == 0, probe.stderr
    rows_json, running = probe.stdout.strip().splitlines()
    rows = json.loads(rows_json)
    assert running == "0"
    assert len(rows) == 1 + len(BAD_CASES) + 1  # the reference, the failures, the good one
    for row in rows:
        if row["status"] == "quarantined":
            assert row["errors"] >= 1
            quarantined = Path(row["quarantine_path"])
            assert quarantined.read_bytes() == (drop / row["source_name"]).read_bytes()
        else:
            assert row["errors"] == 0 and row["quarantine_path"] is None
    assert sorted(p.name for p in drop.iterdir()) == sorted(
        [c.name for c in BAD_CASES] + ["zz_good.csv"]
    )


def test_infinite_and_nan_values_leave_the_column_unbounded(
    project: Project, tmp_path: Path
) -> None:
    # inf / NaN in the first batch must not become a contract bound that cannot be read back.
    path = tmp_path / "odd.csv"
    path.write_text("loan_id,ratio,score,default\nA,1.5,3,0\nB,inf,4,1\nC,-inf,5,0\nD,nan,6,1\n")
    result = ingest_file(project, path)
    assert result.status == "accepted", result.issues
    config = load_config(project.root / CONFIG_NAME)  # still a valid config
    assert config.contract is not None
    ratio = config.contract.columns["ratio"]
    assert (ratio.type, ratio.min, ratio.max) == ("float", None, None)
    score = config.contract.columns["score"]
    assert (score.min, score.max) == (3.0, 6.0)
    later = tmp_path / "later.csv"
    later.write_text("loan_id,ratio,score,default\nE,1e9,9,0\n")
    flagged = {(i.column, i.code) for i in ingest_file(project, later).issues}
    assert flagged == {("score", "above_range")}


# ---------------------------------------------------------------- which paths are ingested


def test_hidden_temporary_and_partial_files_are_skipped(tmp_path: Path) -> None:
    folder = tmp_path / "incoming"
    folder.mkdir()
    for name in (
        "b.csv",
        "a.parquet",
        ".hidden.csv",
        "upload.tmp",
        "big.csv.part",
        "~lock.csv",
        "edit.csv~",
        ".swap.swp",
        "c.csv.gz",
    ):
        (folder / name).write_text("x\n1\n")
    (folder / "sub").mkdir()
    (folder / "sub" / "inner.csv").write_text("x\n1\n")
    assert [p.name for p in expand_paths([folder])] == ["a.parquet", "b.csv", "c.csv.gz"]


def test_a_file_given_directly_is_taken(tmp_path: Path) -> None:
    path = tmp_path / "one.csv"
    path.write_text("x\n1\n")
    other = tmp_path / "two.csv"
    other.write_text("x\n2\n")
    assert expand_paths([other, path]) == [other, path]


def test_a_missing_path_is_an_input_error_and_nothing_is_ingested(
    project: Project, small_reference: Path, tmp_path: Path
) -> None:
    missing = tmp_path / "nope" / "week_99.csv"
    with pytest.raises(InputFileError) as err:
        expand_paths([missing])
    assert str(missing) in err.value.msg
    with pytest.raises(InputFileError):
        ingest_paths(project, [small_reference, missing])
    assert batches(project) == []


# ---------------------------------------------------------------- stage runs


def test_ingest_and_validate_runs_are_recorded(
    project: Project, small_reference: Path, tmp_path: Path
) -> None:
    good = ingest_file(project, small_reference)
    bad = tmp_path / "dups.csv"
    bad.write_text(_lines()[0] + "".join(_lines()[3001:3020]) + _lines()[3005])
    ingest_file(project, bad)
    unreadable = tmp_path / "blob.csv"
    unreadable.write_bytes(b"\x00" * 100)
    ingest_file(project, unreadable)

    runs = project.catalog.rows("SELECT * FROM stage_runs ORDER BY run_id")
    assert [(r["stage"], r["status"]) for r in runs] == [
        ("ingest", "succeeded"),
        ("validate", "succeeded"),
        ("ingest", "quarantined"),
        ("validate", "quarantined"),
        ("ingest", "quarantined"),  # unreadable: nothing to validate
    ]
    for run in runs:
        assert run["pid"] == os.getpid()
        assert run["ended_at"] is not None and run["ended_at"] >= run["started_at"]
        assert run["error"] is None
    first_inputs = json.loads(runs[0]["inputs_json"])
    assert first_inputs == {"source": str(small_reference.resolve()), "sha256": good.content_hash}
    first_outputs = json.loads(runs[0]["outputs_json"])
    assert first_outputs["batch_id"] == good.batch_id
    assert first_outputs["rows"] == good.rows
    assert first_outputs["snapshot"] == good.snapshot_hash
    assert json.loads(runs[3]["outputs_json"])["errors"] == 1


def test_a_failing_stage_is_recorded_as_failed(project: Project) -> None:
    with pytest.raises(ValueError, match="no rows to train on"):
        with stage_run(project.catalog, "train", {"candidate": "forest"}) as run:
            run.outputs = {"done": 0}
            raise ValueError("no rows to train on")
    row = project.catalog.row("SELECT * FROM stage_runs")
    assert row is not None
    assert (row["stage"], row["status"], row["error"]) == ("train", "failed", "no rows to train on")
    assert json.loads(row["outputs_json"]) == {"done": 0}
    assert json.loads(row["inputs_json"]) == {"candidate": "forest"}


def test_a_run_left_running_by_a_dead_process_becomes_interrupted(
    project: Project,
) -> None:
    catalog_path = project.catalog.path
    project.catalog.close()
    # A process that crashes in the middle of a stage: the row stays 'running'.
    crashed = subprocess.run(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import os
                from pathlib import Path
                from storage.catalog import Catalog
                from engine.records.stage_runs import stage_run
                cat = Catalog.open(Path({str(catalog_path)!r}))
                with stage_run(cat, "train", {{"candidate": "mlp"}}):
                    print(os.getpid(), flush=True)
                    os._exit(9)
                """
            ),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert crashed.returncode == 9, crashed.stderr
    dead_pid = int(crashed.stdout.strip())

    from storage.catalog import Catalog

    catalog = Catalog.open(catalog_path)
    project.catalog = catalog  # closed by the open_proj fixture
    assert catalog.rows("SELECT stage, status, pid FROM stage_runs") == [
        {"stage": "train", "status": "running", "pid": dead_pid}
    ]
    # A run that a live process (our parent) is doing is left alone.
    catalog.execute(
        "INSERT INTO stage_runs (stage, status, started_at, pid) VALUES ('ingest', 'running', now(), ?)",
        [os.getppid()],
    )
    assert mark_interrupted(catalog) == 1
    rows = catalog.rows("SELECT stage, status, ended_at FROM stage_runs ORDER BY run_id")
    assert [(r["stage"], r["status"]) for r in rows] == [
        ("train", "interrupted"),
        ("ingest", "running"),
    ]
    assert rows[0]["ended_at"] is not None
    assert mark_interrupted(catalog) == 0


def test_ingest_events_report_start_and_finish(project: Project, small_reference: Path) -> None:
    from engine.core.events import StageFinished, StageStarted

    seen: list[object] = []
    ingest_file(project, small_reference, seen.append)
    ingest_file(project, small_reference, seen.append)
    assert seen[0] == StageStarted("ingest", small_reference.name)
    assert isinstance(seen[1], StageFinished) and seen[1].status == "accepted"
    assert isinstance(seen[-1], StageFinished) and seen[-1].status == "skipped"
