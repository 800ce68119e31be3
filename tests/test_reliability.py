"""Issue 10: bad input is one line and exit 2, training never ends in silent NaN, the store
refuses what it cannot trust, and the same trial gives the same result run after run."""

from __future__ import annotations

import csv
import json
import math
import sys
from pathlib import Path

import pytest
import yaml
from safetensors.torch import load_file

import petscale
from petscale.answers.classify import ClassifyAnswerer
from petscale.cli import main
from petscale.study.spec import trial_id
from petscale.study.store import Owner, Store
from petscale.train import Diverged

TINY = {"steps": 4, "batch_size": 8, "max_length": 16}


def cli(args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture):
    monkeypatch.setattr(sys, "argv", ["petscale", *args])
    with pytest.raises(SystemExit) as exit_:
        main()
    captured = capsys.readouterr()
    return exit_.value.code, captured.out, captured.err


def assert_one_line(code: int, err: str, message: str) -> None:
    assert code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert message in err, err


def write_csv(path: Path, rows: list[tuple[str, str]], encoding: str = "utf-8") -> Path:
    with open(path, "w", newline="", encoding=encoding) as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    return path


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["count", "--alpha", "nan"], "--alpha must be a finite number, got nan"),
        (["count", "--dropout", "inf"], "--dropout must be a finite number"),
        (["count", "--rank", "-1"], "--rank must be positive, got -1"),
        (["count", "--rank", "99999999999999999999"], "--rank 99999999999999999999 is too large"),
        (["count", "--rank", "100000"], "more than the model's"),
        (["count", "--budget", "1000000000000000"], "is larger than the model ("),
        (["count", "--method", "bitfit", "--budget", "10000000"], "more than bitfit can hold"),
        (["count", "--budget", "5000", "--rank", "4"], "give either --budget or --rank"),
        (["count", "--num-labels", "0"], "--num-labels must be at least 1, got 0"),
        (["count", "--method", "apet", "--match", "probe"], "probe trains no parameters of its"),
        (["tune", "--lr", "inf"], "--lr must be a finite number, got inf"),
        (["tune", "--lr", "nan"], "--lr must be a finite number, got nan"),
        (["tune", "--lr", "1e400"], "--lr must be a finite number, got inf"),
        (["tune", "--alpha", "nan"], "--alpha must be a finite number, got nan"),
        (["tune", "--seed", "99999999999999999999"], "--seed 99999999999999999999 is too large"),
        (["tune", "--steps", "99999999999999999999"], "--steps 99999999999999999999 is too large"),
        (["tune", "--rank", "0"], "--rank must be positive, got 0"),
    ],
)
def test_bad_numbers_are_one_line_before_anything_loads(args, message, monkeypatch, capsys):
    assert_one_line(*cli(args, monkeypatch, capsys)[::2], message)


