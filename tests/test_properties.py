"""Property-based tests (hypothesis): the spec parser, the budget solver, the file-task loader."""

from __future__ import annotations

import csv
import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tiny
from petscale.budget import count_method, fit_budget, meta_twin, model_size
from petscale.errors import UserError
from petscale.methods import make_config
from petscale.study.spec import CONFIG_KEYS, expand, geom, parse_spec, trial_id
from petscale.tasks.files import file_task

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NAMES = st.text(st.characters(categories=["L", "N"]), min_size=1, max_size=8)
SIZED = ("lora", "adapter", "prompt")


def fake_count(model: str, method: str) -> dict:
    return {"trainable_params": 1000}


# -- the spec parser ------------------------------------------------------------------------
budgets = st.lists(
    st.one_of(
        st.just("default"),
        st.integers(1, 10**9),
        st.builds(lambda m: {"match": m}, st.sampled_from(["lora", "prompt", "bitfit"])),
        st.builds(
            lambda lo, n: {"geom": [lo, lo * 1000, n]}, st.integers(1, 10**5), st.integers(2, 9)
        ),
    ),
    min_size=1,
    max_size=4,
)
specs = st.fixed_dictionaries(
    {
        "models": st.lists(NAMES, min_size=1, max_size=3),
        "tasks": st.lists(NAMES, min_size=1, max_size=2),
        "methods": st.lists(
            st.sampled_from(["full", "lora", "prompt", "bitfit", "apet"]), min_size=1, max_size=4
        ),
        "budgets": budgets,
        "seeds": st.lists(st.integers(0, 2**31), min_size=1, max_size=3),
    }
)


@SETTINGS
@given(specs)
def test_every_valid_spec_expands_to_unique_complete_configs(data: dict) -> None:
    configs = expand(parse_spec(data), count=fake_count)
    assert configs and all(list(c) == list(CONFIG_KEYS) for c in configs)
    ids = [trial_id(c) for c in configs]
    assert len(set(ids)) == len(ids)
    assert [trial_id(c) for c in expand(parse_spec(data), count=fake_count)] == ids  # stable
    assert {c["seed"] for c in configs} == set(data["seeds"])
    for c in configs:
        budget = c["options"].get("budget")
        assert budget is None or (isinstance(budget, int) and budget >= 1)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=12,
)
keys = st.sampled_from(["models", "tasks", "methods", "budgets", "seeds", "steps", "lr", "head"])


@SETTINGS
@given(st.dictionaries(keys, json_values, max_size=6) | json_values)
def test_any_malformed_spec_is_a_one_line_user_error(data) -> None:
    try:
        expand(parse_spec(data), count=fake_count)
    except UserError as e:
        assert "\n" not in str(e)


@SETTINGS
@given(st.integers(1, 10**9), st.integers(1, 10**4), st.integers(2, 30))
def test_geom_is_sorted_whole_and_keeps_both_ends(low: int, ratio: int, n: int) -> None:
    grid = geom(low, low * ratio, n)
    assert grid[0] == low and grid[-1] == low * ratio
    assert grid == sorted(set(grid)) and len(grid) <= n
    assert all(isinstance(b, int) for b in grid)


# -- the budget solver ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def twin():
    return meta_twin(tiny.model("bert"))


@SETTINGS
@given(method=st.sampled_from(SIZED), budget=st.integers(1, 200_000))
def test_the_solver_picks_the_largest_size_within_the_budget(twin, method: str, budget: int):
    knob = make_config(method, {}).size_option
    try:
        config = fit_budget(twin, method, {}, budget)
    except UserError as e:  # only below the smallest size, or past the model
        smallest = count_method(twin, method, make_config(method, {knob: 1}))
        assert budget < smallest or budget > model_size(twin), e
        return
    size = getattr(config, knob)
    assert count_method(twin, method, config) <= budget
    assert count_method(twin, method, make_config(method, {knob: size + 1})) > budget


# -- the file-task loader -------------------------------------------------------------------
texts = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=30)
rows = st.lists(
    st.tuples(texts, st.sampled_from(["neg", "pos", "neutral"])), min_size=2, max_size=25
)


@SETTINGS
@given(rows=rows, kind=st.sampled_from(["csv", "jsonl"]))
def test_files_load_every_row_exactly_or_fail_in_one_line(rows, kind: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"data.{kind}"
        if kind == "csv":
            with open(path, "w", newline="", encoding="utf-8") as handle:
                writer = csv.writer(handle)
                writer.writerow(["text", "label"])
                writer.writerows(rows)
        else:
            lines = [json.dumps({"text": t, "label": label}) for t, label in rows]
            path.write_text("\n".join(lines), encoding="utf-8")
        try:
            splits = file_task(path).splits()
        except UserError as e:
            assert "\n" not in str(e)
            return
        task = file_task(path)
        loaded = [(ex["text"], task.spec.labels[ex["label"]]) for s in splits.values() for ex in s]
        assert sorted(loaded) == sorted(rows)
        assert list(task.spec.labels) == sorted({label for _, label in rows})


@SETTINGS
@given(st.binary(max_size=200), st.sampled_from(["csv", "tsv", "jsonl"]))
def test_any_bytes_are_a_task_or_a_one_line_error(data: bytes, kind: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"data.{kind}"
        path.write_bytes(data)
        try:
            file_task(path).splits()
        except UserError as e:
            assert "\n" not in str(e)
