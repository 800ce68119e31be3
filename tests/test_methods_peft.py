"""Parity with Hugging Face PEFT: the same LoRA gives the same counts and the same outputs."""

from __future__ import annotations

import pytest
import torch

import tiny
from petscale.methods import get_method, make_config
from petscale.zoo.structure import structure_of

peft = pytest.importorskip("peft")

CASES = [("bert", ["query", "value"], False), ("gpt2", ["c_attn"], True)]


@pytest.mark.parametrize(("family", "targets", "fan_in_fan_out"), CASES)
def test_lora_matches_peft(family: str, targets: list[str], fan_in_fan_out: bool) -> None:
    inputs = tiny.batch(family)
    ours = tiny.model(family, "lm" if family == "gpt2" else "classify")
    delta = get_method("lora").attach(ours, structure_of(ours), make_config("lora", {}))
    generator = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for p in delta.parameters().values():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.1)

    theirs = tiny.model(family, "lm" if family == "gpt2" else "classify")
    config = peft.LoraConfig(
        r=8, lora_alpha=16, target_modules=targets, fan_in_fan_out=fan_in_fan_out
    )
    wrapped = peft.get_peft_model(theirs, config)
    lora = {n: p for n, p in wrapped.named_parameters() if "lora_" in n}
    assert sum(p.numel() for p in lora.values()) == delta.trainable_params
    with torch.no_grad():
        for name, p in delta.parameters().items():
            # ours: <module>.lora_A; PEFT's: base_model.model.<module>.lora_A.default.weight
            lora[f"base_model.model.{name}.default.weight"].copy_(p)
    wrapped.eval()
    torch.testing.assert_close(tiny.run(ours, family, inputs), tiny.run(wrapped, family, inputs))
    # merged, both still agree
    delta.merge()
    merged = wrapped.merge_and_unload()
    torch.testing.assert_close(
        tiny.run(ours, family, inputs), tiny.run(merged, family, inputs), atol=1e-5, rtol=1e-5
    )
