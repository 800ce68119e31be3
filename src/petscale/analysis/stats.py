"""Seeds aggregated per cell: mean, spread and a 95% bootstrap interval.

A cell is every setting of a trial but its seed (``table.from_records``: ``cell``), so two
configurations are never pooled as if they were seeds. The interval is the percentile interval
of the cell's bootstrap replicates (:mod:`petscale.analysis.bootstrap`: over seeds and over the
eval examples), so one seed gets an interval from its examples.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from petscale.analysis.bootstrap import DRAWS, Resampled, interval

#: What a cell's row shows beside its key: the keys are in ``table.from_records``.
DESCRIBE = ["model", "task", "structure", "budget"]


def trial_values(df: pd.DataFrame, score: str = "dev_score") -> pd.DataFrame:
    """The trials as the resampler takes them: cell, value, examples, metric."""
    examples = score.replace("_score", "_examples")
    return pd.DataFrame(
        {
            "cell": df["cell"],
            "value": df[score],
            "examples": df.get(examples, np.nan),
            "metric": df["metric"],
        }
    )


def aggregate(df: pd.DataFrame, score: str = "dev_score", draws: int = DRAWS) -> pd.DataFrame:
    """Per cell (model, task, structure, budget and every other setting but the seed):
    ``mean, std, n, ci_low, ci_high`` of ``score``, with the cell's method, task type, total
    params, random guess and keys (``series``, ``reference``) beside it."""
    resampled = Resampled(trial_values(df, score), draws)
    rows = []
    for cell, trials in df.groupby("cell", sort=False):
        scores = trials[score].dropna()
        low, high = interval(resampled.of(cell))
        rows.append(
            {
                **{key: trials[key].iloc[0] for key in DESCRIBE},
                "method": trials["method"].iloc[0],
                "task_type": trials["task_type"].iloc[0],
                "total_params": trials["total_params"].max(),
                "random_guess": trials["random_guess"].mean(),
                "mean": float(scores.mean()) if len(scores) else np.nan,
                "std": float(scores.std(ddof=1)) if len(scores) > 1 else np.nan,
                "n": len(scores),
                "ci_low": low,
                "ci_high": high,
                "cell": cell,
                "series": trials["series"].iloc[0],
                "reference": trials["reference"].iloc[0],
            }
        )
    columns = [*DESCRIBE, "method", "task_type", "total_params", "random_guess", "mean", "std"]
    out = pd.DataFrame(
        rows, columns=[*columns, "n", "ci_low", "ci_high", "cell", "series", "reference"]
    )
    return out.sort_values(DESCRIBE, kind="stable").reset_index(drop=True)
