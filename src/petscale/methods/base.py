"""What every method shares: its options (a config dataclass) and what it attaches (a Delta)."""

from __future__ import annotations

import dataclasses
import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from petscale.errors import UserError
from petscale.zoo.structure import Structure

DELTA_WEIGHTS = "delta.safetensors"
DELTA_CONFIG = "delta.json"


@dataclass
class MethodConfig:
    """Options of a method. Subclasses add fields; every field is a command-line option."""

    #: the option that ``--budget`` tunes (rank, bottleneck, prompt length ...), if any
    size_option: ClassVar[str | None] = None
    #: learning rate used when the user gives none
    default_lr: ClassVar[float] = 1e-3
    #: whether the method's delta folds into the base weights
    mergeable: ClassVar[bool] = False
    #: learning-rate schedule after warmup when the user gives none (train.SCHEDULES)
    default_schedule: ClassVar[str] = "linear"

    def validate(self) -> None:
        """Raise UserError for an impossible option; subclasses extend."""

    @classmethod
    def max_size(cls, structure: Structure) -> int | None:
        """The largest value ``size_option`` can take on a model (None: no model-set limit)."""
        return None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def positive(name: str, value: float | None) -> None:
    """Shared check: an option that must be > 0."""
    if value is not None and value <= 0:
        raise UserError(f"--{name.replace('_', '-')} must be positive, got {value}")


class Delta:
    """The trainable part a method added to a model.

    It knows its tensors and their exact count, saves and loads them alone, merges into the
    base weights where the method allows it, and detaches, leaving the model as it was.
    """

    def __init__(self, model: nn.Module, structure: Structure, method: str, config: MethodConfig):
        self.model = model
        self.structure = structure
        self.method = method
        self.config = config
        self.merged = False
        self._undo: list[Callable[[], None]] = []

    # -- what subclasses provide -------------------------------------------------------------
    def parameters(self) -> dict[str, nn.Parameter]:
        """The method's own trainable tensors by stable name (the head is not among them)."""
        raise NotImplementedError

    def _merge(self) -> None:
        raise UserError(f"method {self.method!r} cannot be merged into the base weights")

    def _unmerge(self) -> None:
        raise UserError(f"method {self.method!r} cannot be merged into the base weights")

    # -- shared behaviour --------------------------------------------------------------------
    @property
    def trainable_params(self) -> int:
        return sum(p.numel() for p in self.parameters().values())

    def on_detach(self, undo: Callable[[], None]) -> None:
        """Register a step that detach() runs (in reverse order) to restore the model."""
        self._undo.append(undo)

    def merge(self) -> None:
        if not self.merged:
            self._merge()
            self.merged = True

    def unmerge(self) -> None:
        if self.merged:
            self._unmerge()
            self.merged = False

    def detach(self) -> None:
        """Remove the method: the model's modules and weights are exactly as before attach."""
        self.unmerge()
        while self._undo:
            self._undo.pop()()

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {name: p.detach().contiguous() for name, p in self.parameters().items()}

    def load_state_dict(self, tensors: dict[str, torch.Tensor]) -> None:
        own = self.parameters()
        missing, unexpected = own.keys() - tensors.keys(), tensors.keys() - own.keys()
        if missing or unexpected:
            raise UserError(
                f"saved {self.method} delta does not fit this model: "
                f"missing {sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]}"
            )
        with torch.no_grad():
            for name, param in own.items():
                if param.shape != tensors[name].shape:
                    raise UserError(
                        f"saved tensor {name} has shape {tuple(tensors[name].shape)}, "
                        f"the model needs {tuple(param.shape)}"
                    )
                param.copy_(tensors[name])

    def save(self, folder: str | Path, extra: dict[str, torch.Tensor] | None = None) -> None:
        """Write ``delta.safetensors`` (the trained tensors, plus ``extra`` such as a head) and
        ``delta.json`` (method and options)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        tensors = {**self.state_dict(), **(extra or {})}
        save_file({k: v.cpu() for k, v in tensors.items()}, folder / DELTA_WEIGHTS)
        meta = {"method": self.method, "options": self.config.to_dict()}
        (folder / DELTA_CONFIG).write_text(json.dumps(meta, indent=2) + "\n")


def read_json_object(path: Path) -> dict[str, Any]:
    """A JSON file that must hold one object; anything else is a one-line UserError."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise UserError(
            f"{path} cannot be read as JSON ({err}); write the run again with `tune --out`"
        ) from err
    if not isinstance(value, dict):
        raise UserError(f"{path} must hold a JSON object, not {type(value).__name__}")
    return value


def read_saved(folder: str | Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The (config, tensors) a Delta.save wrote, checked: a known method, its options as an
    object, and a whole safetensors file (tensors are only read, never unpickled)."""
    from petscale.methods import get_method  # the method registry imports this module

    folder = Path(folder)
    for name in (DELTA_CONFIG, DELTA_WEIGHTS):
        if not (folder / name).is_file():
            raise UserError(f"{folder} holds no saved delta ({name} is missing)")
    meta = read_json_object(folder / DELTA_CONFIG)
    if not isinstance(meta.get("method"), str) or not isinstance(meta.get("options"), dict):
        raise UserError(
            f"{folder / DELTA_CONFIG} needs 'method' (a name) and 'options' (an object)"
        )
    get_method(meta["method"])
    try:
        tensors = load_file(folder / DELTA_WEIGHTS)
    except (SafetensorError, OSError) as err:
        raise UserError(
            f"{folder / DELTA_WEIGHTS} is damaged or not a safetensors file ({err}); "
            "write the run again with `tune --out`"
        ) from err
    return meta, tensors


def freeze(model: nn.Module, delta: Delta) -> None:
    """Freeze every base parameter; detach() restores each one's requires_grad."""
    flags = {name: p.requires_grad for name, p in model.named_parameters()}
    for p in model.parameters():
        p.requires_grad_(False)

    def restore() -> None:
        for name, p in model.named_parameters():
            if name in flags:
                p.requires_grad_(flags[name])

    delta.on_detach(restore)


def replace_module(model: nn.Module, name: str, new: nn.Module) -> nn.Module:
    """Put ``new`` where module ``name`` was; return the old module."""
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    old = getattr(parent, child)
    setattr(parent, child, new)
    return old


class Wrapper(nn.Module):
    """A module put in the place of ``base`` that runs it. Code that reads the replaced
    module's ``.weight`` (T5's feed-forward checks its dtype) still finds the base weight."""

    def __init__(self, base: nn.Module):
        super().__init__()
        self.base = base

    @property
    def weight(self) -> torch.Tensor:
        return self.base.weight


def call_kwargs(module: nn.Module, args: tuple, kwargs: dict) -> dict:
    """A hook's view of a call: positional arguments named as ``module.forward`` names them."""
    names = list(inspect.signature(module.forward).parameters)
    return {**dict(zip(names, args, strict=False)), **kwargs}


def new_tensor(like: torch.Tensor, *shape: int, zeros: bool = False) -> torch.Tensor:
    """An uninitialised (or zero) tensor on ``like``'s device and dtype (meta stays meta)."""
    make = torch.zeros if zeros else torch.empty
    return make(*shape, device=like.device, dtype=like.dtype)
