"""Prompt tuning (Lester et al. 2021): trainable soft tokens prepended to the input embeddings.

Where the tokens go:
- encoders (BERT, RoBERTa, MPNet): before the input's embeddings, [CLS] included, as PEFT
  does; a [CLS]-pooled head then reads the first soft token, a mean-pooled head the text alone
  (the stack's ``SOFT_POSITIONS`` attribute tells petscale.pooling how many to skip).
- T5: before the encoder's input embeddings only; the decoder's cross-attention mask is widened
  to match, nothing is added to the decoder's input.
- decoders (GPT-2, BLOOM): before the input of their one stack; the stack's outputs at the soft
  positions are dropped, so LM logits, labels and last-token pooling see the text only.

Positions: the soft tokens take positions 0..length-1 and the text follows them (PEFT's
convention), so length + input length must fit the model's position table; a longer input is
a UserError that names --max-length (T5's relative and BLOOM's ALiBi positions have no limit).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn
from transformers import PretrainedConfig

from petscale.errors import UserError
from petscale.methods.base import (
    Delta,
    MethodConfig,
    call_kwargs,
    freeze,
    new_tensor,
    positive,
)
from petscale.pooling import SOFT_POSITIONS
from petscale.zoo.structure import Structure

INITS = ("vocab", "uniform", "normal")
INIT_RANGE = 0.5  # OpenDelta's soft-prompt init range for "uniform"
PARAM = "soft_prompt"


@dataclass
class PromptConfig(MethodConfig):
    length: int = 100
    # "vocab": embeddings of tokens drawn uniformly from the vocabulary (OpenDelta's default
    # initialises from token embeddings too); "uniform": U(-0.5, 0.5); "normal": N(0, 1),
    # PEFT's random init (an nn.Embedding's). All use torch's global generator, which a trial
    # seeds with --seed.
    init: str = "vocab"

    size_option: ClassVar[str | None] = "length"
    default_lr: ClassVar[float] = 3e-2

    def validate(self) -> None:
        positive("length", self.length)
        if self.init not in INITS:
            raise UserError(f"--init must be one of {', '.join(INITS)}, got {self.init!r}")


class PromptDelta(Delta):
    def __init__(self, model: nn.Module, structure: Structure, config: PromptConfig):
        super().__init__(model, structure, "prompt", config)
        self.prompt: nn.Parameter | None = None

    def parameters(self) -> dict[str, nn.Parameter]:
        return {PARAM: self.prompt} if self.prompt is not None else {}


class _Prepend:
    """Forward hooks on one stack that put the soft tokens before its input embeddings."""

    def __init__(self, prompt: nn.Parameter, embeddings: nn.Module, limit: int | None, strip: bool):
        self.prompt = prompt
        self.embeddings = embeddings
        self.limit = limit
        self.strip = strip  # drop the soft positions from the stack's output (decoders)
        self.stripping = False

    def before(self, module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        kwargs = call_kwargs(module, args, kwargs)
        n = self.prompt.shape[0]
        if _cached_length(kwargs.get("past_key_values")) > 0:
            # A generation step after the first: the soft tokens are in the cache already.
            _widen(kwargs, "attention_mask", n, 1)
            _shift(kwargs, "position_ids", n, prepend=False)
            _shift(kwargs, "cache_position", n, prepend=False)
            self.stripping = False
            setattr(module, SOFT_POSITIONS, (0, 0))
            return (), kwargs
        ids = kwargs.pop("input_ids", None)
        embeds = self.embeddings(ids) if ids is not None else kwargs["inputs_embeds"]
        batch, length = embeds.shape[:2]
        if self.limit is not None and n + length > self.limit:
            room = self.limit - n
            fix = f"--length below {self.limit}"  # the soft tokens alone fill the positions
            if room > 0:
                fix = f"--max-length to {room} or --length"
            raise UserError(
                f"{n} soft tokens + {length} input tokens exceed the model's "
                f"{self.limit} positions; lower {fix}"
            )
        prompt = self.prompt.to(embeds.dtype).expand(batch, -1, -1)
        kwargs["inputs_embeds"] = torch.cat([prompt, embeds], dim=1)
        if kwargs.get("attention_mask") is None:
            kwargs["attention_mask"] = embeds.new_ones(batch, length, dtype=torch.long)
        _widen(kwargs, "attention_mask", n, 1)
        _widen(kwargs, "token_type_ids", n, 0)
        _shift(kwargs, "position_ids", n, prepend=True)
        _shift(kwargs, "cache_position", n, prepend=True)
        self.stripping = self.strip
        # The stripped outputs of decoders hold the text alone; encoders keep the soft positions.
        setattr(module, SOFT_POSITIONS, (0, 0 if self.strip else n))
        return (), kwargs

    def after(self, _module: nn.Module, _args: tuple, output: Any) -> Any:
        if not self.stripping:
            return output
        n = self.prompt.shape[0]
        if isinstance(output, tuple):
            return (output[0][:, n:], *output[1:])
        output.last_hidden_state = output.last_hidden_state[:, n:]
        if output.get("hidden_states") is not None:
            output.hidden_states = tuple(h[:, n:] for h in output.hidden_states)
        return output


def _widen_cross_mask(module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    """T5's decoder: the encoder output now starts with the soft tokens; so does its mask."""
    kwargs = call_kwargs(module, args, kwargs)
    states, mask = kwargs.get("encoder_hidden_states"), kwargs.get("encoder_attention_mask")
    if states is not None and mask is not None and mask.shape[-1] < states.shape[1]:
        _widen(kwargs, "encoder_attention_mask", states.shape[1] - mask.shape[-1], 1)
    return (), kwargs


