"""Methods by name: the registry, and what each method declares. Torch-free: a method's
module (its ``attach`` and ``to_peft``) is imported only when ``get_method`` needs it, and its
config dataclass comes from :mod:`petscale.methods.configs` (a plugin's, from its module).

Code outside this package asks these queries (``sizing``, ``study_role``, ``head_only`` ...)
about a method instead of comparing its name.
"""

from __future__ import annotations

import dataclasses
import importlib
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from petscale.checks import finite, is_a
from petscale.errors import UserError
from petscale.methods.configs import (
    AdapterConfig,
    ApetConfig,
    BitFitConfig,
    FullConfig,
    LoraConfig,
    MethodConfig,
    ProbeConfig,
    PromptConfig,
    UntunedConfig,
)

if TYPE_CHECKING:  # types only: these modules import torch
    from torch import nn

    from petscale.methods.base import Delta, PeftAdapter
    from petscale.zoo.structure import Structure

#: name -> one-line summary. Method ``m`` lives in module ``petscale.methods.m``, which
#: defines ``CONFIG`` (its MethodConfig dataclass) and ``attach(model, structure, config)``.
METHODS: dict[str, str] = {
    "full": "every backbone parameter",
    "lora": "low-rank updates of the attention query and value (rank 8)",
    "prompt": "soft tokens prepended to the encoder input (100)",
    "bitfit": "biases of attention, feed-forward, layer norms and LM head",
    "adapter": "bottleneck adapters after attention and feed-forward (24)",
    "apet": "an exact number of trainable entries, of any structure",
    "probe": "nothing but the classification head (the linear-probe baseline)",
    "untuned": "nothing: the model scored as loaded, no step taken (the analyses' floor)",
}

#: name -> config dataclass of the built-in methods (the same class as their module's CONFIG),
#: read without importing the module.
CONFIGS: dict[str, type[MethodConfig]] = {
    "full": FullConfig,
    "lora": LoraConfig,
    "prompt": PromptConfig,
    "bitfit": BitFitConfig,
    "adapter": AdapterConfig,
    "apet": ApetConfig,
    "probe": ProbeConfig,
    "untuned": UntunedConfig,
}

#: name -> module, for a method that lives outside this package (a plugin, a test's toy).
MODULES: dict[str, str] = {}


def register_method(name: str, summary: str, module: str) -> None:
    """Add method ``name`` from ``module`` (its ``CONFIG`` and ``attach``): the CLI (built
    after), the Python API and study specs then take it and its options like any other."""
    METHODS[name] = summary
    MODULES[name] = module
    get_method.cache_clear()


@dataclass(frozen=True)
class Method:
    name: str
    config_class: type[MethodConfig]
    attach: Callable[[nn.Module, Structure, Any], Delta]
    summary: str
    #: ``to_peft(tensors, config, structure, head) -> PeftAdapter`` where the module defines
    #: one (``petscale export``); None: PEFT has no counterpart
    to_peft: Callable[..., PeftAdapter] | None = None


def _known(name: str) -> None:
    if name not in METHODS:
        raise UserError(f"unknown method {name!r}; known methods: {', '.join(METHODS)}")


@cache
def get_method(name: str) -> Method:
    """The method with its ``attach`` (its module imported here: torch and all)."""
    _known(name)
    module = importlib.import_module(MODULES.get(name, f"petscale.methods.{name}"))
    to_peft = getattr(module, "to_peft", None)
    return Method(name, module.CONFIG, module.attach, METHODS[name], to_peft)


def config_class(name: str) -> type[MethodConfig]:
    """The method's config dataclass: a built-in's without importing its module."""
    _known(name)
    if name in MODULES:  # a plugin: its config is in its own module
        return get_method(name).config_class
    return CONFIGS[name]


def option_names(name: str) -> set[str]:
    """The options method ``name`` takes: its config dataclass's fields."""
    return {f.name for f in dataclasses.fields(config_class(name))}


# -- what a method declares ------------------------------------------------------------------
# Queries by name. A name no method here has (a table from a study that ran a plugin this
# process has not registered) answers as a tuned method with no declarations.


def _declared(name: str) -> type[MethodConfig]:
    return config_class(name) if name in METHODS else MethodConfig


def sizing(name: str) -> str:
    """How ``--budget`` sizes the method: ``fixed``, ``size`` or ``native`` (``SIZINGS``)."""
    return config_class(name).sizing


def is_fixed(name: str) -> bool:
    """Whether the method has a fixed size that no budget changes (full, probe, untuned)."""
    return sizing(name) == "fixed"


def study_role(name: str) -> str | None:
    """The method's role in a study's analyses: ``reference``, ``baseline``, ``floor``, or
    None for a tuned method (``configs.ROLES``)."""
    return _declared(name).study_role


def methods_in_role(role: str) -> tuple[str, ...]:
    """The registered methods with that study role, in registry order."""
    return tuple(name for name in METHODS if study_role(name) == role)


def reference_method() -> str:
    """The method every other is held against (full fine-tuning)."""
    return methods_in_role("reference")[0]


def floor_method() -> str:
    """The method that scores a model that learned nothing (untuned)."""
    return methods_in_role("floor")[0]


def head_only(name: str) -> bool:
    """Whether only the classification head trains (the probe): its head is trainable, and a
    model without a head cannot run it."""
    return _declared(name).head_only


