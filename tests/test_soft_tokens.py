"""Soft tokens (prompt tuning, APET concat) are seen by every caller of the model's stack:
label-word scoring sees what training's forward sees, and generation keeps them in the cache."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase

import tiny
from petscale.answers import answerer_for
from petscale.budget import attach_method
from petscale.tasks.base import Example
from petscale.zoo import assets
from petscale.zoo.structure import structure_of

TOKENIZER_VOCAB = 30522  # MiniLM's tokenizer (bert-base-uncased)
DECODERS = ("gpt2", "llama", "gemma3_text")
#: APET concat: 3 whole soft tokens of width 32, all trainable; prompt tuning: 3 soft tokens
SOFT = {
    "prompt": ("prompt", {"length": 3}),
    "apet-concat": ("apet", {"op": "concat", "budget": 3 * tiny.HIDDEN, "granularity": "tensor"}),
}
EXAMPLES = [
    Example(text="a wonderful warm film", label=1, target="x"),
    Example(text="dull and far too long for anyone", label=0, target="x"),
]


@pytest.fixture(scope="module")
def tokenizer() -> PreTrainedTokenizerBase:
    return AutoTokenizer.from_pretrained(assets.model_folder("minilm-l6"))


def decoder(family: str, method: str) -> torch.nn.Module:
    """A tiny decoder over MiniLM's vocabulary with moved soft tokens (so they matter)."""
    positions = {"n_positions": 128} if family == "gpt2" else {"max_position_embeddings": 128}
    settings = {**tiny.CONFIGS[family], "vocab_size": TOKENIZER_VOCAB, **positions}
    if family == "gemma3_text":  # Gemma 2/3's logit soft-cap, which scoring applies itself
        settings.update(final_logit_softcapping=5.0, sliding_window=128)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(AutoConfig.for_model(family, **settings)).eval()
    name, options = SOFT[method]
    delta = attach_method(model, name, options, structure_of(model))
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in delta.parameters().values():
            p.add_(torch.randn(p.shape, generator=generator))
    return model


@pytest.mark.parametrize("method", SOFT)
@pytest.mark.parametrize("family", DECODERS)
def test_label_word_scores_are_the_training_forward_log_probs(family, method, tokenizer) -> None:
    model = decoder(family, method)
    answerer = answerer_for("causal", tiny.SENTIMENT, tokenizer, 32)
    batch = answerer.collate([answerer.encode(ex) for ex in EXAMPLES])
    with torch.no_grad():
        # what training sees: the whole model's forward, its logits at the answer's positions
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        targets = batch["labels"][:, 1:]
        logp = logits[:, :-1].float().log_softmax(-1)
        chosen = (targets != -100).float()
        gold = (logp.gather(-1, targets.clamp(min=0)[..., None])[..., 0] * chosen).sum(1)
        scores = answerer.scores(model, batch)
    torch.testing.assert_close(scores[[0, 1], [1, 0]], gold)


@pytest.mark.parametrize("method", SOFT)
@pytest.mark.parametrize("family", DECODERS)
def test_generation_keeps_the_soft_tokens_in_the_cache(family, method, tokenizer) -> None:
    model = decoder(family, method)
    answerer = answerer_for("causal", tiny.QA, tokenizer, 32, max_new_tokens=5)
    features = [answerer.encode(ex) for ex in EXAMPLES]
    with torch.inference_mode():
        together = answerer.predict(model, answerer.collate(features))
        alone = [answerer.predict(model, answerer.collate([f]))[0] for f in features]
        model.generation_config.use_cache = False  # every step runs the whole sequence again
        uncached = answerer.predict(model, answerer.collate(features))
    assert together == alone == uncached
    assert all(isinstance(text, str) for text in together)


def test_t5_generates_with_apet_concat_soft_tokens() -> None:
    torch.manual_seed(0)
    model = tiny.model("t5", "lm")
    name, options = SOFT["apet-concat"]
    attach_method(model, name, options, structure_of(model))
    inputs = tiny.batch("t5")
    start = model.config.decoder_start_token_id
    with torch.inference_mode():
        generated = model.generate(**inputs, max_new_tokens=4, do_sample=False, num_beams=1)
        # greedy by hand, each step a whole forward of the model (encoder soft tokens included)
        steps = torch.full((inputs["input_ids"].shape[0], 1), start)
        for _ in range(4):
            logits = model(**inputs, decoder_input_ids=steps).logits[:, -1]
            steps = torch.cat([steps, logits.argmax(-1, keepdim=True)], 1)
    assert torch.equal(generated[:, : steps.shape[1]], steps[:, : generated.shape[1]])
