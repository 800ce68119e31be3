"""LLaMA-style decoders (Llama, Mistral, Qwen2, Gemma 3): structure, every method, exact counts."""

from __future__ import annotations

import pytest
import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    Gemma3Config,
    Gemma3ForConditionalGeneration,
)

import petscale
import test_methods as shared
import tiny
from petscale.budget import count_method, meta_twin
from petscale.errors import UserError
from petscale.methods import make_config
from petscale.zoo.structure import structure_of
from tiny import FFN, HIDDEN, LAYERS, LLAMA_STYLE, VOCAB

VARIANTS = [(f, h) for f in LLAMA_STYLE for h in ("classify", "lm")]
IDS = [f"{f}-{h}" for f, h in VARIANTS]
R, B, P = 8, 24, 5  # LoRA rank, adapter bottleneck, prompt length (tests' SMALL)


def widths(family: str) -> tuple[int, int]:
    """(q and o width, k and v width) of the tiny models: heads x head width."""
    settings = tiny.CONFIGS[family]
    head = settings.get("head_dim", HIDDEN // settings["num_attention_heads"])
    return settings["num_attention_heads"] * head, settings["num_key_value_heads"] * head


def expected_counts(family: str, head: str) -> dict[str, int]:
    q, kv = widths(family)
    # Gemma 3: four norms per block and the q/k norms (one head wide); Llama: two norms
    norms = 4 * HIDDEN + 2 * (q // 4) if family == "gemma3_text" else 2 * HIDDEN
    biases = q + 2 * kv + HIDDEN + 2 * FFN + HIDDEN + norms  # q k v o, gate up down, norms
    return {
        "lora": LAYERS * R * ((HIDDEN + q) + (HIDDEN + kv)),  # q and v
        "adapter": LAYERS * 2 * (HIDDEN * B + B + B * HIDDEN + HIDDEN),
        # every bias is an added zero one; the final norm; the LM head's output bias
        "bitfit": LAYERS * biases + HIDDEN + (VOCAB if head == "lm" else 0),
        "prompt": P * HIDDEN,
        "apet": LAYERS * R * ((HIDDEN + q) + (HIDDEN + kv)),  # K = LoRA's by default
    }


def test_llama_structure_names_every_projection_and_norm() -> None:
    s = structure_of(tiny.model("llama", "lm"))
    assert s.kind == "decoder" and s.family == "llama"
    assert s.modules("q", "v") == [
        "model.layers.0.self_attn.q_proj",
        "model.layers.1.self_attn.q_proj",
        "model.layers.0.self_attn.v_proj",
        "model.layers.1.self_attn.v_proj",
    ]
    assert s.modules("attn_out")[0] == "model.layers.0.self_attn.o_proj"
    assert s.modules("ffn_in")[:2] == ["model.layers.0.mlp.gate_proj", "model.layers.0.mlp.up_proj"]
    assert s.modules("ffn_out")[1] == "model.layers.1.mlp.down_proj"
    assert s.modules("layer_norm")[-1] == "model.norm" and len(s.modules("layer_norm")) == 5
    assert s.modules("word_embeddings") == ["model.embed_tokens"]
    assert s.modules("lm_head") == ["lm_head"] and s.modules("head") == []
    assert s.blocks() == {"model.layers": LAYERS}
    assert s.layer_of("model.layers.1.mlp.up_proj") == 1


def test_gemma3_norms_include_the_four_block_norms_and_q_k_norms() -> None:
    s = structure_of(tiny.model("gemma3_text"))
    norms = [n for n in s.modules("layer_norm") if ".layers.0." in n]
    assert sorted(n.rsplit(".", 1)[1] for n in norms) == [
        "input_layernorm",
        "k_norm",
        "post_attention_layernorm",
        "post_feedforward_layernorm",
        "pre_feedforward_layernorm",
        "q_norm",
    ]
    assert s.modules("head") == ["score"]


def test_gemma3_multimodal_maps_its_language_model_only() -> None:
    config = Gemma3Config(
        text_config={**tiny.CONFIGS["gemma3_text"], "vocab_size": VOCAB},
        vision_config={
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "image_size": 28,
            "patch_size": 14,
        },
        mm_tokens_per_image=4,
    )
    with torch.device("meta"):
        net = Gemma3ForConditionalGeneration(config)
    s = structure_of(net)
    assert s.modules("q") == [f"model.language_model.layers.{i}.self_attn.q_proj" for i in (0, 1)]
    assert all("vision" not in n for names in s.roles.values() for n in names)
    assert s.modules("layer_norm")[-1] == "model.language_model.norm"


@pytest.mark.parametrize(("family", "head"), VARIANTS, ids=IDS)
def test_counts_equal_hand_computed_counts(family: str, head: str) -> None:
    net = tiny.model(family, head)
    expected = {**expected_counts(family, head), "full": shared._full(net)}
    for method, count in expected.items():
        delta = shared.attach(net, method)
        assert delta.trainable_params == count, method
        delta.detach()
        config = make_config(method, shared.SMALL.get(method, {}))
        assert count_method(meta_twin(net), method, config) == count, method


@pytest.mark.parametrize(("family", "head"), VARIANTS, ids=IDS)
@pytest.mark.parametrize("method", shared.METHODS)
def test_start_save_load_merge_detach(family: str, head: str, method: str, tmp_path) -> None:
    shared.test_start_save_load_merge_detach(family, head, method, tmp_path)


@pytest.mark.parametrize("family", LLAMA_STYLE)
@pytest.mark.parametrize("op", ["add", "plug", "concat"])
def test_apet_ops_hold_exactly_k_and_start_near_unchanged(family: str, op: str) -> None:
    net = tiny.model(family, "lm", max_position_embeddings=256)  # room for concat's 100
    inputs = tiny.batch(family)
    original = tiny.run(net, family, inputs)
    budget = 300
    delta = shared.attach(net, "apet", op=op, budget=budget)
    assert delta.trainable_params == budget
    out = tiny.run(net, family, inputs)
    assert out.shape == original.shape  # concat's soft tokens are cut from the logits
    if op != "concat":  # add starts at zero, plug's frozen up projection near it
        torch.testing.assert_close(out, original, atol=0 if op == "add" else 1e-2, rtol=0)
    shared.perturb(delta)
    assert not torch.allclose(tiny.run(net, family, inputs), original)
    delta.detach()
    assert torch.equal(tiny.run(net, family, inputs), original)


def test_lora_on_any_projection_by_role_or_name() -> None:
    net = tiny.model("llama", "lm")
    every = shared.attach(net, "lora", targets="q,k,v,attn_out,ffn_in,ffn_out")
    names = {n.rsplit(".", 2)[1] for n in every.parameters()}
    assert names == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    every.detach()
    some = shared.attach(net, "lora", targets=r"mlp\.(gate|down)_proj")
    assert {n.rsplit(".", 2)[1] for n in some.parameters()} == {"gate_proj", "down_proj"}
    some.detach()
    with pytest.raises(UserError, match="selects no linear projection"):
        shared.attach(net, "lora", targets="c_attn")


def test_qwen2_trains_its_own_qkv_biases_and_adds_the_rest() -> None:
    config = AutoConfig.for_model(
        "qwen2", vocab_size=VOCAB, **{**tiny.CONFIGS["llama"], "tie_word_embeddings": True}
    )
    torch.manual_seed(0)
    net = AutoModelForCausalLM.from_config(config).eval()
    own = {n for n, _ in net.named_parameters() if n.endswith(".bias")}
    assert own == {f"model.layers.{i}.self_attn.{p}_proj.bias" for i in (0, 1) for p in "qkv"}
    delta = shared.attach(net, "bitfit")
    assert own <= set(delta.parameters())
    assert delta.trainable_params == expected_counts("llama", "lm")["bitfit"]
    delta.detach()
    assert {n for n, _ in net.named_parameters() if n.endswith(".bias")} == own


def _llama_3_2_1b() -> dict[str, int]:
    d, ff, layers, q, kv, vocab = 2048, 8192, 16, 32 * 64, 8 * 64, 128256
    return {
        "lora": layers * 8 * ((d + q) + (d + kv)),
        "adapter": layers * 2 * (2 * d * 24 + 24 + d),
        # q k v o, gate up down, 2 norms per block; the final norm; the LM head
        "bitfit": layers * (q + 2 * kv + d + 2 * ff + d + 2 * d) + d + vocab,
        "prompt": 100 * d,
        "full": 1_235_814_400,
    }


def _gemma3_270m() -> dict[str, int]:
    d, ff, layers, head, q, kv, vocab = 640, 2048, 18, 256, 4 * 256, 1 * 256, 262144
    return {
        "lora": layers * 8 * ((d + q) + (d + kv)),
        "adapter": layers * 2 * (2 * d * 24 + 24 + d),
        # q k v o, gate up down, 4 norms and the q/k norms per block; final norm; LM head
        "bitfit": layers * (q + 2 * kv + d + 2 * ff + d + 4 * d + 2 * head) + d + vocab,
        "prompt": 100 * d,
        "full": 268_098_176,  # tied embeddings, counted once
    }


def _qwen2_5_0_5b() -> dict[str, int]:
    d, ff, layers, q, kv, vocab = 896, 4864, 24, 14 * 64, 2 * 64, 151936
    return {
        "lora": layers * 8 * ((d + q) + (d + kv)),
        "bitfit": layers * (q + 2 * kv + d + 2 * ff + d + 2 * d) + d + vocab,  # q/k/v: own
        "full": 494_032_768,
    }


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("llama-3.2-1b", _llama_3_2_1b()),
        ("gemma3-270m", _gemma3_270m()),
        ("qwen2.5-0.5b", _qwen2_5_0_5b()),
        ("llama-2-7b", {"lora": 32 * 8 * 2 * (4096 + 4096), "full": 6_738_415_616}),
    ],
)
def test_default_budgets_follow_the_convention(name: str, expected: dict[str, int]) -> None:
    for method, count in expected.items():
        assert petscale.count(model=name, method=method)["trainable_params"] == count, method
    apet = petscale.count(model=name, method="apet")["trainable_params"]
    assert apet == expected["lora"]  # K = LoRA's default count


