"""A run folder: what ``tune --out`` writes and ``load`` / ``export`` read.

delta.safetensors   the method's trained tensors, the trained head under ``head/``, and under
                    ``base/`` the model's weights its checkpoint lacked (drawn at random on load,
                    such as a missing pooler): the run depends on their values
delta.json          method and options (Delta.save)
trial.json          the normalised trial config (model, task, head mode ...); a model, task or
                    data folder given as a path is stored absolute, so a run loads from anywhere
metrics.json        the result ``tune --json`` prints
task.json           the task's spec (kind, label names, label words, metric): the run loads
                    without its data, and exports carry its label names

The folder is written whole or not at all: into a hidden sibling, then renamed into place.
``--out`` may name a new folder or an earlier run folder (replaced only once the new one is
complete); a folder holding anything else, or one that cannot be written, is refused before
training starts. A crash between the two renames that replace an earlier run leaves it in a
hidden ``.NAME.earlier.*`` sibling; the next write or read of the folder puts it back.

Everything read is checked before a tensor is used: both JSON files, the safetensors file,
the method and its options, and (``check_fits``, ``check_model``) every tensor's name, shape
and dtype against what the rebuilt model needs, and the model's size against the run's.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from torch import nn

from petscale.checks import is_a
from petscale.errors import UserError
from petscale.folders import clean_stale, new_staging, os_error_of, recover, set_aside, swap_in
from petscale.methods import get_method, make_config, option_names
from petscale.methods.base import Delta, read_json_object, read_saved
from petscale.settings import HINTS, RULES, kind
from petscale.tasks import TASKS
from petscale.tasks.base import TaskOptions, TaskSpec
from petscale.zoo.registry import is_local_folder

HEAD_PREFIX = "head/"
BASE_PREFIX = "base/"


@dataclass
class SavedRun:
    folder: Path
    trial: dict[str, Any]
    method: str
    options: dict[str, Any]
    delta: dict[str, torch.Tensor]  # the method's own tensors
    head: dict[str, torch.Tensor]  # head parameter name -> trained tensor
    base: dict[str, torch.Tensor]  # model weights the checkpoint lacked -> the run's values
    metrics: dict[str, Any]
    task: TaskSpec | None = None  # None: a run written before runs kept their task


def check_out(out: Path) -> None:
    """Refuse, before any training, an ``--out`` that a finished run could not replace."""
    recover(out)
    clean_stale(out.parent)  # what a killed run left there: free its space before training
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; pass a folder for the run")
    if out.is_dir() and any(out.iterdir()) and not (out / "trial.json").is_file():
        raise UserError(
            f"--out {out} holds files that are not a petscale run; pass a new or empty folder"
        )
    above = next(p for p in out.absolute().parents if p.exists())
    if not above.is_dir():
        raise UserError(f"--out {out}: {above} is a file, not a folder; pass another --out")
    try:  # the run is written next to --out, then renamed: the folder above must take it
        os.rmdir(tempfile.mkdtemp(prefix=f".{out.name}.probe.", dir=above))
    except OSError as err:
        raise UserError(
            f"--out {out} cannot be written ({above}: {err.strerror or err}); pass a folder "
            "you can write to"
        ) from err


def save_run(
    out: Path,
    delta: Delta,
    head: dict[str, nn.Parameter],
    report: dict[str, Any],
    trial: dict[str, Any],
    fresh: dict[str, nn.Parameter] | None = None,
    task: TaskSpec | None = None,
) -> None:
    """Write the run whole; if ``out`` fails after training, keep it elsewhere and say where."""
    check_out(out)
    tensors = {f"{HEAD_PREFIX}{name}": p.detach() for name, p in head.items()}
    # a weight the head or the method trains is saved there, not again as a base weight
    trained = set(head) | set(delta.parameters())
    fresh = {n: p for n, p in (fresh or {}).items() if n not in trained}
    tensors.update({f"{BASE_PREFIX}{n}": p.detach() for n, p in fresh.items()})
    files = {"trial.json": portable(trial), "metrics.json": report}
    if task is not None:
        files["task.json"] = task.to_json()
    staging = None
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = new_staging(out)
        _write(staging, delta, tensors, files)
    except BaseException as err:
        if staging is not None:  # no half-written staging folder is left behind
            shutil.rmtree(staging, ignore_errors=True)
        if not isinstance(err, OSError):
            raise
        kept = _keep_elsewhere(out, err, delta, tensors, files)
        raise UserError(
            f"could not write the run to {out} ({err.strerror or err}); nothing was written "
            f"there, and the run was kept in {kept}"
        ) from err
    try:
        swap_in(staging, out)
    except OSError as err:
        raise UserError(
            f"could not move the finished run into {out} ({err.strerror or err}); "
            f"it was kept in {set_aside(staging)}"
        ) from err


def _write(
    folder: Path, delta: Delta, tensors: dict[str, torch.Tensor], files: dict[str, Any]
) -> None:
    try:
        delta.save(folder, extra=tensors)
    except SafetensorError as err:  # how safetensors says a write failed (a full disk ...)
        raise os_error_of(err) from err
    for name, content in files.items():
        (folder / name).write_text(json.dumps(content, indent=2) + "\n")


def _keep_elsewhere(
    out: Path, err: OSError, delta: Delta, tensors: dict[str, torch.Tensor], files: dict[str, Any]
) -> Path:
    """A folder in the system's temporary space holding the run ``out`` could not take."""
    kept = None
    try:
        kept = Path(tempfile.mkdtemp(prefix=f"petscale-{out.name}-"))
        _write(kept, delta, tensors, files)
    except OSError as second:
        if kept is not None:
            shutil.rmtree(kept, ignore_errors=True)
        raise UserError(
            f"could not write the run to {out} ({err.strerror or err}) nor to a temporary "
            f"folder ({second.strerror or second}); nothing was kept; the scores: "
            f"{json.dumps(files['metrics.json'])}"
        ) from err
    return kept


