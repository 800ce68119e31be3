"""Dense deltas read from kept run folders, and the subspace table of a study's kept deltas.

A dense delta is what a method adds to a weight matrix, as a matrix of the weight's shape
(out, in); the method declares what its trained tensors are (``methods.weight_delta``). For
methods whose layers add an update onto base weights (LoRA, APET with op add) it is read off
the loaded model: each such layer's ``weight_update()``. For full fine-tuning (the weights
trained in place) it is the trained weight minus the pretrained one. For the others
(adapters, prompts, APET plug/concat) the method's own 2-D tensors stand in: they are not
deltas of a base weight, so only their own spectra are meaningful.

The spectra and principal angles themselves are pure functions of the matrices:
``petscale.analysis.subspace``.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd
import torch

from petscale.analysis.subspace import subspace_pairs
from petscale.analysis.table import load_results
from petscale.methods import weight_delta
from petscale.run_folder import read_run
from petscale.study.store import trial_folder
from petscale.zoo.structure import is_transposed


def dense_deltas(run_folder: str | Path) -> dict[str, torch.Tensor]:
    """Weight name -> dense delta (float32, shape (out, in)) of the run saved at the folder."""
    run = read_run(run_folder)
    kind = weight_delta(run.method, run.options)
    if kind == "in place":
        return _full_deltas(run.trial, run.delta)
    if kind == "added":
        return _added_deltas(run_folder)
    return {name: t.float() for name, t in run.delta.items() if t.dim() == 2}


def _full_deltas(trial: dict, trained: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    from petscale.tasks import get_task
    from petscale.trial import normalize
    from petscale.zoo.loader import load_model

    cfg = normalize(trial)
    spec = get_task(cfg.task, **cfg.task_options).spec
    torch.manual_seed(cfg.seed)  # as the trial did: a model without weights is seeded
    base = dict(
        load_model(
            cfg.model, spec.kind, max(spec.num_labels, 1), cfg.random_init
        ).model.named_parameters()
    )
    return {
        name: (t.float() - base[name].detach().float())
        for name, t in trained.items()
        if t.dim() == 2 and name in base and base[name].shape == t.shape
    }


def _added_deltas(run_folder: str | Path) -> dict[str, torch.Tensor]:
    # each layer that adds an update onto a base weight says what it adds (``weight_update``)
    from petscale.api import load

    model, _ = load(run_folder)
    deltas = {}
    with torch.no_grad():
        for name, module in model.named_modules():
            update = getattr(module, "weight_update", None)
            if update is None:
                continue
            delta = update().float().cpu()
            if is_transposed(module.base):  # GPT-2's Conv1D stores (in, out)
                delta = delta.T
            if delta.abs().max() > 0:
                deltas[f"{name}.weight"] = delta
    return deltas


def subspace_table(
    folder: str | Path, k: int = 4, structures: Iterable[str] | None = None
) -> pd.DataFrame:
    """Every pair of kept trials of the study at ``folder`` on one model (of the
    ``structures`` given, or all), per weight both deltas have: the table
    ``analysis.subspace_pairs`` computes from their dense deltas."""
    results = load_results(folder)
    if structures is not None:
        results = results[results["structure"].isin(list(structures))]
    kept = [t for t in results["trial_id"] if (trial_folder(folder, t) / "trial.json").is_file()]
    deltas = {t: dense_deltas(trial_folder(folder, t)) for t in kept}
    return subspace_pairs(results, deltas, k)
