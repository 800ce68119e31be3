"""Methods by name. Each is one module with a config dataclass and ``attach``."""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

from torch import nn

from petscale.errors import UserError
from petscale.methods.base import Delta, MethodConfig, PeftAdapter
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


@cache
def get_method(name: str) -> Method:
    if name not in METHODS:
        raise UserError(f"unknown method {name!r}; known methods: {', '.join(METHODS)}")
    module = importlib.import_module(MODULES.get(name, f"petscale.methods.{name}"))
    to_peft = getattr(module, "to_peft", None)
    return Method(name, module.CONFIG, module.attach, METHODS[name], to_peft)


def option_names(name: str) -> set[str]:
    """The options method ``name`` takes: its config dataclass's fields."""
    return {f.name for f in dataclasses.fields(get_method(name).config_class)}


def has_budget(name: str) -> bool:
    """Whether ``--budget`` can size the method (full and probe have fixed sizes)."""
    return get_method(name).config_class.size_option is not None or "budget" in option_names(name)


def check_match(target: Any) -> None:
    """``match`` names a method whose default count to take (APET has no default)."""
    if target not in METHODS or target == "apet":
        known = ", ".join(m for m in METHODS if m != "apet")
        raise UserError(f"--match {target!r} is not a method to match; choose: {known}")


def make_config(method: str, options: dict[str, Any]) -> MethodConfig:
    """The method's config from user options; an option the method lacks is a UserError."""
    config_class = get_method(method).config_class
    known = option_names(method)
    unknown = sorted(set(options) - known)
    if unknown:
        flags = ", ".join("--" + u.replace("_", "-") for u in unknown)
        accepted = ", ".join("--" + k.replace("_", "-") for k in sorted(known)) or "none"
        raise UserError(f"{flags} does not apply to method {method!r} (its options: {accepted})")
    config = config_class(**options)
    config.validate()
    return config


__all__ = [
    "METHODS",
    "Delta",
    "Method",
    "MethodConfig",
    "check_match",
    "get_method",
    "has_budget",
    "make_config",
    "option_names",
    "register_method",
]
