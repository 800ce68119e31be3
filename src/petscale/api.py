"""The Python API; it mirrors the command line.

import petscale
result = petscale.tune(model="minilm-l6", task="rotten_tomatoes", method="lora", rank=4)
model, tokenizer = petscale.load("runs/lora")
petscale.count(model="t5-v1_1-xxl", method="lora")["trainable_params"]
delta = petscale.attach(my_model, "lora", rank=8)   # your own model and loop
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from petscale.budget import attach_method, count_method, resolve_config
from petscale.heads import head_count, head_parameters
from petscale.methods.base import Delta
from petscale.run_folder import check_fits, check_model, read_run
from petscale.settings import DEFAULTS, TASK_OPTIONS, TUNE_SETTINGS
from petscale.tasks import get_task
from petscale.tracking import Tracking
from petscale.trial import build_model, normalize, run_trial
from petscale.zoo.loader import meta_model
from petscale.zoo.structure import structure_of


def tune(
    model: str = DEFAULTS["model"],
    task: str = DEFAULTS["task"],
    method: str = DEFAULTS["method"],
    out: str | Path | None = None,
    progress: bool = False,
    track: str | list[str] | None = None,
    track_dir: str | Path | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Tune ``model`` on ``task`` with ``method``; returns the same fields as ``tune --json``.

    ``options`` mixes trial settings (``petscale.settings.TUNE_SETTINGS``: steps, batch_size, lr,
    max_length, eval_every, seed, head, pooling, ...), task options (``TASK_OPTIONS``: data_dir,
    text_field, text_pair_field, label_field, encoding) and the method's options (rank, alpha,
    budget, match, ...). ``track`` ("tensorboard", "wandb", "mlflow")
    logs the run's curves and results to ``track_dir`` (default runs/track).
    """
    trial = {k: v for k, v in options.items() if k in TUNE_SETTINGS}
    task_options = {k: v for k, v in options.items() if k in TASK_OPTIONS}
    method_options = {k: v for k, v in options.items() if k not in {*TUNE_SETTINGS, *TASK_OPTIONS}}
    config = {
        "model": model,
        "task": task,
        "task_options": task_options,
        "method": method,
        "options": method_options,
        **trial,
    }
    tracking = Tracking.of(track, track_dir)
    return run_trial(config, progress=progress, out=out, track=tracking).to_dict()


def load(folder: str | Path) -> tuple[nn.Module, PreTrainedTokenizerBase]:
    """The base model with the delta (and head) saved in ``folder`` attached, in eval mode.

    Every saved tensor is checked against the rebuilt model (names, shapes, dtypes) before
    any is used; weights the checkpoint lacks take the values the run saved.
    """
    run = read_run(folder)
    trial = normalize(run.trial)
    spec = get_task(trial.task, **trial.task_options).spec
    with torch.random.fork_rng(devices=[]):  # the caller's random state is left as it was
        torch.manual_seed(trial.seed)  # a model without a checkpoint is drawn as the run drew it
        built = build_model(dataclasses.replace(trial, method=run.method), spec, run.options)
    model = built.loaded.model
    head = head_parameters(model, built.structure)
    check_model(run, built.total_params)
    check_fits(run, "delta", run.delta, built.delta.state_dict())
    check_fits(run, "head", run.head, head, exact=trial.head == "trainable")
    check_fits(run, "base weights", run.base, built.loaded.fresh, exact=False)
    with torch.no_grad():
        for name, tensor in run.base.items():
            built.loaded.fresh[name].copy_(tensor)
        for name, tensor in run.head.items():
            head[name].copy_(tensor)
    built.delta.load_state_dict(run.delta)
    model.eval()
    return model, built.loaded.tokenizer


def count(
    model: str = DEFAULTS["model"],
    method: str = DEFAULTS["method"],
    num_labels: int = 2,
    **options: Any,
) -> dict[str, Any]:
    """Exact counts without loading weights: the method's own, the head's, the model's total."""
    network = meta_model(model, "classification", num_labels)
    structure = structure_of(network)
    config = resolve_config(network, method, options)
    return {
        "model": model,
        "method": method,
        "options": config.to_dict(),
        "trainable_params": count_method(network, method, config),
        "head_params": head_count(network, structure),
        "total_params": sum(p.numel() for p in network.parameters()),
    }


def attach(model: nn.Module, method: str, **options: Any) -> Delta:
    """Attach ``method`` to a model you loaded yourself; returns its Delta."""
    return attach_method(model, method, options)
