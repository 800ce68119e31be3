"""Sparse deltas: K trainable values at K fixed flat positions of a frozen weight.

The trainable tensor is the 1-D ``values`` (K numbers); the positions are an integer buffer
(int32 where the weight has fewer than 2**31 entries), sorted. No dense mask, no dense gradient
and no dense copy of the weight is kept between steps or between forward and backward, so the
extra training memory is the optimizer's 16 bytes per entry, 4 bytes of index and one layer's
transient.

Three formulations, picked per layer from where the positions lie, how many there are and the
device the layer runs on (``RULES``, measured per device type; ``PETSCALE_APET_FORMULATION``
forces one):

- ``slab`` (positions within a few rows of the stored weight, as adjacent runs are): the delta
  lives in a dense block D of just those rows (``zeros.index_add(0, idx - offset, values)``),
  and ``out[..., rows] += x @ D.T`` (Conv1D: ``out += x[..., rows] @ D``). Extra work is
  O(tokens x rows x width), about what LoRA pays at the same K; D is O(K).
- ``entry`` (few scattered positions): ``W_eff = W + scatter(values)`` rebuilt in forward and
  again in backward (never saved), one matmul; the backward computes only the K entries of the
  weight gradient, ``grad_v[k] = sum_t grad_out[t, r_k] * x[t, c_k]``, as row-wise dot products
  of gathered rows of ``grad_out.T`` and ``x.T`` (chunks over K bound the memory).
  O(tokens x K) instead of the O(tokens x out x in) weight-gradient GEMM.
- ``weight`` (more scattered positions): the same forward; the backward forms the dense weight
  gradient with one GEMM, keeps its K entries and frees it at once.

A base weight that itself trains goes through plain autograd (its dense gradient is wanted).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from petscale.errors import UserError
from petscale.zoo.structure import in_out_features, is_transposed

MODES = ("slab", "entry", "weight")
#: Forces one formulation on every layer (``auto``, the default, follows ``RULES``). A forced
#: ``slab`` spans the rows from the first position to the last, however many.
FORMULATION_ENV = "PETSCALE_APET_FORMULATION"


@dataclass(frozen=True)
class Rule:
    """When each formulation wins on one device type (``docs/APET.md`` has the measurements)."""

    slab: float  # a slab of at most this share of the stored rows
    entry: float  # scattered positions at most this share of the entries use ``entry``
    chunk: int  # gathered elements per chunk of the ``entry`` backward (two chunks live)


#: CPU: gathers cost about 20x a GEMM multiply-add per entry and token, so ``entry`` wins below
#: ~3% (``benchmarks/values_grad.py``; 1/32 sits at it); small chunks stay in cache. CUDA (H200,
#: bf16, 4,096 tokens): a step is bound by kernel launches, not arithmetic, and ``weight`` (the
#: fewest kernels) beat ``entry`` and ``slab`` at every K from 1e3 to 1e7 (``gpu_bench.py``).
RULES: dict[str, Rule] = {
    "cpu": Rule(slab=1 / 3, entry=1 / 32, chunk=2**18),
    "cuda": Rule(slab=0.0, entry=0.0, chunk=2**24),
}


def rule_for(device_type: str) -> Rule:
    """The measured rule of a device type; accelerators without a table use CUDA's."""
    return RULES.get(device_type, RULES["cuda"])


def forced_formulation() -> str | None:
    value = os.environ.get(FORMULATION_ENV, "auto")
    if value == "auto":
        return None
    if value not in MODES:
        raise UserError(f"{FORMULATION_ENV}={value!r}: choose auto, {', '.join(MODES)}")
    return value


def index_dtype(numel: int) -> torch.dtype:
    return torch.int32 if numel < 2**31 else torch.int64


