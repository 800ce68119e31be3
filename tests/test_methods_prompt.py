"""Prompt tuning: where the soft tokens go, positions, masks, labels and generation."""

from __future__ import annotations

import pytest
import torch

import tiny
from petscale.errors import UserError
from petscale.methods import get_method, make_config
from petscale.zoo.structure import structure_of
from tiny import HIDDEN

P = 5


def attach(net: torch.nn.Module, **options: object):
    config = make_config("prompt", {"length": P, **options})
    return get_method("prompt").attach(net, structure_of(net), config)


@pytest.mark.parametrize(
    ("family", "positions"),
    [("bert", 64), ("roberta", 66 - 2), ("mpnet", 66 - 2), ("gpt2", 64)],
)
def test_inputs_up_to_the_position_table_run_longer_ones_fail(family: str, positions: int) -> None:
    # soft tokens take positions 0..P-1 and the text follows: P + length <= the table
    net = tiny.model(family)
    attach(net)
    out = tiny.run(net, family, tiny.batch(family, length=positions - P))
    assert out.shape == (2, tiny.LABELS)
    with pytest.raises(UserError, match="--max-length"):
        tiny.run(net, family, tiny.batch(family, length=positions - P + 1))


def test_bert_prompt_equals_explicit_prepended_embeddings() -> None:
    net = tiny.model("bert")
    inputs = tiny.batch("bert")
    delta = attach(net)
    tuned = tiny.run(net, "bert", inputs)
    prompt = delta.parameters()["soft_prompt"].detach()
    delta.detach()
    words = net.bert.embeddings.word_embeddings(inputs["input_ids"])
    embeds = torch.cat([prompt.expand(2, -1, -1), words], dim=1)
    ones = torch.ones(2, P, dtype=torch.long)
    with torch.no_grad():
        expected = net(
            inputs_embeds=embeds,
            attention_mask=torch.cat([ones, inputs["attention_mask"]], 1),
            token_type_ids=torch.cat([0 * ones, inputs["token_type_ids"]], 1),
        ).logits
    torch.testing.assert_close(tuned, expected)


def test_init_vocab_copies_word_embeddings_uniform_in_range_normal_standard() -> None:
    net = tiny.model("bert")
    table = net.bert.embeddings.word_embeddings.weight
    prompt = attach(net).parameters()["soft_prompt"]
    assert all(any(torch.equal(row, t) for t in table) for row in prompt)
    net = tiny.model("bert")
    prompt = attach(net, init="uniform").parameters()["soft_prompt"]
    assert prompt.abs().max() <= 0.5 and prompt.shape == (P, HIDDEN)
    prompt = attach(tiny.model("bert"), init="normal", length=200).parameters()["soft_prompt"]
    assert abs(prompt.mean().item()) < 0.05 and 0.95 < prompt.std().item() < 1.05


def test_t5_prompts_the_encoder_only() -> None:
    net = tiny.model("t5", "lm")
    inputs = tiny.batch("t5")
    attach(net)
    seen = {}
    net.encoder.register_forward_hook(lambda m, i, out: seen.update(enc=out[0].shape))
    net.decoder.register_forward_hook(lambda m, i, out: seen.update(dec=out[0].shape))
    tiny.run(net, "t5", inputs)
    assert seen["enc"][1] == inputs["input_ids"].shape[1] + P
    assert seen["dec"][1] == 4  # the decoder input is untouched


@pytest.mark.parametrize("family", ["t5", "gpt2", "bloom"])
def test_generation_with_cache_equals_greedy_decoding_without(family: str) -> None:
    net = tiny.model(family, "lm")
    attach(net)
    inputs = tiny.batch(family, size=1)
    steps = 3
    with torch.no_grad():
        generated = net.generate(**inputs, max_new_tokens=steps, do_sample=False, min_length=0)
        ids = inputs["input_ids"]
        if family == "t5":
            answer = torch.zeros(1, 1, dtype=torch.long)
            for _ in range(steps):
                logits = net(**inputs, decoder_input_ids=answer, use_cache=False).logits
                answer = torch.cat([answer, logits[:, -1:].argmax(-1)], 1)
            expected = answer
        else:
            for _ in range(steps):
                logits = net(input_ids=ids, use_cache=False).logits
                ids = torch.cat([ids, logits[:, -1:].argmax(-1)], 1)
            expected = ids
    assert torch.equal(generated[:, : expected.shape[1]], expected)


@pytest.mark.parametrize("family", ["gpt2", "bloom"])
def test_decoder_logits_and_loss_cover_the_text_only(family: str) -> None:
    net = tiny.model(family, "lm")
    attach(net)
    inputs = tiny.batch(family)
    labels = inputs["input_ids"].masked_fill(inputs["attention_mask"] == 0, -100)
    out = net(**inputs, labels=labels)
    assert out.logits.shape[1] == inputs["input_ids"].shape[1]
    expected = torch.nn.functional.cross_entropy(
        out.logits[:, :-1].reshape(-1, out.logits.shape[-1]), labels[:, 1:].reshape(-1)
    )
    torch.testing.assert_close(out.loss, expected)
    out.loss.backward()
    grad = next(p for n, p in net.named_parameters() if n.endswith("soft_prompt")).grad
    assert grad is not None and grad.abs().sum() > 0
