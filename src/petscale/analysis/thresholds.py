"""The low and high thresholds of trainable parameters (Su et al. 2023), per series.

A series is one structure on one (model, task) with every other setting fixed, run at several
budgets (``table.from_records``: ``series``). On its seed-mean curve, walking the budgets up:

* **low threshold**: where the curve first rises above the floor (``floors``: the larger of the
  eval set's majority-class share and the untuned model's score, mean over the seeds);
* **high threshold**: where the curve first reaches full fine-tuning's mean minus
  ``tolerance`` (one point), full fine-tuning of the same reference (model, task, head,
  pooling, max length, eval limit).

Each is interpolated linearly in log10(budget) between the last budget below the line and the
first above it. Its 95% interval is the percentile interval of the same crossing on bootstrap
replicates (:mod:`petscale.analysis.bootstrap`) in which the curve, the floor and full
fine-tuning are all redrawn, so full fine-tuning's own noise widens the high threshold's
interval. ``status``: ``bracketed`` (budgets on both sides), ``at or below the grid`` (the
smallest budget already passes: the threshold is at most that budget) or ``not reached``
(above the grid). A replicate at or below the grid counts as the smallest budget, one not
reached as infinity, so an interval can say "at most b1" or "more than the largest budget".
A series with fewer than two budgets has no row.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from petscale.analysis.bootstrap import DRAWS, Resampled, interval
from petscale.analysis.floors import FIXED, floor_cell, floor_rows
from petscale.analysis.stats import aggregate, trial_values
from petscale.methods import reference_method

#: Thresholds of different structures (or tasks) "agree" when the largest is within this
#: factor of the smallest (log10(3) = 0.48 decades).
AGREE_FACTOR = 3.0
#: The high threshold: within this much of full fine-tuning (score units: one point).
TOLERANCE = 0.01
SIDES = ("low", "high")
BRACKETED, BELOW, NOT_REACHED = "bracketed", "at or below the grid", "not reached"
UNKNOWN = "no line"  # no floor or no full fine-tuning to cross
_COLUMNS = ["model", "task", "task_type", "structure", "total_params", "n_budgets", "n_seeds"]
_COLUMNS += ["floor", "floor_kind", "full_score", "random_guess"]
for _side in SIDES:
    _COLUMNS += [_side, f"{_side}_ci_low", f"{_side}_ci_high", f"{_side}_status"]
    _COLUMNS += [f"{_side}_below", f"{_side}_above", f"{_side}_bracketed"]
_COLUMNS += ["series", "reference"]


@dataclass
class ThresholdDraws:
    """The thresholds table and, per series, each threshold's bootstrap replicates (budgets;
    the smallest budget for one at or below the grid, inf for one not reached)."""

    table: pd.DataFrame
    draws: dict[str, dict[str, np.ndarray]]  # series -> side -> replicates


def thresholds(
    df: pd.DataFrame,
    tolerance: float = TOLERANCE,
    score: str = "dev_score",
    draws: int = DRAWS,
) -> pd.DataFrame:
    """Per series with a budget grid: each threshold's estimate, 95% interval, status and the
    budgets that bracket it; the floor (and what it is), full fine-tuning's score."""
    return threshold_draws(df, tolerance, score, draws).table


def resampled_cells(df: pd.DataFrame, score: str = "dev_score", draws: int = DRAWS) -> Resampled:
    """The trials' cells and each reference's floor, redrawn together."""
    floors = floor_rows(df, score)
    floor_values = pd.DataFrame(
        {
            "cell": floors["reference"].map(floor_cell),
            "value": floors["value"],
            "examples": floors["examples"],
            "metric": floors["metric"],
        }
    )
    return Resampled(pd.concat([trial_values(df, score), floor_values]), draws)


def full_cell(table: pd.DataFrame, reference: str, model: str, task: str) -> str | None:
    """Full fine-tuning's cell for a reference: the one under the same reference, else any on
    the same (model, task); among several, the one with the most seeds (then the first id).
    ``table``: a row per cell (with its seed count ``n``) or a row per trial."""
    full = table[table["method"] == reference_method()]
    mine = full[full["reference"] == reference]
    if mine.empty:
        mine = full[(full["model"] == model) & (full["task"] == task)]
    if mine.empty:
        return None
    seeds = mine.groupby("cell")["n"].sum() if "n" in mine else mine.groupby("cell").size()
    ranked = seeds.reset_index(name="seeds").sort_values(["seeds", "cell"], ascending=[False, True])
    return str(ranked["cell"].iloc[0])


