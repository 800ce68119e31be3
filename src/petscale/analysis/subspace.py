"""The subspace of learned deltas: spectra of dense weight deltas and principal angles
between the deltas of different methods, seeds and tasks on one model. Pure functions of the
matrices (and of the table's rows) given: reading the deltas off kept runs is
``petscale.deltas.subspace``'s.

A dense delta is what a method adds to a weight matrix, as a matrix of the weight's shape
(out, in) (``petscale.deltas.dense_deltas`` reads them, as each method declares).

Two deltas share a subspace when the top-k left singular vectors (the output directions they
write to) span nearby spaces: the cosines of the principal angles between them are near 1.
``subspace_pairs`` sets each pair's mean cosine against that of random subspaces of the same
dimension, which is what a "shared low-dimensional subspace" must beat.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping

import numpy as np
import pandas as pd
import torch

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


def subspace_pairs(
    trials: pd.DataFrame, deltas: Mapping[str, Mapping[str, torch.Tensor]], k: int = 4
) -> pd.DataFrame:
    """Every pair of ``trials`` (rows of the study's table) on one model, per weight both
    dense deltas have (``deltas``: trial id -> weight name -> dense delta): ``k`` used (at
    most either delta's rank), ``mean_cos`` of the principal angles, ``random_cos`` of random
    subspaces of that dimension, ``above_random`` (their difference), and ``differs`` (what
    sets the two trials apart)."""
    kept = trials[trials["trial_id"].isin(list(deltas))]
    baselines: dict[tuple[int, int], float] = {}
    rows = []
    for _, group in kept.groupby("model", sort=True):
        for (_, x), (_, y) in itertools.combinations(group.iterrows(), 2):
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
