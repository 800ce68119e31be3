"""A run folder: what ``tune --out`` writes and ``load`` / ``export`` read.

delta.safetensors   the method's trained tensors, and the trained head under ``head/``
delta.json          method and options (Delta.save)
trial.json          the normalised trial config (model, task, head mode ...)
metrics.json        the result ``tune --json`` prints
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from petscale.errors import UserError
from petscale.methods.base import Delta, read_saved

HEAD_PREFIX = "head/"


@dataclass
class SavedRun:
    trial: dict[str, Any]
    method: str
    options: dict[str, Any]
    delta: dict[str, torch.Tensor]  # the method's own tensors
    head: dict[str, torch.Tensor]  # head parameter name -> trained tensor


def save_run(
    out: Path,
    delta: Delta,
    head: dict[str, nn.Parameter],
    report: dict[str, Any],
    trial: dict[str, Any],
) -> None:
    head_tensors = {f"{HEAD_PREFIX}{name}": p.detach() for name, p in head.items()}
    delta.save(out, extra=head_tensors)
    (out / "trial.json").write_text(json.dumps(trial, indent=2) + "\n")
    (out / "metrics.json").write_text(json.dumps(report, indent=2) + "\n")


def read_run(folder: str | Path) -> SavedRun:
    folder = Path(folder)
    meta, tensors = read_saved(folder)
    if not (folder / "trial.json").is_file():
        raise UserError(f"{folder} has no trial.json; pass a folder written by `tune --out`")
    return SavedRun(
        trial=json.loads((folder / "trial.json").read_text()),
        method=meta["method"],
        options=meta["options"],
        delta={k: v for k, v in tensors.items() if not k.startswith(HEAD_PREFIX)},
        head={k[len(HEAD_PREFIX) :]: v for k, v in tensors.items() if k.startswith(HEAD_PREFIX)},
    )
