"""APET's PLUG, CONCAT and BIAS operations: adapter-shaped and prompt-shaped frozen modules
whose entries are partly trainable (the sparse values of :mod:`petscale.methods.sparse`), and
sparse deltas on BitFit's bias vectors.

PLUG: after each target projection (attn_out and ffn_out by default), ``y + up(gelu(down(y)))``
with a frozen seeded down (d x b, std 1/sqrt(d)) and up (b x d, std 1e-3, so the model starts
near unchanged). Width rule: b = the adapter's default 24, or the smallest width whose 2 d b
entries per plug, over all plugs, hold K.

CONCAT: n soft tokens (a frozen n x d matrix of word embeddings at seeded random vocabulary ids,
so their scale matches real tokens) spliced into the input embeddings by prompt tuning's hooks
(:mod:`petscale.methods.soft_tokens`): after the first token on encoders (the head reads [CLS]
there), in front on T5's encoder input and on decoders (whose outputs at the soft tokens are
cut off again). Length rule: n = the prompt method's default 100, or ceil(K / d) when more are
needed; with tensor granularity n = floor(K / d), all trainable.

BIAS: the bias vectors BitFit trains (attention, feed-forward, layer norms, LM head). A forward
hook adds ``scatter(values)`` (zeros at every other entry) to the module's output, after the
frozen bias the module adds itself; a module without a bias (T5's linears and norms, most LM
heads) gets only the delta, as BitFit adds a zero bias there. ``merge`` writes bias + delta into
the module's bias (a frozen one is made for a linear layer built without); a norm that has no
bias at all cannot hold it (as BitFit's hooked bias cannot).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from petscale.methods.configs import AdapterConfig, PromptConfig
from petscale.methods.sparse import SparseLinear, add_into

ADAPTER_WIDTH = AdapterConfig.bottleneck  # the adapter method's default width
PROMPT_LENGTH = PromptConfig.length  # the prompt method's default length


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


class SparseBias(nn.Module):
    """K trainable values at flat ``indices`` of a bias vector of ``width`` entries; ``add`` is
    the forward hook that adds them to the output of the module owning the bias."""

    def __init__(self, width: int, indices: torch.Tensor, like: torch.Tensor):
        super().__init__()
        self.width = width
        self.register_buffer("indices", indices.to(like.device))
        self.values = nn.Parameter(
            torch.zeros(indices.numel(), dtype=like.dtype, device=like.device)
        )
        self.merged = False  # set by BiasMerge: the module's bias holds the values

    def forward(self) -> torch.Tensor:
        """The dense delta: zeros of the bias's width, the values at their positions."""
        return add_into(self.values.new_zeros(self.width), self.indices, self.values)

    def add(self, _module: nn.Module, _inputs: object, out: torch.Tensor) -> torch.Tensor:
        """Forward hook (a bound method, so a deep copy of the model keeps its own site)."""
        return out if self.merged else out + self().to(out.dtype)


class BiasMerge:
    """The Layer of a bias site on a module whose bias can hold it: its own, or declared None
    (a linear layer built without one). ``merge`` writes bias + delta (a frozen bias of the delta
    where there was none); ``unmerge`` gives back the original bias bit for bit."""

    mergeable = True

    def __init__(self, module: nn.Module, site: SparseBias):
        self.module = module
        self.site = site
        self.original: torch.Tensor | None = None  # the bias before merge (None: there was none)

    def merge(self) -> None:
        with torch.no_grad():
            own = self.module.bias
            if own is None:
                self.module.bias = nn.Parameter(self.site().detach(), requires_grad=False)
            else:
                self.original = own.detach().clone()
                own.copy_(add_into(own, self.site.indices, self.site.values.to(own.dtype)))
        self.site.merged = True

    def unmerge(self) -> None:
        with torch.no_grad():
            if self.original is None:
                self.module.register_parameter("bias", None)
            else:
                self.module.bias.copy_(self.original)
        self.original = None
        self.site.merged = False
