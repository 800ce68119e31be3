"""Threshold search: bisection on log budget finds planted thresholds with few trials."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from petscale.analysis.thresholds import BELOW, BRACKETED, NOT_REACHED
from petscale.errors import UserError
from petscale.search import SearchSettings, next_budget, search_thresholds
from petscale.study.runners import run_study
from petscale.study.spec import parse_spec
from petscale.study.store import Store

RANDOM, FULL, MODEL_SIZE = 0.5, 0.9, 10_000_000


def planted_score(budget: int) -> float:
    """Random guessing below 10^2 parameters, full fine-tuning's score from 10^5, linear in
    log budget between: low threshold 10^2 = 100 (where the mean leaves the floor, random
    guessing here: no untuned trial, no majority share), high 10^(2 + 3*0.975) = 84,140."""
    x = min(max((math.log10(budget) - 2) / 3, 0.0), 1.0)
    return RANDOM + (FULL - RANDOM) * x


def fake_trial(config: dict[str, Any]) -> dict[str, Any]:
    full = config["method"] == "full"
    budget = MODEL_SIZE if full else config["options"]["budget"]
    score = FULL if full else planted_score(budget)
    return {
        "trainable_params": budget,
        "head_params": 0,
        "total_params": MODEL_SIZE,
        "metric": "accuracy",
        "random_guess": RANDOM,
        "dev_score": score,
        "test_score": score,
        "curve": [[config["steps"], score]],
        "seconds": 0.0,
    }


def _spec(budgets: list[int]) -> Any:
    return parse_spec(
        {
            "models": ["m"],
            "untuned": False,
            "tasks": ["t"],
            "methods": [{"apet": {"pattern": "adjacent"}}],
            "budgets": budgets,
            "steps": 1,
        }
    )


def _search(folder: Path, spec: Any, settings: SearchSettings | None = None) -> Any:
    run = _run(folder)
    return search_thresholds(folder, spec, run, settings, fits=lambda config: True)


def _run(folder: Path) -> Any:
    return lambda configs: run_study(folder, configs, trial="test_search:fake_trial")


def test_search_finds_planted_thresholds_with_few_trials(tmp_path: Path) -> None:
    settings = SearchSettings(rounds=8, resolution=1.3)
    found = _search(tmp_path, _spec([10, 1_000_000]), settings)
    (row,) = found.to_dict("records")
    assert row["structure"] == "apet-adjacent"
    assert row["low_bracketed"] and row["high_bracketed"]
    assert abs(math.log10(row["low"]) - math.log10(100)) < 0.1
    assert abs(math.log10(row["high"]) - math.log10(84_140)) < 0.1
    with Store.existing(tmp_path) as store:
        trials = store.counts()["done"]
    assert trials <= 2 + 1 + 2 * 8  # the bracket, full, at most two budgets a round

    # a rerun replays the same decisions from the store: nothing new runs
    again = _search(tmp_path, _spec([10, 1_000_000]), settings)
    assert again.equals(found)
    with Store.existing(tmp_path) as store:
        assert store.counts()["done"] == trials


def test_a_threshold_outside_the_grid_widens_it(tmp_path: Path) -> None:
    settings = SearchSettings(rounds=6, resolution=1.5)
    found = _search(tmp_path, _spec([1000, 3000]), settings)
    (row,) = found.to_dict("records")
    assert row["low_bracketed"] and row["high_bracketed"]
    assert row["low"] < 1000 < 3000 < row["high"]


def test_next_budget_rules() -> None:
    nan2 = (math.nan, math.nan)
    assert next_budget([10, 1000], BRACKETED, (10, 1000), 10**6, 1.5) == 100
    assert next_budget([10, 12], BRACKETED, (10, 12), 10**6, 1.5) is None  # pinned down
    assert next_budget([10, 1000], NOT_REACHED, nan2, 10**6, 1.5) == 10_000
    assert next_budget([10, 10**6], NOT_REACHED, nan2, 10**6, 1.5) is None  # at the model's size
    assert next_budget([10, 1000], BELOW, nan2, 10**6, 1.5) == 1
    assert next_budget([1, 1000], BELOW, nan2, 10**6, 1.5) is None
    assert next_budget([1, 1000], "no line", nan2, 10**6, 1.5) is None


def test_search_needs_apet(tmp_path: Path) -> None:
    spec = parse_spec(
        {"models": ["m"], "tasks": ["t"], "methods": ["lora"], "steps": 1, "untuned": False}
    )
    with pytest.raises(UserError, match="add apet"):
        _search(tmp_path, spec)


def test_a_budget_the_targets_cannot_hold_is_not_tried(tmp_path: Path) -> None:
    tried = []

    def fits(config: dict[str, Any]) -> bool:
        tried.append(config["options"]["budget"])
        return config["options"]["budget"] <= 10_000

    settings = SearchSettings(rounds=3)
    search_thresholds(tmp_path, _spec([10, 1000]), _run(tmp_path), settings, fits=fits)
    with Store.existing(tmp_path) as store:
        budgets = {r["config"]["options"].get("budget") for r in store.rows()}
    assert 100_000 in tried and 100_000 not in budgets  # the high threshold is past the targets
    assert 10_000 in budgets
