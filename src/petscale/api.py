"""The Python API; it mirrors the command line.

import petscale
result = petscale.tune(model="minilm-l6", task="rotten_tomatoes", method="lora", rank=4)
model, tokenizer = petscale.load("runs/lora")
petscale.count(model="t5-v1_1-xxl", method="lora")["trainable_params"]
delta = petscale.attach(my_model, "lora", rank=8)   # your own model and loop
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import torch
from torch import nn
from transformers import PreTrainedTokenizerBase
from transformers.utils import logging as transformers_logging

from petscale.budget import attach_method, count_method, resolve_config
from petscale.errors import UserError
from petscale.heads import head_count, head_parameters
from petscale.methods.base import Delta
from petscale.run_folder import check_fits, check_model, read_run
from petscale.settings import DEFAULTS, TUNE_SETTINGS
from petscale.tasks import get_task
from petscale.tasks.base import TASK_OPTIONS
from petscale.tasks.frames import frame_folder, is_frame
from petscale.tracking import Tracking
from petscale.trial import build_model, normalize, run_trial
from petscale.zoo.loader import meta_model
from petscale.zoo.structure import structure_of

P = ParamSpec("P")
R = TypeVar("R")
_FLAG = re.compile(r"(?<![\w-])--([a-z][a-z0-9-]*)")


def in_api_terms(function: Callable[P, R]) -> Callable[P, R]:
    """A ``UserError`` names command-line flags (``--rank``); a Python caller wrote keyword
    arguments, so the message names those (``rank=``). The command line calls the function
    unwrapped (``.__wrapped__``), its errors naming flags."""

    @functools.wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return function(*args, **kwargs)
        except UserError as error:  # reworded in place: its kind (Diverged ...) is kept
            error.args = (_FLAG.sub(lambda m: m.group(1).replace("-", "_") + "=", str(error)),)
            raise

    return wrapper


@contextmanager
def quiet_transformers() -> Iterator[None]:
    """transformers' warnings off for the block (its verbosity restored after)."""
    before = transformers_logging.get_verbosity()
    transformers_logging.set_verbosity_error()
    try:
        yield
    finally:
        transformers_logging.set_verbosity(before)


@in_api_terms
def tune(
    model: str = DEFAULTS["model"],
    task: str | Any = DEFAULTS["task"],
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

    ``task`` is a task name, a data file or folder, or in-memory data: a pandas DataFrame, a
    ``datasets.Dataset``, a ``DatasetDict`` or ``{"train": ..., "test": ...}`` (written once
    as JSON Lines under the cache, named by their content: ``petscale.tasks.frames``). A bad
    argument is a ``UserError`` that names it as written here (``rank=``).
    """
    if is_frame(task):
        task = str(frame_folder(task))
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
    with quiet_transformers():  # its notes on a fresh head: the head is what trains here
        return run_trial(config, progress=progress, out=out, track=tracking).to_dict()


@in_api_terms
def load(folder: str | Path) -> tuple[nn.Module, PreTrainedTokenizerBase]:
    """The base model with the delta (and head) saved in ``folder`` attached, in eval mode.

    Every saved tensor is checked against the rebuilt model (names, shapes, dtypes) before
    any is used; weights the checkpoint lacks take the values the run saved. Quiet: what
    transformers says of freshly drawn weights does not apply (the run's own are loaded).
    """
    run = read_run(folder)
    trial = normalize(run.trial)
    # the run's own record of its task (labels, kind): its data need not be here any more
    spec = run.task or get_task(trial.task, **trial.task_options).spec
    # the caller's random state is left as it was
    with torch.random.fork_rng(devices=[]), quiet_transformers():
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


@in_api_terms
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


@in_api_terms
def attach(model: nn.Module, method: str, train_head: bool = True, **options: Any) -> Delta:
    """Attach ``method`` to a model you loaded yourself; returns its Delta.

    The method freezes the model and adds its own trainable tensors. A classification head
    (``classifier``, ``score``, ``classification_head``: a ``...ForSequenceClassification``
    model) then trains too, as PEFT's SEQ_CLS task trains it (``modules_to_save``);
    ``train_head=False`` keeps it frozen. Train ``[p for p in model.parameters() if
    p.requires_grad]``.
    """
    structure = structure_of(model)
    delta = attach_method(model, method, options, structure)
    if train_head:
        for parameter in head_parameters(model, structure).values():
            parameter.requires_grad_(True)
    return delta
