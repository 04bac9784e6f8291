"""flask_baton's modules import each other without a cycle.

The graph is read from the source (``ast``), not from ``sys.modules``, and
holds every import: at module level, under ``if TYPE_CHECKING:`` (a cycle
through type hints is still two modules that cannot be understood apart) and
inside functions. Importing ``a.b.c`` also runs the packages ``a.b`` and
``a`` first, so it counts as importing them too, unless the importer sits
inside that package already.

``DEFERRED`` lists the imports done at call time on purpose, each with why;
they are left out of the graph, and each must stay inside a function.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = "flask_baton"
ROOT = Path(__file__).resolve().parent.parent / PACKAGE

#: (importer, imported) -> why the import happens inside a function.
DEFERRED: dict[tuple[str, str], str] = {
    ("flask_baton.events", "flask_baton.appstate"): (
        "events/__init__ is the public subscribe API, which needs the app's state, and also the "
        "package of the transports that state holds (appstate imports events.transport)"
    ),
}


@dataclass(frozen=True)
class Import:
    importer: str
    imported: str
    line: int
    in_function: bool


def module_files(root: Path = ROOT) -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its own name)."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imports_of(name: str, path: Path, modules: Mapping[str, Path]) -> Iterator[Import]:
    """The package's modules ``name`` imports, with the ancestors each import runs."""
    tree = ast.parse(path.read_text(), str(path))
    in_function = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        for inner in ast.walk(node)
    }
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package
                for _ in range(node.level - 1):
                    anchor = anchor.rpartition(".")[0]
                base = f"{anchor}.{base}" if base else anchor
            # ``from pkg import mod`` imports the submodule; ``from mod import name`` the module.
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        for target in targets:
            parts = target.split(".")
            for end in range(1, len(parts) + 1):
                ancestor = ".".join(parts[:end])
                inside = name == ancestor or name.startswith(ancestor + ".")
                if ancestor in modules and not inside:
                    yield Import(name, ancestor, node.lineno, id(node) in in_function)


def all_imports(root: Path = ROOT) -> list[Import]:
    modules = module_files(root)
    return [found for name, path in modules.items() for found in imports_of(name, path, modules)]


def find_cycle(graph: Mapping[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path that returns to its start, or None (iterative DFS)."""
    done: set[str] = set()
    for start in sorted(graph):
        if start in done:
            continue
        path: list[str] = []
        on_path: set[str] = set()
        stack: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(graph.get(start, ()))))]
        path.append(start)
        on_path.add(start)
        while stack:
            node, targets = stack[-1]
            following = next(targets, None)
            if following is None:
                stack.pop()
                path.pop()
                on_path.discard(node)
                done.add(node)
            elif following in on_path:
                return path[path.index(following) :] + [following]
            elif following not in done:
                stack.append((following, iter(sorted(graph.get(following, ())))))
                path.append(following)
                on_path.add(following)
    return None


def import_graph(imports: list[Import]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for found in imports:
        if (found.importer, found.imported) not in DEFERRED:
            graph.setdefault(found.importer, set()).add(found.imported)
    return graph


def test_flask_baton_has_no_import_cycle() -> None:
    cycle = find_cycle(import_graph(all_imports()))
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_each_deferred_import_exists_and_stays_inside_a_function() -> None:
    imports = all_imports()
    for pair, why in DEFERRED.items():
        found = [i for i in imports if (i.importer, i.imported) == pair]
        assert found, f"{pair[0]} no longer imports {pair[1]}: drop it from DEFERRED ({why})"
        at_top = [i.line for i in found if not i.in_function]
        assert not at_top, f"{pair[0]} imports {pair[1]} at module level (line {at_top}), closing the cycle"


@pytest.mark.parametrize("where", ["module level", "TYPE_CHECKING", "function"])
def test_a_cycle_through_any_kind_of_import_is_found(tmp_path: Path, where: str) -> None:
    package = tmp_path / PACKAGE
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("from ..b import thing\n")
    (package / "a.py").write_text("from .sub import other\n")
    importing_a = {
        "module level": "from . import a\n",
        "TYPE_CHECKING": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .a import x\n",
        "function": "def f():\n    from .a import x\n",
    }[where]
    (package / "b.py").write_text(importing_a)
    (package / "sub" / "other.py").write_text("")
    cycle = find_cycle(import_graph(all_imports(package)))
    # a -> sub.other runs sub/__init__, which imports b, which imports a.
    assert cycle == ["flask_baton.a", "flask_baton.sub", "flask_baton.b", "flask_baton.a"]
