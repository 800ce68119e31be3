"""Sparse deltas: K trainable values at K fixed flat positions of a frozen weight.

The trainable tensor is the 1-D ``values`` (K numbers); the positions are an integer buffer
(int32 where the weight has fewer than 2**31 entries), sorted. No dense mask and no dense
gradient is kept between steps, so the optimizer holds 2K numbers of state.

Two forward formulations, picked per layer from where the positions lie:

- ``slab`` (positions within a few rows of the stored weight, as adjacent runs are): the delta
  lives in a dense block D of just those rows (``zeros.index_add(0, idx - offset, values)``),
  and ``out[..., rows] += x @ D.T`` (Conv1D: ``out += x[..., rows] @ D``). Extra work is
  O(tokens x rows x width), about what LoRA pays at the same K.
- ``weight`` (positions spread over the tensor, as discrete ones are): ``W_eff =
  W.flatten().index_add(0, idx, values)``, then one matmul. Autograd forms the dense gradient of
  W_eff inside backward (one extra GEMM, freed at once) and gathers the K entries from it.

``benchmarks/apet_forward.py`` measured the alternatives for scattered positions on CPU
(index_select/index_add_ on the outputs, torch.sparse COO products, the weight gradient sampled
with torch.sparse.sampled_addmm): none beat the extra GEMM at the shares APET uses.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from petscale.zoo.structure import in_out_features, is_transposed

#: A slab of at most this share of the weight's rows is cheaper than the extra weight GEMM
#: (the slab costs three small matmuls: forward, input gradient, delta gradient).
SLAB_SHARE = 1 / 3


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
        self.mode = mode or ("slab" if self.slab else "weight")
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
        if self.mode == "weight":
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
