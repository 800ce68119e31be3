"""What an encoder's head reads: the [CLS] pooler, or the masked mean of the text."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

import petscale
import tiny
from petscale.errors import UserError
from petscale.heads import configure_head
from petscale.pooling import resolve_pooling
from petscale.zoo import assets, registry
from petscale.zoo.registry import folder_pooling
from petscale.zoo.structure import structure_of


def masked_mean(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(1) / weights.sum(1)


def head_logits(net: nn.Module, pooled: torch.Tensor) -> torch.Tensor:
    """The head applied to ``pooled``: BERT's reads the pooler output, the others position 0."""
    with torch.no_grad():
        if net.config.model_type == "bert":
            return net.classifier(pooled)
        return net.classifier(pooled.unsqueeze(1))


def write_pooling(folder: Path, mean: bool) -> Path:
    (folder / "1_Pooling").mkdir(parents=True)
    config = {"pooling_mode_cls_token": not mean, "pooling_mode_mean_tokens": mean}
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(config))
    return folder


def test_a_folder_declares_its_pooling(tmp_path: Path) -> None:
    assert folder_pooling(tmp_path) == "cls"  # no sentence-transformers config
    assert folder_pooling(write_pooling(tmp_path / "mean", mean=True)) == "mean"
    assert folder_pooling(write_pooling(tmp_path / "cls", mean=False)) == "cls"


def test_the_offline_checkpoints_are_mean_pooled() -> None:
    assert folder_pooling(assets.model_folder("minilm-l6")) == "mean"  # the package's own file
    assert {registry.declared_pooling(m) for m in ("minilm-l6", "minilm-l3", "mpnet-base")} == {
        "mean"
    }
    assert registry.declared_pooling("bert-base-uncased") == "cls"  # a bundled config


def test_auto_means_the_checkpoint_pooling_on_encoders_only() -> None:
    bert, gpt2 = (structure_of(tiny.model(f)) for f in ("bert", "gpt2"))
    assert resolve_pooling("auto", "mean", bert) == "mean"
    assert resolve_pooling("auto", "cls", bert) == "cls"
    assert resolve_pooling("cls", "mean", bert) == "cls"
    assert resolve_pooling("mean", "cls", bert) == "mean"
    assert resolve_pooling("auto", "mean", gpt2) == "cls"
    with pytest.raises(UserError, match="encoder classification heads"):
        resolve_pooling("mean", "cls", gpt2)
    with pytest.raises(UserError, match="--pooling must be one of"):
        resolve_pooling("max", "cls", bert)


@pytest.mark.parametrize("family", tiny.ENCODERS)
def test_mean_pooling_feeds_the_head_the_masked_mean(family: str) -> None:
    net = tiny.model(family)
    inputs = tiny.batch(family)
    original = tiny.run(net, family, inputs)
    with torch.no_grad():
        hidden = net.base_model(**inputs).last_hidden_state
    restore = configure_head(net, structure_of(net), "trainable", 0, pooling="mean")
    pooled = tiny.run(net, family, inputs)
    torch.testing.assert_close(
        pooled, head_logits(net, masked_mean(hidden, inputs["attention_mask"]))
    )
    assert not torch.allclose(pooled, original)
    restore()
    assert torch.equal(tiny.run(net, family, inputs), original)


def test_mean_pooling_leaves_the_soft_prompt_out() -> None:
    net = tiny.model("bert")
    inputs = tiny.batch("bert")
    delta = petscale.attach(net, "prompt", length=3)
    assert delta.soft_span == (0, 3)
    configure_head(net, structure_of(net), "trainable", 0, pooling="mean", soft_span=(0, 3))
    with torch.no_grad():
        hidden = net.base_model(**inputs).last_hidden_state  # soft positions first
    text_only = head_logits(net, masked_mean(hidden[:, 3:], inputs["attention_mask"]))
    everything = torch.cat([torch.ones(2, 3, dtype=torch.long), inputs["attention_mask"]], 1)
    with_soft = head_logits(net, masked_mean(hidden, everything))
    logits = tiny.run(net, "bert", inputs)
    torch.testing.assert_close(logits, text_only)
    assert not torch.allclose(logits, with_soft)


def test_mean_pooling_leaves_apet_concat_tokens_out() -> None:
    net = tiny.model("bert")
    inputs = tiny.batch("bert")
    delta = petscale.attach(net, "apet", budget=3 * 32, op="concat", granularity="tensor")
    assert delta.soft_span == (1, 3)  # after [CLS]
    configure_head(net, structure_of(net), "trainable", 0, pooling="mean", soft_span=(1, 3))
    with torch.no_grad():  # the concat hooks sit on the whole model: [CLS], 3 soft, the rest
        hidden = net(**inputs, output_hidden_states=True).hidden_states[-1]
    text = torch.cat([hidden[:, :1], hidden[:, 4:]], 1)
    expected = head_logits(net, masked_mean(text, inputs["attention_mask"]))
    logits = tiny.run(net, "bert", inputs)
    torch.testing.assert_close(logits, expected)
    mask = inputs["attention_mask"]
    everything = torch.cat([mask[:, :1], torch.ones(2, 3, dtype=torch.long), mask[:, 1:]], 1)
    assert not torch.allclose(logits, head_logits(net, masked_mean(hidden, everything)))


def test_a_decoder_drops_its_soft_tokens_so_they_span_nothing() -> None:
    assert petscale.attach(tiny.model("gpt2"), "prompt", length=3).soft_span == (0, 0)
    assert petscale.attach(tiny.model("bert"), "lora").soft_span == (0, 0)
