"""Model names -> where their config, weights and tokenizer come from.

The names themselves live in the torch-free ``zoo.names`` (``entries``, ``by_hub_id`` and
``is_local_folder`` are used here and reached through this module too). Three kinds of source:
- ``package``: real pretrained weights carried by an offline pip package (see ``assets``);
- ``config``: a config bundled with petscale (dimensions only): exact counting on the meta
  device anywhere, and, where no weights are reachable, a randomly initialised model that
  says so;
- any local model folder or hub id the user names.

Nothing here runs code a model folder brings: every transformers call passes
``trust_remote_code=False`` (a folder whose config names its own Python classes loads with
transformers' built-in classes, or is refused), and weights load only from the folder's own
safetensors files (``check_weight_files``), unless ``PETSCALE_ALLOW_PICKLE=1`` opts in to
pickled checkpoints (unpickling can run code). docs/MODELS.md lists every check and limit.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from safetensors import SafetensorError, safe_open
from transformers import AutoConfig, PretrainedConfig

from petscale.errors import UserError
from petscale.hub import offline_reason
from petscale.zoo import assets
from petscale.zoo.names import (
    PACKAGED,
    ModelEntry,
    bundled_raw,
    by_hub_id,
    entries,
    is_local_folder,
    known_name,
)

T = TypeVar("T")

#: Set to 1 to load checkpoints stored as pickles (pytorch_model.bin) from sources you trust.
ALLOW_PICKLE_ENV = "PETSCALE_ALLOW_PICKLE"
_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")


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
    raw = {k: v for k, v in bundled_raw(name).items() if not k.startswith("_")}
    model_type = raw.pop("model_type")
    return AutoConfig.for_model(model_type, **raw)


def weights_folder(name: str) -> Path | None:
    """A local folder with real weights for ``name``, or None when there is none here."""
    if is_local_folder(name):
        return Path(name)
    entry = entries().get(known_name(name))
    if entry and entry.source == "package":
        return assets.model_folder(entry.name)  # builds or unpacks on first use
    return None


def declared_pooling(name: str) -> str:
    """The pooling the checkpoint of ``name`` was trained with: ``mean`` or ``cls``."""
    if is_local_folder(name):
        return folder_pooling(Path(name))
    name = known_name(name)
    if name in PACKAGED:
        return assets.OFFLINE_MODELS[name].pooling
    return "cls"


def folder_pooling(folder: Path) -> str:
    """``mean`` where a sentence-transformers folder declares mean pooling, else ``cls``."""
    config = folder / "1_Pooling" / "config.json"
    if not config.is_file():
        return "cls"
    raw = read_json(config, "a sentence-transformers pooling config")
    if not isinstance(raw, dict):
        raise UserError(f"{config} holds a JSON {type(raw).__name__}, not a pooling config")
    return "mean" if raw.get("pooling_mode_mean_tokens") else "cls"


MAX_JSON_BYTES = 16 * 2**20  # a model's config is a few kilobytes


def read_json(path: Path, what: str = "a model config") -> object:
    """A small JSON file a model folder holds; anything else is a one-line UserError."""
    try:
        if path.stat().st_size > MAX_JSON_BYTES:
            raise UserError(
                f"{path} is over {MAX_JSON_BYTES // 2**20} MB, too large for {what}; "
                "pass a model folder"
            )
        return json.loads(path.read_text(encoding="utf-8"))
    except RecursionError:
        raise UserError(f"{path} is nested too deeply to be {what}; pass a model folder") from None
    except (OSError, ValueError) as err:
        raise UserError(
            f"{path} is not a readable JSON file ({_first_line(err)}); pass a model folder"
        ) from None


def load_config(name: str) -> PretrainedConfig:
    """The model's config: from its folder, the bundled copy, or the hub (where reachable)."""
    local = known_name(name) in PACKAGED or is_local_folder(name)
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
MAX_SIZE = 2**24  # widths are tens of thousands at most, vocabularies about a million