def portable(trial: dict[str, Any]) -> dict[str, Any]:
    """The trial with the model, task and data folder it names by path made absolute."""
    # a name stays a name, even where a file is so named
    out = {**trial, "task_options": dict(trial.get("task_options") or {})}
    for holder, key in ((out, "model"), (out, "task"), (out["task_options"], "data_dir")):
        value = holder.get(key)
        named = value in TASKS if key == "task" else key == "model" and not is_local_folder(value)
        if value is not None and not named and Path(value).exists():
            holder[key] = str(Path(value).resolve())
    return out


def read_run(folder: str | Path) -> SavedRun:
    """The run saved in ``folder``, its JSON files and tensors checked (not yet against a model)."""
    folder = Path(folder)
    recover(folder, reading=True)  # a reader puts an earlier run back, and deletes nothing
    if not folder.is_dir():
        raise UserError(f"{folder} is not a folder; pass a folder written by `tune --out`")
    if not (folder / "trial.json").is_file():
        raise UserError(f"{folder} has no trial.json; pass a folder written by `tune --out`")
    trial = read_json_object(folder / "trial.json")
    _check_trial(folder, trial)
    metrics = (
        read_json_object(folder / "metrics.json") if (folder / "metrics.json").exists() else {}
    )
    task_file = folder / "task.json"
    task = (
        TaskSpec.from_json(read_json_object(task_file), str(task_file))
        if task_file.exists()
        else None  # a run written before runs kept their task: load reads the task itself
    )
    meta, tensors = read_saved(folder)
    _check_options(folder, meta["method"], meta["options"])
    for name, tensor in tensors.items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise UserError(f"{folder}: saved tensor {name} holds NaN or infinite values")
    parts: dict[str, dict[str, torch.Tensor]] = {"": {}, HEAD_PREFIX: {}, BASE_PREFIX: {}}
    for key, tensor in tensors.items():
        prefix = next((p for p in (HEAD_PREFIX, BASE_PREFIX) if key.startswith(p)), "")
        parts[prefix][key[len(prefix) :]] = tensor
    return SavedRun(
        folder,
        trial,
        meta["method"],
        meta["options"],
        parts[""],
        parts[HEAD_PREFIX],
        parts[BASE_PREFIX],
        metrics,
        task,
    )


def _check_trial(folder: Path, trial: dict[str, Any]) -> None:
    for key in ("model", "task"):
        if not isinstance(trial.get(key), str) or not trial[key]:
            raise UserError(f"{folder}/trial.json: {key!r} must be a name or path (a string)")
    for key, value in trial.items():
        if key in RULES and value is not None and not is_a(value, HINTS[key]):
            raise UserError(
                f"{folder}/trial.json: {key!r} must be {kind(key).__name__}, got {value!r}"
            )
    TaskOptions.parse(trial.get("task_options") or {}, f"{folder}/trial.json")
    model = trial["model"]
    looks_like_path = Path(model).is_absolute() or model.startswith(".")  # not a hub id
    if looks_like_path and not (Path(model) / "config.json").is_file():
        raise UserError(
            f"{folder}/trial.json names the model folder {model}, which is not here (or holds "
            "no config.json): the run needs the model it was trained on"
        )


def _check_options(folder: Path, method: str, options: dict[str, Any]) -> None:
    """Each saved option is one the method takes, of the type it takes."""
    config_class = get_method(method).config_class
    types = typing.get_type_hints(config_class)
    unknown = sorted(set(options) - option_names(method))
    if unknown:
        raise UserError(f"{folder}/delta.json: {method} has no option(s) {unknown}")
    for field in dataclasses.fields(config_class):
        value = options.get(field.name)
        if field.name in options and not is_a(value, types[field.name]):
            raise UserError(
                f"{folder}/delta.json: option {field.name!r} of {method} cannot be {value!r}"
            )
    try:
        make_config(method, options)  # the method's own checks (a positive rank ...)
    except UserError as err:
        raise UserError(f"{folder}/delta.json: {err}") from err


def check_fits(
    run: SavedRun,
    what: str,
    saved: dict[str, torch.Tensor],
    wanted: dict[str, torch.Tensor],
    exact: bool = True,
) -> None:
    """Saved tensors are the ones the rebuilt model needs: names (all of them when ``exact``),
    shapes and dtypes."""
    unexpected = sorted(saved.keys() - wanted.keys())
    missing = sorted(wanted.keys() - saved.keys()) if exact else []
    if unexpected or missing:
        raise UserError(
            f"{run.folder}: the saved {what} does not fit {run.trial['model']}: "
            f"missing {missing[:3]}, unexpected {unexpected[:3]}"
        )
    for name, tensor in saved.items():
        need = wanted[name]
        if tensor.shape != need.shape or tensor.dtype != need.dtype:
            raise UserError(
                f"{run.folder}: saved {what} tensor {name} is {tensor.dtype} "
                f"{tuple(tensor.shape)}; the model needs {need.dtype} {tuple(need.shape)}"
            )


def check_model(run: SavedRun, total_params: int) -> None:
    """The model rebuilt from the run's ``model`` is the size the run was trained on."""
    trained_on = run.metrics.get("total_params")
    if not is_a(trained_on, int) and trained_on is not None:
        raise UserError(f"{run.folder}/metrics.json: total_params must be an integer")
    if trained_on is not None and trained_on != total_params:
        raise UserError(
            f"{run.folder} was trained on a model of {trained_on:,} parameters, but "
            f"{run.trial['model']} has {total_params:,}: pass the run's own model"
        )
