"""A toy method, as a user would add one: a config dataclass and ``attach``. It trains the
first ``width`` entries of a shift added to the input embeddings, times ``scale``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from petscale.methods.base import Delta, Unmergeable, freeze
from petscale.methods.configs import MethodConfig, positive
from petscale.zoo.structure import Structure


@dataclass
class ToyConfig(MethodConfig):
    width: int = 4
    scale: float = 1.0

    size_option: ClassVar[str | None] = "width"  # so that a budget sizes it

    def validate(self) -> None:
        positive("width", self.width)
        positive("scale", self.scale)


class ToyDelta(Delta):
    def parameters(self) -> dict[str, nn.Parameter]:
        return {"toy_shift": self.model.toy_shift}


def attach(model: nn.Module, structure: Structure, config: ToyConfig) -> ToyDelta:
    config.validate()
    delta = ToyDelta(model, structure, "toy", config)
    freeze(model, delta)
    embeddings = model.get_input_embeddings()
    like = embeddings.weight
    shift = nn.Parameter(torch.zeros(config.width, device=like.device, dtype=like.dtype))
    model.register_parameter("toy_shift", shift)

    def add(_module: nn.Module, _inputs: tuple, output: torch.Tensor) -> torch.Tensor:
        pad = output.shape[-1] - config.width
        return output + config.scale * nn.functional.pad(model.toy_shift, (0, pad))

    hook = embeddings.register_forward_hook(add)
    delta.layers.append(Unmergeable("the toy's shift"))

    def remove() -> None:
        hook.remove()
        del model.toy_shift

    delta.on_detach(remove)
    return delta


CONFIG = ToyConfig
