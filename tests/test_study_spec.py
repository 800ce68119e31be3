"""The study spec: grids, normalised trial configs, stable ids, and validation errors."""

from __future__ import annotations

import re

import pytest

from petscale.errors import UserError
from petscale.study.spec import (
    CONFIG_KEYS,
    check_counts,
    expand,
    geom,
    load_spec,
    parse_spec,
    trial_id,
)

# The grid's own trials: each test of the untuned floors says so
BASE = {"models": ["m"], "tasks": ["t"], "methods": {"lora": {}}, "untuned": False}


def fake_count(model: str, method: str) -> dict:
    return {"trainable_params": {"lora": 73_728}[method]}


def spec(**changes):
    return parse_spec({**BASE, **changes})


def test_geom_grid_is_integer_geometric_inclusive_and_deduplicated():
    grid = geom(100, 1_000_000, 13)
    assert grid[0] == 100 and grid[-1] == 1_000_000 and len(grid) == 13
    assert all(isinstance(b, int) for b in grid)
    assert grid == sorted(grid)
    assert geom(1, 3, 10) == [1, 2, 3]  # rounding collisions are merged


def test_expand_normalises_budgets_and_lr():
    s = spec(
        methods={
            "full": {},
            "lora": {"alpha": 8},
            "apet": {"pattern": "adjacent"},
            "adapter": None,
        },
        budgets=["default", {"match": "lora"}, 500],
        seeds=[0, 1],
        lr={"lora": "5e-4"},  # PyYAML reads 5e-4 as a string
    )
    configs = expand(s, count=fake_count)
    assert all(list(c) == list(CONFIG_KEYS) for c in configs)
    by_method: dict[str, list[dict]] = {}
    for c in configs:
        by_method.setdefault(c["method"], []).append(c["options"])
    assert by_method["full"] == [{}, {}]  # budgets do not apply to full: one per seed
    # lora matched to lora is its default, so it collapses into the default trial
    assert by_method["lora"] == [{"alpha": 8}] * 2 + [{"alpha": 8, "budget": 500}] * 2
    assert {"pattern": "adjacent", "match": "lora"} in by_method["apet"]  # apet resolves it
    assert {"budget": 73_728} in by_method["adapter"]  # others get the count
    assert {c["lr"] for c in configs if c["method"] == "lora"} == {5e-4}
    assert {c["lr"] for c in configs if c["method"] != "lora"} == {None}
    assert len({trial_id(c) for c in configs}) == len(configs)


def test_trial_id_is_stable_and_order_free():
    config = expand(spec())[0]
    assert trial_id(config) == trial_id(dict(reversed(list(config.items()))))
    assert len(trial_id(config)) == 16
    assert trial_id(config) != trial_id({**config, "seed": 1})


