"""The shape of the code: no import cycles among agent/ and hw/, no oversized module.

A cycle means two modules cannot be understood, tested or replaced one without the other (the
recorder's reaction rules could not be tested without a whole threaded agent while every part
imported the agent back). The graph is read from the source (AST), so it counts imports under
``TYPE_CHECKING`` and imports inside functions too: a cycle hidden behind a lazy import is still
a cycle for whoever reads the code. An import names a module, or the package it imports a name
from (``from a.b import c`` counts ``a.b`` -- its ``__init__`` runs first -- and the module
``a.b.c`` if it is one); ``import a.b.c`` does not count as importing ``a.b``'s ``__init__``.

Modules over :data:`MAX_LINES` are flagged; :data:`OVERSIZED` lists the ones not yet split
(with their size when listed), and :data:`KNOWN_CYCLES` the cycles not yet broken, both to be
emptied: nothing new may join them. A cycle listed that is gone fails until removed; a module
listed that is back under the limit is reported as a warning (modules are split while others
work in the same tree, so the list may lag a commit behind).
"""

from __future__ import annotations

import ast
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("agent", "hw")
MAX_LINES = 400

# Modules still over the limit, with their line count when listed: to be split, never added to.
OVERSIZED: dict[str, int] = {}

# Cycles not yet broken (each a strongly connected component): to stay empty.
KNOWN_CYCLES: list[list[str]] = []


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _sources() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            out[_module_name(path)] = path
    return out


def _imports(name: str, path: Path, modules: set[str]) -> set[str]:
    """Modules of ``modules`` that ``name`` imports anywhere in its source."""
    is_pkg = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                out.add(_known(alias.name, modules))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".") if is_pkg else name.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            out.add(_known(base, modules))  # ``from pkg import sub`` runs pkg's __init__
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                if sub in modules:
                    out.add(sub)
    out.discard("")
    out.discard(name)
    return out


def _known(dotted: str, modules: set[str]) -> str:
    """The longest prefix of ``dotted`` that is one of our modules ('' if none)."""
    parts = dotted.split(".")
    for n in range(len(parts), 0, -1):
        candidate = ".".join(parts[:n])
        if candidate in modules:
            return candidate
    return ""


def import_graph() -> dict[str, set[str]]:
    """Module → the modules of agent/ and hw/ it imports."""
    sources = _sources()
    modules = set(sources)
    return {name: _imports(name, path, modules) for name, path in sources.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component with more than one module (Tarjan), each as a
    sorted list, and for each a concrete cycle through its first module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    comps: list[list[str]] = []
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        work = [(v, iter(sorted(graph.get(v, ()))))]
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        while work:
            node, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph.get(w, ())))))
                    break
                if w in on_stack:
                    low[node] = min(low[node], index[w])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        comp.append(w)
                        if w == node:
                            break
                    if len(comp) > 1:
                        comps.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(comps)


def cycle_path(graph: dict[str, set[str]], comp: list[str]) -> list[str]:
    """One concrete cycle inside a strongly connected component, for the failure message."""
    members = set(comp)
    start = comp[0]
    prev: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v] & members):
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(prev[path[-1]])
                    return [start, *reversed(path[:-1]), start] if len(path) > 1 else [start, v, start]
                if w not in prev:
                    prev[w] = v
                    nxt.append(w)
        frontier = nxt
    return comp


def test_the_cycle_finder_finds_a_cycle_and_names_it() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    comps = cycles(graph)
    assert comps == [["a", "b", "c"]]
    assert cycle_path(graph, comps[0]) == ["a", "b", "c", "a"]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_imports_are_read_from_type_checking_blocks_and_functions(tmp_path: Path) -> None:
    src = tmp_path / "m.py"
    src.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.a import X\n"
                   "def f():\n    import pkg.b.c\n    from . import d\n")
    found = _imports("pkg.m", src, {"pkg.a", "pkg.b", "pkg.b.c", "pkg.d", "pkg.m"})
    assert found == {"pkg.a", "pkg.b.c", "pkg.d"}


def test_agent_and_hw_have_no_import_cycles() -> None:
    graph = import_graph()
    assert "agent.app" in graph and "hw.camera" in graph  # the graph was really read
    found = cycles(graph)
    new = [comp for comp in found if comp not in KNOWN_CYCLES]
    assert not new, "import cycles:\n" + "\n".join(
        " → ".join(cycle_path(graph, comp)) + f"   (component: {', '.join(comp)})"
        for comp in new)
    gone = [comp for comp in KNOWN_CYCLES if comp not in found]
    assert not gone, f"no longer cycles, remove from KNOWN_CYCLES: {gone}"


# the command line runs the agent; agent.testing starts one for test suites (beside the root)
APP_IMPORTERS = {"agent.cli", "agent.testing"}


def test_only_the_composition_root_and_the_command_line_import_the_agent() -> None:
    """Nothing below the composition root imports it: each part gets narrow ports instead."""
    importers = {m for m, deps in import_graph().items() if "agent.app" in deps}
    assert importers <= APP_IMPORTERS, sorted(importers - APP_IMPORTERS)


def test_no_module_grows_past_the_line_limit() -> None:
    sizes = {name: len(path.read_text().splitlines()) for name, path in _sources().items()}
    over = {m: n for m, n in sizes.items() if n > MAX_LINES}
    new = {m: n for m, n in over.items() if m not in OVERSIZED}
    stale = sorted(m for m in OVERSIZED if sizes.get(m, 0) <= MAX_LINES)
    assert not new, f"modules over {MAX_LINES} lines (split them): {new}"
    if stale:
        warnings.warn(f"no longer over {MAX_LINES} lines, remove from OVERSIZED: {stale}",
                      stacklevel=1)


def test_every_module_file_name_is_used_once() -> None:
    """A file name says which module it is: ``commands.py`` in two packages (the device's command
    set and the MQTT message parser) made a reader open the wrong one, so each name is used once
    across agent/ and hw/ (``__init__.py`` aside)."""
    seen: dict[str, list[str]] = {}
    for name, path in _sources().items():
        if path.name != "__init__.py":
            seen.setdefault(path.name, []).append(name)
    assert len(seen) > 100  # the tree was really read
    twice = {file: mods for file, mods in seen.items() if len(mods) > 1}
    assert not twice, f"file names used more than once: {twice}"
