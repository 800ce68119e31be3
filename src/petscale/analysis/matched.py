"""Methods compared at matched trainable parameters, the mismatch stated.

The grid's budgets K are where APET (or any structure swept over budgets) ran. A PET method at
its own default size (LoRA's 73,728 on MiniLM-L6, say) rarely sits exactly on the grid: it
joins the comparison at the grid's nearest budget in log10, and ``mismatch`` says how far off
it is (its budget / K: 1 is an exact match). Nothing drops out silently: every tuned cell is a
row, at its own K when it is on the grid.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from petscale.analysis.floors import FIXED
from petscale.analysis.thresholds import full_cell

COLUMNS = ["model", "task", "budget", "structure", "own_budget", "mismatch", "mean"]
COLUMNS += ["ci_low", "ci_high", "n", "full_score", "gap"]


def matched_comparison(cells: pd.DataFrame) -> pd.DataFrame:
    """Per (model, task): every tuned cell (``stats.aggregate``'s rows) at the grid budget
    nearest its own, with the mismatch and the gap to full fine-tuning of its reference."""
    rows = []
    tuned = cells[~cells["method"].isin(FIXED) & (cells["budget"] > 0)]
    for (model, task), cell in tuned.groupby(["model", "task"], sort=True):
        # the grid: budgets of the series swept over several (all budgets if none is)
        swept = cell.groupby("series")["budget"].nunique()
        on_grid = cell[cell["series"].isin(swept[swept >= 2].index)]
        grid = np.array(sorted(set((on_grid if len(on_grid) else cell)["budget"])), dtype=float)
        for _, row in cell.iterrows():
            own = float(row["budget"])
            nearest = float(grid[np.argmin(np.abs(np.log10(grid) - math.log10(own)))])
            full = full_cell(cells, row["reference"], model, task)
            full_score = (
                float(cells.loc[cells["cell"] == full, "mean"].iloc[0]) if full else math.nan
            )
            rows.append(
                {
                    "model": model,
                    "task": task,
                    "budget": nearest,
                    "structure": row["structure"],
                    "own_budget": own,
                    "mismatch": own / nearest,
                    "mean": row["mean"],
                    "ci_low": row["ci_low"],
                    "ci_high": row["ci_high"],
                    "n": row["n"],
                    "full_score": full_score,
                    "gap": full_score - row["mean"],
                }
            )
    out = pd.DataFrame(rows, columns=COLUMNS)
    return out.sort_values(["model", "task", "budget", "structure"]).reset_index(drop=True)
