"""The first-party import graph has no circles, lazy and TYPE_CHECKING imports included.

A circle hidden by a lazy import still ties its modules together: none of them
can be built, tested or reused without the others (a data-plane process without
Raft needs `node` parts that do not drag in the HTTP layer). So every import
statement counts, wherever it stands in the file.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("node", "mesh")

Graph = dict[str, set[str]]


def module_files() -> dict[str, Path]:
    """Every first-party module by dotted name (a package by its own name)."""
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def imports_of(module: str, path: Path) -> Iterator[str]:
    """The absolute name of what each import in the file takes, at any depth of its tree.

    `from a import b` takes the module `a.b` when there is one, else a name of `a`."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = absolute_base(module, path.name == "__init__.py", node)
            yield from (f"{base}.{alias.name}" for alias in node.names)


def absolute_base(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    anchor = module.split(".")
    anchor = anchor[: len(anchor) - (node.level - 1 if is_package else node.level)]
    return ".".join([*anchor, node.module] if node.module else anchor)


def first_party(name: str, modules: Mapping[str, object]) -> str | None:
    """The module `name` lands in: its longest first-party prefix, if it has one."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in modules:
            return candidate
    return None


def import_graph() -> Graph:
    modules = module_files()
    graph: Graph = {}
    for module, path in modules.items():
        targets = {first_party(name, modules) for name in imports_of(module, path)}
        graph[module] = {t for t in targets if t is not None}
    return graph


def strongly_connected(graph: Graph) -> list[list[str]]:
    """Tarjan's algorithm: the graph's strongly connected components."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in sorted(graph[module]):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            components.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return components


def one_cycle(graph: Graph, members: list[str]) -> list[str]:
    """A shortest path from the component's first module back to itself, for the message."""
    start, inside = members[0], set(members)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for module in frontier:
            for target in sorted(graph[module] & inside):
                if target == start:
                    return [*paths[module], start]
                if target not in paths:
                    paths[target] = [*paths[module], target]
                    following.append(target)
        frontier = following
    return members


def test_no_import_circles() -> None:
    graph = import_graph()
    circles = [
        members
        for members in strongly_connected(graph)
        if len(members) > 1 or members[0] in graph[members[0]]
    ]
    report = [
        f"{len(members)} modules: {', '.join(members)}\n"
        f"  e.g. {' -> '.join(one_cycle(graph, members))}"
        for members in circles
    ]
    assert not circles, "import circles:\n" + "\n".join(report)


def test_mesh_imports_nothing_from_node() -> None:
    offending = [
        f"{module} imports {name}"
        for module, path in module_files().items()
        if module.split(".")[0] == "mesh"
        for name in imports_of(module, path)
        if name.split(".")[0] == "node"
    ]
    assert not offending, "\n".join(offending)


def test_the_graph_sees_lazy_and_type_checking_imports(tmp_path: Path) -> None:
    """Guards the test itself: imports inside functions and TYPE_CHECKING blocks count."""
    source = tmp_path / "example.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from node.app import Node\n"
        "def build():\n    from node.api import routes\n    import mesh.raft\n"
        "from . import config\n"
    )
    modules = dict.fromkeys(("node.app", "node.api", "node.api.routes", "mesh.raft", "node.config"))
    landed = {first_party(name, modules) for name in imports_of("node.example", source)}
    assert landed == {None, "node.app", "node.api.routes", "mesh.raft", "node.config"}


def test_a_circle_is_found_and_named() -> None:
    """Guards the test itself: a circle of two, a self-loop, and a chain that is no circle."""
    graph: Graph = {"a": {"b"}, "b": {"a", "c"}, "c": set(), "d": {"d"}}
    components = sorted(strongly_connected(graph))
    assert components == [["a", "b"], ["c"], ["d"]]
    assert one_cycle(graph, ["a", "b"]) == ["a", "b", "a"]