def matchable(name: str) -> bool:
    """Whether ``match`` can name the method (every registered one but APET)."""
    return name in METHODS and config_class(name).matchable


def check_match(target: Any) -> None:
    """``match`` names a method whose default count to take (APET has no default)."""
    if not isinstance(target, str) or not matchable(target):
        known = ", ".join(m for m in METHODS if matchable(m))
        raise UserError(f"--match {target!r} is not a method to match; choose: {known}")


def structure_name(name: str, options: Mapping[str, Any] | None = None) -> str:
    """The structure the analyses compare: the method's name, or what its options make of it
    (APET's ``apet-plug-discrete`` ...)."""
    return _declared(name).structure_name(name, options or {})


def pattern_of(name: str, options: Mapping[str, Any], default: bool = True) -> Any:
    """The method's placement pattern in ``options`` (APET's adjacent | discrete); where they
    give none, its default (``default``) or None. None for a method without one."""
    config = _declared(name)
    key = config.pattern_option
    if key is None:
        return None
    given = options.get(key)
    return (given or config.default(key)) if default else given


def weight_delta(name: str, options: Mapping[str, Any]) -> str | None:
    """What the run's trained tensors are to the base weights (``configs.WEIGHT_DELTAS``)."""
    return _declared(name).weight_delta(options)


def make_config(method: str, options: dict[str, Any]) -> MethodConfig:
    """The method's config from user options; an option the method lacks is a UserError."""
    config_type = config_class(method)
    known = option_names(method)
    unknown = sorted(set(options) - known)
    if unknown:
        flags = ", ".join("--" + u.replace("_", "-") for u in unknown)
        accepted = ", ".join("--" + k.replace("_", "-") for k in sorted(known)) or "none"
        raise UserError(f"{flags} does not apply to method {method!r} (its options: {accepted})")
    config = config_type(**options)
    # A native budget's ``match`` names a method: the registry checks it, before the config's
    # own checks where no budget is given (a budget beside it fails those first).
    target = getattr(config, "match", None)
    if config.sizing == "native" and target is not None and getattr(config, "budget", 1) is None:
        check_match(target)
    config.validate()
    return config


def __getattr__(name: str) -> Any:
    # ``from petscale.methods import Delta`` as before, without importing torch up front
    if name in ("Delta", "PeftAdapter"):
        return getattr(importlib.import_module("petscale.methods.base"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


#: The options that size a method, as a user writes them: ``budget: N`` or ``match: M``.
BUDGET_OPTIONS = ("budget", "match")


@dataclass(frozen=True)
class Budget:
    """How large a method is made: its default size (nothing given), ``count`` trainable
    parameters, or ``match``: another method's default count on the same model. The one form
    of a budget: a study spec's ``budgets``, the options ``budget``/``match`` of ``tune`` and
    the API (``of``, ``as_options``), APET's K (its config holds the two fields itself)."""

    count: int | None = None
    match: str | None = None

    @classmethod
    def of(cls, options: Mapping[str, Any]) -> Budget:
        return cls(options.get("budget"), options.get("match"))

    def as_options(self) -> dict[str, Any]:
        given = zip(BUDGET_OPTIONS, (self.count, self.match), strict=True)
        return {k: v for k, v in given if v is not None}

    @property
    def is_default(self) -> bool:
        return self.count is None and self.match is None


def check_options(method: str, options: Mapping[str, Any]) -> None:
    """Every check a method's options get without a model: known names, finite numbers, the
    method's own validation, and a budget never given with the size it picks."""
    hints = typing.get_type_hints(config_class(method))
    for name, value in options.items():
        flag = f"--{name.replace('_', '-')}"
        finite(flag, value)
        if name in hints and not is_a(value, hints[name]):
            kind = " or ".join(t.__name__ for t in typing.get_args(hints[name]) or [hints[name]])
            raise UserError(f"{flag} takes {kind.replace('NoneType', 'nothing')}, got {value!r}")
    if sizing(method) == "native":
        make_config(method, dict(options))  # the config checks its own budget and match
        return
    if "budget" in options and "match" in options:
        raise UserError("give either --budget or --match, not both")
    if "match" in options:
        check_match(options["match"])
    given = {k for k in BUDGET_OPTIONS if k in options}
    if not given:
        make_config(method, dict(options))
        return
    flag = "--" + given.pop()
    knob = config_class(method).size_option
    if knob is None:
        raise UserError(f"method {method!r} has no size to fit {flag} to; drop {flag}")
    if knob in options:
        raise UserError(f"give either {flag} or --{knob.replace('_', '-')}, not both")
    if options.get("budget", 1) <= 0:
        raise UserError(f"--budget must be positive, got {options['budget']}")
    make_config(method, {k: v for k, v in options.items() if k not in BUDGET_OPTIONS})


__all__ = [
    "CONFIGS",
    "METHODS",
    "Method",
    "MethodConfig",
    "BUDGET_OPTIONS",
    "Budget",
    "check_match",
    "check_options",
    "config_class",
    "floor_method",
    "get_method",
    "head_only",
    "is_fixed",
    "make_config",
    "matchable",
    "methods_in_role",
    "option_names",
    "pattern_of",
    "reference_method",
    "register_method",
    "sizing",
    "structure_name",
    "study_role",
    "weight_delta",
]
