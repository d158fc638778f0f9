"""No import cycles in the layer or the benchmarks, hidden ones included.

Every import counts, at module level or inside a function: an import moved into a
function to dodge a cycle is still a cycle in the design. Pure: reads the source only.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, package: str, known: set[str]) -> set[str]:
    """The modules of `package` that `path` imports, wherever in the file."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from a.b import c`: the module a.b.c when there is one, else a.b.
            names = [
                f"{node.module}.{alias.name}"
                if f"{node.module}.{alias.name}" in known
                else node.module
                for alias in node.names
            ]
        else:
            continue
        found.update(name for name in names if name.split(".")[0] == package)
    return found


def import_graph(package: str) -> dict[str, set[str]]:
    paths = [p for p in (ROOT / package).rglob("*.py") if "migrations" not in p.parts]
    known = {module_name(p) for p in paths}
    graph = {module_name(p): imports_of(p, package, known) & known for p in paths}
    for module, targets in graph.items():
        targets.discard(module)
        # A package's __init__ may gather its own submodules (an API's front door).
        graph[module] = {t for t in targets if not module.startswith(f"{t}.")}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


@pytest.mark.parametrize("package", ["tasks", "bench"])
def test_the_package_has_no_import_cycle(package: str) -> None:
    assert cycles(import_graph(package)) == []


def test_a_cycle_is_found_when_there_is_one() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]


def test_the_layer_never_imports_the_dashboard() -> None:
    for path in (ROOT / "tasks").rglob("*.py"):
        assert not imports_of(path, "dashboard", set()), path


#: What each package of the layer may import besides the core modules at the top.
#: A job's life runs down this list: recorded state, publishing, the worker, operators;
#: `broker` (what waits in the broker's queues) sits beside them, for the operators.
LAYERS = {
    "broker": {"celery_defaults"},
    "record": set(),
    "publish": {"record"},
    # broker: the watch beside each worker reads the broker's marker and, after a loss,
    # what it still holds (tasks.runtime.broker_watch, tasks.broker.loss).
    "runtime": {"record", "publish", "broker"},
    "operations": {"broker", "record", "publish", "runtime"},
}
#: The nouns every package builds on; they import none of the packages.
CORE = {"models", "observations", "lifecycle", "conf", "exceptions", "correlation", "backoff"}


def package_of(module: str) -> str:
    """`tasks.publish.relay` -> `publish`; a top-level module -> its own name."""
    return module.split(".")[1] if module.count(".") >= 1 else ""


def test_each_package_imports_only_the_layers_below_it() -> None:
    wrong = []
    for module, targets in import_graph("tasks").items():
        source = package_of(module)
        for target in targets:
            goal = package_of(target)
            if goal == source or goal in CORE:
                continue
            allowed = (
                LAYERS.get(source) if source in LAYERS else (set() if source in CORE else None)
            )
            if allowed is not None and goal not in allowed:
                wrong.append(f"{module} -> {target}")
    assert wrong == []
