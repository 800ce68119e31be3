"""Experiment trackers (TensorBoard, W&B, MLflow) through accelerate's tracker API.

Off by default. Tracking is how a run is watched, not what it computes, so it is never part of a
trial's config: ``tune`` takes it as options, a study's workers read it from the environment
(``PETSCALE_TRACK``, ``PETSCALE_TRACK_DIR``), and a trial's id stays the hash of its config.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from petscale.checks import is_number
from petscale.errors import UserError
from petscale.results import FINAL_KEYS

if TYPE_CHECKING:
    from accelerate import Accelerator

ENV_TRACK = "PETSCALE_TRACK"  # comma-separated tracker names
ENV_DIR = "PETSCALE_TRACK_DIR"
DEFAULT_DIR = "runs/track"
# Tracker name -> (accelerate's check that it is installed, how to install it).
TRACKERS = {
    "tensorboard": ("is_tensorboard_available", "pip install 'petscale[track]'"),
    "wandb": ("is_wandb_available", "pip install wandb"),
    "mlflow": ("is_mlflow_available", "pip install mlflow"),
}


@dataclass(frozen=True)
class Tracking:
    trackers: tuple[str, ...]
    folder: Path  # each run logs to FOLDER/<run name>/ (TensorBoard, MLflow's file store)

    @classmethod
    def of(cls, trackers: str | Sequence[str] | None, folder: str | Path | None) -> Tracking | None:
        """Check the tracker names and that each is installed; None when none is asked for."""
        given = [trackers] if isinstance(trackers, str) else list(trackers or [])
        names = [n.strip().lower() for item in given for n in item.split(",") if n.strip()]
        if not names:
            return None
        # Here, not at the top: accelerate imports torch, and the study package (whose
        # commands' --help must answer at once) imports this module.
        from accelerate import utils

        for name in names:
            if name not in TRACKERS:
                raise UserError(f"unknown tracker {name!r}; known: {', '.join(TRACKERS)}")
            available, install = TRACKERS[name]
            if not getattr(utils, available)():
                raise UserError(f"tracker {name!r} is not installed; {install}")
        return cls(tuple(dict.fromkeys(names)), Path(folder or DEFAULT_DIR))

    @classmethod
    def from_env(cls) -> Tracking | None:
        """What a study's driver asked its workers for (see ``env``)."""
        return cls.of(os.environ.get(ENV_TRACK), os.environ.get(ENV_DIR))

    def env(self) -> dict[str, str]:
        """Environment variables that hand this tracking to worker processes."""
        return {ENV_TRACK: ",".join(self.trackers), ENV_DIR: str(self.folder)}

    def accelerator_options(self) -> dict[str, Any]:
        return {"log_with": list(self.trackers), "project_dir": str(self.folder)}


def start(accelerator: Accelerator, settings: Mapping[str, Any], name: str) -> None:
    """Open a run named ``name`` (no-op without trackers), with ``settings`` (the trial's as
    it runs: after sizing, the learning rate and schedule resolved) as hyperparameters."""
    if not accelerator.log_with:
        return
    run = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
    accelerator.init_trackers(run)
    values = dict(_flat(settings))
    for tracker in accelerator.trackers:
        if tracker.name == "tensorboard":
            # into the run's own folder: TensorBoard's default puts hparams in a sub-run
            tracker.writer.add_hparams(values, metric_dict={}, run_name=".")
        else:
            tracker.store_init_configuration(values)


def finish(accelerator: Accelerator, result: Mapping[str, Any]) -> None:
    """Log the final results (``petscale.results.FINAL_KEYS``) at the last step and close the
    run."""
    if not accelerator.log_with:
        return
    scalars = {k: result[k] for k in FINAL_KEYS if is_number(result.get(k))}
    accelerator.log(scalars, step=result.get("steps"))
    accelerator.end_training()


def _flat(config: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    # Trackers take flat scalars: nested options become dotted keys, lists and None text.
    out: list[tuple[str, Any]] = []
    for key, value in config.items():
        if isinstance(value, Mapping):
            out += _flat(value, f"{prefix}{key}.")
        else:
            scalar = isinstance(value, str | int | float | bool)
            out.append((f"{prefix}{key}", value if scalar else str(value)))
    return out
