"""Bottleneck adapters (Houlsby et al. 2019), placed as the study's code (OpenDelta) did.

Two per block: after the self-attention output projection and after the feed-forward output
projection (never after cross-attention). Each maps ``y -> y + up(act(down(y)))``; the up
projection starts at zero, so the model starts unchanged.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from petscale.errors import UserError
from petscale.methods.base import Delta, freeze, new_tensor
from petscale.methods.configs import AdapterConfig
from petscale.methods.targets import linear_targets
from petscale.surgery import Wrapper, replace_module
from petscale.zoo.structure import Structure, in_out_features

#: OpenDelta's adapters used gelu_new, the tanh approximation of GELU: "gelu" here. The keys
#: are the names ``AdapterConfig`` accepts (``configs.ACTIVATIONS``).
ACTIVATIONS = {
    "gelu": lambda: nn.GELU(approximate="tanh"),
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "silu": nn.SiLU,
}


class AdapterOutput(Wrapper):
    """``y = base(x)`` followed by ``y + up(act(down(y)))``."""

    mergeable = False  # the activation between down and up is no linear map to fold

    def __init__(self, base: nn.Module, bottleneck: int, activation: str):
        super().__init__(base)
        width = in_out_features(base)[1]
        like = base.weight
        self.down_weight = nn.Parameter(new_tensor(like, bottleneck, width))
        self.down_bias = nn.Parameter(new_tensor(like, bottleneck, zeros=True))
        self.up_weight = nn.Parameter(new_tensor(like, width, bottleneck, zeros=True))
        self.up_bias = nn.Parameter(new_tensor(like, width, zeros=True))
        if like.device.type != "meta":
            nn.init.kaiming_uniform_(self.down_weight, a=math.sqrt(5))  # nn.Linear's init
        self.act = ACTIVATIONS[activation]()

    def forward(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        out = self.base(*args, **kwargs)
        hidden = self.act(nn.functional.linear(out, self.down_weight, self.down_bias))
        return out + nn.functional.linear(hidden, self.up_weight, self.up_bias)

    def merge(self) -> None:
        raise UserError(
            "adapters (a non-linear bottleneck after a projection) cannot be merged into the "
            "base weights"
        )

    def unmerge(self) -> None:
        """Never merged."""


class AdapterDelta(Delta):
    def __init__(self, model: nn.Module, structure: Structure, config: AdapterConfig):
        super().__init__(model, structure, "adapter", config)
        self.adapters: dict[str, AdapterOutput] = {}

    def parameters(self) -> dict[str, nn.Parameter]:
        return {
            f"{name}.adapter.{pname}": p
            for name, adapter in self.adapters.items()
            for pname, p in adapter.named_parameters(recurse=False)
        }


def attach(model: nn.Module, structure: Structure, config: AdapterConfig) -> AdapterDelta:
    config.validate()
    delta = AdapterDelta(model, structure, config)
    freeze(model, delta)
    for name in linear_targets(model, structure, "attn_out,ffn_out"):
        base = model.get_submodule(name)
        wrapper = AdapterOutput(base, config.bottleneck, config.activation)
        replace_module(model, name, wrapper)
        delta.adapters[name] = wrapper
        delta.layers.append(wrapper)
        delta.on_detach(lambda name=name, base=base: replace_module(model, name, base))
    return delta


CONFIG = AdapterConfig
