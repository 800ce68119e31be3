"""Building a model for a task: which transformers class, which tokenizer, real or meta weights."""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from pathlib import Path
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
from petscale.hub import offline_reason
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


def may_be_fresh(model: nn.Module, answer: Answer, key: str) -> bool:
    """Whether a checkpoint may lack ``key`` (transformers then draws it at random): only a
    classification head's own weights (outside the base model: a new task's head, or one for
    another number of classes) and a base model's pooler (sentence-transformers checkpoints
    have none). Anything else drawn at random is a model other than the checkpoint."""
    prefix = getattr(model, "base_model_prefix", "")
    if answer != "classify" or not prefix or not hasattr(model, prefix):
        return False
    return not key.startswith(f"{prefix}.") or key.startswith(f"{prefix}.pooler.")


def checked_fresh(
    source: object,
    model: nn.Module,
    info: dict,
    answer: Answer,
    saved: dict[str, tuple[int, ...]],
) -> list[str]:
    """The weights drawn at random on load; refused unless each may be (``may_be_fresh``): a
    checkpoint whose tensors do not match the config's names and shapes is not this model."""
    fresh = _fresh_keys(info)
    wrong = [key for key in fresh if not may_be_fresh(model, answer, key)]
    if not wrong:
        return fresh
    wanted = model.state_dict()
    prefix = getattr(model, "base_model_prefix", "")
    mismatched = {k if isinstance(k, str) else k[0] for k in info.get("mismatched_keys", [])}
    shown = wrong[:3]
    problems = []
    for key in (k for k in shown if k in mismatched):
        names = (key, key.removeprefix(f"{prefix}."), f"{prefix}.{key}")
        has = next((saved[n] for n in names if n in saved), None)
        shape = f"is {has} in the checkpoint" if has is not None else "has another shape"
        need = tuple(wanted[key].shape) if key in wanted else "another"
        problems.append(f"{key} {shape}, the config needs {need}")
    absent = [k for k in shown if k not in mismatched]
    if absent:
        problems.append(f"the checkpoint has no {', '.join(absent)}")
    more = f" (and {len(wrong) - len(shown)} more)" if len(wrong) > len(shown) else ""
    unused = sorted(info.get("unexpected_keys", []))
    extra = f"; it holds {unused[0]!r}, which the model has no place for" if unused else ""
    raise UserError(
        f"{source}: the weights do not match config.json: {'; '.join(problems)}{more}{extra}; "
        "pass the folder the weights were saved in with their own config.json"
    )


def load_model(
    name: str, task_kind: str = "classification", num_labels: int = 2, random_init: bool = False
) -> LoadedModel:
    """The model ``name`` with its real weights: a local folder, an offline package, or the
    hub; ``random_init`` asks for random weights of a known model's shape where none are here
    (refused otherwise, so that no run trains a random model unasked).

    Real weights must be the checkpoint's own: a checkpoint that lacks a weight of the
    config's model, or holds it in another shape, is refused (a task head and a missing
    pooler are drawn at random and kept in ``fresh``)."""
    bundled = registry.config_entry(name)
    random = bundled is not None and registry.weights_folder(name) is None
    if random and not random_init:
        if offline_reason() is not None:
            raise registry.unreachable(name)
        random = False  # its real weights, from the hub
        name = bundled.hub_id
    elif random:
        name = bundled.name
    config = registry.load_config(name)
    answer = answer_for(config, task_kind)
    model_class = _CLASSES[answer]
    folder = registry.weights_folder(name)
    with torch.device("meta"):  # the model's shapes, before a byte is allocated
        twin = model_class.from_config(
            _with_labels(copy.deepcopy(config), answer, num_labels), trust_remote_code=False
        )
    check_size(name, twin)
    # A weight of another shape is drawn afresh, as a missing one is; checked_fresh then
    # refuses every one but a head's (a checkpoint's own head for another number of classes).
    kwargs = {"ignore_mismatched_sizes": True}
    if answer == "classify":
        kwargs["num_labels"] = num_labels
    fresh: list[str] = []
    if folder is not None:
        saved = registry.check_weight_files(folder)
        tokenizer = load_tokenizer(folder)
        check_vocabulary(folder, tokenizer, twin)
        model, info = registry.pretrained(
            model_class.from_pretrained,
            folder,
            output_loading_info=True,
            **registry.weight_options(),
            **kwargs,
        )
        fresh = checked_fresh(folder, model, info, answer, saved)
        pretrained = True
    elif random:
        registry.random_init_warning(name)
        tokenizer = load_tokenizer(registry.weights_folder(FALLBACK_TOKENIZER_MODEL))
        check_vocabulary(name, tokenizer, twin)
        model = model_class.from_config(
            _with_labels(config, answer, num_labels), trust_remote_code=False
        )
        pretrained = False
    else:
        tokenizer = registry.from_hub(name, AutoTokenizer.from_pretrained)
        check_vocabulary(name, tokenizer, twin)
        model, info = registry.from_hub(
            name,
            model_class.from_pretrained,
            output_loading_info=True,
            **registry.weight_options(),
            **kwargs,
        )
        fresh = checked_fresh(name, model, info, answer, {})
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


