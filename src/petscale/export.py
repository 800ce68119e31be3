"""Export a saved delta to another library's format: a PEFT adapter folder.

Input: a folder ``petscale tune --out`` wrote (delta.safetensors, delta.json, trial.json).
Output: adapter_config.json + adapter_model.safetensors, which
``PeftModel.from_pretrained(<base model>, OUT)`` loads with the same outputs. A method with
a PEFT counterpart converts its own tensors (its module's ``to_peft``). LoRA exports for every
family; prompt tuning for encoders and for decoders without a head (PEFT puts the
soft tokens on T5's decoder too, and pools GPT-2/BLOOM classifiers differently). A head that
read the mean of the text (``--pooling mean``) has no PEFT counterpart: such runs are refused.
Weights the run depends on that the base checkpoint lacks (the head, and the ``base/`` tensors
of the run folder, such as a pooler drawn at random on load) travel in ``modules_to_save``.
The run folder is checked against the model on the meta device before any tensor is written.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from petscale.budget import attach_method
from petscale.errors import UserError
from petscale.folders import current_umask, recover, swap_in
from petscale.heads import head_parameters
from petscale.methods import METHODS, get_method, make_config
from petscale.pooling import resolve_pooling
from petscale.run_folder import SavedRun, check_fits, check_model, read_run
from petscale.zoo import registry
from petscale.zoo.loader import meta_model
from petscale.zoo.structure import Structure, structure_of

FORMATS = ("peft",)
ADAPTER_CONFIG, ADAPTER_WEIGHTS = "adapter_config.json", "adapter_model.safetensors"

_TASK_TYPES = {"encoder-decoder": "SEQ_2_SEQ_LM", "decoder": "CAUSAL_LM"}


def export(folder: str | Path, out: str | Path, format: str = "peft") -> Path:
    """Write the delta saved in ``folder`` to ``out`` in ``format``; returns ``out``."""
    if format not in FORMATS:
        raise UserError(f"unknown --format {format!r}; formats: {', '.join(FORMATS)}")
    folder, out = Path(folder), Path(out)
    recover(out)
    _check_out(folder, out)
    run = read_run(folder)
    model_name = run.trial["model"]
    structure = _checked_structure(run)
    _require_cls_pooling(run.trial, structure)
    config, weights = _peft_adapter(run, structure)
    config["base_model_name_or_path"] = str(_base_folder(model_name))
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        # Written whole beside --out, then swapped in: a failed write leaves an earlier export.
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
        try:
            tensors = {k: v.contiguous() for k, v in weights.items()}
            save_file(tensors, staging / ADAPTER_WEIGHTS)
            (staging / ADAPTER_CONFIG).write_text(json.dumps(config, indent=2) + "\n")
            staging.chmod(0o777 & ~current_umask())  # as mkdir would: not mkdtemp's 0o700
            swap_in(staging, out)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    except OSError as err:
        raise UserError(
            f"cannot write the adapter to {out} ({err.strerror or err}); pass a folder you can "
            "write to"
        ) from err
    return out


def _check_out(folder: Path, out: Path) -> None:
    """Refuse an ``--out`` that is the run itself or holds files an export did not write."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; pass a folder for the adapter")
    if out.resolve() == folder.resolve() or folder.resolve() in out.resolve().parents:
        raise UserError(f"--out {out} is inside the run folder {folder}; pass another folder")
    if not out.is_dir():
        return
    others = sorted(
        p.name for p in out.iterdir() if p.name not in (ADAPTER_CONFIG, ADAPTER_WEIGHTS)
    )
    if others or (any(out.iterdir()) and not _is_adapter_config(out / ADAPTER_CONFIG)):
        named = ", ".join(others) or ADAPTER_CONFIG
        raise UserError(
            f"--out {out} holds files that are not a PEFT adapter ({named}); pass a new or "
            "empty folder, or an earlier export"
        )


def _is_adapter_config(path: Path) -> bool:
    try:
        return "peft_type" in json.loads(path.read_text())
    except (OSError, ValueError, TypeError):
        return False


def _checked_structure(run: SavedRun) -> Structure:
    """The model's structure on the meta device, with a head of the saved head's width; the
    saved tensors are checked against it (names, shapes, dtypes) and the model's size."""
    labels = next((v.shape[0] for k, v in run.head.items() if k.endswith("weight")), 2)
    network = meta_model(run.trial["model"], "classification", labels)
    structure = structure_of(network)
    own = dict(network.named_parameters())
    check_fits(run, "base weights", run.base, own, exact=False)
    check_fits(run, "head", run.head, head_parameters(network, structure), exact=bool(run.head))
    delta = attach_method(network, run.method, run.options, structure)
    check_fits(run, "delta", run.delta, delta.state_dict())
    check_model(run, sum(p.numel() for p in own.values()))
    return structure


def _require_cls_pooling(trial: dict[str, Any], structure: Structure) -> None:
    """PEFT's classifiers read transformers' [CLS] pooler; a mean-pooled head would differ."""
    declared = registry.declared_pooling(trial["model"])
    if resolve_pooling(trial.get("pooling", "auto"), declared, structure) == "mean":
        raise UserError(
            "this run's head reads the mean of the text (pooling 'mean', the checkpoint's own), "
            "but PEFT's classifiers read the [CLS] pooler: to export, train with --pooling cls"
        )


def _base_folder(model_name: str) -> Path:
    folder = registry.weights_folder(model_name)
    if folder is None:
        raise UserError(
            f"no pretrained weights for {model_name!r} here: its delta was trained on a randomly "
            "initialised model, which a PEFT adapter cannot point to"
        )
    return folder.resolve()


def _peft_adapter(
    run: SavedRun, structure: Structure
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """PEFT's adapter config and its tensors under PEFT's key names."""
    head = run.head
    head_modules = structure.modules("head") if head else []
    # The base weights the run saved travel as whole modules (PEFT saves modules, not tensors).
    saved_modules = sorted({k.rsplit(".", 1)[0] for k in run.base} - set(head_modules))
    task_type = "SEQ_CLS" if head else _TASK_TYPES.get(structure.kind)
    if task_type is None:
        raise UserError("an encoder delta without a trained head has no PEFT task type")
    to_peft = get_method(run.method).to_peft  # the method's own conversion, where it has one
    if to_peft is None:
        exported = ", ".join(m for m in METHODS if get_method(m).to_peft)
        raise UserError(f"PEFT has no counterpart of petscale's {run.method!r}; export {exported}")
    adapter = to_peft(run.delta, make_config(run.method, run.options), structure, bool(head))
    common = {
        "task_type": task_type,
        "modules_to_save": head_modules + saved_modules,
        "inference_mode": True,
    }
    config = {"peft_type": adapter.peft_type, **common, **adapter.config}
    weights = dict(adapter.weights)
    weights.update({f"{adapter.prefix}{k}": v for k, v in {**run.base, **head}.items()})
    return config, weights
