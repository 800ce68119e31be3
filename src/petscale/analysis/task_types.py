"""Thresholds and gaps per task type: does one threshold serve sentiment, topic, intent ...?

Per type: the median bracketed low and high thresholds over its (model, task, structure) rows
and the
mean gap at default budgets. Across types: the spread of those medians in decades; one
threshold serves all types when the spread is within ``AGREE_FACTOR`` (as for structures).
"""

from __future__ import annotations

import math

import pandas as pd

from petscale.analysis.thresholds import AGREE_FACTOR, located, spread_decades

SIDES = ("low", "high")


def by_task_type(thr_df: pd.DataFrame, gaps_df: pd.DataFrame) -> pd.DataFrame:
    """Per task type: tasks, median bracketed low / high thresholds, mean default-budget gap,
    and the cross-type spread of the medians (``*_spread_decades``, ``one_low``, ``one_high``)."""
    default = gaps_df[gaps_df["budget_kind"] == "default"]
    medians = {side: located(thr_df, side).groupby(thr_df["task_type"]).median() for side in SIDES}
    rows = []
    for task_type in sorted(set(thr_df["task_type"]) | set(default["task_type"])):
        mine = default[default["task_type"] == task_type]
        tasks = set(thr_df.loc[thr_df["task_type"] == task_type, "task"]) | set(mine["task"])
        rows.append(
            {
                "task_type": task_type,
                "tasks": ", ".join(sorted(tasks)),
                **{f"{side}_median": medians[side].get(task_type, math.nan) for side in SIDES},
                "mean_gap": mine["gap"].mean() if mine["gap"].notna().any() else math.nan,
            }
        )
    columns = ["task_type", "tasks", "low_median", "high_median", "mean_gap"]
    out = pd.DataFrame(rows, columns=columns)
    limit = math.log10(AGREE_FACTOR)
    for side in SIDES:
        spread = spread_decades(out[f"{side}_median"])
        out[f"{side}_spread_decades"] = spread
        out[f"one_{side}"] = None if math.isnan(spread) else bool(spread <= limit)
    return out
