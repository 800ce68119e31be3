"""APET: exact counts, placement, determinism, frozen base entries, merge/detach/save, ops."""

from __future__ import annotations

import pytest
import torch

import tiny
from petscale.budget import attach_method, count_method, meta_twin
from petscale.errors import UserError
from petscale.methods import make_config
from petscale.methods.base import read_saved

TARGET_ROLES = ("query", "key", "value", "attention.output.dense", "intermediate", "output.dense")


def bert(hidden: int = 32, layers: int = 2) -> torch.nn.Module:
    # Room for APET concat's soft tokens (4,321 entries / 32 = 135 tokens).
    extra = {"hidden_size": hidden, "intermediate_size": 2 * hidden, "num_hidden_layers": layers}
    return tiny.model("bert", max_position_embeddings=256, **extra)


def t5() -> torch.nn.Module:
    return tiny.model("t5", "lm")


def gpt2() -> torch.nn.Module:
    return tiny.model("gpt2", "lm", n_positions=256)


def inputs(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(tiny.VOCAB, (2, 7), generator=generator)
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    if model.config.model_type == "t5":
        batch["labels"] = torch.randint(tiny.VOCAB, (2, 3), generator=generator)
    return batch


def logits(model: torch.nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return model(**inputs(model)).logits


def target_numels(model: torch.nn.Module) -> list[int]:
    return [
        m.weight.numel()
        for n, m in model.named_modules()
        if isinstance(m, torch.nn.Linear) and "encoder.layer" in n
    ]


@pytest.mark.parametrize("budget", [1, 7, 12_345])
@pytest.mark.parametrize("pattern", ["adjacent", "discrete"])
def test_exact_budget(budget: int, pattern: str) -> None:
    model = bert(hidden=64)
    delta = attach_method(model, "apet", {"budget": budget, "pattern": pattern})
    assert delta.trainable_params == budget
    assert sum(length for _, _, length in delta.runs()) == budget


def test_whole_tensor_and_largest_budget() -> None:
    model = bert()
    one = target_numels(model)[0]
    delta = attach_method(model, "apet", {"budget": one, "granularity": "tensor"})
    assert delta.trainable_params == one and len(delta.sites) == 1
    delta.detach()
    everything = sum(target_numels(model))
    delta = attach_method(model, "apet", {"budget": everything})
    assert delta.trainable_params == everything
    delta.detach()
    with pytest.raises(UserError, match="exceeds"):
        attach_method(model, "apet", {"budget": everything + 1})


def test_tensor_granularity_never_overshoots() -> None:
    model = bert()
    delta = attach_method(model, "apet", {"budget": 5000, "granularity": "tensor", "seed": 3})
    assert 0 < delta.trainable_params <= 5000 == delta.budget
    assert all(
        idx.numel() == site.base.weight.numel()
        for site, idx in ((delta.sites[n], i) for n, i in delta.indices().items())
    )


def test_adjacent_runs_contiguous_discrete_scattered() -> None:
    model = bert(hidden=64)
    adjacent = attach_method(model, "apet", {"budget": 600, "pattern": "adjacent"})
    runs = adjacent.runs()
    assert len(runs) == len(adjacent.sites)  # one run per tensor with a share
    adjacent.detach()
    discrete = attach_method(model, "apet", {"budget": 600, "pattern": "discrete"})
    # Uniform draws of 600 of ~50k entries: adjacent pairs are rare, so runs ~= K.
    assert len(discrete.runs()) > 0.95 * 600


def test_seed_determinism() -> None:
    model = bert()

    def positions(seed: int) -> dict[str, torch.Tensor]:
        delta = attach_method(model, "apet", {"budget": 500, "seed": seed})
        out = {k: v.clone() for k, v in delta.indices().items()}
        delta.detach()
        return out

    first, again, other = positions(0), positions(0), positions(1)
    assert first.keys() == again.keys()
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert any(k not in other or not torch.equal(first[k], other[k]) for k in first)


def test_masked_base_entries_never_change_under_weight_decay() -> None:
    model = bert()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    delta = attach_method(model, "apet", {"budget": 300})
    optimizer = torch.optim.AdamW(delta.parameters().values(), lr=1e-2, weight_decay=0.1)
    model.train()
    for _ in range(3):
        model(**inputs(model), labels=torch.tensor([0, 1])).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters() if n in before)
    assert any(v.abs().sum() > 0 for v in delta.parameters().values())
    state = optimizer.state_dict()["state"]
    assert sum(s["exp_avg"].numel() + s["exp_avg_sq"].numel() for s in state.values()) == 600


def trained(model: torch.nn.Module, options: dict) -> object:
    delta = attach_method(model, "apet", options)
    with torch.no_grad():
        for p in delta.parameters().values():
            p.copy_(torch.randn(p.shape, generator=torch.Generator().manual_seed(2)))
    return delta


@pytest.mark.parametrize("make", [bert, gpt2])
def test_slab_formulation_matches_weight_formulation(make) -> None:
    model = make()
    outputs = {}
    for mode in ("slab", "weight"):
        delta = trained(model, {"budget": 400, "pattern": "adjacent"})
        assert all(site.mode == "slab" for site in delta.sites.values())
        for site in delta.sites.values():
            site.mode = mode
        out = model(**inputs(model)).logits
        out.pow(2).sum().backward()
        outputs[mode] = [out.detach()] + [p.grad.clone() for p in delta.parameters().values()]
        delta.detach()
    for a, b in zip(outputs["slab"], outputs["weight"], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_merge_detach_save_load(tmp_path) -> None:
    model = bert()
    original = logits(model)
    weights = {n: p.detach().clone() for n, p in model.named_parameters()}
    delta = trained(model, {"budget": 999, "pattern": "adjacent"})
    tuned = logits(model)
    assert not torch.equal(tuned, original)
    delta.merge()
    torch.testing.assert_close(logits(model), tuned, rtol=1e-5, atol=1e-5)
    delta.unmerge()
    delta.save(tmp_path)
    delta.detach()
    assert torch.equal(logits(model), original)
    assert all(torch.equal(p, weights[n]) for n, p in model.named_parameters())
    meta, tensors = read_saved(tmp_path)
    again = attach_method(model, "apet", meta["options"])
    again.load_state_dict(tensors)
    assert torch.equal(logits(model), tuned)
    again.detach()
    other = attach_method(model, "apet", {**meta["options"], "seed": 5})
    with pytest.raises(UserError, match="differ"):
        other.load_state_dict(tensors)


@pytest.mark.parametrize("make", [bert, t5, gpt2])
@pytest.mark.parametrize("op", ["add", "plug", "concat"])
def test_ops_forward_backward_exact(make, op: str) -> None:
    model = make()
    original = logits(model)
    delta = attach_method(model, "apet", {"budget": 4321, "op": op})
    assert delta.trainable_params == 4321
    params = list(delta.parameters().values())
    model.train()
    out = model(**inputs(model))
    assert out.logits.shape == original.shape
    out.logits.float().pow(2).mean().backward()
    assert all(p.grad is not None and p.grad.shape == p.shape for p in params)
    assert any(p.grad.abs().sum() > 0 for p in params)
    delta.detach()
    model.eval()
    assert torch.equal(logits(model), original)


@pytest.mark.parametrize("make", [bert, t5, gpt2])
@pytest.mark.parametrize(
    "options",
    [
        {"budget": 777},
        {"budget": 5000, "granularity": "tensor"},
        {"budget": 4321, "op": "plug"},
        {"budget": 4321, "op": "concat"},
        {"match": "lora"},
    ],
)
def test_count_on_meta_equals_real(make, options: dict) -> None:
    model = make()
    config = make_config("apet", options)
    counted = count_method(meta_twin(model), "apet", config)
    delta = attach_method(model, "apet", options)
    assert counted == delta.trainable_params


def test_match_lora_and_bad_options() -> None:
    model = bert()
    lora = count_method(model, "lora", make_config("lora", {}))
    assert attach_method(model, "apet", {"match": "lora"}).trainable_params == lora
    for bad in (
        {"budget": 5, "match": "lora"},
        {"match": "apet"},
        {"pattern": "zigzag"},
        {"op": "mul"},
        {"granularity": "row"},
        {"budget": 0},
        {"op": "concat", "targets": "q"},
    ):
        with pytest.raises(UserError):
            make_config("apet", bad)
    with pytest.raises(UserError, match="whole target tensor"):
        attach_method(bert(), "apet", {"budget": 10, "granularity": "tensor"})
