"""The subspace of learned deltas: spectra of dense weight deltas and principal angles
between the deltas of different methods, seeds and tasks on one model.

A dense delta is what a method adds to a weight matrix, as a matrix of the weight's shape
(out, in); the method declares what its trained tensors are (``methods.weight_delta``). For
methods whose layers add an update onto base weights (LoRA, APET with op add) it is read off
the loaded model: each such layer's ``weight_update()``. For full fine-tuning (the weights
trained in place) it is the trained weight minus the pretrained one. For the others
(adapters, prompts, APET plug/concat) the method's own 2-D tensors stand in: they are not
deltas of a base weight, so only their own spectra are meaningful.

Two deltas share a subspace when the top-k left singular vectors (the output directions they
write to) span nearby spaces: the cosines of the principal angles between them are near 1.
``subspace_table`` sets each pair's mean cosine against that of random subspaces of the same
dimension, which is what a "shared low-dimensional subspace" must beat.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from petscale.analysis.table import load_results
from petscale.methods import weight_delta
from petscale.run_folder import read_run
from petscale.study.store import trial_folder
from petscale.zoo.structure import is_transposed

#: Singular values below this fraction of the largest count as zero (numerical rank).
RANK_TOL = 1e-6
SUBSPACE_COLUMNS = [
    "model",
    "trial_a",
    "trial_b",
    *(f"{c}_{s}" for c in ("structure", "task", "seed") for s in "ab"),
    "differs",
    "weight",
    "k",
    "mean_cos",
    "random_cos",
]


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
    base = dict(load_model(cfg.model, spec.kind, max(spec.num_labels, 1)).model.named_parameters())
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


def _as_tensor(x: torch.Tensor | np.ndarray) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x).double()


def spectrum(delta: torch.Tensor | np.ndarray) -> np.ndarray:
    """Singular values divided by the largest (the first is 1; all zeros for a zero delta)."""
    s = torch.linalg.svdvals(_as_tensor(delta))
    return (s / s[0]).numpy() if s.numel() and s[0] > 0 else np.zeros(s.numel())


def numerical_rank(delta: torch.Tensor | np.ndarray) -> int:
    """How many singular values exceed ``RANK_TOL`` times the largest."""
    s = spectrum(delta)
    return int((s > RANK_TOL).sum())


def effective_rank(delta: torch.Tensor | np.ndarray) -> float:
    """exp of the entropy of the normalised singular values (Roy and Vetterli 2007): 1 for a
    rank-one matrix, the dimension for a matrix with a flat spectrum."""
    s = torch.linalg.svdvals(_as_tensor(delta))
    if not s.numel() or s.sum() <= 0:
        return 0.0
    p = s / s.sum()
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()))


def principal_angles(
    a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray, k: int
) -> np.ndarray:
    """The k principal angles (radians, ascending) between the top-k left singular subspaces
    of ``a`` and ``b`` (two matrices with the same number of rows)."""
    a, b = _as_tensor(a), _as_tensor(b)
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"principal angles need the same row count, got {a.shape} and {b.shape}")
    k = min(k, *a.shape, *b.shape)
    qa, _ = torch.linalg.qr(torch.linalg.svd(a, full_matrices=False).U[:, :k])
    qb, _ = torch.linalg.qr(torch.linalg.svd(b, full_matrices=False).U[:, :k])
    cosines = torch.linalg.svdvals(qa.T @ qb).clamp(0.0, 1.0)
    return np.sort(torch.arccos(cosines).numpy())


def random_cosine(n: int, k: int, draws: int = 8, seed: int = 0) -> float:
    """Mean cosine of the principal angles between two random k-dim subspaces of R^n."""
    generator = torch.Generator().manual_seed(seed)
    total = 0.0
    for _ in range(draws):
        a = torch.randn(n, k, generator=generator, dtype=torch.float64)
        b = torch.randn(n, k, generator=generator, dtype=torch.float64)
        total += float(np.cos(principal_angles(a, b, k)).mean())
    return total / draws


def subspace_table(
    folder: str | Path, k: int = 4, structures: Iterable[str] | None = None
) -> pd.DataFrame:
    """Every pair of kept trials on one model (of the ``structures`` given, or all), per
    weight both deltas have: ``k`` used (at most either delta's rank), ``mean_cos`` of the
    principal angles, ``random_cos`` of random subspaces of that dimension, and ``differs``
    (what sets the two trials apart)."""
    results = load_results(folder)
    if structures is not None:
        results = results[results["structure"].isin(list(structures))]
    kept = results[
        [trial_folder(folder, t).joinpath("trial.json").is_file() for t in results["trial_id"]]
    ]
    deltas = {t: dense_deltas(trial_folder(folder, t)) for t in kept["trial_id"]}
    baselines: dict[tuple[int, int], float] = {}
    rows = []
    for _, trials in kept.groupby("model", sort=True):
        for (_, x), (_, y) in itertools.combinations(trials.iterrows(), 2):
            da, db = deltas[x["trial_id"]], deltas[y["trial_id"]]
            differs = [c for c in ("structure", "budget", "task", "seed") if x[c] != y[c]]
            for weight in sorted(da.keys() & db.keys()):
                a, b = da[weight], db[weight]
                if a.shape != b.shape:
                    continue
                kk = min(k, numerical_rank(a), numerical_rank(b))
                if kk == 0:
                    continue
                if (a.shape[0], kk) not in baselines:
                    baselines[a.shape[0], kk] = random_cosine(a.shape[0], kk)
                rows.append(
                    {
                        "model": x["model"],
                        "trial_a": x["trial_id"],
                        "trial_b": y["trial_id"],
                        **{
                            f"{c}_{s}": r[c]
                            for c in ("structure", "task", "seed")
                            for s, r in (("a", x), ("b", y))
                        },
                        "differs": "+".join(differs) or "none",
                        "weight": weight,
                        "k": kk,
                        "mean_cos": float(np.cos(principal_angles(a, b, kk)).mean()),
                        "random_cos": baselines[a.shape[0], kk],
                    }
                )
    out = pd.DataFrame(rows, columns=SUBSPACE_COLUMNS)
    out["above_random"] = out["mean_cos"] - out["random_cos"]
    return out