def test_a_run_that_turns_nan_stops_and_saves_nothing(
    tiny_bert: Path, toy_task: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loss = ClassifyAnswerer.loss

    def turns_nan(self, model, batch):  # as a diverging run's loss does from its 3rd step on
        turns_nan.calls += 1
        return loss(self, model, batch) * (math.nan if turns_nan.calls >= 3 else 1.0)

    turns_nan.calls = 0
    monkeypatch.setattr(ClassifyAnswerer, "loss", turns_nan)
    out = tmp_path / "run"
    with pytest.raises(Diverged, match="the training loss became nan at step 3; stopped"):
        petscale.tune(model=str(tiny_bert), task=str(toy_task), method="lora", out=out, **TINY)
    assert not out.exists()


def test_task_data_nothing_can_be_learnt_from(tiny_bert: Path, tmp_path: Path, monkeypatch, capsys):
    one_class = write_csv(tmp_path / "one.csv", [(f"text {i}", "good") for i in range(30)])
    empty = write_csv(tmp_path / "empty.csv", [("", "good" if i % 2 else "bad") for i in range(30)])
    for task, message in (
        (one_class, "every training example has the label 'good'"),
        (empty, "every training text is empty"),
    ):
        args = ["tune", "--model", str(tiny_bert), "--task", str(task), "--steps", "1"]
        assert_one_line(*cli(args, monkeypatch, capsys)[::2], message)


def test_encoding_option_reads_a_latin_1_file(tiny_bert: Path, tmp_path: Path, monkeypatch, capsys):
    rows = [(f"caf\u00e9 {'bon' if i % 2 else 'mauvais'} {i}", str(i % 2)) for i in range(40)]
    latin = write_csv(tmp_path / "latin.csv", rows, encoding="latin-1")
    args = ["tune", "--model", str(tiny_bert), "--task", str(latin), "--steps", "1", "--json"]
    assert_one_line(*cli(args, monkeypatch, capsys)[::2], "--encoding latin-1")
    code, out, err = cli([*args, "--encoding", "latin-1"], monkeypatch, capsys)
    assert code == 0, err
    assert json.loads(out)["steps"] == 1


def test_max_length_past_the_models_positions_is_lowered_with_a_note(
    tiny_bert: Path, tmp_path: Path, monkeypatch, capsys
):
    long = " ".join(["word"] * 400)  # far more tokens than the tiny model's 128 positions
    task = write_csv(tmp_path / "long.csv", [(long, str(i % 2)) for i in range(20)])
    args = ["tune", "--model", str(tiny_bert), "--task", str(task), "--steps", "1"]
    code, _, err = cli([*args, "--max-length", "1000", "--batch-size", "4"], monkeypatch, capsys)
    assert code == 0, err
    assert "has 128 positions; --max-length 1000 lowered to 128" in err


def test_a_prompt_longer_than_the_positions_gets_advice_that_can_be_followed(
    tiny_bert: Path, toy_task: Path, monkeypatch, capsys
):
    args = ["tune", "--model", str(tiny_bert), "--task", str(toy_task), "--method", "prompt"]
    code, _, err = cli([*args, "--length", "200", "--steps", "1"], monkeypatch, capsys)
    assert_one_line(code, err, "lower --length below 128")


def test_tampered_store_row_is_failed_not_run(tmp_path: Path) -> None:
    config = {"model": "m", "task": "t", "method": "lora", "options": {}, "seed": 0}
    with Store(tmp_path) as store:
        store.queue([config])
        store.db.execute("UPDATE trials SET config = ?", (json.dumps({**config, "seed": 1}),))
        assert store.claim(Owner()) is None
        row = store.db.execute("SELECT id, status, error FROM trials").fetchone()
    assert row["id"] == trial_id(config) and row["status"] == "failed"
    assert "no longer hashes to this trial's id" in row["error"]


def test_study_commands_on_bad_folders_are_one_line(tmp_path: Path, monkeypatch, capsys):
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "study.sqlite").write_bytes(b"not a database, just text" * 100)
    for command in (["status"], ["export"]):
        result = cli(["study", *command, str(corrupt)], monkeypatch, capsys)
        assert_one_line(*result[::2], "is not a readable study store")

    spec = tmp_path / "spec.yaml"
    # untuned: false: the fake trial trains; an untuned trial (no steps) is no case for it
    grid = {"models": ["m"], "tasks": ["t"], "methods": ["lora"], "untuned": False}
    spec.write_text(yaml.safe_dump(grid))
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    run = ["study", "run", str(spec), "--trial", "study_fake:trial", "--out", str(a_file)]
    code, out, err = cli(run, monkeypatch, capsys)
    assert_one_line(code, err, f"cannot use {a_file} as a study folder")

    good = tmp_path / "good"
    monkeypatch.syspath_prepend(str(Path(__file__).parent))  # the fake trial
    assert cli([*run[:-1], str(good)], monkeypatch, capsys)[0] == 0
    export = ["study", "export", str(good), "--out"]
    assert_one_line(*cli([*export, str(tmp_path)], monkeypatch, capsys)[::2], "is a folder")
    unwritable = "/proc/petscale-trials.csv"  # not writable even by root
    assert_one_line(*cli([*export, unwritable], monkeypatch, capsys)[::2], "cannot write")


def test_study_run_option_errors_print_no_progress_first(tmp_path: Path, monkeypatch, capsys):
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({"models": ["m"], "tasks": ["t"], "methods": ["lora"]}))
    run = ["study", "run", str(spec), "--trial", "study_fake:trial", "--out", str(tmp_path / "o")]
    for option, message in ((["--workers", "0"], "--workers"), (["--backend", "x"], "backend")):
        code, out, err = cli([*run, *option], monkeypatch, capsys)
        assert_one_line(code, err, message)
        assert out == ""


def test_same_config_same_placement_curve_and_scores_on_cpu(
    tiny_bert: Path, toy_task: Path, tmp_path: Path
) -> None:
    def trained(name: str) -> tuple[dict, dict]:
        report = petscale.tune(
            model=str(tiny_bert),
            task=str(toy_task),
            method="apet",
            budget=300,
            steps=6,
            eval_every=3,
            batch_size=8,
            max_length=16,
            out=tmp_path / name,
        )
        return report, load_file(tmp_path / name / "delta.safetensors")

    (first, first_delta), (again, again_delta) = trained("first"), trained("again")
    for key in ("curve", "dev_score", "test_score", "trainable_params", "options"):
        assert first[key] == again[key], key
    assert first_delta.keys() == again_delta.keys()  # the same placement (indices saved)...
    assert all((first_delta[k] == again_delta[k]).all() for k in first_delta)  # ...and values
