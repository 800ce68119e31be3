"""A training run's resumable state: what a killed trial needs to go on as if it never stopped.

A checkpoint holds the trained tensors, AdamW's state, the scheduler's, torch's random state
(dropout), the step reached, the curve and losses so far, and the best evaluation kept for
``keep_best``; tensors in ``state.safetensors``, the rest in ``state.json`` (nothing is
pickled). It is written whole (a staging folder renamed over the last one), so a kill during
a save leaves the previous checkpoint. The data order is not stored: it is a pure function of
the seed, replayed up to the step reached.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

TENSORS, META = "state.safetensors", "state.json"


@dataclass
class TrainState:
    """Where a run stands after ``step`` steps."""

    step: int
    curve: list[tuple[int, float]] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    train_seconds: float = 0.0
    best: tuple[int, float] | None = None  # (step, dev score) of the best evaluation
    since_best: int = 0  # evaluations without a better dev score (patience)
    best_tensors: list[torch.Tensor] | None = None  # the trained tensors at ``best``


def save(
    folder: Path,
    state: TrainState,
    params: list[nn.Parameter],
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
) -> None:
    """Write the checkpoint whole into ``folder`` (replacing the last one)."""
    tensors = {f"param.{i}": p.detach().cpu().contiguous() for i, p in enumerate(params)}
    optimizer_state = optimizer.state_dict()
    for i, slots in optimizer_state["state"].items():
        tensors.update({f"adam.{i}.{k}": v.cpu() for k, v in slots.items()})
    for i, tensor in enumerate(state.best_tensors or []):
        tensors[f"best.{i}"] = tensor.cpu().contiguous()
    tensors["rng"] = torch.get_rng_state()
    meta = {
        "step": state.step,
        "curve": state.curve,
        "losses": state.losses,
        "train_seconds": state.train_seconds,
        "best": state.best,
        "since_best": state.since_best,
        "param_groups": optimizer_state["param_groups"],
        "scheduler": scheduler.state_dict(),
    }
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        save_file(tensors, staging / TENSORS)
        (staging / META).write_text(json.dumps(meta))
        aside = folder.with_name(f".{folder.name}.old")
        shutil.rmtree(aside, ignore_errors=True)
        if folder.exists():
            folder.rename(aside)
        staging.rename(folder)
        shutil.rmtree(aside, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def restore(
    folder: Path,
    params: list[nn.Parameter],
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
) -> TrainState | None:
    """Load the checkpoint in ``folder`` into the tensors, the optimizer and the scheduler;
    None where there is none, or where it does not fit these tensors (it is then ignored and
    the run starts over: a checkpoint only ever saves time)."""
    aside = folder.with_name(f".{folder.name}.old")
    if not folder.is_dir() and aside.is_dir():  # killed between the two renames of a save
        aside.rename(folder)
    try:
        meta = json.loads((folder / META).read_text())
        tensors = load_file(folder / TENSORS)
    except (OSError, ValueError, SafetensorError):
        return None
    saved = [tensors.get(f"param.{i}") for i in range(len(params))]
    if not all(_fits(t, p) for t, p in zip(saved, params, strict=True)):
        return None
    with torch.no_grad():
        for p, tensor in zip(params, saved, strict=True):
            p.copy_(tensor)
    slots: dict[int, dict[str, torch.Tensor]] = {}
    for key, tensor in tensors.items():
        if key.startswith("adam."):
            _, index, name = key.split(".", 2)
            slots.setdefault(int(index), {})[name] = tensor
    optimizer.load_state_dict({"state": slots, "param_groups": meta["param_groups"]})
    scheduler.load_state_dict(meta["scheduler"])
    torch.set_rng_state(tensors["rng"])
    best = [tensors[f"best.{i}"] for i in range(len(params)) if f"best.{i}" in tensors]
    return TrainState(
        step=meta["step"],
        curve=[tuple(point) for point in meta["curve"]],
        losses=list(meta["losses"]),
        train_seconds=meta["train_seconds"],
        best=tuple(meta["best"]) if meta["best"] else None,
        since_best=meta["since_best"],
        best_tensors=best or None,
    )


def _fits(saved: torch.Tensor | None, param: nn.Parameter) -> bool:
    return saved is not None and saved.shape == param.shape and saved.dtype == param.dtype


def remove(folder: Path) -> None:
    """Drop the checkpoint of a finished run."""
    shutil.rmtree(folder, ignore_errors=True)
    shutil.rmtree(folder.with_name(f".{folder.name}.old"), ignore_errors=True)
