"""Seeds aggregated: mean, spread and a 95% t-interval per (model, task, structure, budget).

With one seed there is no spread to estimate, so the interval is the score plus or minus
``SINGLE_SEED_MARGIN`` (a stated margin, in score units), not a statistical interval.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

#: Half-width of the interval when a cell has one seed (score units: 0.02 = 2 points).
SINGLE_SEED_MARGIN = 0.02
GROUP = ["model", "task", "structure", "budget"]
# Two-sided 95% Student t quantiles t(0.975, df) for df = 1..30 (standard tables).
_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip


def t_quantile(df: int) -> float:
    """t(0.975, df); past the table, the Cornish-Fisher expansion around the normal 1.96."""
    if df < 1:
        raise ValueError("a t quantile needs df >= 1")
    if df <= len(_T975):
        return _T975[df - 1]
    z = 1.959964
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def interval(scores: np.ndarray | list[float]) -> tuple[float, float, float, int]:
    """(mean, std, half-width of the 95% interval, n) of one cell's scores, NaNs dropped."""
    values = np.asarray(scores, dtype=float)
    values = values[~np.isnan(values)]
    n = len(values)
    if n == 0:
        return math.nan, math.nan, math.nan, 0
    mean = float(values.mean())
    if n == 1:
        return mean, math.nan, SINGLE_SEED_MARGIN, 1
    std = float(values.std(ddof=1))
    return mean, std, t_quantile(n - 1) * std / math.sqrt(n), n


def aggregate(df: pd.DataFrame, score: str = "dev_score") -> pd.DataFrame:
    """Per (model, task, structure, budget): ``mean, std, n, ci_low, ci_high`` of ``score``
    over seeds, with the cell's method, task type, total params and random guess beside it."""
    rows = []
    for key, cell in df.groupby(GROUP, sort=True, dropna=False):
        mean, std, half, n = interval(cell[score])
        rows.append(
            {
                **dict(zip(GROUP, key, strict=False)),
                "method": cell["method"].iloc[0],
                "task_type": cell["task_type"].iloc[0],
                "total_params": cell["total_params"].max(),
                "random_guess": cell["random_guess"].mean(),
                "mean": mean,
                "std": std,
                "n": n,
                "ci_low": mean - half,
                "ci_high": mean + half,
            }
        )
    columns = [*GROUP, "method", "task_type", "total_params", "random_guess"]
    return pd.DataFrame(rows, columns=[*columns, "mean", "std", "n", "ci_low", "ci_high"])
