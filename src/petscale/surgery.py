"""Model surgery every layer above may use: swap a module, wrap one, read a hook's arguments,
and the record of where soft tokens sit in a stack's output.

It knows nothing of methods, heads or model families, so methods (which replace projections),
heads (which replace the classifier) and pooling (which reads the soft-token span) all stand on
it without importing one another.
"""

from __future__ import annotations

import inspect

import torch
from torch import nn

#: Attribute of a stack whose input holds soft tokens (prompt tuning, APET concat): the
#: (start, count) of the soft positions in its output. The hooks that splice the tokens set it;
#: whatever reads the stack's output (the mean pooling of a head) leaves that span out.
SOFT_POSITIONS = "petscale_soft_positions"


def soft_positions(stack: nn.Module) -> tuple[int, int]:
    """(start, count) of the soft tokens in ``stack``'s last output; (0, 0) when it has none."""
    return getattr(stack, SOFT_POSITIONS, (0, 0))


def replace_module(model: nn.Module, name: str, new: nn.Module) -> nn.Module:
    """Put ``new`` where module ``name`` was; return the old module."""
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    old = getattr(parent, child)
    setattr(parent, child, new)
    return old


class Wrapper(nn.Module):
    """A module put in the place of ``base`` that runs it. Code that reads the replaced
    module's ``.weight`` (T5's feed-forward checks its dtype) still finds the base weight."""

    def __init__(self, base: nn.Module):
        super().__init__()
        self.base = base

    @property
    def weight(self) -> torch.Tensor:
        return self.base.weight


def call_kwargs(module: nn.Module, args: tuple, kwargs: dict) -> dict:
    """A hook's view of a call: positional arguments named as ``module.forward`` names them."""
    names = list(inspect.signature(module.forward).parameters)
    return {**dict(zip(names, args, strict=False)), **kwargs}
