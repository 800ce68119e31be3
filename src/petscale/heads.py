"""The classification head of an encoder: trainable, frozen, or replaced by label words.

The head is counted apart from the method (``head_params``). A trainable head alone already
beats random guessing on frozen features, so threshold studies can freeze it (a seeded random
head) or replace it by label words (no new parameters), as T5's label words do.
"""

from __future__ import annotations

import torch
from torch import nn

from petscale.errors import UserError
from petscale.zoo.structure import Structure

HEAD_MODES = ("trainable", "frozen", "label-words")


def head_parameters(model: nn.Module, structure: Structure) -> dict[str, nn.Parameter]:
    out: dict[str, nn.Parameter] = {}
    for name in structure.modules("head"):
        for pname, p in model.get_submodule(name).named_parameters():
            out[f"{name}.{pname}"] = p
    return out


def configure_head(model: nn.Module, structure: Structure, mode: str, seed: int) -> None:
    """Set the head's mode; a model without a head (T5, decoders answering in words) is left."""
    if mode not in HEAD_MODES:
        raise UserError(f"unknown --head {mode!r}; choose one of {', '.join(HEAD_MODES)}")
    params = head_parameters(model, structure)
    if not params:
        return
    if mode == "label-words":
        raise UserError("--head label-words is not available yet; use trainable or frozen")
    if mode == "frozen":
        # The same seed gives the same fixed head on every run and machine.
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for name, p in params.items():
                if p.device.type == "meta":
                    continue
                if name.endswith("bias"):
                    p.zero_()
                else:
                    std = 1.0 / p.shape[-1] ** 0.5
                    p.copy_(torch.randn(p.shape, generator=generator) * std)
    for p in params.values():
        p.requires_grad_(mode == "trainable")
