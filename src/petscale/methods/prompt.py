"""Prompt tuning (Lester et al. 2021): trainable soft tokens prepended to the input embeddings.

Where the tokens go (the hooks are in :mod:`petscale.methods.soft_tokens`):
- encoders (BERT, RoBERTa, MPNet): before the input's embeddings, [CLS] included, as PEFT
  does; a [CLS]-pooled head then reads the first soft token, a mean-pooled head the text alone.
- T5: before the encoder's input embeddings only; the decoder's cross-attention mask is widened
  to match, nothing is added to the decoder's input.
- decoders (GPT-2, BLOOM, LLaMA-style): before the input of their one stack; the stack's outputs
  at the soft positions are dropped, so LM logits, labels and last-token pooling see the text.

Positions: the soft tokens take positions 0..length-1 and the text follows them (PEFT's
convention), so length + input length must fit the model's position table.
"""

from __future__ import annotations

import torch
from torch import nn

from petscale.errors import UserError
from petscale.methods.base import (
    Delta,
    PeftAdapter,
    SoftTokens,
    freeze,
    new_tensor,
)
from petscale.methods.configs import INITS as INITS
from petscale.methods.configs import PromptConfig
from petscale.methods.soft_tokens import attach_soft_tokens, output_span
from petscale.zoo.structure import Structure

INIT_RANGE = 0.5  # OpenDelta's soft-prompt init range for "uniform"
PARAM = "soft_prompt"


class PromptDelta(Delta):
    def __init__(self, model: nn.Module, structure: Structure, config: PromptConfig):
        super().__init__(model, structure, "prompt", config)
        self.prompt: nn.Parameter | None = None

    def parameters(self) -> dict[str, nn.Parameter]:
        return {PARAM: self.prompt} if self.prompt is not None else {}


def attach(model: nn.Module, structure: Structure, config: PromptConfig) -> PromptDelta:
    config.validate()
    delta = PromptDelta(model, structure, config)
    freeze(model, delta)
    embeddings = model.get_input_embeddings()
    prompt = nn.Parameter(new_tensor(embeddings.weight, config.length, embeddings.weight.shape[1]))
    _initialise(prompt, embeddings, config.init)
    stack, remove_hooks = attach_soft_tokens(model, structure, lambda: prompt, config.length)
    stack.register_parameter(PARAM, prompt)
    delta.prompt = prompt
    span = output_span(structure, config.length)
    delta.layers.append(SoftTokens("prompt tuning's soft tokens", span))

    def remove() -> None:
        remove_hooks()
        delattr(stack, PARAM)

    delta.on_detach(remove)
    return delta


def _initialise(prompt: nn.Parameter, embeddings: nn.Module, init: str) -> None:
    if prompt.device.type == "meta":
        return
    with torch.no_grad():
        if init == "uniform":
            prompt.uniform_(-INIT_RANGE, INIT_RANGE)
        elif init == "normal":
            prompt.normal_()
        else:
            vocabulary = embeddings.weight
            ids = torch.randint(0, vocabulary.shape[0], (prompt.shape[0],))
            # through the module: Gemma scales its embeddings by sqrt(hidden) on the way out
            prompt.copy_(embeddings(ids.to(vocabulary.device)))


def to_peft(
    tensors: dict[str, torch.Tensor], config: PromptConfig, structure: Structure, head: bool
) -> PeftAdapter:
    """PEFT's PROMPT_TUNING adapter, for encoders and for decoders without a head."""
    if structure.kind == "encoder-decoder" or (structure.kind == "decoder" and head):
        raise UserError(
            "PEFT's prompt tuning differs from petscale's on T5 (it also prompts the "
            "decoder) and on decoder classifiers (it pools another token): not exported"
        )
    prompt = tensors[PARAM]
    options = {
        "num_virtual_tokens": prompt.shape[0],
        "token_dim": prompt.shape[1],
        "num_transformer_submodules": 1,
    }
    # PEFT wraps prompt-learning models one level less deep than LoRA's
    return PeftAdapter("PROMPT_TUNING", options, {"prompt_embeddings": prompt}, "base_model.")


CONFIG = PromptConfig
