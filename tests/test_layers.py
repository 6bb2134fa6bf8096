"""The shape of the code: imports point one way (down the layers below), no two modules
import each other even indirectly, nothing below the `Vault` facade imports it, and no
module is longer than 600 lines. Imports are read from the source (those inside
functions and under `TYPE_CHECKING` count too), so a circle cannot hide in either."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "memsync"

# Lowest first. A module may import its own layer's modules and those of lower layers.
LAYERS: list[set[str]] = [
    {"errors", "model", "ids"},
    {"codec", "scope", "keystore", "crypto"},
    {"store"},
    {"log"},
    {"index"},
    {"core"},
    {"extract", "llm"},
    {"reconcile", "profile", "retrieve"},
    {"capture", "config"},
    {"edits", "forget"},
    {"disclose"},
    {"lifecycle"},
    {"chain"},
    {"sync"},
    {"vault"},
    {"export", "__init__"},
    {"server", "cli", "__main__"},
]
ADAPTERS = {"server", "cli", "export", "__init__", "__main__"}


def _module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(SRC.rglob("*.py"))}


def _imports(path: Path, known: set[str]) -> set[str]:
    """The memsync modules `path` imports (`from memsync import codec` is memsync.codec)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("memsync")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("memsync"):
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in known else node.module)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {m: _imports(p, known) - {m} for m, p in modules.items()}


def _top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _layer(module: str) -> int:
    top = _top(module)
    for i, names in enumerate(LAYERS):
        if top in names:
            return i
    raise AssertionError(f"{module} is in no layer: add its package to LAYERS")


def test_every_module_has_a_layer() -> None:
    for module in _modules():
        _layer(module)


def test_imports_point_down_the_layers() -> None:
    wrong = [
        f"{m} imports {d}"
        for m, deps in _graph().items()
        for d in sorted(deps)
        if d in _modules() and _layer(d) > _layer(m)
    ]
    assert wrong == []


def test_no_import_circles() -> None:
    graph = {m: {d for d in deps if d in _modules()} for m, deps in _graph().items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            part = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                part.append(w)
                if w == v:
                    break
            if len(part) > 1:
                circles.append(sorted(part))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert circles == []


def test_nothing_below_the_facade_imports_it() -> None:
    importers = sorted(
        m for m, deps in _graph().items() if "memsync.vault" in deps and _top(m) not in ADAPTERS
    )
    assert importers == []


@pytest.mark.parametrize("module", sorted(_modules()))
def test_modules_stay_readable(module: str) -> None:
    lines = len(_modules()[module].read_text().splitlines())
    assert lines <= 600, f"{module} has {lines} lines"
