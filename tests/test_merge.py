"""Merging: a delta is mergeable exactly when every layer it added can fold into the base weights;
merged logits equal unmerged ones, and unmerge gives back the base weights bit for bit."""

from __future__ import annotations

import pytest
import torch

import tiny
from petscale.errors import UserError
from petscale.methods import get_method, make_config
from petscale.methods.base import Delta, InPlace, Unmergeable
from petscale.zoo.structure import structure_of

#: (case id, method, options); prompt and concat keep inside the tiny position tables
CASES = [
    ("lora", "lora", {}),
    ("bitfit", "bitfit", {}),
    ("adapter", "adapter", {}),
    ("prompt", "prompt", {"length": 5}),
    ("full", "full", {}),
    ("probe", "probe", {}),
    ("apet-add", "apet", {"budget": 50}),
    ("apet-plug", "apet", {"budget": 50, "op": "plug"}),
    ("apet-concat", "apet", {"budget": 50, "op": "concat"}),
]
#: layers no base weight can hold: extra modules (adapters, plugs), extra inputs (soft tokens)
NEVER_MERGE = {"adapter", "prompt", "apet-plug", "apet-concat"}
#: families whose norms have no bias: BitFit adds one through a hook, which cannot merge
NORMS_WITHOUT_BIAS = {"t5", "llama", "gemma3_text"}
#: position tables wide enough for APET concat's 100 soft tokens
ROOM = {
    "bert": {"max_position_embeddings": 256},
    "roberta": {"max_position_embeddings": 256},
    "mpnet": {"max_position_embeddings": 256},
    "gpt2": {"n_positions": 256},
    "llama": {"max_position_embeddings": 256},
    "gemma3_text": {"max_position_embeddings": 256},
}
VARIANTS = tiny.variants() + [(f, h) for f in tiny.LLAMA_STYLE for h in ("classify", "lm")]


def expected_mergeable(family: str, case: str) -> bool:
    if case == "bitfit":
        return family not in NORMS_WITHOUT_BIAS
    return case not in NEVER_MERGE


def weights(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in net.named_parameters()}


@pytest.mark.parametrize(("family", "head"), VARIANTS, ids=[f"{f}-{h}" for f, h in VARIANTS])
@pytest.mark.parametrize(("case", "method", "options"), CASES, ids=[c[0] for c in CASES])
def test_merge_keeps_logits_and_unmerge_restores_weights(
    family: str, head: str, case: str, method: str, options: dict
) -> None:
    net = tiny.model(family, head, **ROOM.get(family, {}))
    inputs = tiny.batch(family)
    delta = get_method(method).attach(net, structure_of(net), make_config(method, options))
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():  # move every trained tensor, as training would
        for p in delta.parameters().values():
            p.add_(torch.randn(p.shape, generator=generator).to(p.dtype) * 0.05)
    if delta.parameters():
        assert delta.layers, "a delta with tensors must register its layers"
    tuned = tiny.run(net, family, inputs)
    before = weights(net)

    assert delta.mergeable == expected_mergeable(family, case)
    if delta.mergeable:
        delta.merge()
        assert delta.merged
        torch.testing.assert_close(tiny.run(net, family, inputs), tuned, atol=1e-5, rtol=1e-5)
        delta.unmerge()
    else:
        with pytest.raises(UserError, match="cannot be merged into the base weights"):
            delta.merge()
        assert not delta.merged
    after = weights(net)
    assert after.keys() == before.keys()
    for name, value in before.items():
        assert torch.equal(after[name], value), name
    assert torch.equal(tiny.run(net, family, inputs), tuned)


@pytest.mark.parametrize("method", ["lora", "apet"])
def test_merge_writes_into_the_base_weights(method: str) -> None:
    """LoRA and APET add fold their update into the projections' own weights."""
    net = tiny.model("bert")
    options = {"budget": 50} if method == "apet" else {}
    delta = get_method(method).attach(net, structure_of(net), make_config(method, options))
    with torch.no_grad():
        for p in delta.parameters().values():
            p.add_(0.1)
    before = weights(net)
    delta.merge()
    changed = [n for n, p in net.named_parameters() if not torch.equal(p, before[n])]
    assert changed and all(n.endswith("base.weight") for n in changed)
    delta.unmerge()
    assert all(torch.equal(p, before[n]) for n, p in net.named_parameters())


class Recording(InPlace):
    def __init__(self) -> None:
        self.calls: list[str] = []

    def merge(self) -> None:
        self.calls.append("merge")

    def unmerge(self) -> None:
        self.calls.append("unmerge")


def test_a_layer_that_cannot_merge_stops_the_merge_before_any_layer_moves() -> None:
    net = tiny.model("bert")
    delta = Delta(net, structure_of(net), "toy", make_config("probe", {}))
    first, last = Recording(), Recording()
    delta.layers = [first, Unmergeable("the toy's extra module"), last]
    assert not delta.mergeable
    with pytest.raises(UserError, match="the toy's extra module cannot be merged"):
        delta.merge()
    assert first.calls == last.calls == []
    delta.layers = [first, last]
    delta.merge()
    delta.merge()  # merged already: nothing happens twice
    delta.unmerge()
    assert first.calls == last.calls == ["merge", "unmerge"]
