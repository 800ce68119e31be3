"""The floor a score is held against: what a model that learned nothing from the task scores.

Per (reference, seed), where a reference is a (model, task) under the settings that shape an
untuned model's score (``table.REFERENCE_SETTINGS``: head, pooling, max length, eval limit,
random init):

    floor = max(majority-class share of the scored examples, the untuned model's score)

The untuned score is the study's ``untuned`` trial of that seed (its head drawn from the same
seed, no step taken); the majority share is what always answering the eval set's commonest
class scores (accuracy). Generation tasks have no majority share: their floor is the untuned
score. Where a study ran no untuned trial its floor is the majority share alone, and where
neither is known (an old store, a table without them) the task's random-guess score, each
named in ``kind``.
"""

from __future__ import annotations

import math

import pandas as pd

from petscale.methods import METHODS, floor_method, is_fixed

#: The method of a trial that takes no step (``petscale.methods.untuned``).
UNTUNED = floor_method()
#: Methods of fixed size (full, probe, untuned): reference lines, not points on a budget curve.
FIXED = tuple(name for name in METHODS if is_fixed(name))
FLOOR_COLUMNS = ["reference", "seed", "model", "task", "value", "majority", "untuned"]
FLOOR_COLUMNS += ["kind", "examples", "metric"]


def floor_rows(df: pd.DataFrame, score: str = "dev_score") -> pd.DataFrame:
    """One row per (reference, seed) of the trials in ``df``: the floor ``value``, its parts
    (``majority``, ``untuned``; NaN where unknown), ``kind`` (untuned, majority or random
    guess: the larger part, or what stood in) and the examples it was scored on."""
    split = score.removesuffix("_score")
    rows = []
    for (reference, seed), trials in df.groupby(["reference", "seed"], sort=True):
        untuned_runs = trials.loc[trials["method"] == UNTUNED, score].dropna()
        untuned = float(untuned_runs.mean()) if len(untuned_runs) else math.nan
        majority = _first(trials.get(f"{split}_majority"))
        parts = {"untuned": untuned, "majority": majority}
        known = {k: v for k, v in parts.items() if not math.isnan(v)}
        if known:
            kind = max(known, key=known.__getitem__)
            value = known[kind]
        else:
            kind, value = "random guess", _first(trials["random_guess"])
        rows.append(
            {
                "reference": reference,
                "seed": seed,
                "model": trials["model"].iloc[0],
                "task": trials["task"].iloc[0],
                "value": value,
                **parts,
                "kind": kind,
                "examples": _first(trials.get(f"{split}_examples")),
                "metric": trials["metric"].dropna().iloc[0]
                if trials["metric"].notna().any()
                else None,
            }
        )
    return pd.DataFrame(rows, columns=FLOOR_COLUMNS)


def floor_cell(reference: str) -> str:
    """The id under which a reference's floor is resampled beside the trials' cells."""
    return f"floor:{reference}"


def _first(values: pd.Series | None) -> float:
    if values is None:
        return math.nan
    known = pd.to_numeric(values, errors="coerce").dropna()
    return float(known.iloc[0]) if len(known) else math.nan
