"""The classification head of an encoder: trainable, frozen, or replaced by label words.

The head is counted apart from the method (``head_params``). A trainable head alone already
beats random guessing on frozen features, so threshold studies can freeze it (a seeded random
head) or replace it by label words (no new parameters), as T5's label words do. ``auto`` puts
encoders, T5 and decoders on one ladder head-free: a frozen head where the model has one, its
own label words where it answers in words.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from petscale.choices import HEAD_MODES
from petscale.errors import UserError
from petscale.pooling import use_pooling
from petscale.surgery import replace_module
from petscale.zoo.registry import shape_config
from petscale.zoo.structure import Structure, family_for

#: cosine similarities lie in [-1, 1]; this scale lets the softmax over classes get sharp.
LABEL_WORDS_SCALE = 20.0


def head_parameters(model: nn.Module, structure: Structure) -> dict[str, nn.Parameter]:
    out: dict[str, nn.Parameter] = {}
    for name in structure.modules("head"):
        for pname, p in model.get_submodule(name).named_parameters():
            out[f"{name}.{pname}"] = p
    return out


def head_count(model: nn.Module, structure: Structure) -> int:
    """The head's trainable parameters, counted apart from the method's."""
    return sum(p.numel() for p in head_parameters(model, structure).values())


def resolve_head(mode: str, has_head: bool, model: str = "this model") -> str:
    """The mode a model runs under: ``auto`` is ``frozen`` where the model has a classification
    head (encoders) and ``label-words`` where it answers in words (T5, decoders: no head)."""
    if mode not in HEAD_MODES:
        raise UserError(f"unknown --head {mode!r}; choose one of {', '.join(HEAD_MODES)}")
    if mode == "auto":
        return "frozen" if has_head else "label-words"
    if mode == "frozen" and not has_head:
        raise UserError(
            f"head: frozen: {model} answers in words and has no classification head to freeze; "
            "use head 'auto' (frozen on encoders, label words on T5 and decoders) or 'label-words'"
        )
    return mode


def answers_in_words(model: str) -> bool:
    """Whether the model named ``model`` has no classification head (T5, decoders), read from
    its config alone; False where the config cannot be read (the trial then says why)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a hub id read as its bundled config: fine here
            return family_for(shape_config(model)).kind != "encoder"
    except UserError:
        return False


def configure_head(
    model: nn.Module,
    structure: Structure,
    mode: str,
    seed: int,
    label_words: Sequence[str] | None = None,
    tokenizer: PreTrainedTokenizerBase | None = None,
    pooling: str = "cls",
    soft_span: tuple[int, int] = (0, 0),
) -> Callable[[], None]:
    """Set the head's mode and what it reads (``pooling``, resolved by
    ``petscale.pooling.resolve_pooling``; a mean leaves out the ``soft_span`` a method's soft
    tokens take, ``Delta.soft_span``); returns a function that puts the original back.

    A model without a head (T5, decoders answering in words) is left as it is; ``frozen``
    there is an error. ``label-words`` needs the classes' label words (in label order) and the
    tokenizer; ``auto`` is resolved by ``resolve_head``.
    """
    params = head_parameters(model, structure)
    mode = resolve_head(mode, bool(params), f"this {structure.family} model")
    if not params:
        return lambda: None
    unpool = use_pooling(model, structure, pooling, soft_span)
    if mode == "label-words":
        restore_head = _use_label_words(model, structure, label_words, tokenizer)
        return lambda: (restore_head(), unpool())
    flags = {name: p.requires_grad for name, p in params.items()}
    if mode == "frozen":
        # The same seed gives the same fixed head on every run and machine.
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for name, p in params.items():
                if p.device.type == "meta":
                    continue
                if name.endswith("bias"):
                    p.zero_()
                else:
                    std = 1.0 / p.shape[-1] ** 0.5
                    p.copy_(torch.randn(p.shape, generator=generator) * std)
    for p in params.values():
        p.requires_grad_(mode == "trainable")

    def restore() -> None:
        for name, p in params.items():
            p.requires_grad_(flags[name])
        unpool()

    return restore


class LabelWordsHead(nn.Module):
    """Scores each class by ``scale * cos(features, mean embedding of its label word)``.

    It has no parameters: the label-word embeddings are a buffer, copied from the model's input
    embeddings when the head is made. Heads that read the whole sequence (RoBERTa, MPNet) take
    its first position, as their own heads do; GPT-2 and BLOOM score every position and the
    model then picks the last token, as it does with its own head.
    """

    def __init__(self, words: torch.Tensor, first_token: bool, scale: float = LABEL_WORDS_SCALE):
        super().__init__()
        self.register_buffer("words", words, persistent=False)
        self.first_token = first_token
        self.scale = scale

    def forward(self, features: torch.Tensor, *_: object, **__: object) -> torch.Tensor:
        if self.first_token:
            features = features[:, 0]
        features = nn.functional.normalize(features, dim=-1)
        words = nn.functional.normalize(self.words.to(features.dtype), dim=-1)
        return self.scale * features @ words.T


def label_word_embeddings(
    model: nn.Module, tokenizer: PreTrainedTokenizerBase, label_words: Sequence[str]
) -> torch.Tensor:
    """(classes, hidden): the mean input embedding of each label word's word pieces."""
    table = model.get_input_embeddings().weight.detach()
    rows = []
    for word in label_words:
        ids = tokenizer(word, add_special_tokens=False)["input_ids"]
        if not ids:
            raise UserError(f"label word {word!r} has no tokens in this model's vocabulary")
        rows.append(table[torch.tensor(ids, device=table.device)].mean(0))
    return torch.stack(rows).clone()


def retarget_label_words(
    model: nn.Module,
    structure: Structure,
    label_words: Sequence[str],
    tokenizer: PreTrainedTokenizerBase,
) -> Callable[[], None]:
    """Make an encoder that answers in label words answer another task's classes (task
    transfer across label sets): its head scores ``label_words`` instead; returns a function
    that puts the source's words back. The words are read from the input embeddings as they
    are now, so a delta that trains them (full fine-tuning) is refused."""
    (name,) = structure.modules("head")
    head = model.get_submodule(name)
    if not isinstance(head, LabelWordsHead):
        raise UserError("only a head of label words answers another task's classes")
    if model.get_input_embeddings().weight.requires_grad:
        raise UserError("the input embeddings were tuned: label words read from them would move")
    source = head.words
    head.words = label_word_embeddings(model, tokenizer, label_words).to(source.device)

    def restore() -> None:
        head.words = source

    return restore


def _use_label_words(
    model: nn.Module,
    structure: Structure,
    label_words: Sequence[str] | None,
    tokenizer: PreTrainedTokenizerBase | None,
) -> Callable[[], None]:
    if not label_words or tokenizer is None:
        raise UserError("--head label-words needs the task's label words and the tokenizer")
    (name,) = structure.modules("head")
    classes = model.config.num_labels
    if len(label_words) != classes:
        raise UserError(f"{len(label_words)} label words for a head of {classes} classes")
    words = label_word_embeddings(model, tokenizer, label_words)
    first_token = structure.arch.head_reads == "first"
    original = replace_module(model, name, LabelWordsHead(words, first_token))
    return lambda: replace_module(model, name, original)
