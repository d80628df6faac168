"""No identifier, literal or path enters SQL text unescaped.

The scan reads every module of engine/ and storage/ (ast, not grep) and finds SQL
text built by f-strings, `str.format`, `%` or `+`. Every piece put into such text
must be one of: a call of `storage.sql`'s helpers (`quote_ident`, `quote_literal`,
`sql_list`), `int(...)`/`float(...)`, a module constant (UPPER_CASE), a name or
function ending in `_sql` (an SQL fragment built the same way), a literal, or
`"sep".join(...)` of those. Anything else (a column name, a path, a config value)
fails the test with the file and line, so a regression is caught where it is
written. The helpers themselves are checked against DuckDB with hostile names.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import duckdb
import pytest

from storage.sql import quote_ident, quote_literal, sql_list

REPO = Path(__file__).resolve().parent.parent
SCANNED = ("engine", "storage")

SQL_WORDS = re.compile(
    r"\b(SELECT|INSERT INTO|UPDATE \w+ SET|DELETE FROM|CREATE (OR REPLACE )?(TABLE|VIEW|INDEX|SEQUENCE)"
    r"|COPY|DESCRIBE|ALTER TABLE|DROP (TABLE|VIEW|INDEX)|ATTACH|DETACH|PRAGMA|WHERE|JOIN|GROUP BY|ORDER BY)\b"
    r"|\bAS \w|\bIS (NOT )?NULL\b|\b(TRY_)?CAST\(|\bIN \("
    r"|read_parquet\(|read_csv\(|json_\w+\(|md5(_number)?\(|concat(_ws)?\(|coalesce\("
)
SAFE_CALLS = {"quote_ident", "quote_literal", "sql_list", "int", "float"}

HOSTILE = [
    'a"; DROP TABLE t; --',
    "it's",
    "Loan Amount (€)",
    "Interest Rate %",
    "Âge",
    "select",
    "x' OR '1'='1",
    '""',
    "a\\b",
    "line\nbreak",
    "$1 ?",
]


def _const_text(node: ast.AST) -> str:
    """The literal text of a string expression (f-string parts, concatenations)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(_const_text(v) for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _const_text(node.left) + _const_text(node.right)
    return ""


def _call_name(func: ast.expr) -> str:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return ""


def _is_constant_name(name: str) -> bool:
    return name.lstrip("_").isupper()


class _Scope:
    """The names of one function (or module) whose every assigned value is escaped SQL.

    A name is escaped when each value it is given (`=`, `+=`, `.append`, `.extend`)
    is; loop variables and parameters never are (they hold names and paths).
    """

    def __init__(self, node: ast.AST) -> None:
        assigned: dict[str, list[ast.AST]] = {}
        unsafe: set[str] = set()
        for child in ast.walk(node):
            if isinstance(child, ast.Assign):
                for target in child.targets:
                    if isinstance(target, ast.Name):
                        assigned.setdefault(target.id, []).append(child.value)
                    else:
                        unsafe.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
            elif isinstance(child, ast.AnnAssign | ast.AugAssign) and isinstance(
                child.target, ast.Name
            ):
                if child.value is not None:
                    assigned.setdefault(child.target.id, []).append(child.value)
            elif isinstance(child, ast.Call) and isinstance(child.func, ast.Attribute):
                owner = child.func.value
                if child.func.attr in ("append", "extend", "insert") and isinstance(
                    owner, ast.Name
                ):
                    assigned.setdefault(owner.id, []).extend(child.args[-1:])
            elif isinstance(
                child, ast.For | ast.AsyncFor | ast.comprehension | ast.With | ast.NamedExpr
            ):
                targets = (
                    [i.optional_vars for i in child.items if i.optional_vars]
                    if isinstance(child, ast.With)
                    else [child.target]
                )
                for target in targets:
                    unsafe.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
        self.safe: set[str] = set()
        changed = True
        while changed:  # a fixpoint: a name is escaped once all its values are
            changed = False
            for name, values in assigned.items():
                if name in self.safe or name in unsafe:
                    continue
                self.safe.add(name)  # `x = f"CAST({x} AS ...)"` refers to itself
                if all(self.is_safe(v) for v in values):
                    changed = True
                else:
                    self.safe.discard(name)

    def is_safe(self, node: ast.AST) -> bool:
        """Whether `node`, put into SQL text, is escaped or cannot carry outside text."""
        check = self.is_safe
        if isinstance(node, ast.Constant):
            return True
        if isinstance(node, ast.FormattedValue):
            return check(node.value)
        if isinstance(node, ast.JoinedStr):
            return all(check(v) for v in node.values)
        if isinstance(node, ast.Name):
            return _is_constant_name(node.id) or node.id.endswith("_sql") or node.id in self.safe
        if isinstance(node, ast.Attribute):
            return _is_constant_name(node.attr) or node.attr.endswith("_sql")
        if isinstance(node, ast.Subscript):  # CONSTANT_TABLE[key]
            return check(node.value)
        if isinstance(node, ast.IfExp):
            return check(node.body) and check(node.orelse)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            return check(node.left) and check(node.right)
        if isinstance(node, ast.BoolOp):
            return all(check(v) for v in node.values)
        if isinstance(node, ast.Call):
            name = _call_name(node.func)
            if name in SAFE_CALLS or name.endswith("_sql"):
                return True
            if name in ("list", "tuple", "sorted"):
                return all(check(a) for a in node.args)
            if name == "join" and isinstance(node.func, ast.Attribute):
                return check(node.func.value) and all(check(a) for a in node.args)
            return False
        if isinstance(node, ast.GeneratorExp | ast.ListComp):
            return check(node.elt)
        if isinstance(node, ast.List | ast.Tuple):
            return all(check(e) for e in node.elts)
        return False

    def unsafe_parts(self, node: ast.AST) -> list[ast.AST]:
        """The interpolated parts of SQL text `node` that are not escaped."""
        if isinstance(node, ast.JoinedStr):
            return [
                v for v in node.values if isinstance(v, ast.FormattedValue) and not self.is_safe(v)
            ]
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            return [p for p in (node.left, node.right) if not self.is_safe(p)]
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod):
            return [node.right] if not self.is_safe(node.right) else []
        if isinstance(node, ast.Call) and _call_name(node.func) == "format":
            args = [*node.args, *(k.value for k in node.keywords)]
            return [a for a in args if not self.is_safe(a)]
        return []


