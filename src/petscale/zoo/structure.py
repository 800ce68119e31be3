"""Structure maps: which real modules of a model play which role.

Every method is written once against roles (``q``, ``v``, ``attn_out``, ``ffn_out``,
``layer_norm``, ``head`` ...) instead of per-architecture module names, as OpenDelta's
"common structures" do. A map is a set of regular expressions per model family, matched
against the end of each module's qualified name, so it works for the bare backbone and for
the task wrappers (``bert.encoder...``, ``transformer.h...``) alike.

Each family's map is part of its ``Family`` record, with the other facts the code needs about
an architecture (its kind, where its head reads, its positions, transposed linears); this is
the only module that decides anything by a config's ``model_type``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
from torch import nn
from transformers import PretrainedConfig

from petscale.errors import UserError

ROLES = (
    "q",
    "k",
    "v",
    "qkv",  # fused query/key/value projection (GPT-2, BLOOM)
    "attn_out",
    "ffn_in",
    "ffn_out",
    "cross_q",
    "cross_k",
    "cross_v",
    "cross_out",
    "layer_norm",
    "word_embeddings",
    "head",  # a classification head, counted apart from the method
    "lm_head",
)

_LAYER = r"\d+"

_BERT = {
    "q": rf"encoder\.layer\.{_LAYER}\.attention\.self\.query",
    "k": rf"encoder\.layer\.{_LAYER}\.attention\.self\.key",
    "v": rf"encoder\.layer\.{_LAYER}\.attention\.self\.value",
    "attn_out": rf"encoder\.layer\.{_LAYER}\.attention\.output\.dense",
    "ffn_in": rf"encoder\.layer\.{_LAYER}\.intermediate\.dense",
    "ffn_out": rf"encoder\.layer\.{_LAYER}\.output\.dense",
    "layer_norm": r"LayerNorm",
    "word_embeddings": r"embeddings\.word_embeddings",
    "head": r"classifier",
    "lm_head": r"cls\.predictions\.decoder",
}

_MPNET = {
    **_BERT,
    "q": rf"encoder\.layer\.{_LAYER}\.attention\.attn\.q",
    "k": rf"encoder\.layer\.{_LAYER}\.attention\.attn\.k",
    "v": rf"encoder\.layer\.{_LAYER}\.attention\.attn\.v",
    "attn_out": rf"encoder\.layer\.{_LAYER}\.attention\.attn\.o",
    "lm_head": r"lm_head\.decoder",
}

_T5_SELF = rf"(?:encoder|decoder)\.block\.{_LAYER}\.layer\.0\.SelfAttention"
_T5_CROSS = rf"decoder\.block\.{_LAYER}\.layer\.1\.EncDecAttention"
_T5 = {
    "q": rf"{_T5_SELF}\.q",
    "k": rf"{_T5_SELF}\.k",
    "v": rf"{_T5_SELF}\.v",
    "attn_out": rf"{_T5_SELF}\.o",
    "cross_q": rf"{_T5_CROSS}\.q",
    "cross_k": rf"{_T5_CROSS}\.k",
    "cross_v": rf"{_T5_CROSS}\.v",
    "cross_out": rf"{_T5_CROSS}\.o",
    "ffn_in": rf"block\.{_LAYER}\.layer\.{_LAYER}\.DenseReluDense\.wi(?:_0|_1)?",
    "ffn_out": rf"block\.{_LAYER}\.layer\.{_LAYER}\.DenseReluDense\.wo",
    "layer_norm": r"(?:layer_norm|final_layer_norm)",
    "word_embeddings": r"shared",
    "head": r"classification_head",
    "lm_head": r"lm_head",
}

_GPT2 = {
    "qkv": rf"h\.{_LAYER}\.attn\.c_attn",
    "attn_out": rf"h\.{_LAYER}\.attn\.c_proj",
    "ffn_in": rf"h\.{_LAYER}\.mlp\.c_fc",
    "ffn_out": rf"h\.{_LAYER}\.mlp\.c_proj",
    "layer_norm": r"(?:ln_1|ln_2|ln_f)",
    "word_embeddings": r"wte",
    "head": r"score",
    "lm_head": r"lm_head",
}

_BLOOM = {
    "qkv": rf"h\.{_LAYER}\.self_attention\.query_key_value",
    "attn_out": rf"h\.{_LAYER}\.self_attention\.dense",
    "ffn_in": rf"h\.{_LAYER}\.mlp\.dense_h_to_4h",
    "ffn_out": rf"h\.{_LAYER}\.mlp\.dense_4h_to_h",
    "layer_norm": r"(?:input_layernorm|post_attention_layernorm|ln_f|word_embeddings_layernorm)",
    "word_embeddings": r"word_embeddings",
    "head": r"score",
    "lm_head": r"lm_head",
}


# LLaMA-style decoders (Llama, Mistral, Qwen2, Gemma 2 and 3): separate q/k/v/o projections,
# a gated FFN (gate and up read the block's input, down writes its output, like T5 v1.1's
# wi_0, wi_1 and wo), RMS norms without biases, rotary positions. Gemma 3's multimodal model
# holds the same decoder under ``language_model``: anchoring there leaves its vision tower out.
def _llama_style(prefix: str = "") -> dict[str, str]:
    block = rf"{prefix}layers\.{_LAYER}"
    return {
        "q": rf"{block}\.self_attn\.q_proj",
        "k": rf"{block}\.self_attn\.k_proj",
        "v": rf"{block}\.self_attn\.v_proj",
        "attn_out": rf"{block}\.self_attn\.o_proj",
        "ffn_in": rf"{block}\.mlp\.(?:gate_proj|up_proj)",
        "ffn_out": rf"{block}\.mlp\.down_proj",
        # every RMS norm: the blocks' (two, four for Gemma, plus Gemma 3's q/k norms), the final
        "layer_norm": rf"(?:{block}\.(?:\w+_layernorm|self_attn\.[qk]_norm)|{prefix}norm)",
        "word_embeddings": rf"{prefix}embed_tokens",
        "head": r"score",
        "lm_head": r"lm_head",
    }


_LLAMA = _llama_style()
_GEMMA3_MULTIMODAL = _llama_style(r"language_model\.(?:model\.)?")

KINDS = ("encoder", "encoder-decoder", "decoder")
HEAD_READS = ("pooler", "first", "eos", "last")
POSITIONS = ("absolute", "after_padding", "relative")


@dataclass(frozen=True)
class Family:
    """Everything petscale knows of one architecture; nothing else decides by ``model_type``."""

    name: str
    #: encoder | encoder-decoder | decoder: decides prompts, heads and answer formats
    kind: str
    #: role -> pattern of the modules playing it (matched against the end of their names)
    roles: dict[str, str]
    #: what the classification head reads: the [CLS] pooler, the first position, the last
    #: </s> (T5) or the last token (decoders)
    head_reads: str
    #: the stack that owns the word embeddings sits this many name parts above them
    #: (``bert.embeddings.word_embeddings`` -> ``bert``: 2; ``transformer.wte``: 1); None: T5,
    #: whose ``encoder`` and ``decoder`` stacks share the embeddings
    stack_depth: int | None
    #: position table: ``absolute`` (max_position_embeddings), ``after_padding`` (RoBERTa,
    #: MPNet: positions start after the padding index), ``relative`` (T5, BLOOM's ALiBi)
    positions: str = "absolute"
    #: linear layers stored (in, out), GPT-2's Conv1D (PEFT's ``fan_in_fan_out``)
    transposed: bool = False

    def __post_init__(self) -> None:
        # a slip in a new family's record fails on import, not inside a trial
        for value, allowed in (
            (self.kind, KINDS),
            (self.head_reads, HEAD_READS),
            (self.positions, POSITIONS),
        ):
            if value not in allowed:
                raise ValueError(f"family {self.name}: {value!r} is not one of {allowed}")

    def position_limit(self, config: PretrainedConfig) -> int | None:
        """How many positions the model can embed (None: relative or ALiBi positions)."""
        if self.positions == "relative":
            return None
        limit = config.max_position_embeddings
        if self.positions == "after_padding":
            limit -= config.pad_token_id + 1
        return limit


def _families(*families: Family) -> dict[str, Family]:
    return {f.name: f for f in families}


_ENCODER = {"kind": "encoder", "stack_depth": 2}
_T5_FAMILY = {"kind": "encoder-decoder", "roles": _T5, "head_reads": "eos", "stack_depth": None}
_DECODER = {"kind": "decoder", "head_reads": "last", "stack_depth": 1}

FAMILIES: dict[str, Family] = _families(
    Family("bert", roles=_BERT, head_reads="pooler", **_ENCODER),
    Family("roberta", roles=_BERT, head_reads="first", positions="after_padding", **_ENCODER),
    Family("xlm-roberta", roles=_BERT, head_reads="first", positions="after_padding", **_ENCODER),
    Family("mpnet", roles=_MPNET, head_reads="first", positions="after_padding", **_ENCODER),
    Family("t5", positions="relative", **_T5_FAMILY),
    Family("mt5", positions="relative", **_T5_FAMILY),
    Family("gpt2", roles=_GPT2, transposed=True, **_DECODER),
    Family("bloom", roles=_BLOOM, positions="relative", **_DECODER),
    *(
        Family(name, roles=_LLAMA, **_DECODER)
        for name in ("llama", "mistral", "qwen2", "gemma", "gemma2", "gemma3_text")
    ),
    Family("gemma3", roles=_GEMMA3_MULTIMODAL, **_DECODER),
)


def family_for(config: PretrainedConfig) -> Family:
    """The family of a model's config; an unsupported ``model_type`` is a UserError."""
    model_type = getattr(config, "model_type", None)
    if model_type not in FAMILIES:
        known = ", ".join(sorted(FAMILIES))
        raise UserError(f"model type {model_type!r} is not supported; supported families: {known}")
    return FAMILIES[model_type]


