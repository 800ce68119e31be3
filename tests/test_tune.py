"""End to end: tune a tiny model on a toy task, through the API and the command line."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import petscale
import tiny
from petscale.cli import main
from petscale.errors import UserError

FAST = {"steps": 100, "batch_size": 16, "lr": 2e-3, "max_length": 32}


def run_cli(args: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(sys, "argv", ["petscale", *args])
    with pytest.raises(SystemExit) as exit_:
        main()
    return exit_.value.code


def test_tune_reports_every_field_and_learns(tiny_bert: Path, toy_task: Path) -> None:
    result = petscale.tune(model=str(tiny_bert), task=str(toy_task), method="lora", **FAST)
    for key in (
        "model", "task", "method", "options", "trainable_params", "head_params",
        "total_params", "steps", "metric", "dev_score", "test_score", "curve", "seconds",
        "peak_memory_mb",
    ):  # fmt: skip
        assert key in result
    # rank 8 on q and v of 2 layers of width 32: 2 layers x 2 modules x 8 x (32 + 32)
    assert result["trainable_params"] == 2 * 2 * 8 * 64
    assert result["head_params"] == 32 * 2 + 2
    assert result["steps"] == 100 and result["curve"][-1] == [100, result["dev_score"]]


def test_same_seed_same_weights_other_seed_other_weights(
    tiny_bert: Path, toy_task: Path, tmp_path: Path
) -> None:
    def trained(seed: int, name: str) -> tuple[dict, dict[str, torch.Tensor]]:
        out = tmp_path / name
        report = petscale.tune(
            model=str(tiny_bert), task=str(toy_task), method="full", seed=seed, out=out, **FAST
        )
        return report, load_file(out / "delta.safetensors")

    first, first_weights = trained(0, "first")
    again, again_weights = trained(0, "again")
    other, other_weights = trained(1, "other")
    assert first["dev_score"] == again["dev_score"]
    assert all(torch.equal(first_weights[k], again_weights[k]) for k in first_weights)
    assert first_weights.keys() == other_weights.keys()
    assert not all(torch.equal(first_weights[k], other_weights[k]) for k in first_weights)
    assert first["dev_score"] > 0.75  # full fine-tuning solves the toy task


@pytest.mark.parametrize(
    ("method", "head", "pooling"),
    [
        ("lora", "trainable", "auto"),
        ("bitfit", "label-words", "auto"),
        ("apet", "frozen", "auto"),
        ("prompt", "trainable", "mean"),
    ],
)
def test_saved_run_loads_with_the_same_predictions(
    method: str, head: str, pooling: str, tiny_bert: Path, toy_task: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    result = petscale.tune(
        model=str(tiny_bert),
        task=str(toy_task),
        method=method,
        head=head,
        pooling=pooling,
        out=out,
        **FAST,
    )
    assert result["pooling"] == ("cls" if pooling == "auto" else pooling)
    assert {"delta.safetensors", "delta.json", "trial.json", "metrics.json"} <= {
        p.name for p in out.iterdir()
    }
    model, tokenizer = petscale.load(out)
    assert model.training is False
    assert tiny.dev_accuracy(model, tokenizer, toy_task, 32) == result["dev_score"]


def test_cli_json_is_one_object_on_stdout(
    tiny_bert: Path, toy_task: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    args = ["tune", "--model", str(tiny_bert), "--task", str(toy_task), "--steps", "5"]
    assert run_cli([*args, "--max-length", "32", "--json"], monkeypatch) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["method"] == "lora" and result["steps"] == 5


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["tune", "--model", "no-such-model"], "no-such-model"),
        (["tune", "--task", "no_such_task"], "no_such_task"),
        (["tune", "--method", "magic"], "unknown method 'magic'"),
        (["tune", "--rank", "0"], "--rank must be positive"),
        (["tune", "--steps", "-3"], "--steps must be positive"),
        (["count", "--method", "lora", "--length", "5"], "--length does not apply"),
        (["tune", "--steps", "many"], "Invalid value for '--steps'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    args: list[str],
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    assert run_cli(args, monkeypatch) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and err.startswith("error: ") and "\n" not in err
    assert "Traceback" not in err


def test_apet_placement_follows_the_trial_seed(tiny_bert: Path, toy_task: Path) -> None:
    runs = [
        petscale.tune(
            model=str(tiny_bert),
            task=str(toy_task),
            method="apet",
            budget=500,
            seed=s,
            steps=2,
            max_length=32,
        )  # fmt: skip
        for s in (0, 1)
    ]
    assert [r["options"]["seed"] for r in runs] == [0, 1]
    assert all(r["trainable_params"] == 500 and r["schedule"] == "constant" for r in runs)


def test_out_is_written_whole_and_replaces_only_a_run(
    tiny_bert: Path, toy_task: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "run"
    quick = {**FAST, "steps": 2}
    petscale.tune(model=str(tiny_bert), task=str(toy_task), method="lora", out=out, **quick)
    petscale.tune(model=str(tiny_bert), task=str(toy_task), method="lora", out=out, seed=1, **quick)
    assert json.loads((out / "trial.json").read_text())["seed"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no staging folder left

    def crash(*_args: object, **_kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(petscale.methods.base.Delta, "save", crash)
    with pytest.raises(UserError, match="disk full"):  # nor could a temporary folder take it
        petscale.tune(model=str(tiny_bert), task=str(toy_task), method="lora", out=out, **quick)
    assert json.loads((out / "trial.json").read_text())["seed"] == 1  # the earlier run, intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_out_holding_other_files_is_refused_before_training(
    tiny_bert: Path,
    toy_task: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    args = ["tune", "--model", str(tiny_bert), "--task", str(toy_task), "--out", str(tmp_path)]
    assert run_cli(args, monkeypatch) == 2
    assert "not a petscale run" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_probe_trains_the_head_alone(tiny_bert: Path, toy_task: Path, tmp_path: Path) -> None:
    out = tmp_path / "probe"
    result = petscale.tune(
        model=str(tiny_bert), task=str(toy_task), method="probe", out=out, **FAST
    )
    assert result["trainable_params"] == 0 and result["head_params"] == 32 * 2 + 2
    saved = load_file(out / "delta.safetensors")
    assert sorted(saved) == ["head/classifier.bias", "head/classifier.weight"]
    initial = load_file(next(tiny_bert.glob("*.safetensors")))
    assert not torch.equal(saved["head/classifier.weight"], initial["classifier.weight"])


def test_nothing_to_train_is_a_one_line_error(
    tiny_bert: Path, toy_task: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    args = ["tune", "--model", str(tiny_bert), "--task", str(toy_task), "--method", "probe"]
    assert run_cli([*args, "--head", "frozen"], monkeypatch) == 2
    assert capsys.readouterr().err.strip().startswith("error: nothing to train")
