"""Counts that say how the package is put together (issue 21's acceptance figures).

    python benchmarks/code_shape.py [--json] [--src PATH/src/petscale]

- string-key lookups: ``x["key"]`` and ``x.get("key")`` on names that hold a trial's config,
  result, row or record (``CONFIG_NAMES``);
- result schema spellings: modules that list the result's fields, i.e. name at least three of
  ``SCHEMA_FIELDS`` as string constants (a column list, a SQL schema, a dict literal) or as
  dataclass fields;
- method-name comparisons outside ``methods/``: ``==``/``!=``/``in`` against a registered
  method's name;
- imports inside functions (those under ``TYPE_CHECKING`` aside).
"""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src" / "petscale"
CONFIG_NAMES = {
    "cfg", "config", "trial", "row", "result", "report", "record", "rec", "r", "t", "out",
    "settings", "options", "resolved", "normalized", "spec_row", "data", "meta", "saved",
}  # fmt: skip
SCHEMA_FIELDS = {"trainable_params", "head_params", "total_params", "peak_memory_mb", "dev_score"}
METHOD_NAMES = {"full", "lora", "adapter", "prompt", "bitfit", "probe", "apet", "untuned"}


def _modules(src: Path) -> list[tuple[Path, ast.Module]]:
    return [(p, ast.parse(p.read_text())) for p in sorted(src.rglob("*.py"))]


def _name(node: ast.AST) -> str | None:
    return node.id if isinstance(node, ast.Name) else None


def string_key_lookups(tree: ast.Module) -> int:
    count = 0
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript) and _name(node.value) in CONFIG_NAMES:
            key = node.slice
            count += isinstance(key, ast.Constant) and isinstance(key.value, str)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "get"
            and _name(node.func.value) in CONFIG_NAMES
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            count += 1
    return count


def _strings(node: ast.AST) -> set[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return {s for e in node.elts for s in _strings(e)}
    return set()


def name_comparisons(tree: ast.AST, names: set[str]) -> list[tuple[int, str]]:
    """(line, name) of every ``==``, ``!=``, ``in``, ``not in`` (chained or not) with a side
    that spells one of ``names`` (a string, or a tuple, list or set of strings)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            for side in (node.left, *node.comparators):
                found += [(node.lineno, name) for name in sorted(_strings(side) & names)]
    return found


def inner_imports(tree: ast.Module) -> int:
    count = 0
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            count += sum(isinstance(n, (ast.Import, ast.ImportFrom)) for n in ast.walk(node))
    return count


def spells_schema(tree: ast.Module) -> bool:
    named = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            named |= {f for f in SCHEMA_FIELDS if f == node.value or f"{f} " in node.value}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            named |= {node.target.id} & SCHEMA_FIELDS
    return len(named) >= 3


def measure(src: Path = SRC) -> dict[str, object]:
    modules = _modules(src)
    rel = {p: str(p.relative_to(src)) for p, _ in modules}
    spelled = [rel[p] for p, tree in modules if spells_schema(tree)]
    outside = [(p, t) for p, t in modules if not rel[p].startswith("methods/")]
    return {
        "string_key_lookups": sum(string_key_lookups(t) for _, t in modules),
        "result_schema_spelled_in": spelled,
        "method_name_comparisons_outside_methods": sum(
            len(name_comparisons(t, METHOD_NAMES)) for _, t in outside
        ),
        "imports_inside_functions": sum(inner_imports(t) for _, t in modules),
    }


if __name__ == "__main__":
    where = sys.argv[sys.argv.index("--src") + 1] if "--src" in sys.argv else None
    figures = measure(Path(where) if where else SRC)
    if "--json" in sys.argv:
        print(json.dumps(figures, indent=1))
    else:
        for key, value in figures.items():
            shown = f"{len(value)} ({', '.join(value)})" if isinstance(value, list) else value
            print(f"{key}: {shown}")
