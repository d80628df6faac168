"""Any column header works end to end: ingest, validation, training (all four kinds),
ONNX export, scoring, serving by raw name over both protocols, drift, report, lineage.

Three parts: the raw -> input name mapping itself (properties, with hypothesis);
a generated corpus of hostile headers (seeded: spaces, quotes, dots, leading
digits, accents and other scripts, SQL keywords, `;` `--`, `%`, `(€)`, markup,
very long names) through ingest + train + scoring in a project whose path holds
a quote; and the sample reference with every header renamed as a spreadsheet
would have it, trained, served by a real `mldeck serve`, and drifted.
Also: a target or id column that is not in the data is one line, exit 1.
"""

from __future__ import annotations

import csv
import json
import os
import random
import re
import subprocess
import sys
import unicodedata
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from engine.core.errors import ConfigError
from engine.core.project import init_project, open_project
from engine.data.input_names import MAX_LENGTH, input_names, safe_input_name
from tests.conftest import (
    FAST_MODELS,
    REPO,
    SAMPLE,
    append_models,
    serve_in_thread,
    start_server,
    stop_server,
)

PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

# What a spreadsheet export of the sample data looks like.
SPREADSHEET = {
    "loan_id": "Loan ID",
    "application_date": "Application Date",
    "age": "Âge",
    "annual_income": "Annual Income ($)",
    "loan_amount": "Loan Amount (€)",
    "term_months": "Term (months)",
    "interest_rate": "Interest Rate %",
    "credit_score": "Credit Score",
    "debt_to_income": "Debt-to-Income",
    "employment_years": "Employment Years",
    "num_open_accounts": "# Open Accounts",
    "num_delinquencies": "Nb. Delinquencies",
    "credit_utilization": "Credit Utilization %",
    "months_since_last_delinquency": "Months Since Last Delinquency",
    "home_ownership": "Home Ownership",
    "loan_purpose": "Loan Purpose",
    "employment_type": "Employment Type",
    "region": "Région",
    "default": "Defaulted?",
}

TINY_FOUR = """
[models.linear]
kind = "linear"

[models.forest]
kind = "random_forest"
n_estimators = 5
max_depth = 4

[models.boost]
kind = "gradient_boosting"
n_estimators = 5

[models.mlp]
kind = "mlp"
hidden = [4]
epochs = 1
"""


