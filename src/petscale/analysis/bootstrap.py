"""Bootstrap replicates of a study's cells: over seeds, and over the eval examples.

A cell is one configuration at one budget; its trials differ only in seed. One replicate
draws the cell's seeds with replacement (as many as it has) and, for a metric that is a mean
over examples, redraws each drawn score as ``Binomial(n, score) / n`` with ``n`` the examples it
was scored on: the spread a bootstrap of the eval examples gives when they are independent
(exact for accuracy and exact match, an upper bound of the variance for token F1 and ROUGE-L).
So one seed still gets an interval, from its examples; a cell of one seed whose metric is not a
mean over examples (binary or macro F1) has none: its replicates are NaN. The intervals are
95% percentile intervals of the replicates.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

#: Replicates per analysis: the percentile interval's ends move by well under their width
#: between two sets of 1,000 draws.
DRAWS = 1000
#: Metrics that are means of a per-example score in [0, 1] (``petscale.tasks.metrics``).
PER_EXAMPLE = ("accuracy", "exact_match", "token_f1", "rouge_l")
LEVEL = 0.95


class Resampled:
    """Replicates of each cell's mean value: ``observed`` (cell -> mean over its trials) and
    ``draws`` (an array of ``DRAWS`` rows, one column per cell in ``cells``' order)."""

    def __init__(self, values: pd.DataFrame, draws: int = DRAWS, seed: int = 0) -> None:
        """``values``: one row per trial with ``cell``, ``value`` and optionally ``examples``
        (the examples its score was scored on) and ``metric``; NaN values are left out."""
        rng = np.random.default_rng(seed)
        values = values[pd.to_numeric(values["value"], errors="coerce").notna()]
        self.cells: list[str] = sorted(values["cell"].unique())
        self.index = {cell: i for i, cell in enumerate(self.cells)}
        self.observed = pd.Series(np.nan, index=self.cells, dtype=float)
        self.n = pd.Series(0, index=self.cells, dtype=int)
        self.draws = np.full((draws, len(self.cells)), np.nan)
        for cell, trials in values.groupby("cell", sort=True):
            x = trials["value"].to_numpy(dtype=float)
            examples = _examples(trials)
            self.observed[cell] = x.mean()
            self.n[cell] = len(x)
            if len(x) == 1 and examples is None:
                continue  # no spread to draw from: no interval
            chosen = rng.integers(0, len(x), size=(draws, len(x)))
            picked = x[chosen]
            if examples is not None:
                n = examples[chosen]
                picked = rng.binomial(n, np.clip(picked, 0.0, 1.0)) / n
            self.draws[:, self.index[cell]] = picked.mean(axis=1)

    def of(self, cell: str) -> np.ndarray:
        """The cell's replicates (NaN where the cell has none, or is not here)."""
        if cell not in self.index:
            return np.full(len(self.draws), np.nan)
        return self.draws[:, self.index[cell]]

    def mean(self, cell: str) -> float:
        return float(self.observed.get(cell, math.nan))


def _examples(trials: pd.DataFrame) -> np.ndarray | None:
    """Examples per trial when the metric is a mean over examples and every count is known."""
    if "examples" not in trials or "metric" not in trials:
        return None
    if not trials["metric"].isin(PER_EXAMPLE).all():
        return None
    n = pd.to_numeric(trials["examples"], errors="coerce").to_numpy(dtype=float)
    if not (np.isfinite(n).all() and (n >= 1).all()):
        return None
    return n.astype(np.int64)


def interval(replicates: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """The percentile interval of ``replicates``; (NaN, NaN) when more of them than the
    interval's tails are NaN (the data cannot say). Infinite values (a threshold the grid
    never reached) count as values: an interval may end at infinity."""
    r = np.asarray(replicates, dtype=float)
    missing = np.isnan(r).mean() if len(r) else 1.0
    if missing > (1 - level) / 2 or len(r) == 0:
        return math.nan, math.nan
    r = r[~np.isnan(r)]
    tail = (1 - level) / 2
    low = float(np.quantile(r, tail, method="inverted_cdf"))
    high = float(np.quantile(r, 1 - tail, method="inverted_cdf"))
    return low, high
