"""Reports for people: sections of fields and tables, rendered to the terminal,
to Markdown or to a standalone HTML page (for a reader who is not at a terminal).

`explain`, `lineage` and `audit` build a list of `Section`s once; `--out FILE`
picks the file format by its suffix.
"""

from __future__ import annotations

import html
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from app import output
from engine.api import MldeckError


@dataclass
class Section:
    title: str
    fields: list[tuple[str, Any]] = field(default_factory=list)
    """(label, value) lines."""
    columns: list[str] = field(default_factory=list)
    rows: list[list[Any]] = field(default_factory=list)
    """A table under the fields, when `columns` is set."""
    empty: str = ""
    """Said instead of the table when it has no rows."""


FORMATS = {".md": "markdown", ".markdown": "markdown", ".html": "html", ".htm": "html"}


def _text(value: Any) -> str:
    return "—" if value is None or value == "" else str(value)


def print_sections(title: str, sections: list[Section]) -> None:
    from rich.markup import escape

    output.stdout.print(f"[bold]{escape(title)}[/]")
    for section in sections:
        output.stdout.print()
        output.stdout.print(f"[bold underline]{escape(section.title)}[/]")
        width = max((len(label) for label, _ in section.fields), default=0)
        for label, value in section.fields:
            output.stdout.print(f"  {escape(label):<{width}}  {escape(_text(value))}")
        if section.columns and section.rows:
            # Cells carry data (a logged row's column names and values), never markup.
            cells = [[escape(str(cell)) for cell in row] for row in section.rows]
            output.stdout.print(output.table(None, section.columns, cells))
        elif section.columns and section.empty:
            output.stdout.print(f"  {escape(section.empty)}")


def _md_cell(value: Any) -> str:
    return _text(value).replace("|", "\\|").replace("\n", " ")


def to_markdown(title: str, sections: list[Section]) -> str:
    lines = [f"# {title}", ""]
    for section in sections:
        lines += [f"## {section.title}", ""]
        for label, value in section.fields:
            lines.append(f"- **{label}**: {_md_cell(value)}")
        if section.fields:
            lines.append("")
        if section.columns and section.rows:
            lines.append("| " + " | ".join(_md_cell(c) for c in section.columns) + " |")
            lines.append("|" + "---|" * len(section.columns))
            for row in section.rows:
                lines.append("| " + " | ".join(_md_cell(cell) for cell in row) + " |")
            lines.append("")
        elif section.columns and section.empty:
            lines += [section.empty, ""]
    return "\n".join(lines)


HTML_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2em;max-width:80em}"
    "table{border-collapse:collapse;margin:.5em 0}"
    "th,td{border:1px solid #ccc;padding:.2em .5em;text-align:left;vertical-align:top}"
    "th{background:#f3f3f3}dt{font-weight:bold;float:left;clear:left;width:14em}"
    "dd{margin-left:15em;word-break:break-all}"
)


def to_html(title: str, sections: list[Section]) -> str:
    e = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{e(title)}</title><style>{HTML_STYLE}</style></head><body>",
        f"<h1>{e(title)}</h1>",
    ]
    for section in sections:
        parts.append(f"<h2>{e(section.title)}</h2>")
        if section.fields:
            parts.append("<dl>")
            for label, value in section.fields:
                parts.append(f"<dt>{e(label)}</dt><dd>{e(_text(value))}</dd>")
            parts.append("</dl>")
        if section.columns and section.rows:
            parts.append("<table><tr>" + "".join(f"<th>{e(c)}</th>" for c in section.columns))
            for row in section.rows:
                parts.append("<tr>" + "".join(f"<td>{e(_text(c))}</td>" for c in row) + "</tr>")
            parts.append("</table>")
        elif section.columns and section.empty:
            parts.append(f"<p>{e(section.empty)}</p>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_report(path: Path, title: str, sections: list[Section]) -> None:
    """Write the report as Markdown or HTML (by the file's suffix), atomically."""
    fmt = FORMATS[path.suffix.lower()]
    text = to_markdown(title, sections) if fmt == "markdown" else to_html(title, sections)
    temp = path.with_name(f".{path.name}.tmp")
    try:
        temp.write_text(text, encoding="utf-8")
        os.replace(temp, path)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise MldeckError(f"cannot write {path}: {exc.strerror or exc}", "Report") from exc


def _check_out(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    if value is not None and value.suffix.lower() not in FORMATS:
        raise click.BadParameter(f"{value}: the file name must end in .md or .html")
    return value


out_option = click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    callback=_check_out,
    help="Also write the report to FILE: Markdown (.md) or HTML (.html).",
)
