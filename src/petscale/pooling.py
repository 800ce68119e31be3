"""What an encoder's classification head reads: the [CLS] pooler, or the mean of the text.

transformers' BERT head reads the pooler (dense + tanh over the first position); RoBERTa and
MPNet heads read the first position. Sentence-embedding checkpoints (sentence-transformers)
were trained with mean pooling instead and declare it in ``1_Pooling/config.json``; their pooler
weights are stale or absent, so a head on the first position starts from features these models
were never trained to give. ``mean`` gives the head the masked mean of the text's last hidden
states; ``auto`` (the default) uses the pooling the checkpoint declares, else ``cls``.

Soft tokens spliced into the stack's input are left out of the mean: the methods that add them
(prompt, APET concat) set ``SOFT_POSITIONS`` on the stack to the span they occupy.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from petscale.errors import UserError
from petscale.methods.base import call_kwargs
from petscale.zoo.structure import Structure

POOLINGS = ("auto", "cls", "mean")
#: attribute of an encoder stack: (start, count) of the soft positions in its output
SOFT_POSITIONS = "petscale_soft_positions"


def folder_pooling(folder: Path) -> str:
    """``mean`` where a sentence-transformers folder declares mean pooling, else ``cls``."""
    config = folder / "1_Pooling" / "config.json"
    if not config.is_file():
        return "cls"
    return "mean" if json.loads(config.read_text()).get("pooling_mode_mean_tokens") else "cls"


def resolve_pooling(requested: str, declared: str, structure: Structure) -> str:
    """The pooling a trial uses: ``requested``, with ``auto`` meaning the checkpoint's own."""
    if requested not in POOLINGS:
        raise UserError(f"--pooling must be one of {', '.join(POOLINGS)}, got {requested!r}")
    if structure.kind != "encoder":
        if requested == "mean":
            raise UserError(
                f"--pooling mean is for encoder classification heads; this "
                f"{structure.family} model answers otherwise: use --pooling auto"
            )
        return "cls"
    return declared if requested == "auto" else requested


def use_pooling(model: nn.Module, pooling: str) -> Callable[[], None]:
    """Make the head read ``pooling``; returns a function that undoes it."""
    if pooling == "cls":
        return lambda: None
    handle = model.base_model.register_forward_hook(_mean_pool, with_kwargs=True)
    return handle.remove


def _mean_pool(module: nn.Module, args: tuple, kwargs: dict, output: Any) -> Any:
    hidden = output.last_hidden_state
    mask = call_kwargs(module, args, kwargs).get("attention_mask")
    weights = (
        torch.ones(hidden.shape[:2], dtype=hidden.dtype, device=hidden.device)
        if mask is None
        else mask.to(hidden.dtype)
    ).clone()
    start, count = getattr(module, SOFT_POSITIONS, (0, 0))
    weights[:, start : start + count] = 0.0  # soft tokens are not the text
    weights = weights.unsqueeze(-1)
    mean = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)
    if getattr(output, "pooler_output", None) is not None:
        output.pooler_output = mean  # BERT: the head reads the pooler's output
    else:
        # RoBERTa and MPNet heads read the first position: put the mean there.
        output.last_hidden_state = torch.cat([mean.unsqueeze(1), hidden[:, 1:]], dim=1)
    return output
