"""The study's findings (Su et al. 2023), each tested on a study's table with a verdict.

A verdict counts the cases a finding speaks about: ``holds`` when every case agrees,
``does not hold`` when none does, ``mixed`` in between, ``not tested`` when the study has no
case (e.g. one model size only, no APET pattern pair, no transfer evaluation).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from petscale.analysis.convergence import convergence, pattern_speed
from petscale.analysis.gaps import gap_trend, gaps
from petscale.analysis.stats import GROUP
from petscale.analysis.thresholds import AGREE_FACTOR, located, structure_agreement, thresholds
from petscale.analysis.transfer import same_type_vs_cross

VERDICTS = ("holds", "does not hold", "mixed", "not tested")
#: Transfer "works within a type" when same-type pairs keep this much more of the in-task
#: gain over the untuned model (relative score) than cross-type pairs.
TRANSFER_EDGE = 0.1


@dataclass(frozen=True)
class Finding:
    key: str
    claim: str
    verdict: str  # one of VERDICTS
    evidence: str  # one sentence with the numbers
    n_seeds: int  # the fewest seeds behind any cell used (0: not tested)


def verdict(yes: int, total: int) -> str:
    """holds / does not hold / mixed for ``yes`` of ``total`` cases; not tested for none."""
    if total == 0:
        return "not tested"
    return "holds" if yes == total else "does not hold" if yes == 0 else "mixed"


def findings(df: pd.DataFrame, transfer: pd.DataFrame | None = None) -> list[Finding]:
    """The five findings on the study table ``df``; ``transfer`` is a ``transfer_matrix``
    (from ``evaluate_transfer``), without which the transfer finding is not tested."""
    seeds = int(df.groupby(GROUP).size().min()) if len(df) else 0
    thr = thresholds(df)
    return [
        _gaps_shrink(df, seeds),
        _thresholds_exist(thr, seeds),
        _thresholds_alike(thr, seeds),
        _thresholds_fall(thr, seeds),
        _adjacent_faster(df, seeds),
        _transfer(df, transfer, seeds),
    ]


def _gaps_shrink(df: pd.DataFrame, seeds: int) -> Finding:
    trend = gap_trend(gaps(df))
    trend = trend[trend["n_models"] >= 2]
    yes = int((trend["direction"] == "shrinks").sum())
    evidence = (
        f"the gap to full fine-tuning shrinks with model size in {yes} of {len(trend)} "
        f"(task, structure, budget kind) series, mean slope {trend['slope'].mean() * 100:+.2f} "
        "points per decade of parameters"
        if len(trend)
        else "needs at least two model sizes with full fine-tuning and a method on one task"
    )
    return Finding(
        "gaps_shrink",
        "Gaps to full fine-tuning shrink as models grow",
        verdict(yes, len(trend)),
        evidence,
        seeds if len(trend) else 0,
    )


def _thresholds_exist(thr: pd.DataFrame, seeds: int) -> Finding:
    both = thr["low"].notna() & thr["high"].notna()
    evidence = (
        f"low and high thresholds both reached in {int(both.sum())} of {len(thr)} "
        f"(model, task, structure) grids (low bracketed in {int(thr['low_bracketed'].sum())}, "
        f"high in {int(thr['high_bracketed'].sum())}); median low "
        f"{_num(thr['low'].median())}, median high {_num(thr['high'].median())} parameters"
        if len(thr)
        else "needs a method run at several budgets"
    )
    return Finding(
        "thresholds_exist",
        "Low and high thresholds of trainable parameters exist",
        verdict(int(both.sum()), len(thr)),
        evidence,
        seeds if len(thr) else 0,
    )


def _thresholds_alike(thr: pd.DataFrame, seeds: int) -> Finding:
    agree = structure_agreement(thr)
    cases = [v for col in ("low_agree", "high_agree") for v in agree[col] if v is not None]
    yes = sum(bool(v) for v in cases)
    spreads = pd.concat([agree["low_spread_decades"], agree["high_spread_decades"]]).dropna()
    evidence = (
        f"{yes} of {len(cases)} thresholds agree across structures within a factor of "
        f"{AGREE_FACTOR:g}; largest spread {spreads.max():.2f} decades"
        if cases
        else "needs thresholds of at least two structures on one model and task"
    )
    return Finding(
        "thresholds_alike",
        "The thresholds are about the same whatever the structure",
        verdict(yes, len(cases)),
        evidence,
        seeds if cases else 0,
    )


def _thresholds_fall(thr: pd.DataFrame, seeds: int) -> Finding:
    cases = []
    for _, cell in thr.groupby(["task", "structure"]):
        cell = cell.sort_values("total_params")
        if cell["total_params"].nunique() < 2:
            continue
        for side in ("low", "high"):
            values = located(cell, side)
            first, last = values.iloc[0], values.iloc[-1]
            if np.isfinite(first) and np.isfinite(last):
                cases.append(last < first)
    yes = sum(cases)
    evidence = (
        f"the bracketed threshold of the largest model is below the smallest model's in {yes} "
        f"of {len(cases)} (task, structure, low/high) comparisons"
        if cases
        else "needs bracketed thresholds on at least two model sizes"
    )
    return Finding(
        "thresholds_fall",
        "Thresholds fall as models grow",
        verdict(yes, len(cases)),
        evidence,
        seeds if cases else 0,
    )


def _adjacent_faster(df: pd.DataFrame, seeds: int) -> Finding:
    speed = pattern_speed(convergence(df))
    yes = int((speed["faster"] == "adjacent").sum())
    evidence = (
        f"APET adjacent reaches 90% of its best dev score sooner than discrete in {yes} of "
        f"{len(speed)} (model, task, budget) cells; mean steps {speed['adjacent_steps'].mean():.0f}"
        f" vs {speed['discrete_steps'].mean():.0f}"
        if len(speed)
        else "needs APET adjacent and discrete at equal budget with dev curves"
    )
    return Finding(
        "adjacent_faster",
        "ADJACENT converges faster than DISCRETE",
        verdict(yes, len(speed)),
        evidence,
        seeds if len(speed) else 0,
    )


def _transfer(df: pd.DataFrame, matrix: pd.DataFrame | None, seeds: int) -> Finding:
    claim = "Task transfer works within a task type, not across types"
    if matrix is None or matrix.empty:
        return Finding(
            "transfer_within_type",
            claim,
            "not tested",
            "no transfer evaluation: `petscale report DIR --transfer` (or evaluate_transfer) "
            "scores a study's kept deltas on its other tasks",
            0,
        )
    types = dict(zip(df["task"], df["task_type"], strict=False))
    kinds = same_type_vs_cross(matrix, types).groupby("kind")["mean_relative"].mean()
    if not {"same type", "cross type"} <= set(kinds.index):
        return Finding(
            "transfer_within_type",
            claim,
            "not tested",
            "needs transfer pairs both within a task type and across types",
            0,
        )
    same, cross = kinds["same type"], kinds["cross type"]
    holds = same > cross + TRANSFER_EDGE
    evidence = (
        f"same-type pairs keep {same:.2f} of the in-task gain over the untuned model (random "
        f"guessing where it was not scored), "
        f"cross-type pairs {cross:.2f}"
    )
    return Finding(
        "transfer_within_type", claim, "holds" if holds else "does not hold", evidence, seeds
    )


def _num(value: float) -> str:
    return "n/a" if not np.isfinite(value) else f"{value:,.0f}"
