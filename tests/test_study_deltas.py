"""Study trials keep their trained deltas (run folders in DIR/trials/<id>/) unless told not to."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import petscale
from petscale.errors import UserError
from petscale.run_folder import read_run
from petscale.study.runners import run_study
from petscale.study.spec import expand, parse_spec, trial_id
from petscale.study.store import Store, trial_folder


def _configs(tiny_bert: Path, toy_task: Path, **extra: object) -> list[dict]:
    spec = parse_spec(
        {
            "models": [str(tiny_bert)],
            "untuned": False,
            "tasks": [str(toy_task)],
            "methods": {"lora": {"rank": 2}},
            "steps": 4,
            "batch_size": 8,
            "max_length": 16,
            "eval_every": 0,
            **extra,
        }
    )
    return expand(spec)


def test_a_study_trial_keeps_a_loadable_delta(tiny_bert: Path, toy_task: Path, tmp_path: Path):
    configs = _configs(tiny_bert, toy_task)
    counts = run_study(tmp_path, configs, keep_deltas=True)
    assert counts["done"] == 1
    folder = trial_folder(tmp_path, trial_id(configs[0]))
    saved = read_run(folder)
    assert saved.method == "lora" and saved.options["rank"] == 2
    assert saved.head  # the trained head travels with the delta
    model, _ = petscale.load(folder)
    lora = {k: v for k, v in model.state_dict().items() if "lora" in k}
    assert lora and any(torch.equal(v, t) for v in lora.values() for t in saved.delta.values())
    # the stored result and the kept folder are the same trial
    with Store.existing(tmp_path) as store:
        (row,) = list(store.rows())
    assert row["id"] == folder.name


def test_keep_deltas_off_keeps_nothing_and_does_not_change_ids(
    tiny_bert: Path, toy_task: Path, tmp_path: Path
):
    kept = _configs(tiny_bert, toy_task)
    not_kept = _configs(tiny_bert, toy_task, keep_deltas=False)
    assert [trial_id(c) for c in kept] == [trial_id(c) for c in not_kept]
    run_study(tmp_path, not_kept, keep_deltas=False)
    assert not (tmp_path / "trials").exists()


def test_keep_deltas_must_be_a_boolean() -> None:
    with pytest.raises(UserError, match="keep_deltas: expected true or false"):
        parse_spec({"models": ["m"], "tasks": ["t"], "methods": ["lora"], "keep_deltas": "yes"})
