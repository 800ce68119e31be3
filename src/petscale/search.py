"""Threshold search with few trials: bisection on log budget with APET, in a study's own store.

Instead of a dense budget grid, ``search_thresholds`` starts from the spec's budgets (at least
two, the bracket), runs them with full fine-tuning as the reference, and then, round after
round, adds one budget per open threshold: the geometric mean of the two grid budgets that
bracket it (the largest that fails and the smallest that passes, as
:func:`petscale.analysis.thresholds` defines pass and fail). A threshold outside the grid
widens it by a decade (down to 1 parameter, up to what APET's targets hold). The search stops
when every bracket is narrower than ``resolution`` (a factor) or after ``rounds`` rounds; the
thresholds reported are the analysis' own, interpolated on log budget over every trial run.

Every trial is an ordinary study trial: ids are hashes of configs, so a rerun replays the
same decisions from the stored results and runs only what is missing.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import pandas as pd

from petscale.analysis import thresholds
from petscale.analysis.table import load_results
from petscale.analysis.thresholds import BELOW, BRACKETED, NOT_REACHED
from petscale.errors import UserError
from petscale.ids import trial_id
from petscale.methods import reference_method, sizing
from petscale.study.runners import Events
from petscale.study.spec import MethodEntry, Spec, check_counts, expand
from petscale.study.workflow import Runner, execute, plan, start

#: Runs a list of trial configs into the study store (done ones are skipped).
RunFn = Callable[[list[dict[str, Any]]], Any]


@dataclasses.dataclass(frozen=True)
class SearchSettings:
    rounds: int = 4  # rounds of new budgets after the initial grid
    tolerance: float = 0.01  # the high threshold: within this of full fine-tuning's score
    resolution: float = 1.5  # stop once the bracketing budgets are within this factor


def search_thresholds(
    folder: Any,
    spec: Spec,
    run: RunFn,
    settings: SearchSettings | None = None,
    fits: Callable[[dict[str, Any]], bool] | None = None,
) -> pd.DataFrame:
    """Find the low and high thresholds of the spec's APET entries; returns the thresholds
    table (see :func:`petscale.analysis.thresholds`) of the APET structures searched.

    ``fits(config)`` says whether a new trial's budget fits its model (default: counted on
    the meta device); a widening that does not fit (more than APET's targets hold) is dropped.
    """
    settings = settings or SearchSettings()
    fits = fits or _fits
    spec = with_full_reference(spec)
    configs = {trial_id(c): c for c in expand(spec)}
    if not any(sizing(c["method"]) == "native" for c in configs.values()):
        raise UserError("a threshold search tunes APET: add apet to the spec's methods")
    for _ in range(settings.rounds + 1):
        run(list(configs.values()))
        table = _table(folder, configs)
        added = 0
        for config in filter(fits, next_configs(table, configs, settings)):
            added += trial_id(config) not in configs
            configs.setdefault(trial_id(config), config)
        if not added:
            break
    table = _table(folder, configs)
    found = thresholds(table, tolerance=settings.tolerance)
    return found[found["structure"].isin(_searched(table))].reset_index(drop=True)


def with_full_reference(spec: Spec) -> Spec:
    """The spec with full fine-tuning added: the high threshold is measured against it."""
    reference = reference_method()
    if any(entry.name == reference for entry in spec.methods):
        return spec
    return dataclasses.replace(spec, methods=(*spec.methods, MethodEntry(reference, {}, None)))


def next_configs(
    table: pd.DataFrame, configs: dict[str, dict[str, Any]], settings: SearchSettings
) -> list[dict[str, Any]]:
    """The APET trials of the next round: one budget per open threshold, every seed."""
    found = thresholds(table, tolerance=settings.tolerance)
    out = []
    for _, row in found[found["structure"].isin(_searched(table))].iterrows():
        cell = table[
            (table["model"] == row["model"])
            & (table["task"] == row["task"])
            & (table["structure"] == row["structure"])
        ]
        budgets = sorted({int(b) for b in cell["budget"]})
        ceiling = int(cell["total_params"].max())
        for side in ("low", "high"):
            budget = next_budget(
                budgets,
                row[f"{side}_status"],
                (row[f"{side}_below"], row[f"{side}_above"]),
                ceiling,
                settings.resolution,
            )
            if budget is not None:
                out += [_with_budget(configs[tid], budget) for tid in cell["trial_id"]]
    return out


def _searched(table: pd.DataFrame) -> set[str]:
    """The structures the search sizes: those of methods holding their own budget (APET)."""
    native = table["method"].map(lambda name: sizing(name) == "native").astype(bool)
    return set(table.loc[native, "structure"])


def next_budget(
    budgets: list[int],
    status: str,
    around: tuple[float, float],
    ceiling: int,
    resolution: float,
) -> int | None:
    """The budget to try next for one threshold, or None when it is pinned down (or cannot be).

    ``status`` not reached: go a decade above the largest budget; at or below the grid: a
    decade below the smallest; bracketed: the geometric mean of the two budgets ``around`` it,
    while they are more than ``resolution`` apart; no line to cross (no full fine-tuning or
    floor): nothing to search.
    """
    if status == NOT_REACHED:
        candidate = min(budgets[-1] * 10, ceiling)
    elif status == BELOW:
        candidate = max(budgets[0] // 10, 1)
    elif status == BRACKETED:
        below, above = around
        if above / below <= resolution:
            return None
        candidate = round(math.sqrt(below * above))
    else:
        return None
    return None if candidate in budgets else candidate


def _fits(config: dict[str, Any]) -> bool:
    try:
        check_counts([config])
    except UserError:
        return False
    return True


def _with_budget(config: dict[str, Any], budget: int) -> dict[str, Any]:
    return {**config, "options": {**config["options"], "budget": budget}}


def _table(folder: Any, configs: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """The done trials of this search (the store may hold other studies' trials too)."""
    table = load_results(folder)
    return table[table["trial_id"].isin(configs)].reset_index(drop=True)


def search(
    spec: str | Path,
    folder: str | Path | None = None,
    settings: SearchSettings | None = None,
    runner: Runner = Runner(),
    events: Callable[[int], AbstractContextManager[Events | None]] | None = None,
) -> tuple[pd.DataFrame, Path]:
    """``petscale study thresholds`` as a function: the study's checks and its folder as
    ``study run`` makes them (:func:`petscale.study.workflow.plan`), then the search; each
    round's trials report to ``events(number of trials)`` where given. Returns the thresholds
    and the study folder."""
    planned = plan(spec, folder, runner)
    start(planned, runner)

    def run_round(configs: list[dict[str, Any]]) -> None:
        with events(len(configs)) if events else nullcontext() as watcher:
            execute(planned, runner, watcher, configs)

    return search_thresholds(planned.folder, planned.spec, run_round, settings), planned.folder
