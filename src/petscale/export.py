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
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import save_file

from petscale.budget import attach_method
from petscale.errors import UserError
from petscale.folders import current_umask, new_staging, os_error_of, recover, swap_in
from petscale.heads import head_parameters
from petscale.methods import METHODS, get_method, make_config
from petscale.pooling import peft_pooling_problem, resolve_pooling
from petscale.run_folder import SavedRun, check_fits, check_model, read_run
from petscale.zoo import registry
from petscale.zoo.loader import meta_model
from petscale.zoo.structure import Structure, structure_of

FORMATS = ("peft",)
ADAPTER_CONFIG, ADAPTER_WEIGHTS = "adapter_config.json", "adapter_model.safetensors"
MODEL_CARD = "README.md"
EXPORTED = (ADAPTER_CONFIG, ADAPTER_WEIGHTS, MODEL_CARD)

_TASK_TYPES = {"encoder-decoder": "SEQ_2_SEQ_LM", "decoder": "CAUSAL_LM"}
_AUTO_CLASSES = {"SEQ_2_SEQ_LM": "AutoModelForSeq2SeqLM", "CAUSAL_LM": "AutoModelForCausalLM"}


def export(
    folder: str | Path, out: str | Path, format: str = "peft", base_model: str | None = None
) -> Path:
    """Write the delta saved in ``folder`` to ``out`` in ``format``; returns ``out``.

    ``base_model`` is what the adapter names as its base (``base_model_name_or_path``);
    default: the model's hub id where petscale knows it, else its local folder."""
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
    config["base_model_name_or_path"] = base_model or _base_name(model_name)
    card = model_card(run, config)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        # Written whole beside --out, then swapped in: a failed write leaves an earlier export.
        staging = new_staging(out)
        try:
            tensors = {k: v.contiguous() for k, v in weights.items()}
            try:
                save_file(tensors, staging / ADAPTER_WEIGHTS)
            except SafetensorError as err:  # a full disk, in safetensors' words
                raise os_error_of(err) from err
            (staging / ADAPTER_CONFIG).write_text(json.dumps(config, indent=2) + "\n")
            (staging / MODEL_CARD).write_text(card)
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
    others = sorted(p.name for p in out.iterdir() if p.name not in EXPORTED)
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
    problem = _pooling_problem(trial["model"], trial.get("pooling", "auto"), structure)
    if problem is not None:
        raise UserError(f"this run does not export: {problem}")


def _pooling_problem(model: str, pooling: str, structure: Structure) -> str | None:
    declared = registry.declared_pooling(model)
    return peft_pooling_problem(resolve_pooling(pooling, declared, structure))


def export_problem(model: str, method: str, pooling: str) -> str | None:
    """Why a run of ``method`` on ``model`` with ``pooling`` would not export to PEFT, found
    before training (the model on the meta device), or None."""
    if get_method(method).to_peft is None:
        return f"PEFT has no counterpart of {method!r} (exported: {_exported()})"
    structure = structure_of(meta_model(model, "classification", 2))
    return _pooling_problem(model, pooling, structure)


def _exported() -> str:
    return ", ".join(m for m in METHODS if get_method(m).to_peft)


def _base_name(model_name: str) -> str:
    """The base the adapter names: the model's hub id where petscale knows it (portable), else
    the local folder it was trained on."""
    folder = registry.weights_folder(model_name)
    if folder is None:
        raise UserError(
            f"no pretrained weights for {model_name!r} here: its delta was trained on a randomly "
            "initialised model, which a PEFT adapter cannot point to"
        )
    entry = registry.entries().get(model_name)
    return entry.hub_id if entry is not None else str(folder.resolve())


def model_card(run: SavedRun, config: dict[str, Any]) -> str:
    """The export's README.md: what was trained, the label names, how to load it in PEFT."""
    labels = list(run.task.labels) if run.task else []
    kept = run.metrics
    head = [m for m in config["modules_to_save"] if m in _head_modules(run)]
    frozen = [m for m in config["modules_to_save"] if m not in head]
    lines = [
        "---",
        f"base_model: {config['base_model_name_or_path']}",
        "library_name: peft",
        "---",
        f"# {run.method} on {run.task.name if run.task else run.trial['task']}",
        "",
        f"Trained with petscale (`{run.method}` {json.dumps(run.options)}), exported to PEFT "
        f"{config['peft_type']} ({config['task_type']}).",
        "",
        f"- trainable parameters: {_shown(kept.get('trainable_params'))} (method) + "
        f"{_shown(kept.get('head_params'))} (head); dev {kept.get('metric', 'score')}: "
        f"{_shown(kept.get('dev_score'))}; test: {_shown(kept.get('test_score'))}",
        f"- modules_to_save: {', '.join(config['modules_to_save']) or 'none'}"
        + (
            f" ({', '.join(frozen)}: drawn at random when the base loaded, as the checkpoint "
            "has none, and kept frozen by petscale; they travel so outputs match)"
            if frozen
            else ""
        ),
    ]
    if labels:
        id2label = {str(i): name for i, name in enumerate(labels)}
        lines += [f"- labels (id2label): `{json.dumps(id2label)}`"]
    lines += [
        "",
        "```python",
        "from peft import PeftModel",
        "from transformers import AutoModelForSequenceClassification, AutoTokenizer",
        "",
        f"base_id = {config['base_model_name_or_path']!r}",
    ]
    if config["task_type"] == "SEQ_CLS":
        lines += [
            f"labels = {labels!r}",
            "base = AutoModelForSequenceClassification.from_pretrained(",
            "    base_id, num_labels=len(labels), id2label=dict(enumerate(labels)),",
            "    label2id={name: i for i, name in enumerate(labels)})",
        ]
    else:
        auto = _AUTO_CLASSES[config["task_type"]]
        lines += [f"from transformers import {auto}", f"base = {auto}.from_pretrained(base_id)"]
    lines += [
        "model = PeftModel.from_pretrained(base, 'PATH/TO/THIS/FOLDER')",
        "tokenizer = AutoTokenizer.from_pretrained(base_id)",
        "```",
        "",
    ]
    return "\n".join(lines)


def _shown(value: Any) -> str:
    """A figure of the card: counts with separators, scores to four places, "n/a" if none."""
    if isinstance(value, bool) or value is None:
        return "n/a"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _head_modules(run: SavedRun) -> set[str]:
    return {name.rsplit(".", 1)[0] for name in run.head}


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
        raise UserError(f"PEFT has no counterpart of {run.method!r}; export {_exported()}")
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