def position_limit(config: PretrainedConfig) -> int | None:
    """How many positions a model of ``config`` can embed (None: no limit)."""
    return family_for(config).position_limit(config)


@dataclass
class Structure:
    """The role -> module names map of one model instance."""

    family: str
    kind: str
    roles: dict[str, list[str]] = field(default_factory=dict)

    @property
    def arch(self) -> Family:
        """The family's record: where the head reads, positions, transposed linears ..."""
        return FAMILIES[self.family]

    def input_stacks(self) -> tuple[str, str | None]:
        """Names of the stack whose input embeddings soft tokens join (``""``: the model
        itself), and of T5's decoder stack (else None)."""
        depth = self.arch.stack_depth
        if depth is None:  # the stacks holding the blocks: ``[transformer.]encoder.block``
            stacks = {name.rpartition(".")[0] for name in self.blocks()}
            found = {s.rpartition(".")[2]: s for s in stacks}
            return found["encoder"], found.get("decoder")
        words = self.modules("word_embeddings")
        if not words:
            raise UserError(f"no word embeddings found in this {self.family} model")
        parts = words[0].split(".")
        return ".".join(parts[: max(0, len(parts) - depth)]), None

    def modules(self, *roles: str) -> list[str]:
        """Module names playing any of ``roles``, in model order, without repeats.

        The separate ``q``/``k``/``v`` roles fall back to the fused ``qkv`` projection on models
        that have one, so "LoRA on q and v" means "LoRA on query_key_value" for BLOOM and GPT-2.
        """
        names: list[str] = []
        for role in roles:
            if role not in ROLES:
                raise UserError(f"unknown role {role!r}; known roles: {', '.join(ROLES)}")
            found = self.roles.get(role, [])
            if not found and role in ("q", "k", "v"):
                found = self.roles.get("qkv", [])
            names.extend(n for n in found if n not in names)
        return names

    def layer_of(self, module_name: str) -> int | None:
        """The block index in a module name (``...layer.3.attention...`` -> 3)."""
        match = re.search(r"\.(?:layers?|block|h)\.(\d+)\.", f".{module_name}.")
        return int(match.group(1)) if match else None

    def block_of(self, module_name: str) -> tuple[str, int] | None:
        """(stack, index) of the block holding a module: ``encoder.block.3.layer.0.x`` ->
        (``encoder.block``, 3); None outside the blocks (embeddings, final norm, heads)."""
        match = re.match(r"(.*?(?:^|\.)(?:layers?|block|h))\.(\d+)(?:\.|$)", module_name)
        return (match.group(1), int(match.group(2))) if match else None

    def blocks(self) -> dict[str, int]:
        """Number of blocks of each stack (one stack for encoders and decoders, two for T5)."""
        out: dict[str, int] = {}
        for names in self.roles.values():
            for name in names:
                found = self.block_of(name)
                if found:
                    out[found[0]] = max(out.get(found[0], 0), found[1] + 1)
        return out

    def is_cross_attention(self, module_name: str) -> bool:
        return any(module_name in self.roles.get(r, []) for r in ("cross_q", "cross_k", "cross_v"))


