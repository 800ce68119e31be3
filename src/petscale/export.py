"""Export a saved delta to another library's format: a PEFT adapter folder.

Input: a folder ``petscale tune --out`` wrote (delta.safetensors, delta.json, trial.json).
Output: adapter_config.json + adapter_model.safetensors, which
``PeftModel.from_pretrained(<base model>, OUT)`` loads with the same outputs. LoRA exports
for every family; prompt tuning for encoders and for decoders without a head (PEFT puts the
soft tokens on T5's decoder too, and pools GPT-2/BLOOM classifiers differently). A head that
read the mean of the text (``--pooling mean``) has no PEFT counterpart: such runs are refused.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from petscale.errors import UserError
from petscale.pooling import resolve_pooling
from petscale.run_folder import read_run
from petscale.zoo import registry
from petscale.zoo.loader import meta_model
from petscale.zoo.structure import Structure, structure_of

FORMATS = ("peft",)

_TASK_TYPES = {"encoder-decoder": "SEQ_2_SEQ_LM", "decoder": "CAUSAL_LM"}


def export(folder: str | Path, out: str | Path, format: str = "peft") -> Path:
    """Write the delta saved in ``folder`` to ``out`` in ``format``; returns ``out``."""
    if format not in FORMATS:
        raise UserError(f"unknown --format {format!r}; formats: {', '.join(FORMATS)}")
    folder, out = Path(folder), Path(out)
    run = read_run(folder)
    model_name = run.trial["model"]
    structure = _structure(model_name, run.head)
    _require_cls_pooling(run.trial, structure)
    config, weights = _peft_adapter(run.method, run.options, run.delta, run.head, structure)
    config["base_model_name_or_path"] = str(_base_folder(model_name))
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in weights.items()}, out / "adapter_model.safetensors")
    (out / "adapter_config.json").write_text(json.dumps(config, indent=2) + "\n")
    return out


def _structure(model_name: str, head: dict[str, torch.Tensor]) -> Structure:
    """The model's structure on the meta device, with a head of the saved head's width."""
    kind = "classification"
    labels = next((v.shape[0] for k, v in head.items() if k.endswith("weight")), 2)
    return structure_of(meta_model(model_name, kind, labels))


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
    method: str,
    options: dict[str, Any],
    own: dict[str, torch.Tensor],
    head: dict[str, torch.Tensor],
    structure: Structure,
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """PEFT's adapter config and its tensors under PEFT's key names."""
    head_modules = structure.modules("head") if head else []
    task_type = "SEQ_CLS" if head else _TASK_TYPES.get(structure.kind)
    if task_type is None:
        raise UserError("an encoder delta without a trained head has no PEFT task type")
    common = {"task_type": task_type, "modules_to_save": head_modules, "inference_mode": True}
    if method == "lora":
        targets = sorted({k.rsplit(".", 1)[0] for k in own})
        config = {
            "peft_type": "LORA",
            **common,
            "r": options["rank"],
            "lora_alpha": options["alpha"],
            "lora_dropout": options["dropout"],
            "target_modules": targets,
            "fan_in_fan_out": structure.family == "gpt2",  # Conv1D stores (in, out)
            "bias": "none",
        }
        prefix = "base_model.model."
        weights = {f"{prefix}{k}.weight": v for k, v in own.items()}
    elif method == "prompt":
        if structure.kind == "encoder-decoder" or (structure.kind == "decoder" and head):
            raise UserError(
                "PEFT's prompt tuning differs from petscale's on T5 (it also prompts the "
                "decoder) and on decoder classifiers (it pools another token): not exported"
            )
        prompt = own["soft_prompt"]
        config = {
            "peft_type": "PROMPT_TUNING",
            **common,
            "num_virtual_tokens": prompt.shape[0],
            "token_dim": prompt.shape[1],
            "num_transformer_submodules": 1,
        }
        prefix = "base_model."  # PEFT wraps prompt-learning models one level less deep
        weights = {"prompt_embeddings": prompt}
    else:
        raise UserError(f"PEFT has no counterpart of petscale's {method!r}; export lora or prompt")
    weights.update({f"{prefix}{k}": v for k, v in head.items()})
    return config, weights
