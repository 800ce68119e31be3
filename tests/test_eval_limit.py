"""`eval_limit`: a trial scored on a fixed subset of dev and test, the same one every trial."""

from __future__ import annotations

from pathlib import Path

import pytest

import petscale
from petscale import trial
from petscale.errors import UserError
from petscale.study.spec import expand, parse_spec, trial_id
from petscale.trial import evaluation_subset, normalize


def test_the_subset_is_fixed_sorted_and_whole_when_the_limit_is_off() -> None:
    assert evaluation_subset(10, 0) == list(range(10))
    assert evaluation_subset(10, 25) == list(range(10))
    kept = evaluation_subset(1000, 30)
    assert len(set(kept)) == 30 and kept == sorted(kept)
    assert kept == evaluation_subset(1000, 30)  # every trial of a study scores the same examples
    assert kept != list(range(30))  # drawn, not the head of the split


def test_a_negative_limit_is_refused() -> None:
    with pytest.raises(UserError, match="--eval-limit must be >= 0"):
        normalize({"eval_limit": -1})


def test_spec_ids_do_not_change_unless_the_limit_is_set() -> None:
    base = {"models": ["m"], "tasks": ["t"], "methods": {"full": {}}, "untuned": False}
    (plain,) = expand(parse_spec(base))
    assert "eval_limit" not in plain  # ids of studies written before the key stay the same
    (limited,) = expand(parse_spec({**base, "eval_limit": 200}))
    assert limited["eval_limit"] == 200
    assert trial_id(limited) != trial_id(plain)


def test_a_tune_scores_the_limited_splits(
    tiny_bert: Path, toy_task: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scored: list[int] = []
    evaluate = trial.evaluate

    def counting(model, answerer, features, references, *args):  # noqa: ANN001, ANN202
        scored.append(len(features))
        assert len(references) == len(features)
        return evaluate(model, answerer, features, references, *args)

    monkeypatch.setattr(trial, "evaluate", counting)
    result = petscale.tune(
        model=str(tiny_bert),
        task=str(toy_task),
        method="lora",
        steps=2,
        batch_size=8,
        max_length=16,
        eval_limit=8,
    )
    assert result["eval_limit"] == 8
    assert scored == [8, 8]  # dev at the end, then test; the toy splits hold 40 each


def test_the_exported_table_says_which_trials_were_scored_on_a_subset(tmp_path: Path) -> None:
    from petscale.study.export import table
    from petscale.study.store import Owner, Store

    spec = {"models": ["m"], "tasks": ["t"], "methods": ["lora"], "budgets": [10], "untuned": False}
    configs = [*expand(parse_spec(spec)), *expand(parse_spec({**spec, "eval_limit": 50}))]
    with Store(tmp_path) as store:
        store.queue(configs)
        for _ in configs:
            tid, _config = store.claim(Owner())
            store.finish(tid, {"dev_score": 0.5, "seconds": 1.0})
    limits = sorted(row["eval_limit"] or 0 for row in table(tmp_path))
    assert limits == [0, 50]
