"""LoRA (Hu et al. 2021): a trainable low-rank update B @ A beside frozen projections."""

from __future__ import annotations

import math

import torch
from torch import nn

from petscale.methods.base import Delta, PeftAdapter, freeze, new_tensor
from petscale.methods.configs import LoraConfig
from petscale.methods.targets import linear_targets
from petscale.surgery import Wrapper, replace_module
from petscale.zoo.structure import Structure, in_out_features, is_transposed


class LoraLinear(Wrapper):
    """``base(x) + scaling * B(A(dropout(x)))``; B starts at zero so the output is unchanged.
    Merged, the update is added to the base weight and the low-rank path is skipped."""

    mergeable = True

    def __init__(self, base: nn.Module, rank: int, alpha: float, dropout: float):
        super().__init__(base)
        in_features, out_features = in_out_features(base)
        self.lora_A = nn.Parameter(new_tensor(base.weight, rank, in_features))
        self.lora_B = nn.Parameter(new_tensor(base.weight, out_features, rank, zeros=True))
        if base.weight.device.type != "meta":
            nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))  # PEFT's default init
        self.scaling = alpha / rank
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.merged_from: torch.Tensor | None = None

    def delta_weight(self) -> torch.Tensor:
        """The update in the base weight's own layout (transposed for GPT-2's Conv1D)."""
        update = (self.lora_B @ self.lora_A) * self.scaling
        return update.T if is_transposed(self.base) else update

    def weight_update(self) -> torch.Tensor:
        """What the layer adds to its base weight (``Layer``): ``delta_weight``."""
        return self.delta_weight()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.base(x)
        if self.merged_from is not None:
            return out
        low_rank = nn.functional.linear(self.dropout(x), self.lora_A)
        return out + nn.functional.linear(low_rank, self.lora_B) * self.scaling

    def merge(self) -> None:
        with torch.no_grad():
            # Keep the original weight so unmerge and detach restore it bit for bit.
            self.merged_from = self.base.weight.detach().clone()
            self.base.weight += self.delta_weight()

    def unmerge(self) -> None:
        with torch.no_grad():
            self.base.weight.copy_(self.merged_from)
        self.merged_from = None


class LoraDelta(Delta):
    def __init__(self, model: nn.Module, structure: Structure, config: LoraConfig):
        super().__init__(model, structure, "lora", config)
        self.wrappers: dict[str, LoraLinear] = {}

    def parameters(self) -> dict[str, nn.Parameter]:
        out: dict[str, nn.Parameter] = {}
        for name, wrapper in self.wrappers.items():
            out[f"{name}.lora_A"] = wrapper.lora_A
            out[f"{name}.lora_B"] = wrapper.lora_B
        return out


def attach(model: nn.Module, structure: Structure, config: LoraConfig) -> LoraDelta:
    config.validate()
    delta = LoraDelta(model, structure, config)
    freeze(model, delta)
    for name in linear_targets(model, structure, config.targets):
        base = model.get_submodule(name)
        wrapper = LoraLinear(base, config.rank, config.alpha, config.dropout)
        replace_module(model, name, wrapper)
        delta.wrappers[name] = wrapper
        delta.layers.append(wrapper)
        delta.on_detach(lambda name=name, base=base: replace_module(model, name, base))
    return delta


def to_peft(
    tensors: dict[str, torch.Tensor], config: LoraConfig, structure: Structure, head: bool
) -> PeftAdapter:
    """PEFT's LORA adapter: the same A and B, under PEFT's names."""
    targets = sorted({k.rsplit(".", 1)[0] for k in tensors})
    options = {
        "r": config.rank,
        "lora_alpha": config.alpha,
        "lora_dropout": config.dropout,
        "target_modules": targets,
        "fan_in_fan_out": structure.arch.transposed,  # Conv1D stores (in, out)
        "bias": "none",
    }
    prefix = "base_model.model."
    weights = {f"{prefix}{k}.weight": v for k, v in tensors.items()}
    return PeftAdapter("LORA", options, weights, prefix)


CONFIG = LoraConfig
