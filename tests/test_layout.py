"""The package layout's rules: dependencies point one way, nothing cycles, and only the
env adapters know an env suite.

The import graph is read from the source (``ast``), function-local imports included, so a
cycle cannot hide inside a function; imports under ``if TYPE_CHECKING:`` are type-only
and left out. Then every module is imported first, in a fresh module table, so no module
works only when another happened to be imported before it.
"""

from __future__ import annotations

import ast
import importlib
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

PACKAGE = REPO / "jaxlab"
# Layers, lowest first: a module may import its own layer and the layers below it.
LAYERS = [
    {"config"},
    {"rl", "networks", "memory", "envs", "logging"},
    {"algorithms"},
    {"spec"},
    {"lab", "analysis"},
    {"runtime", "tools"},
    {"experiment"},
    {"api", "cli", "__main__", "__init__"},
]
SUITE_PACKAGES = {
    "gymnax", "brax", "mujoco_playground", "craftax", "jumanji", "navix", "xminigrid", "envpool",
}  # fmt: skip


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = sorted(module_name(p) for p in PACKAGE.rglob("*.py"))


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports(path: Path) -> set[str]:
    """Every module ``path`` imports at run time, anywhere in the file."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text()))
    return found


def graph() -> dict[str, set[str]]:
    """Module -> the jaxlab modules it imports (a package import runs its ``__init__``)."""
    known = set(MODULES)
    edges: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        name = module_name(path)
        targets = set()
        for imported in imports(path):
            parts = imported.split(".")
            for i in range(2, len(parts) + 1):  # jaxlab.a.b imports jaxlab.a, then jaxlab.a.b
                candidate = ".".join(parts[:i])
                if candidate in known and candidate != name and not name.startswith(candidate):
                    targets.add(candidate)
        edges[name] = targets
    return edges


def layer(module: str) -> int:
    top = module.split(".")[1] if "." in module else "__init__"
    return next(i for i, group in enumerate(LAYERS) if top in group)


def test_every_module_belongs_to_a_layer():
    assert [m for m in MODULES if m != "jaxlab" and _safe_layer(m) is None] == []


def _safe_layer(module: str) -> int | None:
    try:
        return layer(module)
    except StopIteration:
        return None


def test_dependencies_point_down_the_layers():
    wrong = [
        f"{a} (layer {layer(a)}) imports {b} (layer {layer(b)})"
        for a, targets in graph().items()
        if a != "jaxlab"
        for b in sorted(targets)
        if b != "jaxlab" and layer(b) > layer(a)
    ]
    assert wrong == []


def test_the_import_graph_has_no_cycle():
    edges = graph()
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for module in sorted(edges):
        if module not in state and (cycle := visit(module)):
            pytest.fail("import cycle: " + " -> ".join(cycle))


def test_only_the_env_adapters_import_an_env_suite():
    leaks = {
        module_name(p): sorted(i for i in imports(p) if i.split(".")[0] in SUITE_PACKAGES)
        for p in PACKAGE.rglob("*.py")
        if not module_name(p).startswith("jaxlab.envs")
    }
    assert {m: found for m, found in leaks.items() if found} == {}


def test_every_module_imports_first_in_a_fresh_module_table():
    saved = {k: v for k, v in sys.modules.items() if k == "jaxlab" or k.startswith("jaxlab.")}
    failures = []
    try:
        for module in [m for m in MODULES if m != "jaxlab.__main__"]:  # __main__ runs the CLI
            for name in [k for k in sys.modules if k == "jaxlab" or k.startswith("jaxlab.")]:
                del sys.modules[name]
            try:
                importlib.import_module(module)
            except Exception as err:  # noqa: BLE001 - report every module that fails
                failures.append(f"{module}: {type(err).__name__}: {err}")
    finally:
        for name in [k for k in sys.modules if k == "jaxlab" or k.startswith("jaxlab.")]:
            del sys.modules[name]
        sys.modules.update(saved)
    assert failures == []


def test_each_suite_is_imported_by_its_own_adapter_only():
    """``jaxlab/envs/<suite>_suite.py`` imports its suite's package and no other suite's;
    the shared env modules import none (gymnax's renderer is gymnax's)."""
    from jaxlab.envs import SUITES

    own = {f"jaxlab.envs.{s.name}_suite": s.package for s in SUITES.values()}
    own["jaxlab.envs.gymnax_render"] = "gymnax"
    found = {
        module_name(p): {i.split(".")[0] for i in imports(p)} & SUITE_PACKAGES
        for p in (PACKAGE / "envs").glob("*.py")
    }
    assert {m: f for m, f in found.items() if f != ({own[m]} if m in own else set())} == {}
