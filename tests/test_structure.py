"""Structure maps name the right modules on tiny models of every family."""

from __future__ import annotations

import pytest
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    BloomConfig,
    BloomForCausalLM,
    GPT2Config,
    GPT2ForSequenceClassification,
    MPNetConfig,
    MPNetForSequenceClassification,
    RobertaConfig,
    RobertaForSequenceClassification,
    T5Config,
    T5ForConditionalGeneration,
)

from petscale.errors import UserError
from petscale.zoo.structure import structure_of

SMALL = {"num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}


def test_bert() -> None:
    s = structure_of(BertForSequenceClassification(BertConfig(hidden_size=32, **SMALL)))
    assert s.kind == "encoder"
    assert s.modules("q") == [f"bert.encoder.layer.{i}.attention.self.query" for i in (0, 1)]
    assert s.modules("attn_out")[1] == "bert.encoder.layer.1.attention.output.dense"
    assert s.modules("ffn_in")[0] == "bert.encoder.layer.0.intermediate.dense"
    assert s.modules("ffn_out")[0] == "bert.encoder.layer.0.output.dense"
    assert len(s.modules("layer_norm")) == 1 + 2 * 2  # embeddings + two per block
    assert s.modules("head") == ["classifier"]
    assert s.layer_of("bert.encoder.layer.1.attention.self.query") == 1


def test_roberta_head_is_the_whole_classification_head() -> None:
    model = RobertaForSequenceClassification(RobertaConfig(hidden_size=32, **SMALL))
    s = structure_of(model)
    assert s.modules("head") == ["classifier"]  # dense + out_proj, not the submodules
    assert s.modules("v")[0] == "roberta.encoder.layer.0.attention.self.value"


def test_mpnet() -> None:
    s = structure_of(MPNetForSequenceClassification(MPNetConfig(hidden_size=32, **SMALL)))
    assert s.modules("q", "v") == [
        "mpnet.encoder.layer.0.attention.attn.q",
        "mpnet.encoder.layer.1.attention.attn.q",
        "mpnet.encoder.layer.0.attention.attn.v",
        "mpnet.encoder.layer.1.attention.attn.v",
    ]
    assert s.modules("attn_out")[0] == "mpnet.encoder.layer.0.attention.attn.o"


def test_t5_separates_self_and_cross_attention() -> None:
    config = T5Config(d_model=32, d_ff=64, num_layers=2, num_heads=2, d_kv=16, vocab_size=100)
    s = structure_of(T5ForConditionalGeneration(config))
    assert s.kind == "encoder-decoder"
    q = s.modules("q")
    assert "encoder.block.0.layer.0.SelfAttention.q" in q
    assert "decoder.block.1.layer.0.SelfAttention.q" in q
    assert not any("EncDecAttention" in name for name in q)
    assert s.modules("cross_q") == [f"decoder.block.{i}.layer.1.EncDecAttention.q" for i in (0, 1)]
    assert s.modules("ffn_out")[-1] == "decoder.block.1.layer.2.DenseReluDense.wo"
    assert s.modules("lm_head") == ["lm_head"]


def test_t5_v1_1_gated_ffn_has_two_inputs() -> None:
    config = T5Config(
        d_model=32, d_ff=64, num_layers=1, num_heads=2, d_kv=16, vocab_size=100,
        feed_forward_proj="gated-gelu",
    )  # fmt: skip
    s = structure_of(T5ForConditionalGeneration(config))
    assert s.modules("ffn_in")[:2] == [
        "encoder.block.0.layer.1.DenseReluDense.wi_0",
        "encoder.block.0.layer.1.DenseReluDense.wi_1",
    ]


def test_gpt2_fused_qkv_stands_for_q_k_v() -> None:
    config = GPT2Config(n_embd=32, n_layer=2, n_head=2, vocab_size=100)
    s = structure_of(GPT2ForSequenceClassification(config))
    assert s.kind == "decoder"
    assert s.modules("q", "v") == ["transformer.h.0.attn.c_attn", "transformer.h.1.attn.c_attn"]
    assert s.modules("head") == ["score"]
    assert s.modules("ffn_out")[0] == "transformer.h.0.mlp.c_proj"


def test_bloom() -> None:
    config = BloomConfig(hidden_size=32, n_layer=2, n_head=2, vocab_size=100)
    s = structure_of(BloomForCausalLM(config))
    assert s.modules("q") == [f"transformer.h.{i}.self_attention.query_key_value" for i in (0, 1)]
    assert s.modules("attn_out")[0] == "transformer.h.0.self_attention.dense"
    assert "transformer.word_embeddings_layernorm" in s.modules("layer_norm")
    assert s.modules("lm_head") == ["lm_head"]


def test_unknown_role_is_a_user_error() -> None:
    s = structure_of(BertForSequenceClassification(BertConfig(hidden_size=32, **SMALL)))
    with pytest.raises(UserError, match="unknown role"):
        s.modules("queries")