def structure_of(model: nn.Module) -> Structure:
    """Map every role to the real module names of ``model``."""
    family = family_for(getattr(model, "config", None))
    patterns = {role: re.compile(rf"(?:^|\.){pattern}$") for role, pattern in family.roles.items()}
    roles: dict[str, list[str]] = {role: [] for role in patterns}
    for name, _ in model.named_modules():
        if not name:
            continue
        for role, pattern in patterns.items():
            if pattern.search(name) and not _inside_matched(name, roles[role]):
                roles[role].append(name)
    return Structure(family=family.name, kind=family.kind, roles=roles)


def _inside_matched(name: str, matched: Iterable[str]) -> bool:
    """True when ``name`` is a submodule of an already matched module (``classifier.dense``)."""
    return any(name.startswith(parent + ".") for parent in matched)


def in_out_features(module: nn.Module) -> tuple[int, int]:
    """(in, out) of a linear map, for ``nn.Linear`` and GPT-2's transposed ``Conv1D``."""
    if isinstance(module, nn.Linear):
        return module.in_features, module.out_features
    weight = getattr(module, "weight", None)
    if type(module).__name__ == "Conv1D" and isinstance(weight, torch.Tensor):
        return weight.shape[0], weight.shape[1]
    raise UserError(f"{type(module).__name__} is not a linear projection")


def is_transposed(module: nn.Module) -> bool:
    """GPT-2's Conv1D stores its weight as (in, out), the transpose of nn.Linear."""
    return type(module).__name__ == "Conv1D"
