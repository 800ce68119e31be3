"""The gap of each method to full fine-tuning, and its direction as models grow.

``gap = full_score - score`` in score units (0.01 = one point), both means over seeds: the
method's per cell (its trials that differ only in seed, ``table.from_records``), full
fine-tuning's under the same reference (model, task, head, pooling, max length, eval limit;
any full fine-tuning of the model and task where that reference has none). ``budget_kind``
is ``default`` for a method at its own default size (no budget option) and ``matched`` for a
budget that at least two structures ran at on the same model and task, so that methods are
compared at equal trainable parameters. A row may be both.
The trend is the least-squares slope of a structure's gap (mean over its budgets of that
kind) against log10 of the model's parameter count: negative means the gap shrinks with scale.
Matched budgets are averaged over the budgets every model of the series ran at, so that a model
run at fewer budgets (a partial grid) is compared on the same budgets, not on easier ones.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from petscale.analysis.curves import FIXED
from petscale.analysis.thresholds import full_cell
from petscale.methods import reference_method

#: A slope smaller than this (score units per decade of model size: half a point) is "flat".
FLAT_SLOPE = 0.005
KINDS = ("default", "matched")
_GAP_COLUMNS = [
    "model",
    "total_params",
    "task",
    "task_type",
    "structure",
    "budget_kind",
    "budget",
    "score",
    "full_score",
    "gap",
    "n_seeds",
]


def gaps(df: pd.DataFrame, score: str = "dev_score") -> pd.DataFrame:
    """Per (model, total_params, task, structure, budget_kind, budget): score, full_score, gap."""
    rows = []
    for (model, task), cell in df.groupby(["model", "task"], sort=True):
        full = cell[cell["method"] == reference_method()]
        tuned = cell[~cell["method"].isin(FIXED)]
        structures_per_budget = tuned.groupby("budget")["structure"].nunique()
        matched = set(structures_per_budget[structures_per_budget >= 2].index)
        groups = tuned.groupby(["structure", "budget", "cell"], sort=True)
        for (structure, budget, _), runs in groups:
            flags = (bool(runs["default_budget"].any()), budget in matched)
            kinds = [kind for kind, yes in zip(KINDS, flags, strict=True) if yes]
            mean = float(runs[score].mean())
            full_score = _full_score(full, runs["reference"].iloc[0], score)
            for kind in kinds:
                rows.append(
                    {
                        "model": model,
                        "total_params": cell["total_params"].max(),
                        "task": task,
                        "task_type": cell["task_type"].iloc[0],
                        "structure": structure,
                        "budget_kind": kind,
                        "budget": budget,
                        "score": mean,
                        "full_score": full_score,
                        "gap": full_score - mean,
                        "n_seeds": int(runs[score].notna().sum()),
                    }
                )
    return pd.DataFrame(rows, columns=_GAP_COLUMNS)


def _full_score(full: pd.DataFrame, reference: str, score: str) -> float:
    """The mean score of full fine-tuning's cell under ``reference`` (``thresholds.full_cell``;
    ``full``: the model and task's full fine-tuning trials)."""
    full = full.dropna(subset=[score])
    if full.empty:
        return math.nan
    chosen = full_cell(full, reference, full["model"].iloc[0], full["task"].iloc[0])
    return float(full.loc[full["cell"] == chosen, score].mean())


def gap_trend(gaps_df: pd.DataFrame) -> pd.DataFrame:
    """Per (task, structure, budget_kind): the slope of the gap against log10 model size,
    its ``direction`` (shrinks, grows, flat; n/a with fewer than two model sizes) and
    ``n_models``."""
    rows = []
    known = gaps_df.dropna(subset=["gap", "total_params"])
    for (task, structure, kind), cell in known.groupby(
        ["task", "structure", "budget_kind"], sort=True
    ):
        per_model = _on_shared_budgets(cell).groupby("total_params")["gap"].mean()
        slope = math.nan
        if len(per_model) >= 2:
            x = np.log10(per_model.index.to_numpy(dtype=float))
            slope = float(np.polyfit(x, per_model.to_numpy(dtype=float), 1)[0])
        rows.append(
            {
                "task": task,
                "structure": structure,
                "budget_kind": kind,
                "slope": slope,
                "direction": direction(slope),
                "n_models": len(per_model),
                "gap_smallest": float(per_model.iloc[0]),
                "gap_largest": float(per_model.iloc[-1]),
            }
        )
    columns = ["task", "structure", "budget_kind", "slope", "direction", "n_models"]
    return pd.DataFrame(rows, columns=[*columns, "gap_smallest", "gap_largest"])


def _on_shared_budgets(cell: pd.DataFrame) -> pd.DataFrame:
    """The rows at budgets every model of ``cell`` has; all rows when they share none (each
    model's own budgets, e.g. default sizes or budgets matched to each model's LoRA)."""
    shared = set.intersection(*(set(b) for _, b in cell.groupby("total_params")["budget"]))
    return cell[cell["budget"].isin(shared)] if shared else cell


def direction(slope: float) -> str:
    """shrinks / grows / flat for a gap slope per decade of model size; n/a for NaN."""
    if math.isnan(slope):
        return "n/a"
    if abs(slope) < FLAT_SLOPE:
        return "flat"
    return "shrinks" if slope < 0 else "grows"
