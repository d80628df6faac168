"""Import hygiene: app -> engine -> storage, never back; heavy imports stay lazy."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HEAVY = {"torch", "sklearn", "skl2onnx", "onnx", "onnxruntime", "duckdb", "polars", "textual"}


def imported_top_levels(package: str) -> set[str]:
    """Top-level names imported anywhere in a package's source (static, including lazy ones)."""
    names: set[str] = set()
    for path in (REPO / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
    return names


def test_storage_imports_neither_engine_nor_app() -> None:
    used = imported_top_levels("storage")
    assert "engine" not in used and "app" not in used, used


def test_engine_imports_neither_app_nor_ui_libraries() -> None:
    used = imported_top_levels("engine")
    assert not used & {"app", "textual", "textual_plotext", "plotext", "rich", "click"}, used


def test_engine_modules_load_without_textual() -> None:
    code = (
        "import sys, engine.pipeline.training_run, engine.data.ingest, engine.records.registry, engine.views.status; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in {'textual', 'app'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_cli_help_imports_no_heavy_library() -> None:
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from app.cli import cli\n"
        "result = CliRunner().invoke(cli, ['--help'])\n"
        "assert result.exit_code == 0, result.output\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {sorted(HEAVY)!r}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