def check_config_file(path: Path) -> None:
    """Refuse a local folder's config.json that is not a model config before transformers reads
    it: not a JSON object, a size that is not a positive whole number (or past ``MAX_SIZE``),
    or attention heads that do not divide the width."""
    raw = read_json(path)
    if not isinstance(raw, dict):
        raise UserError(f"{path} holds a JSON {type(raw).__name__}, not a model config (an object)")
    if not isinstance(raw.get("model_type"), str):  # transformers would guess it from the path
        raise UserError(f"{path} names no model_type; a model folder's config says its family")
    for key in (*SIZE_KEYS, *LAYER_KEYS):
        value = raw.get(key)
        if key in raw and (type(value) is not int or value < 1):
            raise UserError(
                f"{path}: {key} is {json.dumps(value)}; a model's sizes are positive whole numbers"
            )
        if key in raw and value > MAX_SIZE:
            raise UserError(f"{path}: {key} is {value:,}; no model has a size over {MAX_SIZE:,}")
    layers = max((raw.get(k) or 0 for k in LAYER_KEYS), default=0)
    if layers > MAX_LAYERS:
        raise UserError(f"{path}: {layers} layers; no model has more than {MAX_LAYERS}")
    if raw.get("head_dim") is None:  # no head width of its own: the heads split the width
        for width, heads in (("hidden_size", "num_attention_heads"), ("n_embd", "n_head")):
            if _not_divisible(raw, width, heads):
                raise UserError(
                    f"{path}: {heads} ({raw[heads]}) does not divide {width} ({raw[width]}); "
                    "each attention head takes an equal share of the width"
                )
    if _not_divisible(raw, "num_attention_heads", "num_key_value_heads"):
        raise UserError(
            f"{path}: num_key_value_heads ({raw['num_key_value_heads']}) does not divide "
            f"num_attention_heads ({raw['num_attention_heads']})"
        )


def _not_divisible(raw: dict, whole: str, part: str) -> bool:
    """Whether ``raw[part]`` fails to divide ``raw[whole]`` (both set)."""
    a, b = raw.get(whole), raw.get(part)
    return isinstance(a, int) and isinstance(b, int) and b > 0 and a % b != 0


