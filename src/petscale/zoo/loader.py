"""Building a model for a task: which transformers class, which tokenizer, real or meta weights."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSeq2SeqLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PretrainedConfig,
    PreTrainedTokenizerBase,
)

from petscale.errors import UserError
from petscale.zoo import registry
from petscale.zoo.structure import family_for

#: How a model answers a task: a classification head, T5 generating label words or text,
#: or a decoder scoring label words / generating text.
Answer = Literal["classify", "seq2seq", "causal"]

_CLASSES = {
    "classify": AutoModelForSequenceClassification,
    "seq2seq": AutoModelForSeq2SeqLM,
    "causal": AutoModelForCausalLM,
}

#: Bundled-config models have no tokenizer offline; they borrow MiniLM-L6's (bert-base-uncased
#: vocabulary, 30,522 ids), which fits inside every bundled vocabulary.
FALLBACK_TOKENIZER_MODEL = "minilm-l6"


def answer_for(config: PretrainedConfig, task_kind: str) -> Answer:
    """Encoders classify with a head; T5 and decoders answer in words, as the study did."""
    family = family_for(config)
    kind = family.kind
    if kind == "encoder":
        if task_kind == "generation":
            raise UserError(
                f"an encoder ({family.name}) cannot generate text; use a T5 or decoder model"
            )
        return "classify"
    return "seq2seq" if kind == "encoder-decoder" else "causal"


@dataclass
class LoadedModel:
    model: nn.Module
    tokenizer: PreTrainedTokenizerBase
    answer: Answer
    pretrained: bool  # False: randomly initialised from a bundled config
    pooling: str  # what the checkpoint was trained to pool: "mean" or "cls"
    #: parameters the checkpoint lacked, drawn at random on load (a pooler, a new head): a run
    #: depends on their values, so its folder keeps them (run_folder, export)
    fresh: dict[str, nn.Parameter] = field(default_factory=dict)


def _with_labels(config: PretrainedConfig, answer: Answer, num_labels: int) -> PretrainedConfig:
    if answer == "classify":
        config.num_labels = num_labels
    return config


def _fresh_keys(info: dict) -> list[str]:
    """The weights ``from_pretrained`` drew at random: missing, or of another shape (a name,
    or (name, saved shape, new shape) in older transformers)."""
    mismatched = info.get("mismatched_keys", [])
    return [*info["missing_keys"], *(k if isinstance(k, str) else k[0] for k in mismatched)]


def load_model(name: str, task_kind: str = "classification", num_labels: int = 2) -> LoadedModel:
    """The model ``name`` with real weights where they are here, random ones otherwise."""
    config = registry.load_config(name)
    answer = answer_for(config, task_kind)
    model_class = _CLASSES[answer]
    folder = registry.weights_folder(name)
    # A checkpoint's own head for another number of classes is drawn afresh, as a missing one is.
    kwargs = (
        {"num_labels": num_labels, "ignore_mismatched_sizes": True} if answer == "classify" else {}
    )
    fresh: list[str] = []
    if folder is not None:
        registry.check_weight_files(folder)
        model, info = registry.pretrained(
            model_class.from_pretrained,
            folder,
            output_loading_info=True,
            **registry.weight_options(),
            **kwargs,
        )
        fresh = _fresh_keys(info)
        tokenizer = registry.pretrained(AutoTokenizer.from_pretrained, folder)
        pretrained = True
    elif name in registry.entries():
        registry.random_init_warning(name)
        model = model_class.from_config(
            _with_labels(config, answer, num_labels), trust_remote_code=False
        )
        fallback = registry.weights_folder(FALLBACK_TOKENIZER_MODEL)
        tokenizer = registry.pretrained(AutoTokenizer.from_pretrained, fallback)
        pretrained = False
    else:
        model, info = registry.from_hub(
            name,
            model_class.from_pretrained,
            output_loading_info=True,
            **registry.weight_options(),
            **kwargs,
        )
        fresh = _fresh_keys(info)
        tokenizer = registry.from_hub(name, AutoTokenizer.from_pretrained)
        pretrained = True
    _ensure_pad_token(tokenizer, model)
    params = dict(model.named_parameters())
    return LoadedModel(
        model,
        tokenizer,
        answer,
        pretrained,
        registry.declared_pooling(name),
        {key: params[key] for key in fresh if key in params},
    )


def meta_model(name: str, task_kind: str = "classification", num_labels: int = 2) -> nn.Module:
    """The model's exact structure on the meta device: no weights loaded, no memory used."""
    config = registry.shape_config(name)
    answer = answer_for(config, task_kind)
    with torch.device("meta"):
        return _CLASSES[answer].from_config(
            _with_labels(config, answer, num_labels), trust_remote_code=False
        )


def _ensure_pad_token(tokenizer: PreTrainedTokenizerBase, model: nn.Module) -> None:
    """Decoders such as GPT-2 ship without a pad token; batching needs one."""
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    if getattr(model.config, "pad_token_id", None) is None:
        model.config.pad_token_id = tokenizer.pad_token_id
