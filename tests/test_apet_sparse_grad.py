"""The ``entry`` backward of scattered sparse deltas agrees with autograd's dense path."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from transformers.pytorch_utils import Conv1D

from petscale.methods.sparse import ENTRY_SHARE, SparseLinear


def layer_pair(transposed: bool, bias: bool) -> tuple[SparseLinear, SparseLinear]:
    """The same frozen layer and scattered positions, as ``entry`` and as ``weight``."""
    torch.manual_seed(0)
    if transposed:
        base = Conv1D(24, 40)  # stored (in=40, out=24)
        if not bias:
            base.bias = None
    else:
        base = nn.Linear(40, 24, bias=bias)
    base.requires_grad_(False)
    numel = base.weight.numel()
    indices = torch.randperm(numel)[: int(numel * ENTRY_SHARE)].sort().values.int()
    layers = SparseLinear(base, indices, "entry"), SparseLinear(base, indices, "weight")
    values = torch.randn(indices.numel())
    for layer in layers:
        layer.values.data.copy_(values)
    return layers


def grads(layer: SparseLinear, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    x = x.detach().clone().requires_grad_(True)
    layer.values.grad = None
    out = layer(x)
    out.pow(2).sum().backward()
    return out.detach(), x.grad, layer.values.grad


@pytest.mark.parametrize("transposed", [False, True], ids=["linear", "conv1d"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("shape", [(7, 40), (3, 5, 40)], ids=["2d", "3d"])
def test_entry_matches_autograd(transposed: bool, bias: bool, shape: tuple[int, ...]) -> None:
    entry, weight = layer_pair(transposed, bias)
    x = torch.randn(shape)
    for got, want in zip(grads(entry, x), grads(weight, x), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_entry_chunks_and_input_without_grad(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunking over K changes nothing; a frozen input gets no gradient and costs none."""
    monkeypatch.setattr("petscale.methods.sparse.ENTRY_CHUNK", 16)  # 16 elements: many chunks
    entry, weight = layer_pair(False, True)
    x = torch.randn(3, 5, 40)
    for layer in (entry, weight):
        layer(x).pow(2).sum().backward()
    torch.testing.assert_close(entry.values.grad, weight.values.grad, rtol=1e-5, atol=1e-6)


def test_entry_autocast_bf16() -> None:
    """Under autocast the matmuls run in bf16 like F.linear's; gradients keep their dtypes."""
    entry, weight = layer_pair(False, True)
    x = torch.randn(4, 8, 40)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got, want = grads(entry, x), grads(weight, x)
    assert got[0].dtype == want[0].dtype == torch.bfloat16
    assert got[1].dtype == got[2].dtype == torch.float32
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a.float(), b.float(), rtol=2e-2, atol=2e-2)


def test_rule_and_training_base() -> None:
    """Few scattered entries pick ``entry``; many pick ``weight``; a training base still works."""
    base = nn.Linear(64, 64).requires_grad_(False)
    few = torch.randperm(4096)[:64].sort().values.int()
    many = torch.randperm(4096)[:1024].sort().values.int()
    assert SparseLinear(base, few).mode == "entry"
    assert SparseLinear(base, many).mode == "weight"
    layer = SparseLinear(base.requires_grad_(True), few)
    layer(torch.randn(3, 64)).sum().backward()
    assert base.weight.grad is not None and layer.values.grad is not None
