"""A list for any study setting or method option sweeps it: the grid is their product, and a
spec without lists gives the very trials (the same ids) it always did."""

from __future__ import annotations

import pytest

from petscale.errors import UserError
from petscale.study.spec import expand, parse_spec, trial_id

BASE = {"models": ["m"], "tasks": ["t"], "methods": {"lora": {}}, "untuned": False}


def configs(**changes) -> list[dict]:
    return expand(parse_spec({**BASE, **changes}))


def test_a_list_of_learning_rates_expands_the_grid():
    grid = configs(lr=[1.0e-4, "1e-3"], seeds=[0, 1])
    assert [(c["lr"], c["seed"]) for c in grid] == [(1e-4, 0), (1e-4, 1), (1e-3, 0), (1e-3, 1)]


def test_lists_of_several_settings_multiply():
    grid = configs(steps=[10, 20], batch_size=[8, 16], lr=[1e-3, 1e-2])
    assert len(grid) == 8
    assert {(c["steps"], c["batch_size"], c["lr"]) for c in grid} == {
        (s, b, r) for s in (10, 20) for b in (8, 16) for r in (1e-3, 1e-2)
    }


def test_per_method_rates_may_be_lists_and_other_methods_keep_their_default():
    grid = configs(methods={"lora": {}, "bitfit": {}}, lr={"lora": [1e-4, 1e-3]})
    assert sorted(c["lr"] for c in grid if c["method"] == "lora") == [1e-4, 1e-3]
    assert [c["lr"] for c in grid if c["method"] == "bitfit"] == [None]


def test_lists_for_method_options_sweep_them():
    grid = configs(methods={"lora": {"rank": [4, 8], "targets": ["q,v", "q"]}})
    assert [c["options"] for c in grid] == [
        {"rank": 4, "targets": "q,v"},
        {"rank": 4, "targets": "q"},
        {"rank": 8, "targets": "q,v"},
        {"rank": 8, "targets": "q"},
    ]


def test_a_swept_head_sweeps_the_untuned_floor_too():
    grid = configs(methods={"lora": {}}, head=["trainable", "frozen"], untuned=True)
    floors = [c for c in grid if c["method"] == "untuned"]
    assert sorted(c["head"] for c in floors) == ["frozen", "trainable"]
    assert grid[:2] == floors  # the floors first


def test_a_spec_without_lists_keeps_its_trial_ids():
    one = configs(steps=50, lr=1e-3, seeds=[0, 1])
    swept = configs(steps=[50], lr=[1e-3], seeds=[0, 1])
    assert [trial_id(c) for c in one] == [trial_id(c) for c in swept]


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"lr": []}, "lr: the list is empty"),
        ({"lr": [1e-3, 0]}, r"lr\[1\]: the learning rate must be > 0"),
        ({"steps": [10, -1]}, r"steps\[1\]: .*too small"),
        ({"head": ["trainable", "nope"]}, r"head\[1\]: expected one of"),
        ({"lr": {"lora": [1e-3, 99]}}, r"lr.lora\[1\]: 99.0 is far above"),
        ({"methods": {"lora": {"rank": [4, -1]}}}, "methods.lora: --rank must be positive"),
        ({"methods": {"lora": {"rank": []}}}, "an option's list of values is empty"),
    ],
)
def test_a_bad_value_in_a_sweep_names_its_place(changes, message):
    with pytest.raises(UserError, match=message):
        configs(**changes)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"budgets": [{"geom": [1, 5_000_000, 100_000_000]}]}, "100,000,000 points, over"),
        ({"seeds": list(range(200_000))}, "spans 200,000 trials, over the limit of 100,000"),
        ({"lr": [1e-4, 2e-4, 3e-4], "steps": list(range(1, 40_000))}, "over the limit"),
    ],
)
def test_a_runaway_grid_is_refused_before_it_is_built(changes, message):
    with pytest.raises(UserError, match=message):
        parse_spec({**BASE, **changes})


def test_a_spec_file_past_its_size_limit_is_refused_unread(tmp_path):
    from petscale.study.spec import MAX_SPEC_BYTES, load_spec

    path = tmp_path / "huge.yaml"
    path.write_text("models: [m]\n" + "#" * MAX_SPEC_BYTES)
    with pytest.raises(UserError, match="over the 1,048,576 a spec may take"):
        load_spec(path)


def test_task_options_are_a_study_setting_that_the_floor_shares(tmp_path):
    grid = configs(task_options={"text_field": "sentence"}, untuned=True)
    assert all(c["task_options"] == {"text_field": "sentence"} for c in grid)
    plain = configs(untuned=True)
    assert all("task_options" not in c for c in plain)  # unset: the ids stay as they were
    with pytest.raises(UserError, match="unknown task option"):
        configs(task_options={"text_column": "x"})
