"""Command-line options shared by several commands, declared once."""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable
from typing import Annotated, Any

import typer

Model = Annotated[str, typer.Option(help="Model name (petscale models), local folder or hub id.")]
Task = Annotated[str, typer.Option(help="Task name (petscale tasks) or a CSV/TSV/JSONL path.")]
Method = Annotated[
    str, typer.Option(help="full, lora, prompt, bitfit, adapter, apet or probe (the head alone).")
]
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

#: Every method option: name -> (type, help). Each applies to some methods; a method rejects
#: the others by name. ``budget`` applies to all sized methods (and is native to apet).
METHOD_OPTIONS: dict[str, tuple[type, str]] = {
    "budget": (int, "Trainable parameters: fit the method's size to it (never over)."),
    "rank": (int, "lora: rank (default 8)."),
    "alpha": (float, "lora: scaling alpha (default 16)."),
    "dropout": (float, "lora: dropout on the low-rank input (default 0)."),
    "targets": (str, "lora/apet: roles (q,k,v,attn_out,ffn_in,ffn_out,...) or a regex."),
    "length": (int, "prompt: soft tokens (default 100)."),
    "init": (str, "prompt: vocab (sampled word embeddings, default), uniform or normal."),
    "biases": (str, "bitfit: convention (the study's set) or all."),
    "layers": (int, "bitfit: only the top N blocks' biases (default all)."),
    "bottleneck": (int, "adapter: bottleneck width (default 24)."),
    "activation": (str, "adapter: relu, gelu, tanh or silu."),
    "pattern": (str, "apet: adjacent or discrete."),
    "op": (str, "apet: add, plug or concat."),
    "granularity": (str, "apet: element or tensor."),
    "match": (str, "apet: take the budget of this method's default (e.g. lora)."),
}


def with_method_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add every method option to ``command``; it receives them as ``method_options``, a dict
    of the options the user gave."""
    extra = [
        inspect.Parameter(
            name,
            inspect.Parameter.KEYWORD_ONLY,
            default=None,
            annotation=Annotated[kind | None, typer.Option(help=text, rich_help_panel=_M)],
        )
        for name, (kind, text) in METHOD_OPTIONS.items()
    ]
    signature = inspect.signature(command)
    # Resolve the command's string annotations here, in its own module's namespace.
    hints = typing.get_type_hints(command, include_extras=True)
    own = [
        p.replace(annotation=hints.get(p.name, p.annotation))
        for p in signature.parameters.values()
        if p.name != "method_options"
    ]

    @functools.wraps(command)
    def wrapper(**kwargs: Any) -> Any:
        chosen = {k: kwargs.pop(k) for k in METHOD_OPTIONS}
        return command(**kwargs, method_options={k: v for k, v in chosen.items() if v is not None})

    wrapper.__signature__ = signature.replace(parameters=own + extra)  # type: ignore[attr-defined]
    return wrapper
