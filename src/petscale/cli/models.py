"""``petscale models``: the model zoo."""

from __future__ import annotations

import json

from rich.console import Console
from rich.table import Table

from petscale.cli import options as o


def models(json_output: o.Json = False) -> None:
    """List the known models: family, layers, hidden size, parameters, and whether installed."""
    from petscale.zoo.catalog import catalog

    rows = catalog()
    if json_output:
        print(json.dumps(rows))
        return
    table = Table("name", "family", "layers", "hidden", "parameters", "pretrained weights")
    for row in rows:
        table.add_row(
            row["name"],
            row["family"],
            str(row["layers"]),
            str(row["hidden"]),
            f"{row['parameters'] / 1e6:,.1f}M",
            "yes" if row["installed"] else _missing(row["source"]),
        )
    Console().print(table)


def _missing(source: str) -> str:
    if source == "config":
        return "no: config only (random init)"
    return "no: package not installed"