def memory_bytes() -> int:
    """This machine's memory (or the container's limit, where lower)."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
    except OSError:
        return total
    return min(total, int(limit)) if limit.isdigit() else total


def max_params() -> int:
    """The most parameters petscale loads: as many as this machine's memory holds in float32
    (4 bytes each); training needs more (gradients, optimizer state), never less."""
    return memory_bytes() // 4


def check_size(name: str, twin: nn.Module) -> None:
    """Refuse, before anything is allocated, a model larger than this machine can hold (its
    exact count from ``twin``, on the meta device)."""
    total = sum(p.numel() for p in twin.parameters())
    limit = max_params()
    if total > limit:
        raise UserError(
            f"{name} has {total:,} parameters, more than this machine's memory holds "
            f"({memory_bytes() / 2**30:.0f} GiB: at most {limit:,} parameters of 4 bytes); "
            "check its config.json sizes, or run it on a larger machine"
        )


#: Files a saved tokenizer is made of (one of them at least).
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "vocab.json",
    "spiece.model",
    "tokenizer.model",
    "sentencepiece.bpe.model",
)


def load_tokenizer(folder: Path) -> PreTrainedTokenizerBase:
    """The tokenizer saved in ``folder``; a missing or unreadable one is a one-line error."""
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        raise UserError(
            f"{folder} holds no tokenizer (tokenizer.json, tokenizer_config.json, vocab.txt "
            "...); save the model's tokenizer into it: tokenizer.save_pretrained(folder)"
        )
    try:
        return registry.pretrained(AutoTokenizer.from_pretrained, folder)
    except UserError:
        raise
    except Exception as err:  # the tokenizers library reports a bad file as a bare Exception
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise UserError(
            f"{folder}: its tokenizer cannot be read ({first}); save the model's tokenizer "
            "into it again: tokenizer.save_pretrained(folder)"
        ) from None


def check_vocabulary(source: object, tokenizer: PreTrainedTokenizerBase, twin: nn.Module) -> None:
    """Every id the tokenizer gives has a row in the model's embeddings (checked at load, not
    as an IndexError in the middle of training)."""
    rows = getattr(twin.get_input_embeddings(), "num_embeddings", None)
    ids = [*tokenizer.get_vocab().values(), *tokenizer.all_special_ids]
    top = max((i for i in ids if isinstance(i, int)), default=-1)
    if rows is not None and top >= rows:
        raise UserError(
            f"{source}: the tokenizer gives ids up to {top:,}, but the model has {rows:,} "
            "embeddings (config.json's vocab_size); pass the tokenizer the model was trained with"
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
