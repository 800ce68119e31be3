"""Every method on every family: hand-computed counts, unchanged start, save/load, merge, detach."""

from __future__ import annotations

import pytest
import torch

import tiny
from petscale.budget import attach_method, count_method, meta_twin
from petscale.errors import UserError
from petscale.methods import make_config
from petscale.methods.base import read_saved
from petscale.zoo.structure import structure_of
from tiny import FFN, HIDDEN, LAYERS, VOCAB

METHODS = ("lora", "bitfit", "adapter", "prompt", "full")
SMALL = {"prompt": {"length": 5}}  # 5 soft tokens keep every input inside 64 positions
D, F, R, B, P = HIDDEN, FFN, 8, 24, 5  # hidden, feed-forward, LoRA rank, bottleneck, prompt


def _lora(family: str) -> int:
    # q and v of self-attention, rank r: r * (in + out) each; fused QKV: r * (d + 3d) once.
    per_block = R * (D + 3 * D) if family in ("gpt2", "bloom") else 2 * R * (D + D)
    stacks = 2 if family == "t5" else 1  # T5: encoder and decoder self-attention, no cross
    return stacks * LAYERS * per_block


def _adapter(family: str) -> int:
    one = D * B + B + B * D + D  # down (d x b) + bias, up (b x d) + bias
    stacks = 2 if family == "t5" else 1
    return stacks * LAYERS * 2 * one


def _bitfit(family: str, head: str) -> int:
    lm_bias = VOCAB if head == "lm" else 0
    if family in ("bert", "roberta", "mpnet"):
        # q, k, v, o + ffn in + ffn out + 2 layer norms per layer; the embeddings' layer norm
        return LAYERS * (4 * D + F + D + 2 * D) + D
    if family == "t5":
        # gated FFN: wi_0 and wi_1; added zero biases; decoder's 3 norms; 2 final norms
        encoder = LAYERS * (4 * D + 2 * F + D + 2 * D)
        decoder = LAYERS * (4 * D + 2 * F + D + 3 * D)
        return encoder + decoder + 2 * D + lm_bias
    # GPT-2 / BLOOM: qkv 3d, out d, ffn 4d and d, 2 norms; final norm (+ BLOOM's embedding norm)
    extra_norms = 2 * D if family == "bloom" else D
    return LAYERS * (3 * D + D + 4 * D + D + 2 * D) + extra_norms + lm_bias


def _full(net: torch.nn.Module) -> int:
    head = tuple(structure_of(net).modules("head"))
    return sum(
        p.numel()
        for n, p in net.named_parameters()
        if not n.startswith(tuple(h + "." for h in head))
    )


def attach(net: torch.nn.Module, method: str, **options: object):
    # through the sizing step, as every caller attaches (APET's default K is LoRA's count)
    return attach_method(net, method, {**SMALL.get(method, {}), **options})


