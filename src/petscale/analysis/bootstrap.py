"""Replicates of a study's cells (a parametric bootstrap): over seeds, and over eval examples.

A cell is one configuration at one budget; its trials differ only in seed. One replicate of a
cell's mean is

    mean + s / sqrt(n) * T(n - 1) + (Binomial(N, mean) / N - mean)

with n seeds of sample standard deviation s, T a Student t draw (so the seed part alone gives
the t-interval, whose coverage holds for two or three seeds where resampling seeds with
replacement is far too narrow), and, for a metric that is a mean over examples scored on N
examples, the spread of redrawing those examples (exact for accuracy and exact match, an upper
bound of the variance for token F1 and ROUGE-L). Every seed is scored on the same examples, so
that part is counted once. One seed has no seed part: its interval is the eval examples' alone
and leaves out the seed-to-seed spread, which is why a finding needs two seeds or more per
cell (``findings``). One seed of a metric that is not a mean over examples (binary or macro
F1) has no interval: its replicates are NaN. Intervals are 95% percentile intervals.
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
            mean = float(x.mean())
            self.observed[cell] = mean
            self.n[cell] = len(x)
            if len(x) == 1 and examples is None:
                continue  # no spread to draw from: no interval
            replicate = np.full(draws, mean)
            if len(x) >= 2:
                half = float(x.std(ddof=1)) / math.sqrt(len(x))
                replicate += half * rng.standard_t(len(x) - 1, size=draws)
            if examples is not None:
                n = int(round(examples.mean()))
                replicate += rng.binomial(n, min(max(mean, 0.0), 1.0), size=draws) / n - mean
            self.draws[:, self.index[cell]] = replicate

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
