"""Structure maps: which real modules of a model play which role.

Every method is written once against roles (``q``, ``v``, ``attn_out``, ``ffn_out``,
``layer_norm``, ``head`` ...) instead of per-architecture module names, as OpenDelta's
"common structures" do. A map is a set of regular expressions per model family, matched
against the end of each module's qualified name, so it works for the bare backbone and for
the task wrappers (``bert.encoder...``, ``transformer.h...``) alike.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
from torch import nn

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

FAMILY_PATTERNS: dict[str, dict[str, str]] = {
    "bert": _BERT,
    "roberta": _BERT,
    "xlm-roberta": _BERT,
    "mpnet": _MPNET,
    "t5": _T5,
    "mt5": _T5,
    "gpt2": _GPT2,
    "bloom": _BLOOM,
    "llama": _LLAMA,
    "mistral": _LLAMA,
    "qwen2": _LLAMA,
    "gemma": _LLAMA,
    "gemma2": _LLAMA,
    "gemma3_text": _LLAMA,
    "gemma3": _GEMMA3_MULTIMODAL,
}

#: What kind of network each family is: decides prompts, heads and answer formats.
FAMILY_KIND = {
    "bert": "encoder",
    "roberta": "encoder",
    "xlm-roberta": "encoder",
    "mpnet": "encoder",
    "t5": "encoder-decoder",
    "mt5": "encoder-decoder",
    "gpt2": "decoder",
    "bloom": "decoder",
    **{family: "decoder" for family in FAMILY_PATTERNS if FAMILY_PATTERNS[family] is _LLAMA},
    "gemma3": "decoder",
}


@dataclass
class Structure:
    """The role -> module names map of one model instance."""

    family: str
    kind: str
    roles: dict[str, list[str]] = field(default_factory=dict)

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


def family_of(model: nn.Module) -> str:
    config = getattr(model, "config", None)
    model_type = getattr(config, "model_type", None)
    if model_type not in FAMILY_PATTERNS:
        known = ", ".join(sorted(FAMILY_PATTERNS))
        raise UserError(
            f"no structure map for model type {model_type!r}; supported families: {known}"
        )
    return model_type


def structure_of(model: nn.Module) -> Structure:
    """Map every role to the real module names of ``model``."""
    family = family_of(model)
    patterns = {
        role: re.compile(rf"(?:^|\.){pattern}$")
        for role, pattern in FAMILY_PATTERNS[family].items()
    }
    roles: dict[str, list[str]] = {role: [] for role in patterns}
    for name, _ in model.named_modules():
        if not name:
            continue
        for role, pattern in patterns.items():
            if pattern.search(name) and not _inside_matched(name, roles[role]):
                roles[role].append(name)
    return Structure(family=family, kind=FAMILY_KIND[family], roles=roles)


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
