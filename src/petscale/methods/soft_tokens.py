"""Soft tokens spliced into a stack's input embeddings: prompt tuning's and APET concat's.

The hooks sit on the stack that owns the word embeddings (BERT's ``bert``, T5's encoder, a
decoder's ``transformer`` or ``model``), never on the top-level model, so that every caller of
that stack sees the same soft tokens: the model's own forward (training's loss), label-word
scoring (which runs the backbone and applies the LM head itself), and ``generate`` (which
calls T5's encoder directly, and a decoder's stack with a cache).

Where they go: at position ``at`` of the input (0: in front; APET concat puts them after
[CLS] on encoders, at 1). Decoders' stack outputs at the soft positions are cut off again, so
LM logits, labels and last-token pooling see the text alone; encoders keep them, and
:func:`output_span` says where (the methods record it as a ``SoftTokens`` layer of their delta,
which a mean-pooled head is given to leave that span out).
T5's decoder gets its cross-attention mask widened to match the encoder's longer output.

Positions: the soft tokens take positions at..at+n-1 and the text after them moves on by n
(PEFT's convention), so n + input length must fit the model's position table; a longer input
is a UserError that names --max-length (T5's relative and BLOOM's ALiBi positions have no
limit). During cached generation the soft tokens are in the cache after the first step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from petscale.errors import UserError
from petscale.surgery import call_kwargs
from petscale.zoo.structure import Structure, position_limit


def attach_soft_tokens(
    model: nn.Module,
    structure: Structure,
    tokens: Callable[[], torch.Tensor],
    length: int,
    at: int = 0,
) -> tuple[nn.Module, Callable[[], None]]:
    """Splice ``tokens()`` (length x hidden, recomputed on every call) into the input of the
    model's stack at position ``at``; returns the stack and a function that removes the hooks."""
    words = structure.modules("word_embeddings")
    if not words:
        raise UserError(f"soft tokens found no word embeddings in this {structure.family} model")
    embeddings = model.get_submodule(words[0])
    stack, decoder = _stacks(model, structure)
    strip = structure.kind == "decoder"
    hooks = _Splice(tokens, length, at, embeddings, position_limit(model.config), strip)
    handles = [
        stack.register_forward_pre_hook(hooks.before, with_kwargs=True),
        stack.register_forward_hook(hooks.after),
    ]
    if decoder is not None:
        handles.append(decoder.register_forward_pre_hook(_widen_cross_mask, with_kwargs=True))

    def remove() -> None:
        for handle in handles:
            handle.remove()

    return stack, remove


def output_span(structure: Structure, length: int, at: int = 0) -> tuple[int, int]:
    """(start, count) of ``length`` soft tokens put at ``at`` in the stack's output: decoders'
    outputs drop them again (count 0), encoders' keep them."""
    return at, 0 if structure.kind == "decoder" else length


class _Splice:
    """Forward hooks on one stack that put the soft tokens into its input embeddings."""

    def __init__(
        self,
        tokens: Callable[[], torch.Tensor],
        length: int,
        at: int,
        embeddings: nn.Module,
        limit: int | None,
        strip: bool,
    ):
        self.tokens = tokens
        self.n = length
        self.at = at
        self.embeddings = embeddings
        self.limit = limit
        self.strip = strip  # drop the soft positions from the stack's output (decoders)
        self.stripping = False

    def before(self, module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        kwargs = call_kwargs(module, args, kwargs)
        n, at = self.n, self.at
        if _cached_length(kwargs.get("past_key_values")) > 0:
            # A generation step after the first: the soft tokens are in the cache already.
            self._insert(kwargs, "attention_mask", 1)
            for key in ("position_ids", "cache_position"):
                if kwargs.get(key) is not None:
                    kwargs[key] = kwargs[key] + n
            self.stripping = False
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
        soft = self.tokens().to(embeds.dtype).expand(batch, -1, -1)
        kwargs["inputs_embeds"] = _splice(embeds, soft, at)
        if kwargs.get("attention_mask") is None:
            kwargs["attention_mask"] = embeds.new_ones(batch, length, dtype=torch.long)
        self._insert(kwargs, "attention_mask", 1)
        self._insert(kwargs, "token_type_ids", 0)
        for key in ("position_ids", "cache_position"):
            positions = kwargs.get(key)
            if positions is not None:
                own = torch.arange(at, at + n, dtype=positions.dtype, device=positions.device)
                own = own.expand(*positions.shape[:-1], n)
                kwargs[key] = _splice(positions, own, at, shift=n)
        self.stripping = self.strip
        return (), kwargs

    def _insert(self, kwargs: dict, key: str, value: int) -> None:
        """Put ``n`` columns of ``value`` at ``at`` in a (batch, length) tensor."""
        tensor = kwargs.get(key)
        if tensor is not None:
            fill = tensor.new_full((tensor.shape[0], self.n), value)
            kwargs[key] = _splice(tensor, fill, self.at)

    def after(self, _module: nn.Module, _args: tuple, output: Any) -> Any:
        if not self.stripping:
            return output
        if isinstance(output, tuple):
            return (self._cut(output[0]), *output[1:])
        output.last_hidden_state = self._cut(output.last_hidden_state)
        if output.get("hidden_states") is not None:
            output.hidden_states = tuple(self._cut(h) for h in output.hidden_states)
        return output

    def _cut(self, hidden: torch.Tensor) -> torch.Tensor:
        return torch.cat([hidden[:, : self.at], hidden[:, self.at + self.n :]], dim=1)


def _splice(t: torch.Tensor, filler: torch.Tensor, at: int, shift: int = 0) -> torch.Tensor:
    """``filler`` put at column ``at`` of ``t`` (dimension 1, or the last of a 1-D tensor);
    what follows is raised by ``shift`` (positions move past the soft tokens)."""
    dim = 1 if t.dim() > 1 else 0
    head, tail = t.narrow(dim, 0, at), t.narrow(dim, at, t.shape[dim] - at)
    return torch.cat([head, filler, tail + shift if shift else tail], dim=dim)


def _cached_length(past: Any) -> int:
    if past is None:
        return 0
    if hasattr(past, "get_seq_length"):
        return past.get_seq_length()
    return past[0][0].shape[-2] if len(past) else 0  # the legacy tuple of (key, value)


def _widen_cross_mask(module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    """T5's decoder: the encoder output now holds the soft tokens too; so does its mask."""
    kwargs = call_kwargs(module, args, kwargs)
    states, mask = kwargs.get("encoder_hidden_states"), kwargs.get("encoder_attention_mask")
    if states is not None and mask is not None and mask.shape[-1] < states.shape[1]:
        extra = states.shape[1] - mask.shape[-1]
        kwargs["encoder_attention_mask"] = torch.cat(
            [mask.new_ones(mask.shape[0], extra), mask], -1
        )
    return (), kwargs


def _stacks(model: nn.Module, structure: Structure) -> tuple[nn.Module, Any]:
    """The stack whose input gets the soft tokens, and T5's decoder stack (else None)."""
    stack, decoder = structure.input_stacks()
    return model.get_submodule(stack), None if decoder is None else model.get_submodule(decoder)