def test_methods_as_a_list_allow_one_method_twice():
    s = spec(methods=["lora", {"apet": {"pattern": "adjacent"}}, {"apet": {"pattern": "discrete"}}])
    assert [m.name for m in s.methods] == ["lora", "apet", "apet"]
    per_method = spec(methods={"bitfit": {"budgets": ["default"]}, "lora": {}}, budgets=[10, 20])
    assert [c["options"] for c in expand(per_method)] == [{}, {"budget": 10}, {"budget": 20}]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"budget": [10]}, "unknown key 'budget'; did you mean 'budgets'?"),
        ({"methods": {"lorra": {}}}, "unknown method 'lorra'; did you mean 'lora'?"),
        ({"budgets": [0]}, "budgets[0]: 0 is too small; use a number >= 1"),
        ({"budgets": [-5]}, "budgets[0]: -5 is too small"),
        ({"budgets": []}, "budgets: the list is empty"),
        ({"budgets": [{"geom": [100, 1000, 0]}]}, "an empty grid"),
        ({"budgets": [{"geom": [1000, 100, 3]}]}, "budgets[0].geom[1] (high)"),
        ({"budgets": [{"match": "apet"}]}, "apet has no default budget"),
        ({"models": []}, "models: the list is empty"),
        ({"steps": "many"}, "steps: expected a number, got 'many'"),
        ({"steps": 2.5}, "steps: expected a whole number"),
        ({"seeds": [True]}, "seeds[0]: expected a number"),
        ({"seeds": [10**20]}, "seeds[0]: 100000000000000000000 is too large"),
        ({"lr": 0}, "lr: the learning rate must be > 0"),
        ({"lr": {"lora": -1}}, "lr.lora: the learning rate must be > 0"),
        ({"lr": 1.0e20}, "lr: 1e+20 is far above any useful rate"),
        ({"head": "big"}, "head: expected one of trainable, frozen, label-words"),
        ({"pooling": "max"}, "pooling: expected one of auto, cls, mean"),
        ({"methods": {"lora": {"budget": 5}}}, "methods.lora.budget: set budgets with 'budgets'"),
        ({"methods": {"full": {"budgets": [5]}}}, "full has a fixed size, no budget"),
        ({"methods": {"probe": {"budgets": [5]}}}, "probe has a fixed size, no budget"),
        ({"methods": {"lora": [1]}}, "methods.lora: options must be a map"),
        # method options: the methods' own checks, before any trial
        ({"methods": {"lora": {"rank": -1}}}, "methods.lora: --rank must be positive, got -1"),
        ({"methods": {"lora": {"rnak": 4}}}, "methods.lora: --rnak does not apply to method"),
        ({"methods": {"lora": {"rank": "big"}}}, "methods.lora: --rank takes int, got 'big'"),
        ({"methods": {"lora": {"alpha": float("nan")}}}, "--alpha must be a finite number"),
        ({"methods": {"adapter": {"bottleneck": 8}}, "budgets": [5000]}, "adapter.bottleneck: a"),
        ({"methods": {"lora": {"rank": 4, "budgets": [9, "default"]}}}, "methods.lora.rank"),
    ],
)
def test_bad_specs_name_the_key_and_the_fix(changes, message):
    with pytest.raises(UserError) as error:
        spec(**changes)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_missing_required_key():
    with pytest.raises(UserError, match="missing key 'tasks'"):
        parse_spec({"models": ["m"], "methods": ["lora"]})


def test_a_size_option_is_fine_with_default_budgets():
    s = spec(methods={"lora": {"rank": 4, "budgets": ["default", {"match": "lora"}]}})
    assert [c["options"] for c in expand(s)] == [{"rank": 4}]


def test_duplicate_yaml_keys_are_an_error(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("models: [m]\ntasks: [t]\nmethods:\n  lora: {rank: 2, rank: 4}\n")
    with pytest.raises(UserError, match=r"s.yaml: line 4: the key 'rank' appears twice"):
        load_spec(path)


@pytest.mark.parametrize(
    ("methods", "budgets", "message"),
    [
        ({"lora": {}}, [10**15], "bert-tiny / lora budget=1000000000000000: --budget"),
        ({"bitfit": {}}, [10**6], "more than bitfit can hold on this model"),
        ({"apet": {}}, [4_000_000], "exceeds the 393,216 entries the apet targets hold"),
        ({"lora": {"rank": 10**6}}, ["default"], "more than the model's 4,386,178"),
    ],
)
def test_budgets_are_counted_on_each_model_before_any_trial(methods, budgets, message):
    configs = expand(spec(models=["bert-tiny"], methods=methods, budgets=budgets))
    with pytest.raises(UserError, match=re.escape(message)):
        check_counts(configs)
    defaults = spec(models=["bert-tiny"], methods={name: {} for name in methods})
    check_counts(expand(defaults))  # each method's default fits


def test_every_cell_gets_one_untuned_trial_first_and_its_settings_shape_only_evaluation():
    grid = spec(
        models=["m1", "m2"],
        methods=["lora", {"bitfit": {}}],
        seeds=[0, 1],
        untuned=True,
        steps=40,
        lr=0.01,
        eval_limit=30,
        max_length=16,
        head="frozen",
    )
    configs = expand(grid)
    untuned = [c for c in configs if c["method"] == "untuned"]
    # one per (model, task, seed, head): shared by lora and bitfit, listed before the grid
    assert len(untuned) == 4 and len(configs) == 4 + 2 * 2 * 2
    assert configs[:4] == untuned
    for config in untuned:
        assert config["options"] == {} and config["head"] == "frozen"
        assert (config["eval_limit"], config["max_length"]) == (30, 16)
        assert config["steps"] is None and config["lr"] is None  # training settings: defaults
    assert not [c for c in expand(spec(untuned=False)) if c["method"] == "untuned"]
