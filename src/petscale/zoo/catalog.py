"""The rows of ``petscale models``: dimensions and parameter counts, without loading weights."""

from __future__ import annotations

from typing import Any

import torch
from transformers import AutoModel, AutoModelForCausalLM, AutoModelForSeq2SeqLM

from petscale.zoo import registry
from petscale.zoo.structure import family_for

_LM = {"encoder-decoder": AutoModelForSeq2SeqLM, "decoder": AutoModelForCausalLM}


def _dims(config: Any) -> tuple[int, int]:
    layers = getattr(config, "num_hidden_layers", None) or getattr(config, "num_layers", None)
    hidden = getattr(config, "hidden_size", None) or getattr(config, "d_model", None)
    return layers or getattr(config, "n_layer", 0), hidden or getattr(config, "n_embd", 0)


def catalog() -> list[dict[str, Any]]:
    from petscale.zoo import assets

    rows = []
    for entry in registry.entries().values():
        installed = entry.source == "package" and assets.is_available(entry.name)
        config = registry.shape_config(entry.name)
        # Encoders count their backbone; T5 and decoders their whole language model.
        family = family_for(config)
        model_class = AutoModel if family.kind == "encoder" else _LM[family.kind]
        with torch.device("meta"):
            backbone = model_class.from_config(config, trust_remote_code=False)
        layers, hidden = _dims(config)
        rows.append(
            {
                "name": entry.name,
                "family": family.name,
                "layers": layers,
                "hidden": hidden,
                "parameters": sum(p.numel() for p in backbone.parameters()),
                "installed": installed,
                "source": entry.source,
                "hub_id": entry.hub_id,
                # what a user must know about the weights (lossy, licence terms); "" if nothing
                "note": assets.OFFLINE_MODELS[entry.name].note if entry.source == "package" else "",
            }
        )
    return rows
