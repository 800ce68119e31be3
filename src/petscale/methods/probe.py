"""The linear probe: no backbone parameter trains, only the classification head.

The baseline threshold studies need: what a trainable head alone reaches on the frozen
features. Its own count is 0 (the head is counted apart, as ``head_params``), so it needs
``--head trainable`` and a model with a classification head.
"""

from __future__ import annotations

from torch import nn

from petscale.methods.base import Delta, freeze
from petscale.methods.configs import ProbeConfig
from petscale.zoo.structure import Structure


class ProbeDelta(Delta):
    def parameters(self) -> dict[str, nn.Parameter]:
        return {}


def attach(model: nn.Module, structure: Structure, config: ProbeConfig) -> ProbeDelta:
    config.validate()
    delta = ProbeDelta(model, structure, "probe", config)
    freeze(model, delta)
    return delta


CONFIG = ProbeConfig
