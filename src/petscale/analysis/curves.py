"""Score against trainable parameters, and the reference lines a plot of it needs."""

from __future__ import annotations

import math

import pandas as pd

from petscale.analysis.floors import FIXED, floor_rows
from petscale.analysis.stats import aggregate

__all__ = ["FIXED", "reference_lines", "score_vs_params"]


def score_vs_params(df: pd.DataFrame, score: str = "dev_score") -> pd.DataFrame:
    """Per cell: the seed aggregate and the model's total params."""
    return aggregate(df, score)


def reference_lines(df: pd.DataFrame, score: str = "dev_score") -> pd.DataFrame:
    """Per (model, task): the mean ``full`` and ``probe`` scores, the floor (mean over the
    references' seeds; ``floors``) with its parts, and random guessing (NaN if absent)."""
    floors = floor_rows(df, score)
    rows = []
    for (model, task), cell in df.groupby(["model", "task"], sort=True):
        mine = floors[(floors["model"] == model) & (floors["task"] == task)]
        rows.append(
            {
                "model": model,
                "task": task,
                "total_params": cell["total_params"].max(),
                **{m: _mean(cell.loc[cell["method"] == m, score]) for m in ("full", "probe")},
                "floor": _mean(mine["value"]),
                "majority": _mean(mine["majority"]),
                "untuned": _mean(mine["untuned"]),
                "random_guess": _mean(cell["random_guess"]),
            }
        )
    columns = ["model", "task", "total_params", "full", "probe", "floor", "majority", "untuned"]
    return pd.DataFrame(rows, columns=[*columns, "random_guess"])


def _mean(values: pd.Series) -> float:
    values = pd.to_numeric(values, errors="coerce").dropna()
    return float(values.mean()) if len(values) else math.nan
