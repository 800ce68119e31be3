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
    table = Table("name", "family", "layers", "hidden", "parameters", "weights here", "source")
    for row in rows:
        table.add_row(
            row["name"],
            row["family"],
            str(row["layers"]),
            str(row["hidden"]),
            f"{row['parameters'] / 1e6:,.1f}M",
            "yes"
            if row["installed"]
            else "no (random init)"
            if row["source"] == "config"
            else "no",
            row["hub_id"],
        )
    Console().print(table)