def add_into(weight: torch.Tensor, indices: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """``weight`` with ``values`` added at flat ``indices``, out of place (autograd-safe)."""
    return weight.flatten().index_add(0, indices, values).view_as(weight)


def slab_of(indices: torch.Tensor, shape: torch.Size) -> tuple[int, int] | None:
    """(first row, row count) of the stored rows holding ``indices``."""
    if indices.device.type == "meta" or indices.numel() == 0:
        return None
    first, last = int(indices[0]) // shape[1], int(indices[-1]) // shape[1]
    return first, last - first + 1


def _effective(
    weight: torch.Tensor, indices: torch.Tensor, values: torch.Tensor, dtype: torch.dtype
) -> torch.Tensor:
    """``W + scatter(values)`` in ``dtype``: summed in the weight's dtype, then cast (as the
    merged weight would be cast by autocast)."""
    return add_into(weight, indices, values).to(dtype)


class SparseAddLinear(torch.autograd.Function):
    """``linear(x, W + scatter(values), bias)`` for a frozen ``W``, saving only what K needs.

    Saved for backward: the input (as any linear layer saves it), the frozen weight itself (no
    copy), the values and the indices. The dense sum is rebuilt in backward for the input's
    gradient and freed at once. ``chunk`` > 0 computes the values' gradient as K dot products
    (``entry``), 0 through the dense weight gradient (``weight``). Under autocast the matmuls run
    in the autocast dtype, as ``F.linear`` would.
    """

    @staticmethod
    def forward(  # noqa: ANN205
        ctx,  # noqa: ANN001
        x: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        values: torch.Tensor,
        indices: torch.Tensor,
        transposed: bool,
        chunk: int,
    ):
        ctx.transposed, ctx.chunk = transposed, chunk
        ctx.dtypes = (x.dtype, None if bias is None else bias.dtype, values.dtype)
        dtype = weight.dtype
        if torch.is_autocast_enabled(x.device.type):
            # Cast here, not inside F.linear, so backward sees the tensors the matmul used.
            dtype = torch.get_autocast_dtype(x.device.type)
            x = x.to(dtype)
            bias = None if bias is None else bias.to(dtype)
        w_eff = _effective(weight, indices, values, dtype)
        ctx.save_for_backward(x, weight, values, indices)
        return F.linear(x, w_eff.T if transposed else w_eff, bias)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor):  # noqa: ANN001, ANN205
        x, weight, values, indices = ctx.saved_tensors
        x_dtype, bias_dtype, values_dtype = ctx.dtypes
        grad = grad.to(x.dtype)
        grad_x = grad_bias = grad_values = None
        if ctx.needs_input_grad[0]:
            w_eff = _effective(weight, indices, values, x.dtype)
            grad_x = (grad @ (w_eff.T if ctx.transposed else w_eff)).to(x_dtype)
            del w_eff
        grad2 = grad.reshape(-1, grad.shape[-1])
        if ctx.needs_input_grad[2]:
            grad_bias = grad2.sum(0).to(bias_dtype)
        if ctx.needs_input_grad[3]:
            x2 = x.reshape(-1, x.shape[-1])
            if ctx.chunk:
                grad_values = entry_grad(
                    grad2, x2, indices, weight.shape, ctx.transposed, ctx.chunk
                )
            else:  # the stored layout's dense gradient, one GEMM, only K entries kept
                dense = x2.T @ grad2 if ctx.transposed else grad2.T @ x2
                grad_values = dense.flatten().index_select(0, indices)
            grad_values = grad_values.to(values_dtype)
        return grad_x, None, grad_bias, grad_values, None, None, None


