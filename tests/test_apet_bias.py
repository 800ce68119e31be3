"""APET op bias: exactly K entries of BitFit's bias vectors, placed, trained, merged and saved."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import petscale
import tiny
from petscale.budget import attach_method, count_method, meta_twin
from petscale.errors import UserError
from petscale.methods import make_config
from petscale.methods.apet import BIAS_SITE
from petscale.methods.base import read_saved

#: (family, head): BERT-style with biases everywhere, GPT-2-style (Conv1D biases, an LM head
#: built without one), T5 (no bias at all: linears declared None, RMS norms without one)
MODELS = [("bert", "classify"), ("gpt2", "lm"), ("t5", "lm")]
IDS = [f"{f}-{h}" for f, h in MODELS]


def bias(options: dict) -> dict:
    return {"op": "bias", **options}


def bitfit_biases(net: torch.nn.Module) -> dict[str, int]:
    """Module name -> width of every bias BitFit trains on ``net`` (its default set)."""
    delta = attach_method(net, "bitfit", {})
    widths = {name: b.numel() for name, b in delta.biases.items()}
    delta.detach()
    return widths


def trainable(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters() if p.requires_grad)


def randomized(net: torch.nn.Module, options: dict) -> object:
    """Attached, its values moved as training would move them."""
    delta = attach_method(net, "apet", bias(options))
    generator = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for p in delta.parameters().values():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.1)
    return delta


@pytest.mark.parametrize(("family", "head"), MODELS, ids=IDS)
@pytest.mark.parametrize("pattern", ["adjacent", "discrete"])
@pytest.mark.parametrize("budget", [1, 7, 300])
def test_exactly_k_among_bitfits_biases(family: str, head: str, pattern: str, budget: int) -> None:
    net = tiny.model(family, head)
    widths = bitfit_biases(net)
    options = bias({"budget": budget, "pattern": pattern})
    counted = count_method(meta_twin(net), "apet", make_config("apet", options))
    delta = attach_method(net, "apet", options)
    assert counted == delta.trainable_params == trainable(net) == budget
    assert sum(length for _, _, length in delta.runs()) == budget
    for name, site in delta.sites.items():
        owner = name.removesuffix(".bias")
        assert owner in widths and site.width == widths[owner]
        assert int(site.indices.max()) < site.width


@pytest.mark.parametrize(("family", "head"), MODELS, ids=IDS)
def test_all_of_bitfits_entries_and_one_more_refused(family: str, head: str) -> None:
    net = tiny.model(family, head)
    widths = bitfit_biases(net)
    everything = sum(widths.values())
    assert count_method(net, "bitfit", make_config("bitfit", {})) == everything
    delta = attach_method(net, "apet", bias({"match": "bitfit"}))
    assert delta.trainable_params == everything
    assert {n.removesuffix(".bias") for n in delta.sites} == set(widths)
    delta.detach()
    with pytest.raises(UserError, match="exceeds") as error:
        attach_method(net, "apet", bias({"budget": everything + 1}))
    assert "\n" not in str(error.value)
    assert not any(BIAS_SITE in name for name, _ in net.named_modules())  # nothing left behind


@pytest.mark.parametrize(("family", "head"), MODELS, ids=IDS)
def test_model_unchanged_at_init_and_after_detach(family: str, head: str) -> None:
    net = tiny.model(family, head)
    inputs = tiny.batch(family)
    original = tiny.run(net, family, inputs)
    weights = {n: p.detach().clone() for n, p in net.named_parameters()}
    delta = attach_method(net, "apet", bias({"budget": 50}))
    assert torch.equal(tiny.run(net, family, inputs), original)
    with torch.no_grad():
        for p in delta.parameters().values():
            p.fill_(0.5)
    assert not torch.equal(tiny.run(net, family, inputs), original)
    delta.detach()
    assert torch.equal(tiny.run(net, family, inputs), original)
    assert {n: p for n, p in net.named_parameters()}.keys() == weights.keys()
    assert all(torch.equal(p, weights[n]) for n, p in net.named_parameters())
    assert not any(m._forward_hooks for m in net.modules())


@pytest.mark.parametrize(("family", "head"), MODELS, ids=IDS)
def test_training_moves_only_the_k_entries(family: str, head: str) -> None:
    net = tiny.model(family, head)
    inputs = tiny.batch(family)
    labels = inputs["input_ids"] if head == "lm" else torch.tensor([0, 1])
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    delta = attach_method(net, "apet", bias({"budget": 120}))
    optimizer = torch.optim.AdamW(delta.parameters().values(), lr=1e-2, weight_decay=0.1)
    net.train()
    for _ in range(3):
        net(**inputs, labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    # Every base tensor, biases included, is bit-identical: the K values live apart.
    assert all(torch.equal(p, before[n]) for n, p in net.named_parameters() if n in before)
    moved = 0
    for site in delta.sites.values():
        dense = site().detach()
        off = torch.ones(site.width, dtype=torch.bool)
        off[site.indices.long()] = False
        assert torch.equal(dense[off], torch.zeros_like(dense[off]))  # the others: exactly 0
        moved += int((dense != 0).sum())
    assert 0 < moved <= 120
    state = optimizer.state_dict()["state"]
    assert sum(s["exp_avg"].numel() for s in state.values()) == 120


def test_adjacent_one_run_per_bias_discrete_scattered_tensor_whole() -> None:
    net = tiny.model("bert")
    adjacent = attach_method(net, "apet", bias({"budget": 200, "pattern": "adjacent"}))
    assert len(adjacent.runs()) == len(adjacent.sites)
    assert [n for n, _, _ in adjacent.runs()] == list(adjacent.sites)
    adjacent.detach()
    discrete = attach_method(net, "apet", bias({"budget": 200, "pattern": "discrete"}))
    assert len(discrete.runs()) > len(discrete.sites)
    discrete.detach()
    whole = attach_method(net, "apet", bias({"budget": 200, "granularity": "tensor"}))
    assert 0 < whole.trainable_params <= 200
    assert all(site.indices.numel() == site.width for site in whole.sites.values())
    whole.detach()
    with pytest.raises(UserError, match="whole target tensor"):
        attach_method(net, "apet", bias({"budget": 5, "granularity": "tensor"}))


def test_targets_narrow_bitfits_set() -> None:
    net = tiny.model("bert")
    norms = attach_method(net, "apet", bias({"budget": 100, "targets": "layer_norm"}))
    assert norms.trainable_params == 100
    assert all(n.endswith("LayerNorm.bias") for n in norms.sites)
    norms.detach()
    regex = attach_method(net, "apet", bias({"budget": 20, "targets": r"layer\.1\..*query"}))
    assert list(regex.sites) == ["bert.encoder.layer.1.attention.self.query.bias"]
    regex.detach()
    with pytest.raises(UserError, match="picks none of the biases bitfit trains"):
        attach_method(net, "apet", bias({"budget": 10, "targets": "head"}))
    with pytest.raises(UserError, match="widen --targets"):
        attach_method(net, "apet", bias({"budget": 10_000, "targets": "q"}))


@pytest.mark.parametrize(("family", "head"), MODELS, ids=IDS)
def test_merge_unmerge_round_trip(family: str, head: str) -> None:
    net = tiny.model(family, head)
    inputs = tiny.batch(family)
    delta = randomized(net, {"match": "bitfit"})
    tuned = tiny.run(net, family, inputs)
    weights = {n: p.detach().clone() for n, p in net.named_parameters()}
    if family == "t5":  # its RMS norms have no bias to write into (nor has BitFit's there)
        assert not delta.mergeable
        with pytest.raises(UserError, match="cannot be merged into the base weights"):
            delta.merge()
        return
    assert delta.mergeable
    delta.merge()
    for name, site in delta.sites.items():
        merged = net.get_submodule(name.removesuffix(".bias")).bias
        assert torch.equal(merged.detach(), weights.get(name, 0) + site().detach())
    torch.testing.assert_close(tiny.run(net, family, inputs), tuned, rtol=1e-5, atol=1e-5)
    delta.unmerge()
    assert {n for n, _ in net.named_parameters()} == weights.keys()  # no bias left behind
    assert all(torch.equal(p, weights[n]) for n, p in net.named_parameters())
    assert torch.equal(tiny.run(net, family, inputs), tuned)
    delta.merge()
    delta.detach()  # detach unmerges first: the original biases, bit for bit
    assert all(torch.equal(p, weights[n]) for n, p in net.named_parameters() if n in weights)


@pytest.mark.parametrize(("family", "head"), MODELS, ids=IDS)
def test_save_load_round_trip(family: str, head: str, tmp_path: Path) -> None:
    net = tiny.model(family, head)
    inputs = tiny.batch(family)
    delta = randomized(net, {"budget": 90, "pattern": "discrete", "seed": 4})
    tuned = tiny.run(net, family, inputs)
    delta.save(tmp_path)
    delta.detach()
    meta, tensors = read_saved(tmp_path)
    assert meta["options"]["op"] == "bias"
    assert any(name.endswith(".bias.apet_indices") for name in tensors)
    again = attach_method(net, "apet", meta["options"])
    again.load_state_dict(tensors)
    assert torch.equal(tiny.run(net, family, inputs), tuned)
    again.detach()
    other = attach_method(net, "apet", {**meta["options"], "seed": 5})
    with pytest.raises(UserError, match="differ"):
        other.load_state_dict(tensors)


def test_tuned_run_folder_loads_with_the_same_predictions(
    tiny_bert: Path, toy_task: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    result = petscale.tune(
        model=str(tiny_bert),
        task=str(toy_task),
        method="apet",
        op="bias",
        budget=150,
        steps=20,
        lr=1e-2,
        batch_size=16,
        max_length=32,
        out=out,
    )
    assert result["trainable_params"] == 150
    model, tokenizer = petscale.load(out)
    assert tiny.dev_accuracy(model, tokenizer, toy_task, 32) == result["dev_score"]
    sites = [m for n, m in model.named_modules() if n.endswith(BIAS_SITE)]
    assert sum(s.values.numel() for s in sites) == 150
    assert any(s.values.abs().sum() > 0 for s in sites)  # trained values came back
