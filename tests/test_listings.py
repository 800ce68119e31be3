"""``petscale models`` and ``petscale tasks``: names never cut, plain when piped, --json; the
study's hub ids count offline with the bundled configs."""

from __future__ import annotations

import json
import sys

import pytest

import petscale
from petscale.cli import main
from petscale.errors import UserError
from petscale.zoo.loader import load_model

LONG = "a-model-name-far-longer-than-any-terminal-column-would-show-whole-" * 2


def run_cli(args: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(sys, "argv", ["petscale", *args])
    with pytest.raises(SystemExit) as exit_:
        main()
    return exit_.value.code


def model_row(name: str) -> dict:
    return {
        "name": name,
        "family": "bert",
        "layers": 2,
        "hidden": 32,
        "parameters": 10**6,
        "installed": False,
        "source": "config",
        "hub_id": f"org/{name}",
        "note": "",
    }


def test_models_never_cuts_a_name(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setenv("COLUMNS", "40")
    monkeypatch.setattr("petscale.zoo.catalog.catalog", lambda: [model_row(LONG), model_row("x")])
    assert run_cli(["models"], monkeypatch) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[0] == "name"
    assert lines[1].startswith(f"{LONG}  bert") and f"org/{LONG}" in lines[1]
    assert lines[2].split()[0] == "x" and "…" not in "".join(lines)
    assert run_cli(["models", "--json"], monkeypatch) == 0
    assert json.loads(capsys.readouterr().out)[0]["name"] == LONG


def test_tasks_never_cuts_a_name(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    row = {
        "name": LONG,
        "type": "a-type-name-as-long-as-it-likes",
        "labels": 77,
        "metrics": ["accuracy"],
        "random_guess": 1 / 77,
        "majority": None,
        "sizes": {"train": 9003, "dev": 1000, "test": 3080},
        "available": True,
    }
    monkeypatch.setenv("COLUMNS", "40")
    monkeypatch.setattr("petscale.cli.tasks.task_rows", lambda data_dir=None: [row])
    assert run_cli(["tasks"], monkeypatch) == 0
    out = capsys.readouterr().out
    assert f"{LONG}  a-type-name-as-long-as-it-likes  77" in out and "9,003/1,000/3,080" in out
    assert run_cli(["tasks", "--json"], monkeypatch) == 0
    assert json.loads(capsys.readouterr().out)[0]["name"] == LONG


def test_tasks_piped_greps_whole_lines(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    assert run_cli(["tasks"], monkeypatch) == 0
    out = capsys.readouterr().out
    banking = [line for line in out.splitlines() if "banking77" in line]
    assert len(banking) == 1 and banking[0].split()[:3] == ["banking77", "intent", "77"]
    assert any(line.split()[0] == "rotten_tomatoes" for line in out.splitlines())


@pytest.mark.parametrize(
    ("hub_id", "name"),
    [
        ("google/t5-v1_1-small", "t5-v1_1-small"),
        ("bigscience/bloom-560m", "bloom-560m"),
        ("google/bert_uncased_L-2_H-128_A-2", "bert-tiny"),
        ("sentence-transformers/all-MiniLM-L6-v2", "minilm-l6"),
    ],
)
def test_hub_ids_count_with_the_bundled_config_and_say_so(hub_id: str, name: str) -> None:
    with pytest.warns(UserWarning, match=f"bundled dimensions of '{name}'"):
        by_hub_id = petscale.count(model=hub_id, method="lora")
    by_name = petscale.count(model=name, method="lora")
    assert by_hub_id["trainable_params"] == by_name["trainable_params"]
    assert by_hub_id["total_params"] == by_name["total_params"]


def test_hub_ids_count_from_the_command_line(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    args = ["count", "--model", "google/t5-v1_1-small", "--method", "lora", "--json"]
    assert run_cli(args, monkeypatch) == 0
    assert json.loads(capsys.readouterr().out)["trainable_params"] == 229_376


def test_tuning_a_hub_id_offline_names_the_bundled_stand_in(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UserError, match="--model t5-v1_1-small"):
        load_model("google/t5-v1_1-small", "classification")


def test_a_listing_shows_control_characters_instead_of_sending_them(capsys) -> None:
    from petscale.cli.table import print_table

    print_table(("name", "kind"), [("evil\x1b[2J", "x"), ("plain", "y")])
    out = capsys.readouterr().out
    assert "\x1b" not in out and "evil\\x1b[2J  x" in out
    assert out.splitlines()[2].startswith("plain        y")


@pytest.mark.parametrize(
    "args",
    [["study", "status", "a" * 300], ["report", "a" * 300], ["export", "a" * 300, "--out", "x"]],
)
def test_a_path_the_system_refuses_is_one_line(args, monkeypatch, capsys, tmp_path) -> None:
    monkeypatch.chdir(tmp_path)
    assert run_cli(args, monkeypatch) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