def allow_pickle() -> bool:
    return os.environ.get(ALLOW_PICKLE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def weight_options() -> dict[str, object]:
    """``from_pretrained`` options for weights: safetensors only, unless pickles are allowed."""
    return {"use_safetensors": None if allow_pickle() else True}


#: The weights transformers reads from a folder, in its order: the file config.json names
#: (``transformers_weights``), else one file, else a sharded checkpoint's index.
WEIGHTS_FILE = "model.safetensors"
WEIGHTS_INDEX = "model.safetensors.index.json"
MAX_INDEX_BYTES = 64 * 2**20  # an index is a few kilobytes per thousand tensors


def check_weight_files(folder: Path) -> dict[str, tuple[int, ...]]:
    """Refuse, before transformers sees it, a folder whose weights are not its own safetensors;
    return the checkpoint's tensors (name -> shape), read from the files' headers.

    The weights are the safetensors files inside the folder that transformers would read: an
    index naming any other kind of file (a pickle), a path outside the folder or a link out of
    it is refused, as is a file that is not safetensors. A PEFT adapter folder is refused too:
    transformers would load the weights its ``adapter_config.json`` names (any path) and the
    adapter itself, possibly from a pickle.
    """
    names = {p.name for p in folder.iterdir()}
    if "adapter_config.json" in names:
        raise UserError(
            f"{folder} is a PEFT adapter folder (adapter_config.json), not a model; pass the "
            "base model's folder (the adapter names it as base_model_name_or_path)"
        )
    files = _weight_files(folder, names)
    if files is None:  # pickles only, opted in
        return {}
    shapes: dict[str, tuple[int, ...]] = {}
    for file in files:
        if file.name.endswith(".safetensors"):
            shapes.update(_tensor_shapes(folder, file))
    return shapes


def _weight_files(folder: Path, names: set[str]) -> list[Path] | None:
    """The files transformers would read weights from, each checked to be the folder's own
    (and safetensors, unless pickles are allowed); None for a pickled checkpoint opted in."""
    explicit = _explicit_weights(folder)
    chosen = explicit or next((n for n in (WEIGHTS_FILE, WEIGHTS_INDEX) if n in names), None)
    if chosen is None:
        pickles = sorted(n for n in names if n.endswith(_PICKLE_SUFFIXES))
        if allow_pickle() and pickles:
            return None
        if pickles:
            raise UserError(
                f"{folder} holds its weights only as a pickle ({pickles[0]}), which petscale "
                "does not load (unpickling can run code); convert it to model.safetensors where "
                "you trust it (save_pretrained(folder, safe_serialization=True)), or set "
                f"{ALLOW_PICKLE_ENV}=1"
            )
        raise UserError(
            f"{folder} holds no model weights ({WEIGHTS_FILE} or {WEIGHTS_INDEX}); "
            "pass a model folder"
        )
    what = f"config.json's transformers_weights {chosen!r}" if explicit else chosen
    path = _own_file(folder, chosen, what, (".safetensors", ".safetensors.index.json"))
    if not chosen.endswith(".index.json"):
        return [path]
    shards = _index_shards(path)
    return [_own_file(folder, s, f"{chosen} names {s!r}: it", (".safetensors",)) for s in shards]


def _explicit_weights(folder: Path) -> str | None:
    """The weights file config.json names (``transformers_weights``), which transformers reads
    in place of model.safetensors."""
    try:
        raw = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None  # the config's own checks say what is wrong with it
    value = raw.get("transformers_weights") if isinstance(raw, dict) else None
    if value is not None and not isinstance(value, str):
        raise UserError(
            f"{folder}/config.json: transformers_weights is {value!r}; it must name a "
            "safetensors file in the folder, or be left out"
        )
    return value


def _own_file(folder: Path, name: str, what: str, ends: tuple[str, ...]) -> Path:
    """``folder / name``: a file inside the folder (a link is followed only while it stays
    inside), safetensors unless pickles are allowed."""
    path = folder / name
    inside = folder.resolve()
    try:
        target = path.resolve()
    except (OSError, RuntimeError) as err:  # a link loop
        raise UserError(f"{folder}: {what} cannot be read ({err}); pass a model folder") from None
    if not target.is_relative_to(inside):
        where = "a link to a file" if path.is_symlink() else "a path"
        raise UserError(
            f"{folder}: {what} is {where} outside the folder ({target}); petscale reads only "
            "the folder's own weights: copy the file into the folder"
        )
    if not target.is_file():
        raise UserError(f"{folder}: {what} is not a file in the folder; pass a model folder")
    if not name.endswith(ends) and not (allow_pickle() and name.endswith(_PICKLE_SUFFIXES)):
        raise UserError(
            f"{folder}: {what} is not a safetensors file, and petscale loads weights from "
            "safetensors only (a pickle can run code); convert the weights to safetensors "
            f"where you trust them (save_pretrained(folder, safe_serialization=True)), or set "
            f"{ALLOW_PICKLE_ENV}=1"
        )
    return target


def _index_shards(index: Path) -> list[str]:
    """The files a sharded checkpoint's index names (its weight_map's values)."""
    if index.stat().st_size > MAX_INDEX_BYTES:
        raise UserError(
            f"{index} is over {MAX_INDEX_BYTES // 2**20} MB, too large for a weight index; "
            "pass a model folder saved by save_pretrained"
        )
    try:
        raw = json.loads(index.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as err:
        raise UserError(f"{index} is not a readable JSON file ({_first_line(err)})") from None
    weight_map = raw.get("weight_map") if isinstance(raw, dict) else None
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
        raise UserError(
            f"{index} has no weight_map (tensor name -> file name); pass a model folder saved "
            "by save_pretrained"
        )
    return sorted(set(weight_map.values()))


def _tensor_shapes(folder: Path, path: Path) -> dict[str, tuple[int, ...]]:
    """The tensors a safetensors file holds (name -> shape), from its header alone."""
    try:
        with safe_open(path, framework="pt") as handle:
            names = handle.keys()
            slices = {key: handle.get_slice(key) for key in names}
            dtypes = {key: part.get_dtype() for key, part in slices.items()}
            shapes = {key: tuple(part.get_shape()) for key, part in slices.items()}
    except (SafetensorError, OSError, ValueError) as err:
        raise UserError(
            f"{folder}: {path.name} is not a readable safetensors file ({_first_line(err)}); "
            "save the weights again (save_pretrained(folder, safe_serialization=True))"
        ) from None
    for key, dtype in dtypes.items():  # weights and biases are floats (F16, BF16, F32 ...)
        if key.endswith((".weight", ".bias")) and not dtype.startswith(("F", "BF")):
            raise UserError(
                f"{folder}: {path.name} holds {key} as {dtype}, not floating point; "
                "petscale loads unquantized weights: save the model's float weights"
            )
    return shapes


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
        raise unreachable(name)
    try:
        return loader(name, trust_remote_code=False, **options)
    except OSError as err:
        raise unreachable(name) from err
    except ValueError as err:
        raise UserError(f"cannot load {name!r} from the hub: {_first_line(err)}") from err


def unreachable(name: str) -> UserError:
    """Why ``name`` cannot be loaded here: no weights, no hub."""
    entry = by_hub_id(name) or entries().get(name)
    if entry is not None:
        return UserError(
            f"model {name!r}: no weights here and the hub is not reachable; petscale ships only "
            f"its dimensions, as --model {entry.name} (exact counts: petscale count): pass "
            "--random-init to tune a randomly initialised model of its shape, or download it "
            "elsewhere and pass its folder"
        )
    known = ", ".join(entries())
    return UserError(
        f"model {name!r} is neither a known name ({known}) nor a local folder, and the hub "
        f"is not reachable; download it elsewhere and pass its folder: --model /path/to/{name}"
    )


def config_entry(name: str) -> ModelEntry | None:
    """The bundled-config entry (dimensions, no weights) that ``name`` or its hub id names."""
    entry = entries().get(name) or by_hub_id(name)
    return entry if entry is not None and entry.source == "config" else None


def random_init_warning(name: str) -> None:
    warnings.warn(
        f"no pretrained weights for {name!r} are available here: using a RANDOMLY INITIALISED "
        "model built from its config (counts are exact; scores are not those of the real model)",
        stacklevel=3,
    )
