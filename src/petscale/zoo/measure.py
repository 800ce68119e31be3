"""The figures ``petscale models`` lists (family, layers, hidden size, parameters), measured by
building each known model on the meta device (no weights), and the file that keeps them.

The listing reads ``zoo/catalog.json`` so that it never imports torch; after adding or changing
a model, rewrite the file with ``python -m petscale.zoo.measure`` (``tests/test_cli_fast.py``
measures every model again and fails when the file differs).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModel, AutoModelForCausalLM, AutoModelForSeq2SeqLM

from petscale.zoo import registry
from petscale.zoo.names import entries
from petscale.zoo.structure import family_for

#: The file ``catalog.catalog`` reads, shipped in the package (pyproject's package data).
CATALOG_FILE = Path(__file__).with_name("catalog.json")
_LM = {"encoder-decoder": AutoModelForSeq2SeqLM, "decoder": AutoModelForCausalLM}


def _dims(config: Any) -> tuple[int, int]:
    layers = getattr(config, "num_hidden_layers", None) or getattr(config, "num_layers", None)
    hidden = getattr(config, "hidden_size", None) or getattr(config, "d_model", None)
    return layers or getattr(config, "n_layer", 0), hidden or getattr(config, "n_embd", 0)


def measure(name: str) -> dict[str, Any]:
    """One known model's figures, from its config on the meta device."""
    config = registry.shape_config(name)
    # Encoders count their backbone; T5 and decoders their whole language model.
    family = family_for(config)
    model_class = AutoModel if family.kind == "encoder" else _LM[family.kind]
    with torch.device("meta"):
        backbone = model_class.from_config(config, trust_remote_code=False)
    layers, hidden = _dims(config)
    parameters = sum(p.numel() for p in backbone.parameters())
    return {"family": family.name, "layers": layers, "hidden": hidden, "parameters": parameters}


def measured() -> dict[str, dict[str, Any]]:
    """Every known model's figures, by name: what ``catalog.json`` must hold."""
    return {name: measure(name) for name in entries()}


def text(figures: dict[str, dict[str, Any]]) -> str:
    """The file's text: one model a line, so that a change reads as a one-line diff."""
    lines = [f"  {json.dumps(name)}: {json.dumps(row)}" for name, row in figures.items()]
    return "{\n" + ",\n".join(lines) + "\n}\n"


def write(path: Path = CATALOG_FILE) -> Path:
    path.write_text(text(measured()), encoding="utf-8")
    return path


if __name__ == "__main__":
    print(f"wrote {write()}")