def entry_grad(
    grad2: torch.Tensor,
    x2: torch.Tensor,
    indices: torch.Tensor,
    shape: torch.Size,
    transposed: bool,
    chunk: int,
) -> torch.Tensor:
    """The weight gradient ``grad2.T @ x2`` at the flat ``indices`` of the stored ``shape``."""
    # Rows and columns from the flat positions here (O(K), int32 kept), not cached as buffers:
    # that would triple the index memory for a cost far below the O(tokens x K) products.
    stored_rows, stored_cols = indices // shape[1], indices % shape[1]
    rows, cols = (stored_cols, stored_rows) if transposed else (stored_rows, stored_cols)
    # Transposed copies make each gathered row contiguous over tokens; low precision is widened
    # in the same copy so the sums accumulate in float32.
    dtype = torch.promote_types(grad2.dtype, torch.float32)
    grad_t = torch.empty(grad2.shape[::-1], dtype=dtype, device=grad2.device).copy_(grad2.T)
    x_t = torch.empty(x2.shape[::-1], dtype=dtype, device=x2.device).copy_(x2.T)
    out = torch.empty(indices.numel(), dtype=dtype, device=grad2.device)
    step = max(1, chunk // max(1, grad2.shape[0]))
    # Two buffers reused by every chunk: fresh ones each time cost a CPU allocator round trip
    # (page faults for each new mapping) that took longer than the products themselves.
    size = (min(step, indices.numel()), grad_t.shape[1])
    left = torch.empty(size, dtype=dtype, device=grad2.device)
    right = torch.empty(size, dtype=dtype, device=grad2.device)
    for start in range(0, indices.numel(), step):
        part = slice(start, start + step)
        n = len(rows[part])
        torch.index_select(grad_t, 0, rows[part], out=left[:n])
        torch.index_select(x_t, 0, cols[part], out=right[:n])
        torch.sum(left[:n].mul_(right[:n]), 1, out=out[part])
    return out


class SparseLinear(nn.Module):
    """A frozen linear map (``nn.Linear`` or GPT-2's ``Conv1D``) plus a sparse trainable delta.

    ``indices`` are sorted flat positions in the base weight as stored (``(out, in)`` for
    nn.Linear, ``(in, out)`` for Conv1D). On the meta device they are shapes only. ``mode`` is
    the formulation on the weight's current device (``RULES``) unless one was given or set.
    """

    mergeable = True  # merge() writes the values into the base weight

    def __init__(self, base: nn.Module, indices: torch.Tensor, mode: str | None = None):
        super().__init__()
        self.base = base
        weight = base.weight
        self.in_features, self.out_features = in_out_features(base)
        self.transposed = is_transposed(base)
        self.values = nn.Parameter(
            torch.zeros(indices.numel(), dtype=weight.dtype, device=weight.device)
        )
        self.register_buffer("indices", indices.to(weight.device))
        self.slab = slab_of(indices, weight.shape)
        self.forced = mode
        self.merged_from: torch.Tensor | None = None

    @property
    def mode(self) -> str:
        """The formulation the next forward uses: given or set, forced by the environment, or
        the rule of the device the weight is on."""
        forced = self.forced or forced_formulation()
        if forced:
            return forced
        rule = rule_for(self.base.weight.device.type)
        if self.slab and self.slab[1] <= rule.slab * self.base.weight.shape[0]:
            return "slab"
        return "entry" if self.values.numel() <= rule.entry * self.base.weight.numel() else "weight"

    @mode.setter
    def mode(self, value: str) -> None:
        self.forced = value

    @property
    def weight(self) -> torch.Tensor:
        """The frozen base weight (T5 reads ``wo.weight.dtype``)."""
        return self.base.weight

    def delta_weight(self) -> torch.Tensor:
        """The base weight with the values added (the stored layout)."""
        return add_into(self.base.weight, self.indices, self.values)

    def weight_update(self) -> torch.Tensor:
        """What the layer adds to its base weight (``Layer``): the values at their positions,
        zeros elsewhere (the stored layout)."""
        return add_into(torch.zeros_like(self.base.weight), self.indices, self.values)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.merged_from is not None or self.values.numel() == 0:
            return self.base(x)
        base = self.base
        mode = self.mode
        if base.weight.requires_grad:  # the base trains too: autograd forms its gradient
            w_eff = self.delta_weight()
            return F.linear(x, w_eff.T if self.transposed else w_eff, base.bias)
        if mode != "slab":
            chunk = rule_for(x.device.type).chunk if mode == "entry" else 0
            return SparseAddLinear.apply(
                x, base.weight, base.bias, self.values, self.indices, self.transposed, chunk
            )
        first, count = self.slab
        width = base.weight.shape[1]
        block = self.values.new_zeros(count * width)
        block = block.index_add(0, self.indices - first * width, self.values).view(count, width)
        out = base(x)
        if self.transposed:  # Conv1D stores (in, out): the slab is a band of input features
            return out + x[..., first : first + count] @ block
        # In place is safe: a linear layer's backward needs its input, never its output.
        out[..., first : first + count] += F.linear(x, block)
        return out

    def merge(self) -> None:
        with torch.no_grad():
            # The original is kept so unmerge restores it bit for bit (float addition is lossy).
            self.merged_from = self.base.weight.detach().clone()
            self.base.weight.copy_(self.delta_weight())

    def unmerge(self) -> None:
        with torch.no_grad():
            self.base.weight.copy_(self.merged_from)
        self.merged_from = None


def runs(indices: torch.Tensor) -> list[tuple[int, int]]:
    """Sorted flat indices as maximal contiguous runs: [(start, length), ...]."""
    if indices.numel() == 0:
        return []
    flat = indices.long().cpu()
    breaks = torch.nonzero(flat[1:] - flat[:-1] != 1).flatten() + 1
    starts = torch.cat([torch.zeros(1, dtype=torch.long), breaks])
    ends = torch.cat([breaks, torch.tensor([flat.numel()])])
    return [(int(flat[s]), int(e - s)) for s, e in zip(starts, ends, strict=True)]
