"""Command-line options shared by several commands, declared once."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import typing
from collections.abc import Callable
from typing import Annotated, Any

import typer

from petscale.methods import METHODS, config_class
from petscale.settings import DEFAULTS, RULES, TUNE_SETTINGS, kind

Model = Annotated[str, typer.Option(help=RULES["model"].help)]
Task = Annotated[str, typer.Option(help=RULES["task"].help)]


def method_option() -> typer.models.OptionInfo:
    """``--method``, its help naming every method registered when the command is built."""
    names = ", ".join(METHODS)
    return typer.Option(help=f"One of: {names}. `petscale methods` says what each trains.")


Json = Annotated[
    bool, typer.Option("--json", help="Print one JSON object on stdout, nothing else.")
]

_T = "Task data"
DataDir = Annotated[
    str | None,
    typer.Option(help="A hub task's local copy: save_to_disk folder or files.", rich_help_panel=_T),
]
TextField = Annotated[
    str | None, typer.Option(help="Text column of your file.", rich_help_panel=_T)
]
TextPairField = Annotated[
    str | None, typer.Option(help="Second text column (pair tasks).", rich_help_panel=_T)
]
LabelField = Annotated[str | None, typer.Option(help="Label column.", rich_help_panel=_T)]

_M = "Method options"  # the help panel they are listed under

#: Sizing options: every sized method takes them (apet's K is its own ``budget``).
SIZING_OPTIONS: dict[str, tuple[type, str]] = {
    "budget": (int, "Trainable parameters: fit the method's size to it (never over)."),
    "match": (str, "Take the budget of this method's default count on the model (e.g. lora)."),
}
#: What a method option means, where its name alone does not say it.
OPTION_HELP: dict[str, str] = {
    "alpha": "scaling alpha",
    "dropout": "dropout on the low-rank input",
    "targets": "roles (q,k,v,attn_out,ffn_in,ffn_out,...) or a regex",
    "length": "soft tokens",
    "init": "vocab (sampled word embeddings), uniform or normal",
    "biases": "convention (the study's set) or all",
    "layers": "only the top N blocks' biases",
    "bottleneck": "bottleneck width",
    "activation": "relu, gelu, tanh or silu",
    "pattern": "adjacent or discrete",
    "op": "add, plug, concat or bias",
    "granularity": "element or tensor",
}


def method_options() -> dict[str, tuple[type, str]]:
    """Every method option: name -> (type, help), from the methods' config dataclasses (each
    applies to some methods; a method rejects the others by name)."""
    found: dict[str, tuple[type, list[str]]] = {}
    for method in METHODS:
        declared = config_class(method)
        hints = typing.get_type_hints(declared)
        for field in dataclasses.fields(declared):
            if field.name in SIZING_OPTIONS or field.name in RULES:
                continue  # apet's seed is the trial's
            default = "" if field.default is None else f" (default {field.default})"
            kind = next(k for k in typing.get_args(hints[field.name]) or [hints[field.name]])
            text = f"{method}: {OPTION_HELP.get(field.name, field.name.replace('_', ' '))}"
            _, texts = found.setdefault(field.name, (kind, []))
            texts.append(text + default)
    options = dict(SIZING_OPTIONS)
    for name, (kind, texts) in found.items():
        options[name] = (kind, "; ".join(texts) + ".")
    return options


def with_method_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add every method option to ``command``; it receives them as ``method_options``, a dict
    of the options the user gave."""
    extra = {
        name: Annotated[kind | None, typer.Option(help=text, rich_help_panel=_M)]
        for name, (kind, text) in method_options().items()
    }
    return _with_options(command, "method_options", extra, dict.fromkeys(extra))


def with_trial_settings(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add every ``tune`` setting of :class:`petscale.settings.TrialConfig` to ``command``, with
    its type, default and help; it receives them as ``settings``, a dict."""
    extra = {}
    for name in TUNE_SETTINGS:
        wanted = kind(name)
        optional = DEFAULTS[name] is None
        extra[name] = Annotated[
            wanted | None if optional else wanted, typer.Option(help=RULES[name].help)
        ]
    return _with_options(command, "settings", extra, {n: DEFAULTS[n] for n in TUNE_SETTINGS})


def _with_options(
    command: Callable[..., Any],
    into: str,
    annotations: dict[str, Any],
    defaults: dict[str, Any],
) -> Callable[..., Any]:
    extra = [
        inspect.Parameter(
            name, inspect.Parameter.KEYWORD_ONLY, default=defaults[name], annotation=annotation
        )
        for name, annotation in annotations.items()
    ]
    signature = inspect.signature(command)
    # Resolve the command's string annotations here, in its own module's namespace.
    hints = typing.get_type_hints(command, include_extras=True)
    own = [
        p.replace(annotation=hints.get(p.name, p.annotation))
        for p in signature.parameters.values()
        if p.name != into
    ]

    @functools.wraps(command)
    def wrapper(**kwargs: Any) -> Any:
        chosen = {k: kwargs.pop(k) for k in annotations}
        return command(**kwargs, **{into: {k: v for k, v in chosen.items() if v is not None}})

    wrapper.__signature__ = signature.replace(parameters=own + extra)  # type: ignore[attr-defined]
    return wrapper
