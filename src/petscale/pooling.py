"""What an encoder's classification head reads: the [CLS] pooler, or the mean of the text.

transformers' BERT head reads the pooler (dense + tanh over the first position); RoBERTa and
MPNet heads read the first position. Sentence-embedding checkpoints (sentence-transformers)
were trained with mean pooling instead and declare it in ``1_Pooling/config.json``; their pooler
weights are stale or absent, so a head on the first position starts from features these models
were never trained to give. ``mean`` gives the head the masked mean of the text's last hidden
states; ``auto`` (the default) uses the pooling the checkpoint declares, else ``cls``.

Soft tokens spliced into the stack's input are left out of the mean: the methods that add them
(prompt, APET concat) record the span they occupy in their delta (``Delta.soft_span``), and the
head is given it when it is set up.

Why a forward hook on the stack: transformers' heads are called with the stack's output alone,
never the attention mask, and the mean needs the mask. The hook is the one place that sees
both; wrapping the model instead would rename every parameter (and every run folder's keys).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from petscale.checks import one_of
from petscale.choices import POOLINGS
from petscale.errors import UserError
from petscale.surgery import call_kwargs
from petscale.zoo.structure import Structure


def peft_pooling_problem(pooling: str) -> str | None:
    """Why a head pooling so has no PEFT counterpart (PEFT's classifiers read transformers'
    [CLS] pooler), or None."""
    if pooling != "mean":
        return None
    return (
        "its head reads the mean of the text (pooling 'mean', the checkpoint's own), but "
        "PEFT's classifiers read the [CLS] pooler: train with --pooling cls to export it"
    )


def reads_weight(pooling: str, name: str) -> bool:
    """Whether a model pooling so reads the weight ``name``: under ``mean`` the head reads the
    mean of the text in place of transformers' pooler, whose weights then shape nothing."""
    return not (pooling == "mean" and ".pooler." in f".{name}")


def resolve_pooling(requested: str, declared: str, structure: Structure) -> str:
    """The pooling a trial uses: ``requested``, with ``auto`` meaning the checkpoint's own."""
    one_of("--pooling", requested, POOLINGS)
    if structure.kind != "encoder":
        if requested == "mean":
            raise UserError(
                f"--pooling mean is for encoder classification heads; this "
                f"{structure.family} model answers otherwise: use --pooling auto"
            )
        return "cls"
    return declared if requested == "auto" else requested


def use_pooling(
    model: nn.Module, structure: Structure, pooling: str, soft_span: tuple[int, int] = (0, 0)
) -> Callable[[], None]:
    """Make the head read ``pooling``, the mean leaving out the (start, count) ``soft_span`` of
    the stack's output; returns a function that undoes it."""
    if pooling == "cls":
        return lambda: None
    stack = model.get_submodule(structure.input_stacks()[0])
    pool = functools.partial(_mean_pool, structure.arch.head_reads, soft_span)
    handle = stack.register_forward_hook(pool, with_kwargs=True)
    return handle.remove


def _mean_pool(
    reads: str,
    soft_span: tuple[int, int],
    module: nn.Module,
    args: tuple,
    kwargs: dict,
    output: Any,
) -> Any:
    hidden = output.last_hidden_state
    mask = call_kwargs(module, args, kwargs).get("attention_mask")
    weights = (
        torch.ones(hidden.shape[:2], dtype=hidden.dtype, device=hidden.device)
        if mask is None
        else mask.to(hidden.dtype)
    ).clone()
    start, count = soft_span
    weights[:, start : start + count] = 0.0  # soft tokens are not the text
    weights = weights.unsqueeze(-1)
    mean = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)
    if reads == "pooler":
        output.pooler_output = mean  # BERT: the head reads the pooler's output
    else:
        # RoBERTa and MPNet heads read the first position: put the mean there.
        output.last_hidden_state = torch.cat([mean.unsqueeze(1), hidden[:, 1:]], dim=1)
    return output
