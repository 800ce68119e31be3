"""What T5 and decoders share: answering in words.

A classification task is answered with its label word, a generation task with its target text.
Features are ``input_ids`` (the templated source) and ``target_ids`` (the answer's ids, ending
in EOS where the answer must stop); the subclasses batch them, and turn generated ids back into
predictions here: a class index (-1 for anything but a label word) or the text itself.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from petscale.answers.base import Features
from petscale.answers.template import Template, TextEncoder
from petscale.errors import UserError
from petscale.tasks.base import Example, TaskSpec

IGNORE = -100  # the label of a position that carries no loss
DEFAULT_MAX_NEW_TOKENS = 64


def label_words(spec: TaskSpec) -> tuple[str, ...]:
    """The answer word of each class: the task's label words, else its label names."""
    words = spec.label_words or tuple(label.replace("_", " ") for label in spec.labels)
    if len(words) != spec.num_labels:
        raise UserError(f"task {spec.name!r} has {len(words)} label words for {spec.num_labels}")
    return words


class WordAnswerer:
    """The shared half of the seq2seq and causal answer formats."""

    name = "words"
    #: T5 keeps </s> after its encoder input; a decoder's prompt runs on into the answer
    source_suffix = True
    answer_space = ""
    #: True: every label word ends in EOS (it must stop generating); False: only if one word's
    #: ids start another's (scoring "no" would otherwise always beat "no way")
    words_end = True

    def __init__(
        self,
        spec: TaskSpec,
        tokenizer: PreTrainedTokenizerBase,
        max_length: int,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        template: Template | None = None,
    ):
        if max_new_tokens < 1:
            raise UserError(f"max new tokens must be positive, got {max_new_tokens}")
        self.spec = spec
        self.tokenizer = tokenizer
        self.max_new_tokens = max_new_tokens
        self.text = TextEncoder(
            tokenizer, max_length, template or Template(), self.source_suffix, self.answer_space
        )
        self.classify = spec.kind == "classification"
        self.word_ids = self._label_word_ids() if self.classify else []
        pad_id = tokenizer.pad_token_id
        self.pad_id = self.text.eos_id if pad_id is None else pad_id
        self.word_texts = [self.text.decode(_until(ids, self.text.eos_id)) for ids in self.word_ids]

    def _label_word_ids(self) -> list[list[int]]:
        words = label_words(self.spec)
        ids = [self.text.answer(word, eos=False) for word in words]
        if len({tuple(i) for i in ids}) < len(ids):
            raise UserError(f"task {self.spec.name!r}: two label words tokenise alike: {words}")
        if self.words_end or _prefix_clash(ids):
            ids = [i + [self.text.eos_id] for i in ids]
        return ids

    def cache_key(self) -> str:
        return (
            f"{self.name}:{self.spec.kind}:{self.text.cache_key()}:"
            f"max_new_tokens={self.max_new_tokens}:words={self.word_ids}"
        )

    def encode(self, example: Example) -> Features:
        if self.classify:
            target = self.word_ids[example["label"]]
        else:
            target = self.text.answer(example["target"], self.max_new_tokens)
        return {"input_ids": self.text.source(example), "target_ids": target}

    def reference(self, example: Example) -> Any:
        if self.classify:
            return example["label"]
        return example.get("references") or example["target"]

    def generation_length(self) -> int:
        """New tokens to generate: the longest label word, or the option for free text."""
        return max(map(len, self.word_ids)) if self.classify else self.max_new_tokens

    def generation_options(self) -> dict[str, Any]:
        """Greedy decoding, stopping at this tokenizer's EOS, whatever the model's defaults."""
        return {
            "max_new_tokens": self.generation_length(),
            "do_sample": False,
            "num_beams": 1,
            "eos_token_id": self.text.eos_id,
            "pad_token_id": self.pad_id,
        }

    def from_generated(self, generated: torch.Tensor) -> list[Any]:
        """Generated ids (batch x new tokens) -> class indices or texts; stops at EOS."""
        texts = [self.text.decode(_until(row, self.text.eos_id)) for row in generated.tolist()]
        if not self.classify:
            return texts
        index = {text: i for i, text in enumerate(self.word_texts)}
        return [index.get(text, -1) for text in texts]


def _until(ids: list[int], stop: int) -> list[int]:
    return ids[: ids.index(stop)] if stop in ids else ids


def _prefix_clash(ids: list[list[int]]) -> bool:
    return any(a != b and b[: len(a)] == a for a in ids for b in ids)


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside a DistributedDataParallel wrapper (which has no ``generate``)."""
    return getattr(model, "module", model)
