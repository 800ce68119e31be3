"""APET's training memory grows with K: no dense copy of a weight is kept for backward.

What autograd saves between forward and backward is counted through
``torch.autograd.graph.saved_tensors_hooks`` (the model's own parameters and buffers excluded,
as they live anyway), for a frozen model with gradients flowing through every layer (the floor)
and for the same model with APET attached.
"""

from __future__ import annotations

import contextlib

import pytest
import torch

import tiny
from petscale.budget import attach_method

BUDGET = 300


def model() -> torch.nn.Module:
    net = tiny.model("bert", hidden_size=64, intermediate_size=256, num_attention_heads=2)
    # Gradients flow through every layer, as they do once any early layer trains.
    net.get_input_embeddings().weight.requires_grad_(True)
    return net


def saved_bytes(net: torch.nn.Module, autocast: bool) -> int:
    """Bytes autograd saves for backward over one forward, the model's own tensors excluded."""
    owned = {t.untyped_storage().data_ptr() for t in (*net.parameters(), *net.buffers())}
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in owned:
            seen[storage.data_ptr()] = storage.nbytes()
        return t

    batch = tiny.batch("bert", length=16, size=4)
    cast = torch.autocast("cpu", dtype=torch.bfloat16) if autocast else contextlib.nullcontext()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), cast:
        out = net(**batch).logits
    out.float().pow(2).sum().backward()
    return sum(seen.values())


@pytest.mark.parametrize("autocast", [False, True], ids=["fp32", "bf16"])
@pytest.mark.parametrize(
    ("pattern", "formulation"),
    [("discrete", "entry"), ("discrete", "weight"), ("adjacent", "slab")],
)
def test_saved_memory_grows_with_k_not_weights(
    pattern: str, formulation: str, autocast: bool
) -> None:
    floor = saved_bytes(model(), autocast)
    net = model()
    delta = attach_method(net, "apet", {"budget": BUDGET, "pattern": pattern})
    for site in delta.sites.values():
        site.mode = formulation
    extra = saved_bytes(net, autocast) - floor
    bound = 16 * BUDGET
    if autocast and formulation != "slab":
        # The floor keeps a bf16 cast of every weight for backward; entry and weight rebuild
        # theirs in backward, so they save less than the floor by those bytes.
        bound -= 2 * sum(site.base.weight.numel() for site in delta.sites.values())
    assert extra <= bound