def _sql_text(node: ast.AST) -> str:
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod):
        return _const_text(node.left)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        return _const_text(node.func.value) if node.func.attr == "format" else ""
    return _const_text(node)


def _scopes(tree: ast.AST) -> list[tuple[ast.AST, list[ast.AST]]]:
    """(scope, the nodes it owns): each function apart, the module for the rest."""
    owned: dict[int, list[ast.AST]] = {}
    scopes: list[tuple[ast.AST, list[ast.AST]]] = []

    def visit(node: ast.AST, scope: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                owned[id(child)] = []
                scopes.append((child, owned[id(child)]))
                visit(child, child)
            else:
                owned[id(scope)].append(child)
                visit(child, scope)

    owned[id(tree)] = []
    scopes.append((tree, owned[id(tree)]))
    visit(tree, tree)
    return scopes


def unescaped_sql(source: str, filename: str) -> list[str]:
    """`file:line: the text` for every SQL text in `source` built from unescaped parts."""
    found = []
    for scope_node, nodes in _scopes(ast.parse(source, filename)):
        scope = _Scope(scope_node)
        seen: set[int] = set()
        for node in nodes:
            if id(node) in seen or not isinstance(node, ast.JoinedStr | ast.BinOp | ast.Call):
                continue
            text = _sql_text(node)
            if not text or not SQL_WORDS.search(text):
                continue
            if isinstance(node, ast.BinOp):  # report the outermost concatenation once
                seen.update(id(child) for child in ast.walk(node))
            for part in scope.unsafe_parts(node):
                found.append(f"{filename}:{part.lineno}: {ast.unparse(part)!r} in {text[:60]!r}")
    return found


def test_engine_and_storage_build_no_sql_from_unescaped_text() -> None:
    problems = []
    files = sorted(p for d in SCANNED for p in (REPO / d).rglob("*.py"))
    assert len(files) > 40, "the scan found too few modules: is the layout still engine/, storage/?"
    for path in files:
        problems += unescaped_sql(path.read_text(encoding="utf-8"), str(path.relative_to(REPO)))
    assert not problems, "SQL text built from unescaped names:\n" + "\n".join(problems)


@pytest.mark.parametrize(
    "code",
    [
        'con.execute(f"SELECT {name} FROM t")',
        "con.execute(f\"COPY (SELECT 1) TO '{staged}'\")",
        'con.execute("SELECT * FROM t WHERE a = " + value)',
        'con.execute("SELECT %s FROM t" % column)',
        'con.execute("SELECT {} FROM t".format(column))',
        "con.execute(f\"SELECT {', '.join(columns)} FROM t\")",
        'sql = (f"SELECT a FROM t " f"WHERE b = {config.target}")',
        "x = f\"json_extract_string(j, '{path}')\"",
    ],
)
def test_the_scan_catches_each_way_of_splicing_a_name(code: str) -> None:
    assert unescaped_sql(code, "example.py"), code


@pytest.mark.parametrize(
    "code",
    [
        'con.execute(f"SELECT {quote_ident(name)} FROM t")',
        'con.execute(f"COPY (SELECT 1) TO {quote_literal(staged)}")',
        "con.execute(f\"SELECT {', '.join(quote_ident(c) for c in columns)} FROM t\")",
        'con.execute(f"SELECT * FROM read_parquet({sql_list(paths)})")',
        'con.execute(f"SELECT {where_sql} FROM {TABLE}")',
        'con.execute(f"SELECT count(*) FROM t WHERE n < {int(limit)}")',
        'raise Error(f"cannot read {path}: the file is gone")',
    ],
)
def test_the_scan_lets_escaped_text_through(code: str) -> None:
    assert not unescaped_sql(code, "example.py"), code


@pytest.mark.parametrize("name", HOSTILE)
def test_helpers_keep_hostile_text_one_identifier_and_one_literal(name: str) -> None:
    con = duckdb.connect()
    try:
        con.execute(f"CREATE TABLE t ({quote_ident(name)} VARCHAR)")
        con.execute(f"INSERT INTO t VALUES ({quote_literal(name)})")
        (column,) = [r[0] for r in con.execute("DESCRIBE t").fetchall()]
        assert column == name
        assert con.execute(f"SELECT {quote_ident(name)} FROM t").fetchall() == [(name,)]
        assert con.execute(f"SELECT {sql_list([name, 'x'])}").fetchone() == ([name, "x"],)
    finally:
        con.close()


def test_a_nul_character_is_refused_not_truncated() -> None:
    with pytest.raises(ValueError):
        quote_ident("a\x00b")
    with pytest.raises(ValueError):
        quote_literal("a\x00b")
