"""Model surgery every layer above may use: swap a module, wrap one, read a hook's arguments.

It knows nothing of methods, heads or model families, so methods (which replace projections
and hook stacks), heads (which replace the classifier) and pooling (which hooks the stack the
head reads) all stand on it without importing one another.
"""

from __future__ import annotations

import inspect

import torch
from torch import nn


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
