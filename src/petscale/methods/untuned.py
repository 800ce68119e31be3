"""The untuned model: nothing trains and no step is taken; the trial only scores the model as
loaded, with the trial's head (a frozen head's seeded projection, label words, or a
trainable head as drawn), on dev and test.

The floor of the study's analyses: what a model that learned nothing from the task scores
(``docs/ANALYSIS.md``). A study adds one such trial per (model, task, seed, head and the
settings that shape evaluation) unless its spec says ``untuned: false``.
"""

from __future__ import annotations

from torch import nn

from petscale.methods.base import freeze
from petscale.methods.configs import UntunedConfig
from petscale.methods.probe import ProbeDelta
from petscale.zoo.structure import Structure


def attach(model: nn.Module, structure: Structure, config: UntunedConfig) -> ProbeDelta:
    """Nothing attached (the probe's empty delta, under this method's name); every base
    parameter frozen."""
    config.validate()
    delta = ProbeDelta(model, structure, "untuned", config)
    freeze(model, delta)
    return delta


CONFIG = UntunedConfig
