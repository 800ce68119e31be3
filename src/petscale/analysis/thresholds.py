"""The low and high thresholds of trainable parameters (Su et al. 2023), per structure.

For one (model, task, structure) the seeds of each budget are aggregated
(:func:`petscale.analysis.stats.aggregate`), then, walking the budgets upwards:

* **low threshold**: the smallest budget whose lower 95% bound over seeds (with one seed:
  the score minus ``margin``) is above the random-guess score;
* **high threshold**: the smallest budget whose mean reaches full fine-tuning's mean minus
  ``tolerance`` (default 0.01: one point).

Each is interpolated linearly in log10(budget) between the last budget below the line and the
first one above it. ``*_bracketed`` is True when the grid has budgets on both sides; when the
smallest budget already passes, the threshold reported is that budget (an upper bound) and it
is not bracketed; when no budget passes it is NaN. A structure run at fewer than two budgets
has no threshold row. Structures are then compared on bracketed thresholds only (an
unbracketed one is a bound, not a location): the study claims the thresholds are about the
same whatever the structure; ``structure_agreement`` says whether they lie within
``AGREE_FACTOR`` of each other.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from petscale.analysis.curves import FIXED
from petscale.analysis.stats import SINGLE_SEED_MARGIN, aggregate

#: Thresholds of different structures "agree" when the largest is within this factor of the
#: smallest (log10(3) = 0.48 decades).
AGREE_FACTOR = 3.0
_COLUMNS = [
    "model",
    "task",
    "task_type",
    "structure",
    "total_params",
    "low",
    "high",
    "low_bracketed",
    "high_bracketed",
    "n_budgets",
    "n_seeds",
    "random_guess",
    "full_score",
]


def thresholds(
    df: pd.DataFrame,
    margin: float = SINGLE_SEED_MARGIN,
    tolerance: float = 0.01,
    score: str = "dev_score",
) -> pd.DataFrame:
    """Per (model, task, structure) with a budget grid: ``low, high`` (budgets, NaN if not
    reached), whether each is bracketed by the grid, seeds, random guess and full's score."""
    cells = aggregate(df[~df["method"].isin(FIXED)], score)
    full = df[df["method"] == "full"].groupby(["model", "task"])[score].mean()
    rows = []
    for (model, task, structure), grid in cells.groupby(["model", "task", "structure"]):
        grid = grid.sort_values("budget")
        grid = grid[grid["budget"] > 0]
        if len(grid) < 2:
            continue
        budgets = grid["budget"].to_numpy(dtype=float)
        single = grid["n"] == 1
        lower = np.where(single, grid["mean"] - margin, grid["ci_low"])
        random_guess = float(grid["random_guess"].mean())
        full_score = float(full.get((model, task), math.nan))
        low, low_ok = crossing(budgets, lower - random_guess, strict=True)
        high, high_ok = crossing(budgets, grid["mean"].to_numpy() - (full_score - tolerance))
        rows.append(
            {
                "model": model,
                "task": task,
                "task_type": grid["task_type"].iloc[0],
                "structure": structure,
                "total_params": grid["total_params"].max(),
                "low": low,
                "high": high,
                "low_bracketed": low_ok,
                "high_bracketed": high_ok,
                "n_budgets": len(grid),
                "n_seeds": int(grid["n"].min()),
                "random_guess": random_guess,
                "full_score": full_score,
            }
        )
    return pd.DataFrame(rows, columns=_COLUMNS)


def crossing(budgets: np.ndarray, margin: np.ndarray, strict: bool = False) -> tuple[float, bool]:
    """The smallest budget where ``margin`` turns positive (``>= 0`` unless ``strict``),
    interpolated in log10(budget); (NaN, False) if it never does, (first budget, False) if
    the first budget already passes."""
    passed = margin > 0 if strict else margin >= 0
    if np.isnan(margin).all() or not passed.any():
        return math.nan, False
    i = int(np.argmax(passed))
    if i == 0:
        return float(budgets[0]), False
    lo, hi = math.log10(budgets[i - 1]), math.log10(budgets[i])
    m0, m1 = float(margin[i - 1]), float(margin[i])
    if math.isnan(m0):
        return float(budgets[i]), True
    fraction = -m0 / (m1 - m0) if m1 != m0 else 1.0
    return float(10 ** (lo + fraction * (hi - lo))), True


def spread_decades(values: pd.Series | np.ndarray) -> float:
    """log10(max / min) of the finite positive values; NaN with fewer than two."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v) & (v > 0)]
    return float(np.log10(v.max() / v.min())) if len(v) >= 2 else math.nan


def located(thr_df: pd.DataFrame, side: str) -> pd.Series:
    """The ``low`` or ``high`` column with unbracketed thresholds set to NaN."""
    return thr_df[side].where(thr_df[f"{side}_bracketed"].astype(bool))


def structure_agreement(thr_df: pd.DataFrame) -> pd.DataFrame:
    """Per (model, task): the spread of the bracketed low and high thresholds across
    structures in decades, and whether each lies within ``AGREE_FACTOR`` (NaN spread: fewer
    than two structures to compare)."""
    limit = math.log10(AGREE_FACTOR)
    rows = []
    for (model, task), cell in thr_df.groupby(["model", "task"], sort=True):
        row = {"model": model, "task": task, "n_structures": cell["structure"].nunique()}
        for side in ("low", "high"):
            spread = spread_decades(located(cell, side))
            row[f"{side}_spread_decades"] = spread
            row[f"{side}_agree"] = None if math.isnan(spread) else bool(spread <= limit)
        rows.append(row)
    columns = ["model", "task", "n_structures", "low_spread_decades", "low_agree"]
    return pd.DataFrame(rows, columns=[*columns, "high_spread_decades", "high_agree"])
