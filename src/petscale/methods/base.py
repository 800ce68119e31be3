"""What every method shares: what it attaches (a Delta and its layers), saved and loaded.
Its options (``MethodConfig``) are declared without torch in :mod:`petscale.methods.configs`."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from petscale.errors import UserError
from petscale.methods.configs import MethodConfig as MethodConfig
from petscale.methods.configs import positive as positive
from petscale.zoo.structure import Structure

DELTA_WEIGHTS = "delta.safetensors"
DELTA_CONFIG = "delta.json"


@dataclass(frozen=True)
class PeftAdapter:
    """A saved delta in PEFT's terms, as a method's optional ``to_peft`` gives it."""

    peft_type: str  # PEFT's name of the method: LORA, PROMPT_TUNING ...
    config: dict[str, Any]  # the method's own keys of adapter_config.json
    weights: dict[str, torch.Tensor]  # the delta's tensors under PEFT's names
    prefix: str  # where PEFT nests the model's own modules (the head, modules_to_save)


class Layer(Protocol):
    """One piece of a delta (a wrapped projection, a trained bias, soft tokens ...): it says
    whether it folds into the base weights, and folds and unfolds itself. A layer that adds an
    update onto a base weight (LoRA's, APET's op add) also has ``weight_update()``: that update
    alone, in the base weight's own layout (``analysis.subspace`` reads it)."""

    mergeable: bool

    def merge(self) -> None: ...

    def unmerge(self) -> None: ...


class InPlace:
    """Tensors of the model itself that train (full fine-tuning, BitFit's biases): merged from
    the start, nothing to fold."""

    mergeable = True

    def merge(self) -> None:
        """Nothing to fold."""

    def unmerge(self) -> None:
        """Nothing to unfold."""


@dataclass(frozen=True)
class Unmergeable:
    """A part of a delta the base weights have no room for (modules of its own, soft tokens, a
    bias added by a hook); ``what`` names it in the error."""

    what: str
    mergeable: ClassVar[bool] = False

    def merge(self) -> None:
        raise UserError(f"{self.what} cannot be merged into the base weights")

    def unmerge(self) -> None:
        """Never merged."""


@dataclass(frozen=True)
class SoftTokens(Unmergeable):
    """Soft tokens spliced into a stack's input: ``span`` is (start, count) of their positions
    in the stack's output, (start, 0) where the output drops them again (decoders). A head that
    pools the text leaves that span out (``Delta.soft_span``)."""

    span: tuple[int, int] = (0, 0)


class Delta:
    """The trainable part a method added to a model.

    It knows its tensors and their exact count, saves and loads them alone, merges into the
    base weights where every one of its layers can, and detaches, leaving the model as it was.
    """

    def __init__(self, model: nn.Module, structure: Structure, method: str, config: MethodConfig):
        self.model = model
        self.structure = structure
        self.method = method
        self.config = config
        self.merged = False
        #: what the method put into the model, registered by ``attach``; ``merge`` asks them
        self.layers: list[Layer] = []
        self._undo: list[Callable[[], None]] = []

    # -- what subclasses provide -------------------------------------------------------------
    def parameters(self) -> dict[str, nn.Parameter]:
        """The method's own trainable tensors by stable name (the head is not among them)."""
        raise NotImplementedError

    # -- shared behaviour --------------------------------------------------------------------
    @property
    def trainable_params(self) -> int:
        return sum(p.numel() for p in self.parameters().values())

    def on_detach(self, undo: Callable[[], None]) -> None:
        """Register a step that detach() runs (in reverse order) to restore the model."""
        self._undo.append(undo)

    @property
    def soft_span(self) -> tuple[int, int]:
        """(start, count) of the soft tokens in the stack's output; (0, 0) when it has none."""
        spans = [layer.span for layer in self.layers if isinstance(layer, SoftTokens)]
        return spans[0] if spans else (0, 0)

    @property
    def mergeable(self) -> bool:
        """Whether ``merge`` can fold every layer into the base weights."""
        return all(layer.mergeable for layer in self.layers)

    def merge(self) -> None:
        """Fold every layer into the base weights; ``unmerge`` restores them bit for bit. A
        delta with a layer that cannot merge raises (that layer's error) before touching any."""
        if self.merged:
            return
        blocking = next((layer for layer in self.layers if not layer.mergeable), None)
        if blocking is not None:
            blocking.merge()  # raises, naming what cannot merge
        for layer in self.layers:
            layer.merge()
        self.merged = True

    def unmerge(self) -> None:
        if self.merged:
            for layer in reversed(self.layers):
                layer.unmerge()
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
    """The (config, tensors) a Delta.save wrote, checked: a method name, its options as an
    object, and a whole safetensors file (tensors are only read, never unpickled). Whether the
    method is known and its options fit is the registry's check (``make_config``)."""
    folder = Path(folder)
    for name in (DELTA_CONFIG, DELTA_WEIGHTS):
        if not (folder / name).is_file():
            raise UserError(f"{folder} holds no saved delta ({name} is missing)")
    meta = read_json_object(folder / DELTA_CONFIG)
    if not isinstance(meta.get("method"), str) or not isinstance(meta.get("options"), dict):
        raise UserError(
            f"{folder / DELTA_CONFIG} needs 'method' (a name) and 'options' (an object)"
        )
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


def new_tensor(like: torch.Tensor, *shape: int, zeros: bool = False) -> torch.Tensor:
    """An uninitialised (or zero) tensor on ``like``'s device and dtype (meta stays meta)."""
    make = torch.zeros if zeros else torch.empty
    return make(*shape, device=like.device, dtype=like.dtype)
