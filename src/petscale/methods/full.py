"""Full fine-tuning: every backbone parameter is trainable (the head is counted apart)."""

from __future__ import annotations

import torch
from torch import nn

from petscale.methods.base import Delta, InPlace
from petscale.methods.configs import FullConfig
from petscale.zoo.structure import Structure


class FullDelta(Delta):
    def parameters(self) -> dict[str, nn.Parameter]:
        head = tuple(self.structure.modules("head"))
        return {
            name: p
            for name, p in self.model.named_parameters()
            if not name.startswith(tuple(f"{h}." for h in head))
        }


def attach(model: nn.Module, structure: Structure, config: FullConfig) -> FullDelta:
    config.validate()
    delta = FullDelta(model, structure, "full", config)
    delta.layers.append(InPlace())  # the trained weights already are the base weights
    params = delta.parameters()
    # detach() must give back the pretrained model, so keep its weights and flags.
    original = {name: p.detach().clone() for name, p in params.items()}
    flags = {name: p.requires_grad for name, p in params.items()}
    for p in params.values():
        p.requires_grad_(True)

    def restore() -> None:
        with torch.no_grad():
            for name, p in delta.parameters().items():
                p.copy_(original[name])
                p.requires_grad_(flags[name])

    delta.on_detach(restore)
    return delta


CONFIG = FullConfig
