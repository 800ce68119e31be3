"""Sparse deltas: K trainable values at K fixed flat positions of a frozen weight.

The trainable tensor is the 1-D ``values`` (K numbers); the positions are an integer buffer
(int32 where the weight has fewer than 2**31 entries), sorted. No dense mask and no dense
gradient is kept between steps, so the optimizer holds 2K numbers of state.

Three formulations, picked per layer from where the positions lie and how many there are:

- ``slab`` (positions within a few rows of the stored weight, as adjacent runs are): the delta
  lives in a dense block D of just those rows (``zeros.index_add(0, idx - offset, values)``),
  and ``out[..., rows] += x @ D.T`` (Conv1D: ``out += x[..., rows] @ D``). Extra work is
  O(tokens x rows x width), about what LoRA pays at the same K.
- ``entry`` (scattered positions, at most ``ENTRY_SHARE`` of the weight, as discrete ones are):
  ``W_eff = W.flatten().index_add(0, idx, values)``, then one matmul; the backward computes only
  the K entries of the weight gradient, ``grad_v[k] = sum_t grad_out[t, r_k] * x[t, c_k]``, as
  row-wise dot products of gathered rows of ``grad_out.T`` and ``x.T`` (chunks over K bound the
  memory). O(tokens x K) instead of the O(tokens x out x in) weight-gradient GEMM.
- ``weight`` (scattered positions at a larger share, or a base weight that itself trains): the
  same forward through autograd, which forms the dense gradient of W_eff inside backward (one
  extra GEMM, freed at once) and gathers the K entries from it.

``benchmarks/apet_forward.py`` measured the alternatives for scattered positions on CPU
(index_select/index_add_ on the outputs, torch.sparse COO products, torch.sparse.sampled_addmm);
``entry`` is the only one that beats the extra GEMM, below about 5% of the weight.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from petscale.zoo.structure import in_out_features, is_transposed

#: A slab of at most this share of the weight's rows is cheaper than the extra weight GEMM
#: (the slab costs three small matmuls: forward, input gradient, delta gradient).
SLAB_SHARE = 1 / 3
#: Scattered positions at most this share of the weight use ``entry``: its gathers cost about
#: 20x a GEMM multiply-add per entry and token on CPU (``benchmarks/apet_forward.py``), so it
#: wins below ~5%; the margin covers devices where the GEMM is relatively faster.
ENTRY_SHARE = 1 / 32
#: Gathered elements per chunk of the ``entry`` backward (two chunks live): cache-sized, and a
#: bound on the extra memory whatever K is.
ENTRY_CHUNK = 2**18


def index_dtype(numel: int) -> torch.dtype:
    return torch.int32 if numel < 2**31 else torch.int64


def add_into(weight: torch.Tensor, indices: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """``weight`` with ``values`` added at flat ``indices``, out of place (autograd-safe)."""
    return weight.flatten().index_add(0, indices, values).view_as(weight)


def slab_of(indices: torch.Tensor, shape: torch.Size) -> tuple[int, int] | None:
    """(first row, row count) of the stored rows holding ``indices``, if few enough."""
    if indices.device.type == "meta" or indices.numel() == 0:
        return None
    first, last = int(indices[0]) // shape[1], int(indices[-1]) // shape[1]
    count = last - first + 1
    return (first, count) if count <= SLAB_SHARE * shape[0] else None


class EntryLinear(torch.autograd.Function):
    """``linear(x, W + scatter(values), bias)``; the values' gradient without the dense one.

    ``weight`` is frozen (no gradient). Under autocast the matmuls run in the autocast dtype, as
    ``F.linear`` would, and the K dot products accumulate in float32.
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
    ):
        w_eff = add_into(weight, indices, values)
        ctx.transposed = transposed
        ctx.dtypes = (x.dtype, None if bias is None else bias.dtype, values.dtype)
        if torch.is_autocast_enabled(x.device.type):
            # Cast here, not inside F.linear, so backward sees the tensors the matmul used.
            dtype = torch.get_autocast_dtype(x.device.type)
            x, w_eff = x.to(dtype), w_eff.to(dtype)
            bias = None if bias is None else bias.to(dtype)
        ctx.save_for_backward(x, w_eff, indices)
        return F.linear(x, w_eff.T if transposed else w_eff, bias)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor):  # noqa: ANN001, ANN205
        x, w_eff, indices = ctx.saved_tensors
        x_dtype, bias_dtype, values_dtype = ctx.dtypes
        grad = grad.to(w_eff.dtype)
        grad_x = grad_bias = grad_values = None
        if ctx.needs_input_grad[0]:
            grad_x = (grad @ (w_eff.T if ctx.transposed else w_eff)).to(x_dtype)
        grad2 = grad.reshape(-1, grad.shape[-1])
        if ctx.needs_input_grad[2]:
            grad_bias = grad2.sum(0).to(bias_dtype)
        if ctx.needs_input_grad[3]:
            grad_values = entry_grad(
                grad2, x.reshape(-1, x.shape[-1]), indices, w_eff.shape, ctx.transposed
            ).to(values_dtype)
        return grad_x, None, grad_bias, grad_values, None, None


def entry_grad(
    grad2: torch.Tensor,
    x2: torch.Tensor,
    indices: torch.Tensor,
    shape: torch.Size,
    transposed: bool,
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
    step = max(1, ENTRY_CHUNK // max(1, grad2.shape[0]))
    for start in range(0, indices.numel(), step):
        part = slice(start, start + step)
        products = grad_t.index_select(0, rows[part]).mul_(x_t.index_select(0, cols[part]))
        torch.sum(products, 1, out=out[part])
    return out


class SparseLinear(nn.Module):
    """A frozen linear map (``nn.Linear`` or GPT-2's ``Conv1D``) plus a sparse trainable delta.

    ``indices`` are sorted flat positions in the base weight as stored (``(out, in)`` for
    nn.Linear, ``(in, out)`` for Conv1D). On the meta device they are shapes only.
    """

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
        scattered = "entry" if indices.numel() <= ENTRY_SHARE * weight.numel() else "weight"
        self.mode = mode or ("slab" if self.slab else scattered)
        self.merged_from: torch.Tensor | None = None

    @property
    def weight(self) -> torch.Tensor:
        """The frozen base weight (T5 reads ``wo.weight.dtype``)."""
        return self.base.weight

    def delta_weight(self) -> torch.Tensor:
        """The base weight with the values added (the stored layout)."""
        return add_into(self.base.weight, self.indices, self.values)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.merged_from is not None or self.values.numel() == 0:
            return self.base(x)
        base = self.base
        if self.mode == "entry" and not base.weight.requires_grad:
            return EntryLinear.apply(
                x, base.weight, base.bias, self.values, self.indices, self.transposed
            )
        if self.mode in ("weight", "entry"):  # entry falls back here when the base trains
            w_eff = self.delta_weight()
            return F.linear(x, w_eff.T if self.transposed else w_eff, self.base.bias)
        first, count = self.slab
        width = self.base.weight.shape[1]
        block = self.values.new_zeros(count * width)
        block = block.index_add(0, self.indices - first * width, self.values).view(count, width)
        out = self.base(x)
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
