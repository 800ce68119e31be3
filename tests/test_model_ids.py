"""Models by hub id, and random weights only when asked for: every id ``petscale models``
lists works where a name does; a model without weights here is refused before any training
unless ``--random-init`` asks for a randomly initialised one, which every output names."""

from __future__ import annotations

import json
import sys

import pytest
import yaml
from typer.testing import CliRunner

from petscale.cli import app, main
from petscale.errors import UserError
from petscale.study import Runner, plan
from petscale.zoo.loader import load_model

FAST = ["--steps", "1", "--batch-size", "4", "--max-length", "16", "--eval-limit", "8"]


def test_a_dimensions_only_model_is_refused_without_random_init(toy_task, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    args = ["petscale", "tune", "--model", "bert-tiny", "--task", str(toy_task), *FAST]
    monkeypatch.setattr(sys, "argv", args)
    with pytest.raises(SystemExit) as exit_:
        main()
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "--random-init" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    with pytest.raises(UserError, match="no weights here and the hub is not reachable"):
        load_model("google/bert_uncased_L-2_H-128_A-2")  # its hub id: the same refusal


def test_random_init_tunes_it_and_every_output_says_so(toy_task, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    args = ["tune", "--model", "bert-tiny", "--task", str(toy_task), *FAST, "--random-init"]
    text = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "run")])
    assert text.exit_code == 0, text.output
    assert "randomly initialised model" in text.stdout
    result = json.loads(CliRunner().invoke(app, [*args, "--json"]).stdout)
    assert result["pretrained"] is False
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["pretrained"] is False
    assert json.loads((tmp_path / "run" / "trial.json").read_text())["random_init"] is True


def test_a_spec_on_a_dimensions_only_model_needs_random_init(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    spec = tmp_path / "s.yaml"
    base = {"models": ["bert-tiny"], "tasks": ["rotten_tomatoes"], "methods": {"lora": {}}}
    spec.write_text(yaml.safe_dump(base))
    with pytest.raises(UserError, match="--random-init"):
        plan(spec, runner=Runner())
    spec.write_text(yaml.safe_dump({**base, "random_init": True}))
    assert all(c["random_init"] for c in plan(spec, runner=Runner()).configs)


@pytest.mark.real
def test_a_packaged_model_by_its_hub_id_tunes_as_its_name_does(toy_task):
    runner = CliRunner()
    by_id = ["tune", "--model", "sentence-transformers/paraphrase-MiniLM-L3-v2"]
    by_name = ["tune", "--model", "minilm-l3"]
    common = ["--task", str(toy_task), *FAST, "--json"]
    one = json.loads(runner.invoke(app, [*by_id, *common]).stdout)
    two = json.loads(runner.invoke(app, [*by_name, *common]).stdout)
    assert one["pretrained"] and one["dev_score"] == two["dev_score"]
    assert one["total_params"] == two["total_params"]
