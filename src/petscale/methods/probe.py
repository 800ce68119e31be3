"""The linear probe: no backbone parameter trains, only the classification head.

The baseline threshold studies need: what a trainable head alone reaches on the frozen
features. Its own count is 0 (the head is counted apart, as ``head_params``), so it needs
``--head trainable`` and a model with a classification head.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import nn

from petscale.methods.base import Delta, MethodConfig, freeze
from petscale.zoo.structure import Structure


@dataclass
class ProbeConfig(MethodConfig):
    default_lr: ClassVar[float] = 1e-3


class ProbeDelta(Delta):
    def parameters(self) -> dict[str, nn.Parameter]:
        return {}


def attach(model: nn.Module, structure: Structure, config: ProbeConfig) -> ProbeDelta:
    config.validate()
    delta = ProbeDelta(model, structure, "probe", config)
    freeze(model, delta)
    return delta


CONFIG = ProbeConfig
