"""APET's PLUG and CONCAT operations: adapter-shaped and prompt-shaped frozen modules whose
entries are partly trainable (the sparse values of :mod:`petscale.methods.sparse`).

PLUG: after each target projection (attn_out and ffn_out by default), ``y + up(gelu(down(y)))``
with a frozen seeded down (d x b, std 1/sqrt(d)) and up (b x d, std 1e-3, so the model starts
near unchanged). Width rule: b = the adapter's default 24, or the smallest width whose 2 d b
entries per plug, over all plugs, hold K.

CONCAT: n soft tokens (a frozen n x d matrix of word embeddings at seeded random vocabulary ids,
so their scale matches real tokens) inserted in the input embeddings: after the first token on
encoders (the head reads [CLS] there), in front on T5's encoder input and on decoders (whose
logits for the soft tokens are cut off again). Length rule: n = the prompt method's default 100,
or ceil(K / d) when more are needed; with tensor granularity n = floor(K / d), all trainable.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from petscale.errors import UserError
from petscale.methods.sparse import SparseLinear, add_into
from petscale.pooling import SOFT_POSITIONS

ADAPTER_WIDTH = 24
PROMPT_LENGTH = 100


def plug_width(budget: int, dim: int, plugs: int) -> int:
    return max(ADAPTER_WIDTH, math.ceil(budget / (2 * dim * plugs)))


def prompt_length(budget: int, dim: int, whole: bool) -> int:
    return budget // dim if whole else max(PROMPT_LENGTH, math.ceil(budget / dim))


class Plug(nn.Module):
    """A frozen bottleneck ``up(gelu(down(y)))``; its ``down``/``up`` become SparseLinear."""

    def __init__(self, dim: int, width: int, like: torch.Tensor, gen: torch.Generator | None):
        super().__init__()
        self.down: nn.Module = nn.Linear(
            dim, width, bias=False, device=like.device, dtype=like.dtype
        )
        self.up: nn.Module = nn.Linear(width, dim, bias=False, device=like.device, dtype=like.dtype)
        self.requires_grad_(False)
        if gen is not None:  # None on the meta device: shapes only
            with torch.no_grad():
                self.down.weight.copy_(torch.randn(width, dim, generator=gen) / math.sqrt(dim))
                self.up.weight.copy_(torch.randn(dim, width, generator=gen) * 1e-3)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.up(nn.functional.gelu(self.down(y)))

    def sparsify(self, indices: dict[str, torch.Tensor]) -> dict[str, SparseLinear]:
        """Wrap ``down``/``up`` with the given sparse positions; returns the wrapped ones."""
        wrapped = {}
        for name, idx in indices.items():
            layer = SparseLinear(getattr(self, name), idx)
            setattr(self, name, layer)
            wrapped[name] = layer
        return wrapped


class Plugged(nn.Module):
    """``base(x)`` followed by a residual plug."""

    def __init__(self, base: nn.Module, plug: Plug):
        super().__init__()
        self.base = base
        self.plug = plug

    @property
    def weight(self) -> torch.Tensor:
        """The base projection's weight (T5 reads ``wo.weight.dtype``)."""
        return self.base.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.base(x)
        return y + self.plug(y)


class SoftPrompt(nn.Module):
    """A frozen prompt matrix (a buffer) plus sparse trainable values at flat ``indices``."""

    def __init__(self, prompt: torch.Tensor, indices: torch.Tensor):
        super().__init__()
        self.register_buffer("prompt", prompt)
        self.register_buffer("indices", indices.to(prompt.device))
        self.values = nn.Parameter(
            torch.zeros(indices.numel(), dtype=prompt.dtype, device=prompt.device)
        )

    def forward(self) -> torch.Tensor:
        return add_into(self.prompt, self.indices, self.values)


def initial_prompt(model: nn.Module, length: int, gen: torch.Generator | None) -> torch.Tensor:
    """``length`` rows of the word embeddings at seeded random ids (empty shapes on meta)."""
    table = model.get_input_embeddings().weight
    if gen is None:
        return torch.empty(length, table.shape[1], device=table.device, dtype=table.dtype)
    ids = torch.randint(table.shape[0], (length,), generator=gen)
    with torch.no_grad():  # through the module: Gemma scales its embeddings by sqrt(hidden)
        return model.get_input_embeddings()(ids.to(table.device)).clone()


def insert_prompt(model: nn.Module, soft: SoftPrompt, kind: str):  # noqa: ANN201 - hook handles
    """Hooks that splice the soft tokens into every forward call; returns their handles."""
    at = 1 if kind == "encoder" else 0
    length = soft.prompt.shape[0]

    def splice(t: torch.Tensor, filler: torch.Tensor) -> torch.Tensor:
        return torch.cat([t[:, :at], filler, t[:, at:]], dim=1)

    def before(_module: nn.Module, args: tuple, kwargs: dict[str, Any]) -> tuple:
        if args:
            raise UserError("apet --op concat needs keyword inputs (input_ids=..., ...)")
        for key in ("encoder_outputs", "past_key_values", "position_ids"):
            if kwargs.get(key) is not None:
                raise UserError(f"apet --op concat does not support {key} (generation) yet")
        ids, embeds = kwargs.pop("input_ids", None), kwargs.pop("inputs_embeds", None)
        if embeds is None:
            embeds = model.get_input_embeddings()(ids)
        batch = embeds.shape[0]
        prompt = soft().to(embeds.dtype).unsqueeze(0).expand(batch, -1, -1)
        kwargs["inputs_embeds"] = splice(embeds, prompt)
        for key, fill in (("attention_mask", 1), ("token_type_ids", 0), ("labels", -100)):
            value = kwargs.get(key)
            if value is not None and value.dim() == 2 and (key != "labels" or kind == "decoder"):
                kwargs[key] = splice(value, value.new_full((batch, length), fill))
        return args, kwargs

    if kind == "encoder":  # a mean-pooled head leaves the soft tokens out (petscale.pooling)
        setattr(model.base_model, SOFT_POSITIONS, (at, length))

    def after(_module: nn.Module, _args: tuple, _kwargs: dict[str, Any], output: Any) -> Any:
        logits = getattr(output, "logits", None)
        if kind == "decoder" and logits is not None and logits.dim() == 3:
            output["logits"] = logits[:, length:]
        return output

    return (
        model.register_forward_pre_hook(before, with_kwargs=True),
        model.register_forward_hook(after, with_kwargs=True),
    )
