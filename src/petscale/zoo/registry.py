"""Model names -> where their config, weights and tokenizer come from.

Three kinds of source:
- ``package``: real pretrained weights carried by an offline pip package (see ``assets``);
- ``config``: a config bundled with petscale (dimensions only): exact counting on the meta
  device anywhere, and, where no weights are reachable, a randomly initialised model that
  says so;
- any local model folder or hub id the user names.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TypeVar

from transformers import AutoConfig, PretrainedConfig

from petscale.errors import UserError
from petscale.hub import offline_reason

T = TypeVar("T")


@dataclass(frozen=True)
class ModelEntry:
    name: str
    source: str  # "package" | "config"
    hub_id: str
    description: str


_PACKAGED = {
    "minilm-l6": ("sentence-transformers/all-MiniLM-L6-v2", "MiniLM-L6 (BERT, 6 layers, 384)"),
    "minilm-l3": ("sentence-transformers/paraphrase-MiniLM-L3-v2", "MiniLM-L3 (BERT, 3 layers)"),
    "mpnet-base": ("sentence-transformers/all-mpnet-base-v2", "MPNet-base (12 layers, 768)"),
}

# The packaged models' dimensions, so that counting and listing never unpack or rebuild them
# (a test checks them against the real configs).
_MINILM = {
    "model_type": "bert",
    "hidden_size": 384,
    "num_attention_heads": 12,
    "intermediate_size": 1536,
    "vocab_size": 30522,
    "max_position_embeddings": 512,
}
_PACKAGED_DIMS = {
    "minilm-l6": {**_MINILM, "num_hidden_layers": 6},
    "minilm-l3": {**_MINILM, "num_hidden_layers": 3},
    "mpnet-base": {
        "model_type": "mpnet",
        "hidden_size": 768,
        "num_attention_heads": 12,
        "num_hidden_layers": 12,
        "intermediate_size": 3072,
        "vocab_size": 30527,
        "max_position_embeddings": 514,
    },
}

DEFAULT_MODEL = "minilm-l6"


def _bundled_names() -> list[str]:
    folder = resources.files("petscale.zoo") / "configs"
    return sorted(p.name[: -len(".json")] for p in folder.iterdir() if p.name.endswith(".json"))


@cache
def entries() -> dict[str, ModelEntry]:
    """Every model petscale knows by name."""
    out = {name: ModelEntry(name, "package", hub, desc) for name, (hub, desc) in _PACKAGED.items()}
    for name in _bundled_names():
        raw = json.loads((resources.files("petscale.zoo") / "configs" / f"{name}.json").read_text())
        hub = raw.pop("_hub_id", name)
        out[name] = ModelEntry(name, "config", hub, raw.pop("_description", hub))
    return out


def package_config(name: str) -> PretrainedConfig:
    """A packaged model's config from its recorded dimensions (no unpacking)."""
    raw = dict(_PACKAGED_DIMS[name])
    return AutoConfig.for_model(raw.pop("model_type"), **raw)


def shape_config(name: str) -> PretrainedConfig:
    """The config that decides every shape: cheap for every known name, no weights touched."""
    if name in _PACKAGED_DIMS:
        return package_config(name)
    return load_config(name)


def bundled_config(name: str) -> PretrainedConfig:
    raw = json.loads((resources.files("petscale.zoo") / "configs" / f"{name}.json").read_text())
    raw = {k: v for k, v in raw.items() if not k.startswith("_")}
    model_type = raw.pop("model_type")
    return AutoConfig.for_model(model_type, **raw)


def is_local_folder(name: str) -> bool:
    return (Path(name) / "config.json").is_file()


def weights_folder(name: str) -> Path | None:
    """A local folder with real weights for ``name``, or None when there is none here."""
    if is_local_folder(name):
        return Path(name)
    entry = entries().get(name)
    if entry and entry.source == "package":
        from petscale.zoo import assets  # builds or unpacks on first use

        return assets.model_folder(name)
    return None


def declared_pooling(name: str) -> str:
    """The pooling the checkpoint of ``name`` was trained with: ``mean`` or ``cls``."""
    from petscale.pooling import folder_pooling

    if is_local_folder(name):
        return folder_pooling(Path(name))
    if name in _PACKAGED:
        from petscale.zoo.assets import OFFLINE_MODELS

        return OFFLINE_MODELS[name].pooling
    return "cls"


def load_config(name: str) -> PretrainedConfig:
    """The model's config: from its folder, the bundled copy, or the hub (where reachable)."""
    folder = weights_folder(name) if name in _PACKAGED or is_local_folder(name) else None
    if folder is not None:
        return AutoConfig.from_pretrained(folder)
    if name in entries():
        return bundled_config(name)
    return from_hub(name, AutoConfig.from_pretrained)


def from_hub(name: str, loader: Callable[[str], T]) -> T:
    if offline_reason() is not None:
        raise _unreachable(name)
    try:
        return loader(name)
    except OSError as err:
        raise _unreachable(name) from err


def _unreachable(name: str) -> UserError:
    known = ", ".join(entries())
    return UserError(
        f"model {name!r} is neither a known name ({known}) nor a local folder, and the hub "
        f"is not reachable; download it elsewhere and pass its folder: --model /path/to/{name}"
    )


def random_init_warning(name: str) -> None:
    warnings.warn(
        f"no pretrained weights for {name!r} are available here: using a RANDOMLY INITIALISED "
        "model built from its config (counts are exact; scores are not those of the real model)",
        stacklevel=3,
    )
