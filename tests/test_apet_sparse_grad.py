"""The sparse-delta formulations agree with autograd through the dense sum ``W + scatter(v)``."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn
from torch.nn import functional as F
from transformers.pytorch_utils import Conv1D

from petscale.errors import UserError
from petscale.methods import sparse
from petscale.methods.sparse import FORMULATION_ENV, SparseLinear, add_into


def frozen_layer(transposed: bool, bias: bool) -> nn.Module:
    torch.manual_seed(0)
    if transposed:
        base = Conv1D(24, 40)  # stored (in=40, out=24)
        if not bias:
            base.bias = None
    else:
        base = nn.Linear(40, 24, bias=bias)
    return base.requires_grad_(False)


def sparse_layer(base: nn.Module, mode: str) -> SparseLinear:
    """Scattered positions at the CPU rule's largest ``entry`` share."""
    numel = base.weight.numel()
    share = sparse.RULES["cpu"].entry
    gen = torch.Generator().manual_seed(1)
    indices = torch.randperm(numel, generator=gen)[: int(numel * share)].sort().values.int()
    layer = SparseLinear(base, indices, mode)
    layer.values.data.copy_(torch.randn(indices.numel(), generator=gen))
    return layer


def grads(layer: SparseLinear, x: torch.Tensor, reference: bool = False) -> tuple:
    """Output, input gradient and values' gradient; ``reference``: plain autograd, dense sum."""
    x = x.detach().clone().requires_grad_(True)
    layer.values.grad = None
    if reference:
        w_eff = add_into(layer.base.weight, layer.indices, layer.values)
        out = F.linear(x, w_eff.T if layer.transposed else w_eff, layer.base.bias)
    else:
        out = layer(x)
    out.pow(2).sum().backward()
    return out.detach(), x.grad, layer.values.grad


@pytest.mark.parametrize("mode", ["entry", "weight"])
@pytest.mark.parametrize("transposed", [False, True], ids=["linear", "conv1d"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("shape", [(7, 40), (3, 5, 40)], ids=["2d", "3d"])
def test_formulations_match_autograd(
    mode: str, transposed: bool, bias: bool, shape: tuple[int, ...]
) -> None:
    layer = sparse_layer(frozen_layer(transposed, bias), mode)
    x = torch.randn(shape)
    for got, want in zip(grads(layer, x), grads(layer, x, reference=True), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_entry_chunks_and_input_without_grad(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunking over K changes nothing; a frozen input gets no gradient and costs none."""
    tiny_chunks = dataclasses.replace(sparse.RULES["cpu"], chunk=16)  # 16 elements: many chunks
    monkeypatch.setitem(sparse.RULES, "cpu", tiny_chunks)
    layer = sparse_layer(frozen_layer(False, True), "entry")
    x = torch.randn(3, 5, 40)
    layer(x).pow(2).sum().backward()
    got = layer.values.grad
    torch.testing.assert_close(got, grads(layer, x, reference=True)[2], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mode", ["entry", "weight"])
def test_autocast_bf16(mode: str) -> None:
    """Under autocast the matmuls run in bf16 like F.linear's; gradients keep their dtypes."""
    layer = sparse_layer(frozen_layer(False, True), mode)
    x = torch.randn(4, 8, 40)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got, want = grads(layer, x), grads(layer, x, reference=True)
    assert got[0].dtype == want[0].dtype == torch.bfloat16
    assert got[1].dtype == got[2].dtype == torch.float32
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a.float(), b.float(), rtol=2e-2, atol=2e-2)


def test_rule_per_device_and_training_base(monkeypatch: pytest.MonkeyPatch) -> None:
    """Few scattered entries pick ``entry``; many pick ``weight``; the rule follows the device
    type; the environment forces one; a training base still works."""
    base = nn.Linear(64, 64).requires_grad_(False)
    few = torch.randperm(4096)[:64].sort().values.int()
    many = torch.randperm(4096)[:1024].sort().values.int()
    assert SparseLinear(base, few).mode == "entry"
    assert SparseLinear(base, many).mode == "weight"
    assert sparse.rule_for("cuda").entry < 64 / 4096  # a GEMM is cheap there: dense gradient
    assert sparse.rule_for("xpu") == sparse.rule_for("cuda")
    monkeypatch.setenv(FORMULATION_ENV, "weight")
    assert SparseLinear(base, few).mode == "weight"
    forced = SparseLinear(base, few)
    monkeypatch.setenv(FORMULATION_ENV, "slab")  # every row from the first position to the last
    x = torch.randn(3, 64)
    torch.testing.assert_close(forced(x), F.linear(x, forced.delta_weight(), base.bias))
    monkeypatch.setenv(FORMULATION_ENV, "fast")
    with pytest.raises(UserError, match=FORMULATION_ENV):
        SparseLinear(base, few).mode  # noqa: B018 - the property raises
    monkeypatch.delenv(FORMULATION_ENV)
    layer = SparseLinear(base.requires_grad_(True), few)
    layer(torch.randn(3, 64)).sum().backward()
    assert base.weight.grad is not None and layer.values.grad is not None
