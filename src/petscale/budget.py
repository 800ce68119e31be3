"""The sizing step, run before anything attaches, and exact counts on the meta device.

``match: M`` becomes a number (M's default count on the model), and a number (``budget``)
becomes the method's size (its ``size_option``: rank, bottleneck, prompt length ...) or, for a
method whose config holds the budget itself (APET), its K. The CLI, the Python API and study
specs all size through :func:`resolve_config`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import nn

from petscale.errors import UserError
from petscale.methods import (
    MethodConfig,
    check_options,
    config_class,
    get_method,
    make_config,
    sizing,
)
from petscale.methods.base import Delta
from petscale.zoo.structure import Structure, structure_of

#: The largest size a budget search tries (a rank or bottleneck beyond this is never useful).
MAX_SIZE = 1 << 20


def meta_twin(model: nn.Module) -> nn.Module:
    """The same architecture as ``model`` on the meta device: shapes without memory."""
    with torch.device("meta"):
        return type(model)._from_config(model.config)


def count_method(model: nn.Module, method: str, config: MethodConfig) -> int:
    """The method's exact trainable count on ``model`` (attached to a meta twin, then removed)."""
    twin = _meta_twin_of(model)
    config = _native_budget(twin, method, config)
    delta = get_method(method).attach(twin, structure_of(twin), config)
    try:
        return delta.trainable_params
    finally:
        delta.detach()


def match_budget(model: nn.Module, target: str) -> int:
    """``match: target``: that method's trainable count at its defaults on ``model``."""
    twin = _meta_twin_of(model)
    count = count_method(twin, target, make_config(target, {}))
    if count <= 0:  # the probe trains only the head, which no method's budget counts
        raise UserError(f"--match {target}: {target} trains no parameters of its own to match")
    return count


def _native_budget(model: nn.Module, method: str, config: MethodConfig) -> MethodConfig:
    # K of a method that holds its budget: given, else the count of its match (or default one).
    if sizing(method) != "native" or config.budget is not None:
        return config
    target = config.match or type(config).default_match
    return dataclasses.replace(config, budget=match_budget(model, target), match=None)


def resolve_config(model: nn.Module, method: str, options: dict[str, Any]) -> MethodConfig:
    """The sizing step: the method's config, ``match`` resolved to a budget and a budget to
    the method's size (or APET's K), checked against ``model``."""
    check_options(method, options)
    if sizing(method) == "native":
        return _native_budget(model, method, make_config(method, options))
    options = dict(options)
    if "match" in options:
        options["budget"] = match_budget(model, options.pop("match"))
    if "budget" not in options:
        config = make_config(method, options)
        knob = config_class(method).size_option
        if knob in options:  # a size the user chose must not outgrow the model
            twin = _meta_twin_of(model)
            count, total = count_method(twin, method, config), model_size(twin)
            if count > total:
                raise UserError(
                    f"--{knob.replace('_', '-')} {options[knob]} gives {method} {count:,} "
                    f"trainable parameters, more than the model's {total:,}; lower it"
                )
        return config
    budget = int(options["budget"])
    rest = {k: v for k, v in options.items() if k != "budget"}
    return fit_budget(model, method, rest, budget)


def model_size(model: nn.Module) -> int:
    """The model's own parameter count (before any method is attached)."""
    return sum(p.numel() for p in model.parameters())


def fit_budget(model: nn.Module, method: str, options: dict[str, Any], budget: int) -> MethodConfig:
    """The largest size (rank, bottleneck, prompt length ...) whose count is <= ``budget``.

    A budget larger than the model, or than the method can use on it (BitFit's biases), is a
    UserError: no size fits it, and a size searched for it could exhaust memory.
    """
    declared = config_class(method)
    knob = declared.size_option
    if knob is None:
        raise UserError(f"method {method!r} has no size to fit --budget to; drop --budget")
    if knob in options:
        raise UserError(f"give either --budget or --{knob.replace('_', '-')}, not both")
    if budget <= 0:
        raise UserError(f"--budget must be positive, got {budget}")
    twin = _meta_twin_of(model)
    total = model_size(twin)
    if budget > total:
        raise UserError(
            f"--budget {budget:,} is larger than the model ({total:,} parameters); lower it"
        )
    # A knob the model bounds (BitFit's number of blocks) is never tried past its maximum.
    bound = declared.max_size(structure_of(twin))
    largest = min(MAX_SIZE, bound or MAX_SIZE)

    def count(size: int) -> int:
        return count_method(twin, method, make_config(method, {**options, knob: size}))

    if count(1) > budget:
        raise UserError(
            f"--budget {budget} is below the smallest {method} on this model "
            f"({count(1)} parameters at {knob}=1); raise it or use apet for exact budgets"
        )
    if bound is not None and count(bound) < budget:
        raise UserError(
            f"--budget {budget:,} is more than {method} can hold on this model (at most "
            f"{count(bound):,}, at {knob}={bound}); lower it or use apet for exact budgets"
        )
    low, high = 1, 2  # count(low) <= budget; grow high until it is over
    while high <= largest and count(high) <= budget:
        low, high = high, high * 2
    high = min(high, largest + 1)
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if count(middle) <= budget else (low, middle)
    return make_config(method, {**options, knob: low})


def _meta_twin_of(model: nn.Module) -> nn.Module:
    # Counting attaches and detaches: on the model itself if it is a meta twin, else on one.
    return model if next(model.parameters()).device.type == "meta" else meta_twin(model)


def attach_method(
    model: nn.Module, method: str, options: dict[str, Any], structure: Structure | None = None
) -> Delta:
    """Attach ``method`` with ``options`` (a ``budget`` among them picks the size)."""
    config = resolve_config(model, method, options)
    return get_method(method).attach(model, structure or structure_of(model), config)
