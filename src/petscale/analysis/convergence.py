"""How fast a trial converges: steps to a fraction of its best dev score, area under its curve.

``steps_to_fraction``: the first evaluated step whose dev score reaches ``fraction`` (0.9) of
the trial's best. ``auc``: the trapezoid area under the dev curve divided by the steps it spans,
so a mean score in score units (higher: good sooner). APET's two patterns are compared at equal
budget: fewer steps to the fraction is faster, a tie goes to the higher auc.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

_KEYS = ["trial_id", "model", "task", "structure", "budget", "seed", "cell", "reference"]


def convergence(df: pd.DataFrame, fraction: float = 0.9) -> pd.DataFrame:
    """Per trial with a curve: ``best, steps_to_fraction, auc``."""
    rows = []
    for _, trial in df.iterrows():
        points = [(s, v) for s, v in trial["curve"] if v is not None and not math.isnan(v)]
        if not points:
            continue
        steps = np.array([s for s, _ in points], dtype=float)
        scores = np.array([v for _, v in points], dtype=float)
        best = float(scores.max())
        reached = int(np.argmax(scores >= fraction * best))
        span = steps[-1] - steps[0]
        area = float(((scores[1:] + scores[:-1]) / 2 * np.diff(steps)).sum())
        auc = area / span if span > 0 else float(scores[-1])
        rows.append(
            {
                **{key: trial[key] for key in _KEYS},
                "best": best,
                "steps_to_fraction": float(steps[reached]),
                "auc": auc,
            }
        )
    return pd.DataFrame(rows, columns=[*_KEYS, "best", "steps_to_fraction", "auc"])


def pattern_speed(conv_df: pd.DataFrame) -> pd.DataFrame:
    """APET adjacent vs discrete at equal (model, task, budget), means over seeds: steps to
    the fraction and auc of each, and which is ``faster`` (adjacent, discrete or tie)."""
    columns = ["model", "task", "budget", "adjacent_steps", "discrete_steps"]
    columns += ["adjacent_auc", "discrete_auc", "faster"]
    patterns = ["apet-adjacent", "apet-discrete"]
    apet = conv_df[conv_df["structure"].isin(patterns)]
    if set(apet["structure"]) != set(patterns):  # nothing to compare without both patterns
        return pd.DataFrame(columns=columns)
    means = (
        apet.groupby(["model", "task", "budget", "structure"])[["steps_to_fraction", "auc"]]
        .mean()
        .unstack("structure")
        .dropna()
    )
    rows = []
    for (model, task, budget), cell in means.iterrows():
        adj_steps, dis_steps = (
            cell[("steps_to_fraction", "apet-adjacent")],
            cell[("steps_to_fraction", "apet-discrete")],
        )
        adj_auc, dis_auc = cell[("auc", "apet-adjacent")], cell[("auc", "apet-discrete")]
        if adj_steps != dis_steps:
            faster = "adjacent" if adj_steps < dis_steps else "discrete"
        elif adj_auc != dis_auc:
            faster = "adjacent" if adj_auc > dis_auc else "discrete"
        else:
            faster = "tie"
        rows.append(
            {
                "model": model,
                "task": task,
                "budget": budget,
                "adjacent_steps": adj_steps,
                "discrete_steps": dis_steps,
                "adjacent_auc": adj_auc,
                "discrete_auc": dis_auc,
                "faster": faster,
            }
        )
    return pd.DataFrame(rows, columns=columns)
