"""Data flows one way: every module of the package is parsed (``ast``, nothing imported) and its
``tumorcot`` imports, also those inside functions, are checked against a declared layer order.

A module may import from its own layer or a lower one, never from a higher one; there is no
circle between subpackages (``a -> b -> a``), counting imports at any depth; and no circle between
modules through their module-level imports (those run at import time; a function-level import
inside one subpackage may close a loop there, e.g. a plan drawn by a helper module).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

import tumorcot

PACKAGE = Path(tumorcot.__file__).parent

# Lowest first. A unit is a subpackage (``tumorcot.store``) or a top-level module; a few leaf
# modules of a subpackage that import nothing above the foundation are units of their own.
LAYERS = [
    # foundation: words, records, errors, file writing, the private folder, pseudonyms
    ["tumorcot", "tumorcot.errors", "tumorcot.vocabulary", "tumorcot.data", "tumorcot.schemas",
     "tumorcot.prompts", "tumorcot.store.atomic", "tumorcot.store.private", "tumorcot.privacy",
     "tumorcot.conversation", "tumorcot.scope"],
    ["tumorcot.imaging", "tumorcot.render"],
    ["tumorcot.knowledge_graph"],
    ["tumorcot.agents"],
    ["tumorcot.store"],
    ["tumorcot.pipeline", "tumorcot.case_manifest", "tumorcot.ingest"],
    ["tumorcot.review", "tumorcot.exports"],
    ["tumorcot.flows"],
    ["tumorcot.ops"],
    ["tumorcot.cli"],
]
RANK = {unit: i for i, layer in enumerate(LAYERS) for unit in layer}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def unit_of(module: str) -> str:
    """The longest declared unit that ``module`` is, or lies in."""
    parts = module.split(".")
    for n in range(len(parts), 1, -1):
        if ".".join(parts[:n]) in RANK:
            return ".".join(parts[:n])
    if module == "tumorcot":   # the package's own __init__ (its version)
        return module
    raise AssertionError(f"{module} is in no declared layer: add it to LAYERS")


def _is_module(name: str) -> bool:
    path = PACKAGE.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def imports_of(path: Path, source: str | None = None, *, module_level: bool = False) -> set[str]:
    """The ``tumorcot`` modules ``path`` imports (absolute and relative; at any depth, or only the
    statements of the module's own body with ``module_level``)."""
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rsplit(".", 1)[0]
    found = set()
    tree = ast.parse(path.read_text(encoding="utf-8") if source is None else source, str(path))
    for node in (tree.body if module_level else ast.walk(tree)):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "tumorcot"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] == "tumorcot":
                found.add(target)
                found |= {f"{target}.{a.name}" for a in node.names if _is_module(f"{target}.{a.name}")}
    return found


def graph(module_level: bool = False) -> dict[str, set[str]]:
    return {module_name(p): imports_of(p, module_level=module_level) for p in sorted(PACKAGE.rglob("*.py"))}


def test_every_module_is_in_a_layer():
    for module in graph():
        unit_of(module)


def test_no_module_imports_from_a_higher_layer():
    upward = sorted(f"{m} -> {t}" for m, targets in graph().items() for t in targets
                    if RANK[unit_of(t)] > RANK[unit_of(m)])
    assert upward == []


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_no_circle_between_subpackages():
    edges: dict[str, set[str]] = defaultdict(set)
    for module, targets in graph().items():
        for target in targets:
            a, b = unit_of(module), unit_of(target)
            if a != b:
                edges[a].add(b)
    assert _cycles(edges) == []


def test_no_circle_between_modules_at_import_time():
    modules = graph(module_level=True)
    edges = {m: {t for t in targets if t in modules and t != m} for m, targets in modules.items()}
    assert _cycles(edges) == []


@pytest.mark.parametrize("source, expected", [
    ("from tumorcot.store.keys import digest\n", {"tumorcot.store.keys"}),
    ("def f():\n    from tumorcot.flows import build\n", {"tumorcot.flows", "tumorcot.flows.build"}),
    ("from . import atomic\n", {"tumorcot.store", "tumorcot.store.atomic"}),
    ("import numpy, tumorcot.errors\n", {"tumorcot.errors"}),
])
def test_imports_are_found_at_any_depth(source, expected):
    assert imports_of(PACKAGE / "store" / "probe.py", source) == expected


def test_module_level_imports_leave_out_function_bodies():
    source = "from tumorcot import errors\ndef f():\n    from tumorcot.flows import build\n"
    assert imports_of(PACKAGE / "store" / "probe.py", source, module_level=True) == {"tumorcot", "tumorcot.errors"}