def attach(model: nn.Module, structure: Structure, config: PromptConfig) -> PromptDelta:
    config.validate()
    delta = PromptDelta(model, structure, config)
    freeze(model, delta)
    words = structure.modules("word_embeddings")
    if not words:
        raise UserError(f"prompt tuning found no word embeddings in this {structure.family} model")
    embeddings = model.get_submodule(words[0])
    stack, decoder = _stacks(model, structure, words[0])
    prompt = nn.Parameter(new_tensor(embeddings.weight, config.length, embeddings.weight.shape[1]))
    _initialise(prompt, embeddings, config.init)
    stack.register_parameter(PARAM, prompt)
    delta.prompt = prompt
    hooks = _Prepend(prompt, embeddings, position_limit(model.config), structure.kind == "decoder")
    handles = [
        stack.register_forward_pre_hook(hooks.before, with_kwargs=True),
        stack.register_forward_hook(hooks.after),
    ]
    if decoder is not None:
        handles.append(decoder.register_forward_pre_hook(_widen_cross_mask, with_kwargs=True))

    def remove() -> None:
        for handle in handles:
            handle.remove()
        delattr(stack, PARAM)
        if hasattr(stack, SOFT_POSITIONS):
            delattr(stack, SOFT_POSITIONS)

    delta.on_detach(remove)
    return delta


def _stacks(model: nn.Module, structure: Structure, words: str) -> tuple[nn.Module, Any]:
    """The stack whose input gets the soft tokens, and T5's decoder stack (else None)."""
    if structure.kind == "encoder-decoder":
        found = {
            kind: module
            for name, module in model.named_modules()
            for kind in ("encoder", "decoder")
            if re.search(rf"(?:^|\.){kind}$", name) and hasattr(module, "embed_tokens")
        }
        return found["encoder"], found.get("decoder")
    # BERT-like: owner.embeddings.word_embeddings; decoders: owner.wte / owner.word_embeddings
    depth = 2 if structure.kind == "encoder" else 1
    parts = words.split(".")
    owner = ".".join(parts[: max(0, len(parts) - depth)])
    return (model.get_submodule(owner) if owner else model), None


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


def position_limit(config: PretrainedConfig) -> int | None:
    """How many positions the model can embed (None: relative or ALiBi positions)."""
    if config.model_type in ("t5", "mt5", "bloom"):
        return None
    limit = config.max_position_embeddings
    if config.model_type in ("roberta", "xlm-roberta", "mpnet"):
        limit -= config.pad_token_id + 1  # their positions start after the padding index
    return limit


def _cached_length(past: Any) -> int:
    if past is None:
        return 0
    if hasattr(past, "get_seq_length"):
        return past.get_seq_length()
    return past[0][0].shape[-2] if len(past) else 0  # the legacy tuple of (key, value)


def _widen(kwargs: dict, key: str, n: int, value: int) -> None:
    """Put ``n`` columns of ``value`` before a (batch, length) tensor."""
    tensor = kwargs.get(key)
    if tensor is not None:
        pad = torch.full((tensor.shape[0], n), value, dtype=tensor.dtype, device=tensor.device)
        kwargs[key] = torch.cat([pad, tensor], dim=-1)


def _shift(kwargs: dict, key: str, n: int, prepend: bool) -> None:
    """Move given positions past the soft tokens, and give those positions 0..n-1."""
    tensor = kwargs.get(key)
    if tensor is None:
        return
    shifted = tensor + n
    if prepend:
        head = torch.arange(n, dtype=tensor.dtype, device=tensor.device)
        head = head.expand(*tensor.shape[:-1], n)
        shifted = torch.cat([head, shifted], dim=-1)
    kwargs[key] = shifted


CONFIG = PromptConfig
