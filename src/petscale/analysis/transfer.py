"""Task transfer, read off a table of scores: a delta tuned on task A, evaluated zero-shot on
task B (the scores are ``petscale.deltas.evaluate_transfer``'s, which loads the kept deltas;
here only pure functions of its table).

The score is read against the target's own scale:
``relative = (score - floor) / (in_task - floor)``, where ``in_task`` is the score of a delta
tuned on the target itself and ``floor`` the untuned model's own score on the target where it
was evaluated (``evaluate_transfer(untuned=True)``), else random guessing (1: transfers fully;
0: no better than no tuning, or than guessing). A pretrained model already beats guessing,
often by far (label words, a frozen head), so only the untuned floor credits a delta with
what it added.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import pandas as pd

from petscale.analysis.floors import UNTUNED

_MATRIX_KEYS = ("model", "head", "structure")


def transfer_matrix(scores: pd.DataFrame) -> pd.DataFrame:
    """Long form (model, head and structure where given, source, target): mean ``score`` over
    trials (``n_seeds`` of them), the target's ``random_guess``, ``untuned`` (the untuned
    model's score on the target, NaN where not evaluated), ``in_task`` (the source = target
    score), ``relative``."""
    keys = [k for k in _MATRIX_KEYS if k in scores.columns]
    tuned = scores[scores["source"] != UNTUNED]
    groups = tuned.groupby([*keys, "source", "target"], as_index=False)
    mean = groups[["score", "random_guess"]].mean()
    mean["n_seeds"] = groups.size()["size"].to_numpy()  # the trials averaged
    setup = [k for k in ("model", "head") if k in scores.columns]  # what the untuned model is
    untuned = scores[scores["source"] == UNTUNED].groupby([*setup, "target"])["score"].mean()
    cells = mean[[*setup, "target"]].itertuples(index=False, name=None)
    mean["untuned"] = [untuned.get(cell, math.nan) for cell in cells]
    diagonal = mean[mean["source"] == mean["target"]].set_index([*keys, "target"])["score"]
    in_task = [diagonal.get(tuple(row[[*keys, "target"]]), math.nan) for _, row in mean.iterrows()]
    mean["in_task"] = in_task
    floor = mean["untuned"].fillna(mean["random_guess"])
    room = mean["in_task"] - floor
    mean["relative"] = ((mean["score"] - floor) / room).where(room > 0)
    return mean


def same_type_vs_cross(matrix: pd.DataFrame, task_types: Mapping[str, str]) -> pd.DataFrame:
    """Off-diagonal pairs split into same-type and cross-type: mean relative score and count."""
    pairs = matrix[matrix["source"] != matrix["target"]].copy()
    same = [
        task_types.get(s) == task_types.get(t)
        for s, t in zip(pairs["source"], pairs["target"], strict=False)
    ]
    pairs["kind"] = ["same type" if yes else "cross type" for yes in same]
    keys = [k for k in ("model", "head") if k in pairs.columns]
    out = (
        pairs.groupby([*keys, "kind"])
        .agg(
            mean_relative=("relative", "mean"),
            mean_score=("score", "mean"),
            n_pairs=("score", "size"),
        )
        .reset_index()
    )
    return out
