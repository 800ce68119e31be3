"""Score against trainable parameters, and the reference lines a plot of it needs."""

from __future__ import annotations

import math

import pandas as pd

from petscale.analysis.stats import aggregate

#: Methods with a fixed size: reference lines, not points on a budget curve.
FIXED = ("full", "probe")


def score_vs_params(df: pd.DataFrame, score: str = "dev_score") -> pd.DataFrame:
    """Per (model, task, structure, budget): the seed aggregate and the model's total params."""
    return aggregate(df, score)


def reference_lines(df: pd.DataFrame, score: str = "dev_score") -> pd.DataFrame:
    """Per (model, task): the mean ``full`` and ``probe`` scores and random guessing (NaN if
    absent)."""
    rows = []
    for (model, task), cell in df.groupby(["model", "task"], sort=True):
        rows.append(
            {
                "model": model,
                "task": task,
                "total_params": cell["total_params"].max(),
                **{m: _mean(cell.loc[cell["method"] == m, score]) for m in FIXED},
                "random_guess": _mean(cell["random_guess"]),
            }
        )
    return pd.DataFrame(rows, columns=["model", "task", "total_params", *FIXED, "random_guess"])


def _mean(values: pd.Series) -> float:
    values = values.dropna()
    return float(values.mean()) if len(values) else math.nan