def perturb(delta, seed: int = 3) -> None:
    """Move every trainable tensor away from its start, as training would."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in delta.parameters().values():
            p.add_(torch.randn(p.shape, generator=generator).to(p.dtype) * 0.05)


def snapshot(net: torch.nn.Module) -> dict:
    return {
        "modules": [(n, id(m)) for n, m in net.named_modules()],
        "params": {n: (p.detach().clone(), p.requires_grad) for n, p in net.named_parameters()},
    }


VARIANTS = tiny.variants()
IDS = [f"{f}-{h}" for f, h in VARIANTS]


@pytest.mark.parametrize(("family", "head"), VARIANTS, ids=IDS)
def test_counts_equal_hand_computed_counts(family: str, head: str) -> None:
    net = tiny.model(family, head)
    expected = {
        "lora": _lora(family),
        "adapter": _adapter(family),
        "bitfit": _bitfit(family, head),
        "prompt": P * D,
        "full": _full(net),
    }
    for method, count in expected.items():
        delta = attach(net, method)
        assert delta.trainable_params == count, method
        # nothing outside the delta (and the head, counted apart) is trainable
        heads = tuple(h + "." for h in structure_of(net).modules("head"))
        own = {id(p) for p in delta.parameters().values()}
        for name, p in net.named_parameters():
            assert not p.requires_grad or id(p) in own or name.startswith(heads), name
        delta.detach()
        # the same count on the meta device, where `petscale count` works
        config = make_config(method, SMALL.get(method, {}))
        assert count_method(meta_twin(net), method, config) == count, method


@pytest.mark.parametrize(("family", "head"), VARIANTS, ids=IDS)
@pytest.mark.parametrize("method", METHODS)
def test_start_save_load_merge_detach(family: str, head: str, method: str, tmp_path) -> None:
    net = tiny.model(family, head)
    inputs = tiny.batch(family)
    original = tiny.run(net, family, inputs)
    before = snapshot(net)

    delta = attach(net, method)
    if method != "prompt":  # every other method starts as the identity
        torch.testing.assert_close(tiny.run(net, family, inputs), original)
    perturb(delta)
    tuned = tiny.run(net, family, inputs)
    assert not torch.allclose(tuned, original)

    delta.save(tmp_path)
    meta, tensors = read_saved(tmp_path)
    assert meta == {"method": method, "options": delta.config.to_dict()}
    if method != "full":  # full fine-tuning moved the base weights: check load on a fresh model
        fresh = tiny.model(family, head)
        loaded = attach(fresh, method)
        loaded.load_state_dict(tensors)
        torch.testing.assert_close(tiny.run(fresh, family, inputs), tuned)

    if delta.mergeable:
        delta.merge()
        torch.testing.assert_close(tiny.run(net, family, inputs), tuned, atol=1e-5, rtol=1e-5)
        delta.unmerge()
        torch.testing.assert_close(tiny.run(net, family, inputs), tuned)
    else:
        with pytest.raises(UserError):
            delta.merge()

    delta.merge() if delta.mergeable else None
    delta.detach()
    after = snapshot(net)
    assert after["modules"] == before["modules"]  # the same module objects, by name
    assert after["params"].keys() == before["params"].keys()
    for name, (value, flag) in before["params"].items():
        assert torch.equal(after["params"][name][0], value), name
        assert after["params"][name][1] == flag, name
    assert torch.equal(tiny.run(net, family, inputs), original)


def test_lora_never_touches_t5_cross_attention() -> None:
    net = tiny.model("t5", "lm")
    delta = attach(net, "lora")
    names = {n.rsplit(".", 1)[0] for n in delta.parameters()}
    assert names and all("SelfAttention" in n for n in names)
    assert {n.rsplit(".", 1)[1] for n in names} == {"q", "v"}
    delta.detach()
    cross = attach(net, "lora", targets="cross_q,cross_v")
    assert all("EncDecAttention" in n for n in cross.parameters())


@pytest.mark.parametrize(
    ("family", "fused"), [("gpt2", "attn.c_attn"), ("bloom", "query_key_value")]
)
def test_lora_on_fused_qkv(family: str, fused: str) -> None:
    delta = attach(tiny.model(family), "lora")
    assert all(fused in n for n in delta.parameters())
    b = next(p for n, p in delta.parameters().items() if n.endswith("lora_B"))
    assert b.shape == (3 * D, R)


def test_adapters_sit_after_self_attention_and_feed_forward_outputs() -> None:
    delta = attach(tiny.model("t5", "lm"), "adapter")
    places = sorted({n.split(".adapter.")[0].split(".", 3)[-1] for n in delta.parameters()})
    assert places == [
        "layer.0.SelfAttention.o",
        "layer.1.DenseReluDense.wo",
        "layer.2.DenseReluDense.wo",
    ]
    assert not any("EncDecAttention" in n for n in delta.parameters())
    with pytest.raises(UserError, match="activation"):
        make_config("adapter", {"activation": "softmax"})


def test_bitfit_adds_zero_biases_to_t5_and_removes_them() -> None:
    net = tiny.model("t5", "lm")
    names = {n for n, _ in net.named_parameters()}
    delta = attach(net, "bitfit")
    added = set(delta.parameters()) - names
    assert "encoder.block.0.layer.0.SelfAttention.q.bias" in added
    assert "encoder.final_layer_norm.bias" in added and "lm_head.bias" in added
    assert all(not p.detach().any() for p in delta.parameters().values())
    delta.detach()
    assert {n for n, _ in net.named_parameters()} == names


def test_bitfit_all_and_layers() -> None:
    net = tiny.model("bert")
    convention = attach(net, "bitfit")
    names = set(convention.parameters())
    convention.detach()
    everything = attach(net, "bitfit", biases="all")
    assert set(everything.parameters()) == names | {"bert.pooler.dense.bias"}
    everything.detach()
    top = attach(net, "bitfit", layers=1)
    assert top.trainable_params == 4 * D + F + D + 2 * D  # layer 1 only, nothing outside blocks
    assert all(".layer.1." in n for n in top.parameters())
    top.detach()
    with pytest.raises(UserError, match="blocks"):
        attach(net, "bitfit", layers=LAYERS + 1)
    with pytest.raises(UserError):
        make_config("bitfit", {"biases": "some"})


def test_methods_reject_options_of_other_methods() -> None:
    with pytest.raises(UserError, match="--rank does not apply"):
        make_config("prompt", {"rank": 4})
    with pytest.raises(UserError, match="--init"):
        make_config("prompt", {"init": "zeros"})
