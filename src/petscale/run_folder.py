"""A run folder: what ``tune --out`` writes and ``load`` / ``export`` read.

delta.safetensors   the method's trained tensors, and the trained head under ``head/``
delta.json          method and options (Delta.save)
trial.json          the normalised trial config (model, task, head mode ...)
metrics.json        the result ``tune --json`` prints

The folder is written whole or not at all: into a hidden sibling, then renamed into place.
``--out`` may name a new folder or an earlier run folder (replaced only once the new one is
complete); a folder holding anything else is refused before training starts.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
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


def check_out(out: Path) -> None:
    """Refuse, before any training, an ``--out`` that a finished run could not replace."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; pass a folder for the run")
    if out.is_dir() and any(out.iterdir()) and not (out / "trial.json").is_file():
        raise UserError(
            f"--out {out} holds files that are not a petscale run; pass a new or empty folder"
        )


def save_run(
    out: Path,
    delta: Delta,
    head: dict[str, nn.Parameter],
    report: dict[str, Any],
    trial: dict[str, Any],
) -> None:
    check_out(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        head_tensors = {f"{HEAD_PREFIX}{name}": p.detach() for name, p in head.items()}
        delta.save(staging, extra=head_tensors)
        (staging / "trial.json").write_text(json.dumps(trial, indent=2) + "\n")
        (staging / "metrics.json").write_text(json.dumps(report, indent=2) + "\n")
        _swap_in(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _swap_in(staging: Path, out: Path) -> None:
    """Rename ``staging`` to ``out``; an earlier run there is moved aside first, then removed."""
    if not out.exists():
        os.rename(staging, out)
        return
    earlier = Path(tempfile.mkdtemp(prefix=f".{out.name}.earlier.", dir=out.parent))
    os.rename(out, earlier / "run")
    os.rename(staging, out)
    shutil.rmtree(earlier, ignore_errors=True)


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
