"""No import cycle anywhere in qtui/.

The graph is built from the source with ast, not by importing: every `import` and `from ... import`
counts, at module level and inside functions (a deferred import still ties the two modules
together), and so does `importlib.import_module("qtui....")` with a literal name. Imports under
`if TYPE_CHECKING:` do not count: they never run.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import qtui

ROOT = Path(qtui.__file__).resolve().parent


def module_names(package_dir: Path) -> dict[str, Path]:
    """Every module under package_dir, by dotted name (a package is its __init__)."""
    top = package_dir.name
    out: dict[str, Path] = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = list(path.relative_to(package_dir).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join([top, *parts])] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """ast.walk, minus the bodies of `if TYPE_CHECKING:` (their else branches do run)."""
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            todo.extend(node.orelse)
            continue
        todo.extend(ast.iter_child_nodes(node))


def _imported(node: ast.AST, module: str, is_package: bool) -> list[str]:
    """The dotted names an import node asks for (candidates; the caller keeps the real modules)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if isinstance(node, ast.ImportFrom):
        if node.level:
            here = module.split(".") if is_package else module.split(".")[:-1]
            base = here[: len(here) - (node.level - 1)]
            prefix = ".".join(base + ([node.module] if node.module else []))
        else:
            prefix = node.module or ""
        # `from a.b import c` is a.b.c when c is a module, a.b otherwise (the caller's prefix walk)
        return [f"{prefix}.{a.name}" for a in node.names]
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "import_module"
        and node.args
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
    ):
        return [node.args[0].value]
    return []


def import_graph(package_dir: Path) -> dict[str, set[str]]:
    """module -> the modules of the same package it imports."""
    modules = module_names(package_dir)
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        is_package = path.name == "__init__.py"
        targets: set[str] = set()
        for node in _nodes(tree):
            for wanted in _imported(node, name, is_package):
                # `import a.b.c` names a.b.c; keep the longest prefix that is one of ours
                parts = wanted.split(".")
                while parts and ".".join(parts) not in modules:
                    parts.pop()
                if parts and ".".join(parts) != name:
                    targets.add(".".join(parts))
        graph[name] = targets
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle through each strongly connected component that has one (Tarjan), as
    [a, b, ..., a], shortest found by breadth-first search inside the component."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def visit(v: str) -> None:  # recursion depth is bounded by the module count (~60)
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                components.append(comp)

    for v in sorted(graph):
        if v not in index:
            visit(v)

    found = []
    for comp in components:
        start = min(comp)
        prev: dict[str, str] = {}
        frontier = [start]
        while frontier and start not in prev:
            nxt = []
            for v in frontier:
                for w in sorted(graph[v] & comp):
                    if w not in prev:
                        prev[w] = v
                        nxt.append(w)
            frontier = nxt
        path = [start]
        v = prev[start]
        while v != start:
            path.append(v)
            v = prev[v]
        path.append(start)
        found.append(path[::-1])
    return sorted(found)


# -- the checker checks ------------------------------------------------------------------------
def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "pkg"
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return root


def test_finds_a_cycle_through_a_function_level_import(tmp_path: Path) -> None:
    root = _package(tmp_path, {
        "__init__.py": "",
        "a.py": "from pkg import b\n",
        "sub/__init__.py": "",
        "sub/c.py": "def f():\n    from ..a import x\n",
        "b.py": "def g():\n    import pkg.sub.c\n",
    })
    assert cycles(import_graph(root)) == [["pkg.a", "pkg.b", "pkg.sub.c", "pkg.a"]]


def test_type_checking_imports_do_not_count(tmp_path: Path) -> None:
    root = _package(tmp_path, {
        "__init__.py": "",
        "a.py": "from typing import TYPE_CHECKING\nimport pkg.b\n",
        "b.py": (
            "import typing\n"
            "if typing.TYPE_CHECKING:\n    from pkg.a import A\n"
            "else:\n    import pkg.c\n"
        ),
        "c.py": "import importlib\ndef f():\n    importlib.import_module('pkg.b')\n",
    })
    graph = import_graph(root)
    assert graph["pkg.b"] == {"pkg.c"}
    assert cycles(graph) == [["pkg.b", "pkg.c", "pkg.b"]]


def test_sees_qtuis_own_imports() -> None:
    graph = import_graph(ROOT)
    assert "qtui.core.llama.events" in graph["qtui.core.llama.parser"]
    assert len(graph) >= 50


def test_no_import_cycle_in_qtui() -> None:
    found = cycles(import_graph(ROOT))
    assert not found, "import cycles in qtui/:\n" + "\n".join("  " + " -> ".join(c) for c in found)
