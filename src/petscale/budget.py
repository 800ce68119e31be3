"""Exact trainable counts on the meta device, and fitting a method's size to a budget."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from petscale.errors import UserError
from petscale.heads import head_parameters
from petscale.methods import Delta, MethodConfig, get_method, make_config, option_names
from petscale.zoo.structure import Structure, structure_of

#: The largest size a budget search tries (a rank or bottleneck beyond this is never useful).
MAX_SIZE = 1 << 20


def meta_twin(model: nn.Module) -> nn.Module:
    """The same architecture as ``model`` on the meta device: shapes without memory."""
    with torch.device("meta"):
        return type(model)._from_config(model.config)


def count_method(model: nn.Module, method: str, config: MethodConfig) -> int:
    """The method's exact trainable count on ``model`` (attached to a meta twin, then removed)."""
    twin = model if _on_meta(model) else meta_twin(model)
    delta = get_method(method).attach(twin, structure_of(twin), config)
    try:
        return delta.trainable_params
    finally:
        delta.detach()


def resolve_config(model: nn.Module, method: str, options: dict[str, Any]) -> MethodConfig:
    """The method's config; a ``budget`` option on a method without one picks its size."""
    if "budget" not in options or "budget" in option_names(method):
        return make_config(method, options)
    budget = int(options["budget"])
    rest = {k: v for k, v in options.items() if k != "budget"}
    return fit_budget(model, method, rest, budget)


def fit_budget(model: nn.Module, method: str, options: dict[str, Any], budget: int) -> MethodConfig:
    """The largest size (rank, bottleneck, prompt length ...) whose count is <= ``budget``."""
    config_class = get_method(method).config_class
    knob = config_class.size_option
    if knob is None:
        raise UserError(f"method {method!r} has no size to fit --budget to; drop --budget")
    if knob in options:
        raise UserError(f"give either --budget or --{knob.replace('_', '-')}, not both")
    if budget <= 0:
        raise UserError(f"--budget must be positive, got {budget}")
    twin = model if _on_meta(model) else meta_twin(model)
    # A knob the model bounds (BitFit's number of blocks) is never tried past its maximum.
    largest = min(MAX_SIZE, config_class.max_size(structure_of(twin)) or MAX_SIZE)

    def count(size: int) -> int:
        return count_method(twin, method, make_config(method, {**options, knob: size}))

    if count(1) > budget:
        raise UserError(
            f"--budget {budget} is below the smallest {method} on this model "
            f"({count(1)} parameters at {knob}=1); raise it or use apet for exact budgets"
        )
    low, high = 1, 2  # count(low) <= budget; grow high until it is over
    while high <= largest and count(high) <= budget:
        low, high = high, high * 2
    high = min(high, largest + 1)
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if count(middle) <= budget else (low, middle)
    return make_config(method, {**options, knob: low})


def _on_meta(model: nn.Module) -> bool:
    return next(model.parameters()).device.type == "meta"


def attach_method(
    model: nn.Module, method: str, options: dict[str, Any], structure: Structure | None = None
) -> Delta:
    """Attach ``method`` with ``options`` (a ``budget`` among them picks the size)."""
    config = resolve_config(model, method, options)
    return get_method(method).attach(model, structure or structure_of(model), config)


def head_count(model: nn.Module, structure: Structure) -> int:
    return sum(p.numel() for p in head_parameters(model, structure).values())
