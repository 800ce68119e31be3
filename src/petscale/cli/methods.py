"""``petscale methods``: every registered method, its options with their defaults, what
``--budget`` sizes, and its default learning rate and schedule."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from petscale.cli import options as o
from petscale.cli.table import print_table
from petscale.methods import METHODS, config_class


def method_rows() -> list[dict[str, Any]]:
    """One row per registered method (plugins included), read from its config dataclass."""
    rows = []
    for name, summary in METHODS.items():
        declared = config_class(name)
        sized = {"size": declared.size_option, "native": "budget"}.get(declared.sizing)
        rows.append(
            {
                "name": name,
                "summary": summary,
                "options": {f.name: _default(f) for f in dataclasses.fields(declared)},
                "sized_by_budget": sized,
                "default_lr": declared.default_lr,
                "default_schedule": declared.default_schedule,
            }
        )
    return rows


def _default(field: dataclasses.Field) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return None


def methods(json_output: o.Json = False) -> None:
    """List the methods: what each trains, its options and defaults, what --budget sizes."""
    rows = method_rows()
    if json_output:
        print(json.dumps(rows, default=str))
        return
    print_table(
        ("name", "trains", "budget sizes", "lr", "options (defaults)"),
        [
            (
                row["name"],
                row["summary"],
                row["sized_by_budget"] or "-",
                f"{row['default_lr']:g}",
                ", ".join(f"{k}={v}" for k, v in row["options"].items()) or "-",
            )
            for row in rows
        ],
    )
