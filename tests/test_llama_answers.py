"""LLaMA-style decoders answering in words, and their LoRA deltas in PEFT's format."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase

import petscale
import tiny
from petscale.answers import answerer_for
from petscale.answers.causal import answer_logprobs
from petscale.budget import attach_method
from petscale.export import export
from petscale.methods import get_method, make_config
from petscale.tasks.base import Example
from petscale.zoo import assets
from petscale.zoo.structure import structure_of
from tiny import LLAMA_STYLE

peft = pytest.importorskip("peft")

TOKENIZER_VOCAB = 30522  # MiniLM's tokenizer (bert-base-uncased)


def decoder(family: str, **extra: object) -> torch.nn.Module:
    """A tiny decoder (LLaMA-style, or GPT-2) over MiniLM's vocabulary."""
    settings = {**tiny.CONFIGS[family], "vocab_size": TOKENIZER_VOCAB, **extra}
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(AutoConfig.for_model(family, **settings)).eval()


@pytest.fixture(scope="module")
def tokenizer() -> PreTrainedTokenizerBase:
    return AutoTokenizer.from_pretrained(assets.model_folder("minilm-l6"))


@pytest.mark.parametrize("family", LLAMA_STYLE)
def test_lora_matches_peft(family: str) -> None:
    inputs = tiny.batch(family)
    ours = tiny.model(family, "lm")
    delta = get_method("lora").attach(ours, structure_of(ours), make_config("lora", {}))
    generator = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for p in delta.parameters().values():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.1)
    wrapped = peft.get_peft_model(
        tiny.model(family, "lm"),
        peft.LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"]),
    )
    lora = {n: p for n, p in wrapped.named_parameters() if "lora_" in n}
    assert sum(p.numel() for p in lora.values()) == delta.trainable_params
    with torch.no_grad():
        for name, p in delta.parameters().items():
            lora[f"base_model.model.{name}.default.weight"].copy_(p)
    torch.testing.assert_close(
        tiny.run(ours, family, inputs), tiny.run(wrapped.eval(), family, inputs)
    )


@pytest.mark.parametrize("family", LLAMA_STYLE)
def test_exported_lora_gives_petscale_load_logits_in_peft(
    family: str, tokenizer, toy_task: Path, tmp_path: Path
) -> None:
    base, run = tmp_path / "base", tmp_path / "run"
    decoder(family).save_pretrained(base)
    tokenizer.save_pretrained(base)
    petscale.tune(
        model=str(base), task=str(toy_task), method="lora", steps=3, batch_size=8,
        max_length=16, lr=1e-2, out=run,
    )  # fmt: skip
    model, loaded_tokenizer = petscale.load(run)
    inputs = loaded_tokenizer(
        ["a good movie", "the plot was bad and very long"], padding=True, return_tensors="pt"
    )
    out = export(run, tmp_path / "peft")
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["task_type"] == "CAUSAL_LM"
    assert sorted({t.rsplit(".", 1)[1] for t in config["target_modules"]}) == ["q_proj", "v_proj"]
    theirs = peft.PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(config["base_model_name_or_path"]), out
    ).eval()
    with torch.no_grad():
        expected, got = model(**inputs).logits, theirs(**inputs).logits
    assert not torch.allclose(expected, decoder(family)(**inputs).logits)  # LoRA moved them
    assert (got - expected).abs().max().item() <= 1e-4


@pytest.mark.parametrize("family", LLAMA_STYLE)
def test_label_word_scores_are_the_loss_log_probs_with_the_soft_cap(family, tokenizer) -> None:
    model = decoder(family, **({"final_logit_softcapping": 5.0} if "gemma" in family else {}))
    answerer = answerer_for("causal", tiny.SENTIMENT, tokenizer, 32)
    examples = [
        Example(text="a wonderful warm film", label=1),
        Example(text="dull and far too long for anyone", label=0),
    ]
    batch = answerer.collate([answerer.encode(ex) for ex in examples])
    with torch.no_grad():
        logp, rows = answer_logprobs(
            model, batch["input_ids"], batch["attention_mask"], batch["labels"]
        )
        torch.testing.assert_close(answerer.loss(model, batch), -logp.mean())
        gold = logp.new_zeros(len(examples)).index_add(0, rows, logp)
        scores = answerer.scores(model, batch)
        torch.testing.assert_close(scores[[0, 1], [1, 0]], gold)
        alone = torch.cat([answerer.scores(model, answerer.collate([f])) for f in
                           [answerer.encode(ex) for ex in examples]])  # fmt: skip
    torch.testing.assert_close(scores, alone, atol=1e-5, rtol=1e-5)  # padding changes nothing


@pytest.mark.parametrize("method", [None, "prompt", "lora"])
@pytest.mark.parametrize("family", LLAMA_STYLE)
def test_generation_does_not_depend_on_padding(family, method, tokenizer) -> None:
    # Gemma's sliding window counts padded positions too: soft tokens put before the padding
    # stay inside it only while the window spans soft tokens, padding and text (512 in Gemma 3)
    window = {"sliding_window": 128} if "gemma" in family else {}
    model = decoder(family, max_position_embeddings=128, **window)
    if method:  # prompt: the soft tokens sit in the cache after the first step
        attach_method(model, method, {"length": 3} if method == "prompt" else {},
                      structure_of(model))  # fmt: skip
    answerer = answerer_for("causal", tiny.QA, tokenizer, 32, max_new_tokens=5)
    examples = [
        Example(text="short", target="x"),
        Example(text="a much longer question", target="x"),
    ]
    features = [answerer.encode(ex) for ex in examples]
    with torch.inference_mode():
        together = answerer.predict(model, answerer.collate(features))
        alone = [answerer.predict(model, answerer.collate([f]))[0] for f in features]
    assert together == alone and all(isinstance(text, str) for text in together)


@pytest.mark.parametrize("family", ("gpt2", *LLAMA_STYLE))
def test_label_word_scoring_runs_the_lm_head_on_the_answer_alone(family, tokenizer) -> None:
    # Gemma 3's causal LM is its own base_model: scoring must still find its text stack, or it
    # computes (batch x length x 262k) logits on the real model
    model = decoder(family)
    answerer = answerer_for("causal", tiny.SENTIMENT, tokenizer, 32)
    examples = [Example(text="a wonderful warm film", label=1), Example(text="dull", label=0)]
    batch = answerer.collate([answerer.encode(ex) for ex in examples])
    rows = []
    hook = model.get_output_embeddings().register_forward_hook(
        lambda _m, args, _out: rows.append(args[0].shape[:-1])
    )
    with torch.no_grad():
        answerer.scores(model, batch)
    hook.remove()
    words = [len(ids) for ids in answerer.word_ids]
    assert rows == [torch.Size([len(examples) * n]) for n in words]
