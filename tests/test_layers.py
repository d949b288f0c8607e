"""zoo_core's modules import each other without a cycle, function-local imports included.

The layers contract in pyproject.toml ([tool.importlinter], run by `lint-imports` in .ci/run) keeps
the packages in order; this keeps the modules inside each package in order too."""

from __future__ import annotations

import sys


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10_000))
    try:
        for v in sorted(edges):
            if v not in index:
                visit(v)
    finally:
        sys.setrecursionlimit(limit)
    return found


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_zoo_core_has_no_import_cycle():
    import grimp  # import-linter's graph: every import statement, inside functions too

    graph = grimp.build_graph("zoo_core", cache_dir=None)
    # A package's __init__ is the package itself in grimp: `from .x import y` inside zoo_core/a/__init__.py
    # is an edge a -> a.x, which is how a package exposes its modules, not a cycle between two of them.
    edges = {m: {t for t in graph.find_modules_directly_imported_by(m) if not t.startswith(m + ".")}
             for m in graph.modules if m.startswith("zoo_core")}
    assert cycles(edges) == []
