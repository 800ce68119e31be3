"""The rows of ``petscale models``: dimensions and parameter counts, without torch.

Each known model's family, layers, hidden size and parameter count were measured once on the
meta device (``zoo.measure``) and are read from ``zoo/catalog.json``; whether its weights are
here comes from ``assets`` (installed packages, found without importing them).
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from petscale.zoo import assets
from petscale.zoo.names import entries

REWRITE = "python -m petscale.zoo.measure"


def figures() -> dict[str, dict[str, Any]]:
    """Name -> family, layers, hidden, parameters: ``zoo/catalog.json``."""
    return json.loads((resources.files("petscale.zoo") / "catalog.json").read_text())


def catalog() -> list[dict[str, Any]]:
    known = figures()
    rows = []
    for entry in entries().values():
        if entry.name not in known:  # a model added without measuring it (a test catches it)
            raise RuntimeError(f"zoo/catalog.json has no row for {entry.name!r}: run {REWRITE}")
        installed = entry.source == "package" and assets.is_available(entry.name)
        rows.append(
            {
                "name": entry.name,
                **known[entry.name],
                "installed": installed,
                "source": entry.source,
                "hub_id": entry.hub_id,
                # what a user must know about the weights (lossy, licence terms); "" if nothing
                "note": assets.OFFLINE_MODELS[entry.name].note if entry.source == "package" else "",
            }
        )
    return rows
