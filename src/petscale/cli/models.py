"""``petscale models``: the model zoo."""

from __future__ import annotations

import json

from petscale.cli import options as o
from petscale.cli.table import print_table
from petscale.zoo import catalog


def models(json_output: o.Json = False) -> None:
    """List the known models: family, layers, hidden size, parameters, whether their weights
    are here, and the hub id each stands for (counting takes either name)."""
    rows = catalog.catalog()
    if json_output:
        print(json.dumps(rows))
        return
    print_table(
        ("name", "family", "layers", "hidden", "parameters", "pretrained weights", "hub id"),
        [
            (
                row["name"],
                row["family"],
                str(row["layers"]),
                str(row["hidden"]),
                f"{row['parameters'] / 1e6:,.1f}M",
                _weights(row),
                row["hub_id"],
            )
            for row in rows
        ],
    )


def _weights(row: dict) -> str:
    state = "yes" if row["installed"] else _missing(row["source"])
    return f"{state} ({row['note']})" if row["note"] else state


def _missing(source: str) -> str:
    if source == "config":
        return "no: config only (random init)"
    return "no: package not installed"