def test_prompt_starts_from_scaled_word_embeddings_on_gemma() -> None:
    """Gemma multiplies its embeddings by sqrt(hidden): soft tokens start at that scale too."""
    net = tiny.model("gemma3_text", "lm")
    torch.manual_seed(1)
    delta = shared.attach(net, "prompt")
    torch.manual_seed(1)
    ids = torch.randint(0, VOCAB, (P,))
    words = net.get_input_embeddings()
    with torch.no_grad():
        torch.testing.assert_close(delta.prompt, words(ids))
        assert not torch.allclose(delta.prompt, words.weight[ids])  # the scale is applied


@pytest.mark.parametrize("family", ["mistral", "qwen2", "gemma", "gemma2"])
def test_other_llama_style_families_count_like_llama(family: str) -> None:
    """The same projections and norms under the same names: LoRA and adapters count alike."""
    settings = {**tiny.CONFIGS["llama"], "head_dim": HIDDEN // 4}
    config = AutoConfig.for_model(family, vocab_size=VOCAB, **settings)
    torch.manual_seed(0)
    net = AutoModelForCausalLM.from_config(config).eval()
    s = structure_of(net)
    assert s.kind == "decoder" and len(s.modules("ffn_in")) == 2 * LAYERS
    for method in ("lora", "adapter", "apet"):
        delta = shared.attach(net, method)
        assert delta.trainable_params == expected_counts("llama", "lm")[method], (family, method)
        delta.detach()
    norms = 4 if family == "gemma2" else 2  # Gemma 2: pre/post norms around both sublayers
    assert len(s.modules("layer_norm")) == norms * LAYERS + 1
