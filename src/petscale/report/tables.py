"""How a report shows a table's cells, the same in HTML and in the terminal."""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Any

import numpy as np
import pandas as pd

# Columns holding parameter counts or budgets: whole numbers with thousands separators.
COUNT_COLUMNS = {
    "low",
    "high",
    "budget",
    "total_params",
    "trainable_params",
    "head_params",
    "adjacent_steps",
    "discrete_steps",
    "steps_to_fraction",
}
# Thresholds: where the grid does not bracket one, the value is a bound, and it says so.
THRESHOLDS = ("low", "high")
# Columns holding differences: an explicit sign says which way they go.
SIGNED_COLUMNS = {"gap", "slope"}
# Whole numbers that name something (a seed), not count it: no thousands separators.
LABEL_COLUMNS = {"seed"}
# Columns holding times in seconds: a tenth of a second is precise enough.
SECONDS_COLUMNS = {"seconds"}

# The columns each table shows, in order (the CSV files keep every column).
THRESHOLD_COLUMNS = (
    "model",
    "task",
    "structure",
    "low",
    "high",
    "n_seeds",
    "random_guess",
    "full_score",
)
GAP_COLUMNS = (
    "model",
    "total_params",
    "task",
    "structure",
    "budget_kind",
    "budget",
    "score",
    "full_score",
    "gap",
)


def cell(column: str, value: Any) -> str:
    """One table cell as text; a missing value is an en dash."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, Integral):
        return str(int(value)) if column in LABEL_COLUMNS else f"{int(value):,}"
    if isinstance(value, Real):
        value = float(value)
        if column in COUNT_COLUMNS:
            return f"{value:,.0f}"
        if column in SIGNED_COLUMNS:
            return f"{value:+.4f}"
        if column in SECONDS_COLUMNS:
            return f"{value:,.1f}"
        return f"{value:.4f}" if abs(value) < 100 else f"{value:,.1f}"
    return str(value)


def rows(
    df: pd.DataFrame, columns: tuple[str, ...] | None = None
) -> tuple[list[str], list[list[str]]]:
    """The header and the formatted cells of ``df`` (only ``columns``, in order, if given)."""
    shown = [c for c in columns if c in df.columns] if columns else list(df.columns)
    body = []
    for record in df.to_dict("records"):  # per-column types kept: an int stays an int
        line = [cell(c, record[c]) for c in shown]
        for i, column in enumerate(shown):
            if column in THRESHOLDS and f"{column}_bracketed" in df.columns:
                line[i] = _threshold(line[i], bool(record[f"{column}_bracketed"]))
        body.append(line)
    return shown, body


def _threshold(text: str, bracketed: bool) -> str:
    if text == "–":
        return "not reached"
    # Unbracketed: the grid's smallest budget already passes; the threshold is at most that.
    return text if bracketed else f"≤ {text}"
