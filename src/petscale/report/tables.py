"""How a report shows a table's cells, the same in HTML and in the terminal."""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Any

import numpy as np
import pandas as pd

from petscale.results import COUNT_COLUMNS as RESULT_COUNTS

# Columns holding parameter counts or budgets: whole numbers with thousands separators.
COUNT_COLUMNS = {
    "low",
    "high",
    "budget",
    *RESULT_COUNTS,
    "adjacent_steps",
    "discrete_steps",
    "steps_to_fraction",
}
# Thresholds: an estimate, its 95% interval and the budgets that bracket it, or the bound the
# grid allows (``analysis.thresholds``: ``*_status``), at two significant figures.
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
    "floor",
    "floor_kind",
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
            if column in THRESHOLDS and f"{column}_status" in df.columns:
                line[i] = threshold(record, column)
        body.append(line)
    return shown, body


def significant(value: Any, signed: bool = False) -> str:
    """``value`` at two significant figures, trailing zeros kept (2,300; 0.050; -1.0); an
    explicit + if ``signed``; ∞ for infinity, an en dash for a missing value."""
    if _missing(value):
        return "–"
    value = float(value)
    sign = "-" if value < 0 else ("+" if signed and value > 0 else "")
    if math.isinf(value):
        return f"{sign}∞"
    if value == 0:
        return "0"
    digits = 1 - math.floor(math.log10(abs(value)))
    rounded = round(abs(value), digits)
    if rounded and math.floor(math.log10(rounded)) > math.floor(math.log10(abs(value))):
        digits -= 1  # 9.96 rounds to 10: still two figures, not three
    return f"{sign}{rounded:,.{max(digits, 0)}f}"


def threshold(record: dict[str, Any], side: str) -> str:
    """One threshold of a ``thresholds`` row as text: the estimate, its 95% interval and the
    budgets that bracket it (``between``), or what the grid allows instead."""
    status = record.get(f"{side}_status")
    ci_low, ci_high = record.get(f"{side}_ci_low"), record.get(f"{side}_ci_high")
    ci = f"95% CI {significant(ci_low)} to {significant(ci_high)}"
    if _missing(ci_low) or _missing(ci_high):
        ci = "95% CI n/a"
    if status == "bracketed":
        below, above = significant(record[f"{side}_below"]), significant(record[f"{side}_above"])
        return f"{significant(record[side])} ({ci}; between {below} and {above})"
    if status == "at or below the grid":
        # The grid's smallest budget already passes: the threshold is at most that.
        return f"≤ {significant(record[f'{side}_above'])} (at or below the grid; {ci})"
    if status == "not reached":
        return f"> {significant(record[f'{side}_below'])} (not reached; {ci})"
    return "no line (no floor or no full fine-tuning to cross)"


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def effect_text(finding: Any) -> str:
    """What a finding's verdict rests on: ``effect E UNIT (95% CI L to H, n=N)`` at two
    significant figures ('' without a case); the page and the terminal show it after the
    verdict: ``inconclusive — effect -1.0 points ... (95% CI -3.2 to +1.4, n=2)``."""
    if not finding.n or _missing(finding.effect):
        return ""
    low, high = (significant(v, signed=True) for v in (finding.ci_low, finding.ci_high))
    interval = "95% CI n/a" if "–" in (low, high) else f"95% CI {low} to {high}"
    return (
        f"effect {significant(finding.effect, signed=True)} {finding.unit} "
        f"({interval}, n={finding.n})"
    )
