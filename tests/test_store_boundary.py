"""Every SQL statement of flask_baton lives in ``flask_baton/store/``.

Outside it no module writes SQL, builds a statement with SQLAlchemy, or asks
which database it talks to: that is what lets one store per database
(``SqliteStore``, ``PostgresStore``) be chosen once, in ``init_app``. Read
from the source, so a new module is checked the day it is added.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "flask_baton"

#: SQLAlchemy's statement and expression builders.
BUILDERS = frozenset(
    {
        "select",
        "insert",
        "update",
        "delete",
        "text",
        "func",
        "and_",
        "or_",
        "not_",
        "true",
        "false",
        "exists",
        "literal",
        "literal_column",
        "bindparam",
        "case",
        "cast",
        "column",
        "table",
        "union_all",
    }
)
#: A string that opens with a SQL keyword (docstrings are not looked at).
SQL = re.compile(r"^\s*(SELECT|INSERT\s+INTO|UPDATE|DELETE\s+FROM|WITH|PRAGMA|BEGIN|COMMIT|ALTER|CREATE|DROP|SET)\s")
#: What reading or comparing the database's kind goes through.
DIALECT_NAMES = frozenset({"dialect", "get_backend_name", "get_driver_name", "drivername"})


def violations(path: Path) -> Iterator[str]:
    """Each SQL statement, statement builder or dialect test in ``path``, as ``line: what``."""
    tree = ast.parse(path.read_text(), str(path))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    sqlalchemy_names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "sqlalchemy":
            if (node.module or "").startswith(("sqlalchemy.dialects", "sqlalchemy.sql")):
                yield f"{node.lineno}: imports from {node.module}"
            for alias in node.names:
                if alias.name in BUILDERS:
                    yield f"{node.lineno}: imports {alias.name} from {node.module}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "sqlalchemy":
                    sqlalchemy_names.add(alias.asname or alias.name)
        elif isinstance(node, ast.Attribute):
            if node.attr in DIALECT_NAMES:
                yield f"{node.lineno}: looks at the database's kind (.{node.attr})"
            if node.attr in BUILDERS and isinstance(node.value, ast.Name) and node.value.id in sqlalchemy_names:
                yield f"{node.lineno}: builds a statement ({node.value.id}.{node.attr})"
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            if SQL.match(node.value):
                yield f"{node.lineno}: SQL text {node.value.strip()[:40]!r}"


def outside_store(root: Path = ROOT) -> Iterator[tuple[str, Path]]:
    for path in sorted(root.rglob("*.py")):
        name = path.relative_to(root).as_posix()
        if not name.startswith("store/"):
            yield name, path


def test_no_module_outside_the_store_writes_sql_builds_a_statement_or_tests_the_dialect() -> None:
    found = {name: list(violations(path)) for name, path in outside_store()}
    assert {name: lines for name, lines in found.items() if lines} == {}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from sqlalchemy import select\n", "imports select from sqlalchemy"),
        ("from sqlalchemy.dialects.sqlite import insert\n", "imports from sqlalchemy.dialects.sqlite"),
        ("import sqlalchemy as sa\nq = sa.update(t)\n", "builds a statement (sa.update)"),
        ("postgres = conn.dialect.name == 'postgresql'\n", "looks at the database's kind (.dialect)"),
        ("sqlite = url.get_backend_name() == 'sqlite'\n", "looks at the database's kind (.get_backend_name)"),
        ("Q = 'UPDATE baton_nodes SET state = 1'\n", "SQL text 'UPDATE baton_nodes SET state = 1'"),
        ('def f():\n    """UPDATE ... RETURNING in a docstring is prose."""\n', None),
    ],
)
def test_each_kind_of_leak_is_found(tmp_path: Path, source: str, expected: str | None) -> None:
    module = tmp_path / "module.py"
    module.write_text(source)
    found = [line.partition(": ")[2] for line in violations(module)]
    assert (expected in found) if expected is not None else found == []
