"""The package structure, enforced: the settings tree depends on nothing, the core on no
feature, no feature on the API surfaces, and no two packages import each other (also
through others). Read from the source's own import statements (lazy ones included)."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import serving

ROOT = Path(serving.__file__).parent
# Packages (and top-level modules) of serving/, by layer. A package may import only its own
# layer's bottom and anything listed below it; every rule below is checked separately.
FEATURES = {"gateway", "context", "moderation", "privacy", "feedback", "embeddings"}
CORE_MAY_IMPORT = {"config", "errors", "engine", "observability"}
APART = {"quality"}  # the operator's quality tool: stdlib client + reference, no serving imports


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Every ``serving.*`` module ``path`` imports (absolute or relative, at any depth)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                found.add(".".join(base + ([node.module] if node.module else [])))
            elif node.module:
                found.add(node.module)
    return {name for name in found if name == "serving" or name.startswith("serving.")}


def _top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "serving"


def package_graph() -> dict[str, set[str]]:
    """serving's top-level packages/modules -> the ones they import (self excluded)."""
    graph: dict[str, set[str]] = defaultdict(set)
    for path in ROOT.rglob("*.py"):
        if "migrations" in path.parts:
            continue
        source = _top(_module_name(path))
        graph[source]
        for target in map(_top, _imports(path)):
            if target not in (source, "serving"):
                graph[source].add(target)
    return dict(graph)


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


GRAPH = package_graph()


def test_the_graph_is_read() -> None:
    assert {"config", "core", "api", "engine", *FEATURES} <= set(GRAPH)
    assert "core" in GRAPH["api"] and "config" in GRAPH["gateway"]  # the reader sees real imports


def test_config_imports_nothing_else_from_serving() -> None:
    assert GRAPH["config"] == set()


def test_core_imports_no_feature_and_no_api() -> None:
    assert GRAPH["core"] <= CORE_MAY_IMPORT, GRAPH["core"] - CORE_MAY_IMPORT


def test_features_never_import_the_api_or_the_composition() -> None:
    offenders = {f: GRAPH[f] & {"api", "extensions", "ray_serve", "cli", "tools"} for f in FEATURES}
    assert all(not bad for bad in offenders.values()), offenders


def test_below_the_core_nothing_imports_it() -> None:
    for low in ("config", "errors", "engine", "model", "observability"):
        assert "core" not in GRAPH.get(low, set()), low


def test_no_package_level_cycle() -> None:
    assert _cycle(GRAPH) is None, " -> ".join(_cycle(GRAPH) or [])


def test_the_quality_tool_stands_apart() -> None:
    for name in APART:
        assert GRAPH[name] == set()


def test_the_cycle_finder_finds_one() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None