def threshold_draws(
    df: pd.DataFrame,
    tolerance: float = TOLERANCE,
    score: str = "dev_score",
    draws: int = DRAWS,
    resampled: Resampled | None = None,
    cells: pd.DataFrame | None = None,
) -> ThresholdDraws:
    """:func:`thresholds` with each threshold's replicates, for the findings' intervals
    (``resampled`` and ``cells``, the ``aggregate``, where the caller has them already)."""
    resampled = resampled or resampled_cells(df, score, draws)
    cells = aggregate(df, score, draws) if cells is None else cells
    floors = floor_rows(df, score).groupby("reference")["kind"].agg(_commonest)
    rows, replicates = [], {}
    tuned = cells[~cells["method"].isin(FIXED) & (cells["budget"] > 0)]
    for series, grid in tuned.groupby("series", sort=False):
        grid = grid.sort_values("budget")
        if len(grid) < 2:
            continue
        first = grid.iloc[0]
        reference = first["reference"]
        budgets = grid["budget"].to_numpy(dtype=float)
        curve = grid["mean"].to_numpy(dtype=float)
        curve_draws = np.stack([resampled.of(c) for c in grid["cell"]], axis=1)
        floor = resampled.mean(floor_cell(reference))
        floor_draws = resampled.of(floor_cell(reference))
        full = full_cell(cells, reference, first["model"], first["task"])
        full_score = resampled.mean(full) if full else math.nan
        full_draws = resampled.of(full) if full else np.full(len(curve_draws), np.nan)
        lines = {
            "low": (floor, floor_draws, True),
            "high": (full_score - tolerance, full_draws - tolerance, False),
        }
        row = {
            "model": first["model"],
            "task": first["task"],
            "task_type": first["task_type"],
            "structure": first["structure"],
            "total_params": grid["total_params"].max(),
            "n_budgets": len(grid),
            "n_seeds": int(grid["n"].min()),
            "floor": floor,
            "floor_kind": floors.get(reference, "random guess"),
            "full_score": full_score,
            "random_guess": float(grid["random_guess"].mean()),
            "series": series,
            "reference": reference,
        }
        replicates[series] = {}
        for side, (line, line_draws, strict) in lines.items():
            value, status, below, above = crossing(budgets, curve - line, strict)
            reps = crossings(budgets, curve_draws - line_draws[:, None], strict)
            low, high = interval(reps)
            replicates[series][side] = reps
            row |= {
                side: value,
                f"{side}_ci_low": low,
                f"{side}_ci_high": high,
                f"{side}_status": status,
                f"{side}_below": below,
                f"{side}_above": above,
                f"{side}_bracketed": status == BRACKETED,
            }
        rows.append(row)
    return ThresholdDraws(pd.DataFrame(rows, columns=_COLUMNS), replicates)


def crossing(
    budgets: np.ndarray, margin: np.ndarray, strict: bool = False
) -> tuple[float, str, float, float]:
    """Where ``margin`` first turns positive (``> 0`` if ``strict``, else ``>= 0``),
    interpolated in log10(budget): (threshold, status, budget below, budget above); NaN and
    ``not reached`` when it never does, NaN and ``no line`` when the margin is unknown."""
    value = crossings(budgets, margin[None, :], strict)[0]
    if math.isnan(value):
        return math.nan, UNKNOWN, math.nan, math.nan
    if math.isinf(value):
        return math.nan, NOT_REACHED, float(budgets[-1]), math.nan
    passed = margin > 0 if strict else margin >= 0
    i = int(np.argmax(passed))
    if i == 0:
        return value, BELOW, math.nan, float(budgets[0])
    return value, BRACKETED, float(budgets[i - 1]), float(budgets[i])


def crossings(budgets: np.ndarray, margins: np.ndarray, strict: bool = False) -> np.ndarray:
    """:func:`crossing` for each row of ``margins`` (replicates x budgets), vectorised: the
    smallest budget where one already passes, inf where none passes, NaN where unknown."""
    margins = np.asarray(margins, dtype=float)
    unknown = np.isnan(margins).any(axis=1)
    passed = margins > 0 if strict else margins >= 0
    reached = passed.any(axis=1)
    i = np.argmax(passed, axis=1)
    logs = np.log10(budgets)
    prev = np.maximum(i - 1, 0)
    rows = np.arange(len(margins))
    m0, m1 = margins[rows, prev], margins[rows, i]
    with np.errstate(invalid="ignore", divide="ignore"):
        fraction = np.where(m1 != m0, -m0 / (m1 - m0), 1.0)
    log_value = np.where(i == 0, logs[0], logs[prev] + fraction * (logs[i] - logs[prev]))
    out = np.where(reached, 10**log_value, np.inf)
    return np.where(unknown, np.nan, out)


def spread_decades(values: pd.Series | np.ndarray) -> float:
    """log10(max / min) of the finite positive values; NaN with fewer than two."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v) & (v > 0)]
    return float(np.log10(v.max() / v.min())) if len(v) >= 2 else math.nan


def located(thr_df: pd.DataFrame, side: str) -> pd.Series:
    """The ``low`` or ``high`` column with thresholds not bracketed by the grid set to NaN."""
    return thr_df[side].where(thr_df[f"{side}_bracketed"].astype(bool))


def structure_agreement(thr_df: pd.DataFrame) -> pd.DataFrame:
    """Per (model, task): the spread of the bracketed low and high thresholds across
    structures in decades, and whether each lies within ``AGREE_FACTOR`` (NaN spread: fewer
    than two structures to compare). A point estimate for the tables; the finding
    ``thresholds_alike`` judges it with its interval."""
    limit = math.log10(AGREE_FACTOR)
    rows = []
    for (model, task), cell in thr_df.groupby(["model", "task"], sort=True):
        row = {"model": model, "task": task, "n_structures": cell["structure"].nunique()}
        for side in SIDES:
            spread = spread_decades(located(cell, side))
            row[f"{side}_spread_decades"] = spread
            row[f"{side}_agree"] = None if math.isnan(spread) else bool(spread <= limit)
        rows.append(row)
    columns = ["model", "task", "n_structures", "low_spread_decades", "low_agree"]
    return pd.DataFrame(rows, columns=[*columns, "high_spread_decades", "high_agree"])


def _commonest(kinds: pd.Series) -> str:
    return str(kinds.mode().iloc[0]) if len(kinds) else "random guess"