def mldeck(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run the real CLI in a child process."""
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "250"},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def post_json(port: int, path: str, body: Any, content_type: str = "application/json") -> Any:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=data, headers={"Content-Type": content_type}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def get_json(port: int, path: str) -> Any:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as response:
        return json.loads(response.read())


# ------------------------------------------------------------------ the mapping


@given(st.text(min_size=1, max_size=300))
@example("mldeck_classes")
@example("label")
@example("1st")
@example("年龄")
@example("x" * 200)
def test_every_name_maps_to_a_plain_bounded_input_name(column: str) -> None:
    name = safe_input_name(column)
    assert PLAIN.match(name), name
    assert len(name) <= MAX_LENGTH
    assert safe_input_name(column) == name  # the same every time (it is recorded, not redone)
    assert safe_input_name(name) == name  # an input name is its own input name


@given(st.from_regex(PLAIN, fullmatch=True).filter(lambda s: len(s) <= MAX_LENGTH))
def test_a_plain_header_is_its_own_input_name(column: str) -> None:
    if column in ("label", "probabilities", "prediction", "features") or column.startswith(
        "mldeck_"
    ):
        assert safe_input_name(column) != column  # the graphs' own tensor names are taken
    else:
        assert safe_input_name(column) == column


def test_spreadsheet_names_read_like_their_headers() -> None:
    names = input_names(SPREADSHEET.values())
    assert names["Loan Amount (€)"] == "Loan_Amount_eur"
    assert names["Interest Rate %"] == "Interest_Rate_pct"
    assert names["Âge"] == "Age"
    assert names["# Open Accounts"] == "num_Open_Accounts"
    assert len(set(names.values())) == len(names)


@pytest.mark.parametrize(
    ("first", "second"),
    [("loan amount", "loan_amount"), ("Âge", "Age"), ("Rate (%)", "Rate pct"), ("a.b", "a-b")],
)
def test_two_columns_with_one_input_name_are_an_error_naming_both(first: str, second: str) -> None:
    with pytest.raises(ConfigError) as caught:
        input_names(["x", first, second])
    message = caught.value.msg
    assert repr(first) in message and repr(second) in message
    assert "\n" not in message


# ------------------------------------------------------------------ a generated corpus

FRAGMENTS = [
    "loan amount",
    "Interest Rate %",
    "(€)",
    "Âge",
    "naïve café",
    "Größe",
    "年龄",
    "доход",
    "😀 score",
    'say "hi"',
    "it's",
    "O'Brien",
    "a.b.c",
    "1st",
    "2024",
    "SELECT",
    "DROP TABLE batches",
    "FROM",
    "order",
    "group by",
    ";",
    "--",
    "/* x */",
    "%",
    "%s",
    "{}",
    "{0}",
    "$1",
    "?",
    "[x]",
    "[/]",
    "[bold]",
    "\\",
    "a,b",
    "tab\there",
    "label",
    "features",
    "prediction",
    "probabilities",
    "mldeck_x",
    "'); DROP TABLE t; --",
    '"',
    "'",
]
SEPARATORS = [" ", "_", ".", "-", "", " / ", "  "]
HOSTILE_CATEGORIES = ["O'Brien", 'say "hi"', "naïve", "a,b", "%", "[/]", "--"]


def hostile_names(rng: random.Random, count: int) -> list[str]:
    """`count` distinct hostile headers, as DuckDB reads them (trimmed, NFC) and each a
    distinct input name (the clash of two is its own test)."""
    names: list[str] = []
    taken: set[str] = set()
    while len(names) < count:
        parts = rng.sample(FRAGMENTS, rng.randint(1, 3))
        name = rng.choice(SEPARATORS).join(parts)
        if rng.random() < 0.15:
            name = (name + " ") * rng.randint(20, 40)  # very long
        name = unicodedata.normalize("NFC", name.strip())
        key = name.lower()
        if not name or key in taken or safe_input_name(name).lower() in taken:
            continue
        taken |= {key, safe_input_name(name).lower()}
        names.append(name)
    return names


def corpus_table(rng: random.Random, rows: int) -> tuple[dict[str, list[Any]], dict[str, Any]]:
    """A labelled table whose every header (id, target, features) is hostile, and its names."""
    id_name, target, *features = hostile_names(rng, 9)
    numeric, categorical = features[:5], features[5:]
    table: dict[str, list[Any]] = {id_name: [f"r'{i:04d}" for i in range(rows)]}
    for name in numeric:
        table[name] = [round(rng.gauss(0, 1), 4) for _ in range(rows)]
    for name in categorical:
        table[name] = [rng.choice(HOSTILE_CATEGORIES) for _ in range(rows)]
    signal = table[numeric[0]]
    table[target] = [int(v + rng.gauss(0, 0.5) > 0) for v in signal]
    names = {"id": id_name, "target": target, "numeric": numeric, "categorical": categorical}
    return table, names


def write_csv(path: Path, table: dict[str, list[Any]], rows: slice = slice(None)) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(list(table))
        writer.writerows(zip(*(values[rows] for values in table.values()), strict=True))


@pytest.mark.parametrize(
    "seed", [11, pytest.param(12, marks=pytest.mark.slow), pytest.param(13, marks=pytest.mark.slow)]
)
def test_generated_hostile_headers_ingest_train_and_score(tmp_path: Path, seed: int) -> None:
    from engine.models.scoring import score_version, version_inputs
    from engine.pipeline.intake import ingest_file, ingest_labels_file
    from engine.pipeline.training_run import train
    from engine.records.registry import get_version

    rng = random.Random(seed)
    data = tmp_path / "drop" / "week's data (v2).csv"
    data.parent.mkdir()
    table, names = corpus_table(rng, rows=360)
    write_csv(data, table, slice(0, 240))
    root = tmp_path / f"it's a project {seed}"
    init_project(root, target=names["target"], id_column=names["id"])
    append_models(root, TINY_FOUR)
    features = names["numeric"] + names["categorical"]
    with open_project(root) as project:
        result = ingest_file(project, data)
        assert result.status == "accepted", [i.message for i in result.issues]
        assert project.config.contract is not None
        assert list(project.config.contract.columns) == [names["id"], *features, names["target"]]

        trained = train(project)
        assert [(o.kind, o.status, o.error) for o in trained.outcomes] == [
            (kind, "registered", None)
            for kind in ("linear", "random_forest", "gradient_boosting", "mlp")
        ]
        frame = pl.read_database(
            "SELECT * FROM read_csv($p, header = true, skip = 0)",
            project.catalog.conn,
            execute_options={"parameters": {"p": str(data)}},
        )
        assert frame.columns == [names["id"], *features, names["target"]]
        for outcome in trained.outcomes:
            assert outcome.version is not None
            row = get_version(project.catalog, outcome.version)
            inputs = version_inputs(project, row)
            assert sorted(i.column for i in inputs) == sorted(features)
            assert all(PLAIN.match(i.name) for i in inputs)
            scores = score_version(project, row, frame)
            assert scores.shape == (frame.height, 2)
            assert np.allclose(scores.sum(axis=1), 1.0, atol=1e-5)

        # A later batch without its target, labelled by a labels file: joined by the
        # hostile id into a new snapshot, and trained on.
        unlabelled = {k: v for k, v in table.items() if k != names["target"]}
        later, labels = tmp_path / "drop" / "later; batch.csv", tmp_path / "drop" / "labels.csv"
        write_csv(later, unlabelled, slice(240, 360))
        write_csv(labels, {k: table[k] for k in (names["id"], names["target"])}, slice(240, 360))
        assert ingest_file(project, later).status in ("accepted", "warned")
        assert ingest_labels_file(project, labels).status == "accepted"
        again = train(project, only=["linear"])
        assert again.train_rows + again.holdout_rows == 360
        assert [o.status for o in again.outcomes] == ["registered"]


# ------------------------------------------------------------------ the sample, as a spreadsheet has it


def spreadsheet_csv(source: Path, target: Path, rows: int | None = None) -> None:
    """`source` with every header renamed as in SPREADSHEET (the values untouched)."""
    with open(source, newline="") as src, open(target, "w", newline="", encoding="utf-8") as dst:
        reader, writer = csv.reader(src), csv.writer(dst)
        writer.writerow([SPREADSHEET[name] for name in next(reader)])
        for i, row in enumerate(reader):
            if rows is not None and i >= rows:
                break
            writer.writerow(row)


@pytest.mark.slow
def test_spreadsheet_headers_train_serve_both_protocols_and_drift(
    tmp_path: Path, small_reference: Path
) -> None:
    parent = tmp_path / "team's data"
    parent.mkdir()
    name = "loans 'Q1' 2024"
    made = mldeck("init", name, "--target", "Defaulted?", "--id", "Loan ID", cwd=parent)
    assert made.returncode == 0, made.stderr
    root = parent / name
    append_models(root, FAST_MODELS)
    spreadsheet_csv(small_reference, root / "data" / "incoming" / "Loans Q1 (final).csv")

    ingested = mldeck("ingest", cwd=root)
    assert ingested.returncode == 0, ingested.stderr
    assert "accepted" in ingested.stdout
    trained = mldeck("train", "--json", cwd=root)
    assert trained.returncode == 0, trained.stderr
    run = json.loads(trained.stdout)
    outcomes = run["candidates"]
    assert sorted((o["kind"], o["status"]) for o in outcomes) == [
        ("gradient_boosting", "registered"),
        ("linear", "registered"),
        ("mlp", "registered"),
        ("random_forest", "registered"),
    ]

    features = [
        SPREADSHEET[c]
        for c in SPREADSHEET
        if c not in ("loan_id", "application_date", "default")  # id, ignored date, target
    ]
    champion = json.loads(mldeck("lineage", "--json", str(run["champion"]), cwd=root).stdout)
    spec = champion["feature_definition"]["spec"]
    assert sorted(spec["numeric"] + spec["categorical"]) == sorted(features)
    assert spec["input_names"]["Loan Amount (€)"] == "Loan_Amount_eur"

    # What the champion answers, computed in process before the server holds the project.
    from engine.models.scoring import score_version
    from engine.records.registry import get_version

    rows = pl.read_csv(root / "data" / "incoming" / "Loans Q1 (final).csv").head(6)
    rows = rows.drop("Defaulted?")
    with open_project(root) as project:
        want = score_version(project, get_version(project.catalog, champion["version"]), rows)

    server, port = start_server(root)
    try:
        model = urllib.parse.quote(name, safe="")
        meta = get_json(port, f"/v2/models/{model}")
        assert sorted(i["name"] for i in meta["inputs"]) == sorted(features)

        def check(predictions: list[dict[str, Any]]) -> None:
            got = np.array([p["probabilities"] for p in predictions])
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)

        split = {"columns": rows.columns, "data": [list(r) for r in rows.rows()]}
        check(post_json(port, "/invocations", {"dataframe_split": split})["predictions"])
        records = rows.to_dicts()
        check(post_json(port, "/invocations", {"dataframe_records": records})["predictions"])
        check(post_json(port, "/invocations", {"instances": records})["predictions"])
        check(
            post_json(port, "/invocations", {"inputs": rows.to_dict(as_series=False)})[
                "predictions"
            ]
        )
        check(post_json(port, "/invocations", rows.write_csv().encode(), "text/csv")["predictions"])

        inputs = []
        for item in meta["inputs"]:
            values = rows[item["name"]].to_list()
            inputs.append(
                {"name": item["name"], "datatype": item["datatype"], "shape": [len(values), 1]}
                | {"data": values}
            )
        answer = post_json(port, f"/v2/models/{model}/infer", {"inputs": inputs})
        probabilities = next(o for o in answer["outputs"] if o["name"] == "probabilities")
        np.testing.assert_allclose(
            np.array(probabilities["data"]).reshape(want.shape), want, rtol=0, atol=1e-5
        )

        # Enough served rows for a drift window of the served log.
        more = pl.read_csv(root / "data" / "incoming" / "Loans Q1 (final).csv").head(400)
        more_split = {"columns": more.columns, "data": [list(r) for r in more.rows()]}
        post_json(port, "/invocations", {"dataframe_split": more_split})
    finally:
        stop_server(server)

    logged = mldeck("drift", "--source", "log", "--window", "1h", "--json", cwd=root)
    assert logged.returncode == 0, logged.stderr
    assert sorted(f["feature"] for f in json.loads(logged.stdout)["features"]) == sorted(features)

    # A drifted week, headers as the spreadsheet has them: drift shows under those names.
    spreadsheet_csv(SAMPLE / "stream" / "week_13.csv", root / "data" / "incoming" / "Week 13.csv")
    assert mldeck("ingest", cwd=root).returncode == 0
    drift = mldeck("drift", "--json", cwd=root)
    assert drift.returncode == 0, drift.stderr
    found = json.loads(drift.stdout)
    assert sorted(f["feature"] for f in found["features"]) == sorted(features)
    assert {"Âge", "Loan Purpose"} <= set(found["drifted"])
    purpose = next(f for f in found["features"] if f["feature"] == "Loan Purpose")
    assert "bnpl" in (purpose["new_categories"] or {})
    table = mldeck("drift", cwd=root)
    assert table.returncode == 0 and "Loan Amount (€)" in table.stdout

    report = mldeck("report", "--out", "drift report.html", cwd=root)
    assert report.returncode == 0, report.stderr
    page = (root / "drift report.html").read_text(encoding="utf-8")
    for feature in ("Âge", "Loan Amount (€)", "Interest Rate %", "# Open Accounts"):
        assert feature in page


def test_hostile_markup_and_quotes_show_verbatim_in_the_cli(tmp_path: Path) -> None:
    """Feature names that look like console markup or SQL are printed as they are."""
    rng = random.Random(5)
    root = tmp_path / "proj"
    data = tmp_path / "batch.csv"
    rows = 120
    table = {
        "id": [f"r{i}" for i in range(rows)],
        "x [/]": [rng.random() for _ in range(rows)],
        "[bold]y": [rng.random() for _ in range(rows)],
        "it's": [rng.choice("ab") for _ in range(rows)],
        "target": [rng.randint(0, 1) for _ in range(rows)],
    }
    with open(data, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(list(table))
        writer.writerows(zip(*table.values(), strict=True))
    init_project(root, target="target", id_column="id")
    append_models(root, '\n[models.linear]\nkind = "linear"\n')
    assert mldeck("ingest", str(data), cwd=root).returncode == 0
    assert mldeck("train", cwd=root).returncode == 0
    lineage = mldeck("lineage", "1", cwd=root)
    assert lineage.returncode == 0, lineage.stderr
    assert "x [/]" in lineage.stdout and "[bold]y" in lineage.stdout
    assert "x [/] -> x" in lineage.stdout

    from engine.serving.app import create_app

    with open_project(root) as project:
        app = create_app(project)
        try:
            with serve_in_thread(app) as port:
                inputs = [
                    {"name": "x [/]", "datatype": "FP64", "shape": [2], "data": [0.1, 0.9]},
                    {"name": "[bold]y", "datatype": "FP64", "shape": [2], "data": [0.5, 0.2]},
                    {"name": "it's", "datatype": "BYTES", "shape": [2], "data": ["a", "b"]},
                ]
                answer = post_json(
                    port, "/v2/models/proj/infer", {"id": "req [/] 1", "inputs": inputs}
                )
                assert answer["id"] == "req [/] 1"
        finally:
            app.close()
    explained = mldeck("explain", "req [/] 1", cwd=root)
    assert explained.returncode == 0, explained.stderr
    assert '"x [/]": 0.1' in explained.stdout and '"it\'s": "b"' in explained.stdout


# ------------------------------------------------------------------ columns that are not there


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory, small_reference: Path) -> Path:
    from engine.pipeline.intake import ingest_file

    root = tmp_path_factory.mktemp("missing") / "proj"
    init_project(root, target="default", id_column="loan_id")
    append_models(root, '\n[models.linear]\nkind = "linear"\n')
    with open_project(root) as project:
        assert ingest_file(project, small_reference).status == "accepted"
    return root


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ('target = "default"', 'target = "defualt"', "[data] target = 'defualt'"),
        ('id = "loan_id"', 'id = "Loan ID"', "[data] id = 'Loan ID'"),
    ],
)
def test_a_target_or_id_column_that_is_not_there_is_one_line(
    ingested: Path, tmp_path: Path, old: str, new: str, key: str
) -> None:
    import shutil

    root = tmp_path / "proj"
    shutil.copytree(ingested, root)
    config = root / "mldeck.toml"
    assert old in config.read_text()
    config.write_text(config.read_text().replace(old, new, 1))
    result = mldeck("train", cwd=root)
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr and "Binder" not in result.stderr
    assert "mldeck.toml" in lines[0] and key in lines[0]


def test_a_contract_column_no_batch_has_is_one_line(ingested: Path, tmp_path: Path) -> None:
    import shutil

    root = tmp_path / "proj"
    shutil.copytree(ingested, root)
    config = root / "mldeck.toml"
    text = config.read_text()
    anchor = "[contract.columns]\n"
    assert anchor in text
    config.write_text(text.replace(anchor, anchor + '"Loan Amount (€)" = {type = "float"}\n', 1))
    result = mldeck("train", cwd=root)
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "[contract.columns] 'Loan Amount (€)'" in lines[0]


# ------------------------------------------------------------------ the UI


@pytest.mark.slow
async def test_the_ui_shows_every_screen_with_hostile_headers(
    tmp_path: Path, small_reference: Path
) -> None:
    """Every screen of the UI on a project whose headers are a spreadsheet's, two of
    them written like console markup; the drift screen lists and charts them by name."""
    from textual.widgets import DataTable

    from app.ui.app import make_app
    from engine.pipeline.intake import ingest_file
    from engine.pipeline.training_run import train

    headers = {**SPREADSHEET, "region": "Région [/]", "home_ownership": "[bold]Home"}
    root = tmp_path / "it's the UI"
    reference, week = tmp_path / "reference.csv", tmp_path / "week 13.csv"
    for source, target, rows in (
        (small_reference, reference, 1500),
        (SAMPLE / "stream" / "week_13.csv", week, None),
    ):
        with open(source, newline="") as src, open(target, "w", newline="") as dst:
            reader, writer = csv.reader(src), csv.writer(dst)
            writer.writerow([headers[name] for name in next(reader)])
            for i, row in enumerate(reader):
                if rows is not None and i >= rows:
                    break
                writer.writerow(row)
    init_project(root, target="Defaulted?", id_column="Loan ID")
    append_models(root, '\n[models.linear]\nkind = "linear"\n')
    with open_project(root) as project:
        assert ingest_file(project, reference).status == "accepted"
        assert train(project).champion == 1
        assert ingest_file(project, week).status in ("accepted", "warned")

    app, close = make_app(root, actor="tester", refresh_s=600, parts=())
    try:
        async with app.run_test(size=(120, 36)) as pilot:
            for key in "1234567":
                await pilot.press(key)
                for _ in range(3):
                    await pilot.pause()
                    await app.workers.wait_for_complete()
                if key == "4":
                    table = app.screen.query_one("#features", DataTable)
                    names = [str(table.get_row_at(i)[0]) for i in range(table.row_count)]
                    assert {"Âge", "Région [/]", "[bold]Home", "Loan Amount (€)"} <= set(names)
                    for _ in range(names.index("Région [/]")):
                        await pilot.press("down")
                    await pilot.pause()
                    await app.workers.wait_for_complete()
                    await pilot.pause()
                    assert app.screen.selected_feature == "Région [/]"  # type: ignore[attr-defined]
            errors = [n.message for n in app._notifications if n.severity == "error"]
            assert not errors
    finally:
        close()


def test_without_an_id_column_hostile_headers_split_and_train(tmp_path: Path) -> None:
    """The split hashes the row values when there is no id: every column name quoted."""
    from engine.pipeline.intake import ingest_file
    from engine.pipeline.reproduce import IDENTICAL, reproduce_version
    from engine.pipeline.training_run import train

    rng = random.Random(21)
    table, names = corpus_table(rng, rows=200)
    del table[names["id"]]
    table['a"; DROP TABLE batches; --'] = [rng.random() for _ in range(200)]
    data = tmp_path / "no id.csv"
    write_csv(data, table)
    root = tmp_path / "it's got no id"
    init_project(root, target=names["target"], id_column=None)
    append_models(root, '\n[models.linear]\nkind = "linear"\n')
    with open_project(root) as project:
        assert ingest_file(project, data).status == "accepted"
        assert project.config.id_column is None
        result = train(project)
        assert [o.status for o in result.outcomes] == ["registered"]
        assert result.train_rows + result.holdout_rows == 200 and result.holdout_rows > 0
        # Rebuilt from the recorded feature definition (its input names): the same model.
        assert reproduce_version(project, 1, actor="tester").verdict == IDENTICAL


def test_two_headers_with_one_input_name_fail_training_with_one_line(tmp_path: Path) -> None:
    rng = random.Random(3)
    rows = 100
    table = {
        "id": [f"r{i}" for i in range(rows)],
        "Loan Amount": [rng.random() for _ in range(rows)],
        "Loan_Amount": [rng.random() for _ in range(rows)],
        "target": [rng.randint(0, 1) for _ in range(rows)],
    }
    data = tmp_path / "clash.csv"
    write_csv(data, table)
    root = tmp_path / "proj"
    init_project(root, target="target", id_column="id")
    append_models(root, '\n[models.linear]\nkind = "linear"\n')
    assert mldeck("ingest", str(data), cwd=root).returncode == 0
    result = mldeck("train", cwd=root)
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "'Loan Amount'" in lines[0] and "'Loan_Amount'" in lines[0]
    assert "[data] ignore" in lines[0]


def test_headers_named_like_mldecks_own_columns_train_or_are_refused_by_name(
    tmp_path: Path,
) -> None:
    """`__holdout` (the split flag) and `__count__` (drift's counts) are data like any other;
    `__prediction__` is the model output's name in drift profiles, so a batch using it is
    quarantined with one line naming it."""
    from engine.pipeline.intake import ingest_file
    from engine.pipeline.training_run import train

    rng = random.Random(5)
    rows = 200
    table = {
        "id": [f"r{i}" for i in range(rows)],
        "__holdout": [rng.random() for _ in range(rows)],
        "__count__": [rng.choice(["a", "b", "c"]) for _ in range(rows)],
        "target": [rng.randint(0, 1) for _ in range(rows)],
    }
    data = tmp_path / "own names.csv"
    write_csv(data, table)
    root = tmp_path / "proj"
    init_project(root, target="target", id_column="id")
    append_models(root, '\n[models.linear]\nkind = "linear"\n')
    with open_project(root) as project:
        assert ingest_file(project, data).status == "accepted"
        result = train(project)
        assert [o.status for o in result.outcomes] == ["registered"]
        assert result.train_rows + result.holdout_rows == rows and result.holdout_rows > 0

    table["__prediction__"] = table.pop("__holdout")
    bad = tmp_path / "reserved.csv"
    write_csv(bad, table)
    other = tmp_path / "other"
    init_project(other, target="target", id_column="id")
    done = mldeck("ingest", str(bad), cwd=other)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert "'__prediction__'" in done.stderr and "rename the column" in done.stderr
