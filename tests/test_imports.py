"""Every import points down: no cycle between modules or packages, no import of a higher layer.

The walk reads the source with ``ast``, so imports inside functions (the few that keep torch,
pandas or matplotlib out of a command's ``--help``) and under ``TYPE_CHECKING`` count as much as
module-level ones: a cycle hidden in a function is still a cycle. docs/ARCHITECTURE.md draws
the same layers.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "petscale"

#: The layers, lowest first. A unit (a top-level module, or a subpackage as a whole) may import
#: units of its own layer or below, never above. A new module goes on the lowest floor whose
#: imports it needs.
LAYERS: tuple[tuple[str, ...], ...] = (
    # ground floor: no model, no task, no method
    (
        *("errors", "checks", "paths", "formatting", "folders", "hub", "ids", "surgery"),
        *("results", "tracking", "choices"),
    ),
    ("tasks",),
    ("zoo",),  # model names, loading, structure maps and families
    ("methods",),  # deltas: one module per method
    ("heads", "pooling"),  # the classification head and what it reads
    ("budget",),  # counts and sizing
    ("answers", "features"),
    ("train", "checkpoints"),
    ("settings", "run_folder"),  # the trial schema; saved runs
    ("trial",),
    ("api", "export"),
    ("study",),
    ("analysis",),  # pure functions of a study's table
    ("deltas",),  # what reads kept deltas or loads models for the analyses
    ("report", "search"),
    ("demo", "cli", PACKAGE),  # the package itself: the lazy public API
)


def modules() -> dict[str, Path]:
    """Dotted name -> file of every module under src/petscale (packages by their __init__)."""
    out = {}
    for path in sorted((SOURCE / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(SOURCE).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def imported(name: str, path: Path, known: set[str]) -> set[str]:
    """The project modules ``name`` imports anywhere in its file."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            for alias in node.names:
                # ``from petscale.zoo import registry`` imports the module petscale.zoo.registry
                child = f"{base}.{alias.name}"
                out.add(child if child in known else base)
    return {m for m in out if m in known and m != name}


@functools.cache
def graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports (read once per session)."""
    found = modules()
    return {name: imported(name, path, set(found)) for name, path in found.items()}


def unit(module: str) -> str:
    """``petscale.methods.lora`` -> ``methods``; ``petscale.trial`` -> ``trial``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else PACKAGE


def units(edges: dict[str, set[str]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for source, targets in edges.items():
        out.setdefault(unit(source), set()).update(
            unit(t) for t in targets if unit(t) != unit(source)
        )
    return out


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
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
    return found


def layer_of() -> dict[str, int]:
    return {name: floor for floor, names in enumerate(LAYERS) for name in names}


def test_the_walk_sees_deferred_and_relative_imports(tmp_path: Path) -> None:
    path = tmp_path / "mod.py"
    path.write_text(
        "from __future__ import annotations\n"
        "def f():\n    from petscale.methods import lora\n"
        "from . import errors\n"
    )
    known = {"petscale.methods", "petscale.methods.lora", "petscale.errors", "petscale.x"}
    assert imported("petscale.x", path, known) == {"petscale.methods.lora", "petscale.errors"}


def test_cycles_are_found() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_cycle() -> None:
    assert cycles(graph()) == []


def test_no_package_cycle() -> None:
    assert cycles(units(graph())) == []


def test_every_unit_has_a_layer() -> None:
    missing = sorted(set(units(graph())) - set(layer_of()))
    assert not missing, f"give {missing} a layer in LAYERS (and in docs/ARCHITECTURE.md)"


@pytest.mark.parametrize("floor", range(len(LAYERS)), ids=lambda f: "+".join(LAYERS[f]))
def test_imports_point_down(floor: int) -> None:
    """No unit imports a higher layer; in particular nothing below ``methods`` imports it."""
    layers = layer_of()
    upward = sorted(
        f"{source} imports {target}"
        for source, targets in graph().items()
        if layers.get(unit(source)) == floor
        for target in targets
        if layers.get(unit(target), -1) > floor
    )
    assert upward == []


def test_architecture_lists_the_layers_and_every_module() -> None:
    text = (SOURCE.parent / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    for names in LAYERS:
        assert " · ".join(f"`{n}`" for n in names) in text, names
    missing = [
        name
        for name, path in modules().items()
        if path.name != "__init__.py"
        and f"`{name.removeprefix(PACKAGE + '.').replace('.', '/')}.py`" not in text
    ]
    assert missing == []
