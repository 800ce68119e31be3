"""Adding a method is one module and one registry line: a toy method (tests/toy_method.py)
shows up in ``tune --help``, the Python API and study specs, with its options' checks."""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

import petscale
import petscale.cli
import petscale.cli.tune
from petscale import methods
from petscale.errors import UserError
from petscale.study.spec import expand, parse_spec


def _rebuild_cli() -> typer.Typer:
    # The CLI derives its options when it is built (at import): built again, as at start-up.
    importlib.reload(petscale.cli.tune)
    return importlib.reload(petscale.cli).app


@pytest.fixture
def toy() -> Iterator[typer.Typer]:
    methods.register_method("toy", "a trained shift of the input embeddings", "toy_method")
    yield _rebuild_cli()
    del methods.METHODS["toy"], methods.MODULES["toy"]
    methods.get_method.cache_clear()
    _rebuild_cli()


def test_the_toy_shows_in_tune_help(toy: typer.Typer) -> None:
    result = CliRunner().invoke(toy, ["tune", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert re.search(r"--scale .*toy: scale \(default 1\.0\)", result.output)
    assert re.search(r"--width .*toy: width \(default 4\)", result.output)
    assert re.search(r"--method .*One of: full, .*, toy\.", result.output)


def test_petscale_methods_lists_the_toy_with_its_options(toy: typer.Typer) -> None:
    result = CliRunner().invoke(toy, ["methods", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.output)}
    assert rows["toy"]["options"] == {"width": 4, "scale": 1.0}
    assert rows["toy"]["sized_by_budget"] == "width"
    assert rows["lora"]["sized_by_budget"] == "rank" and rows["apet"]["sized_by_budget"] == "budget"
    assert rows["full"]["sized_by_budget"] is None
    table = CliRunner().invoke(toy, ["methods"], env={"COLUMNS": "60"}).output
    assert "toy" in table and "width=4, scale=1.0" in table  # whole cells, even when narrow


def test_a_bad_toy_option_is_one_line_naming_it_on_the_command_line(toy: typer.Typer) -> None:
    args = ["count", "--model", "bert-tiny", "--method", "toy", "--scale", "-2", "--json"]
    result = CliRunner().invoke(toy, args)
    assert isinstance(result.exception, UserError)
    assert str(result.exception) == "--scale must be positive, got -2.0"


def test_the_python_api_tunes_and_counts_the_toy(
    toy: typer.Typer, tiny_bert: Path, toy_task: Path
) -> None:
    result = petscale.tune(
        model=str(tiny_bert), task=str(toy_task), method="toy", width=3, scale=0.5, steps=2
    )
    assert result["method"] == "toy" and result["trainable_params"] == 3
    assert result["options"] == {"width": 3, "scale": 0.5}
    # a budget sizes it like any sized method (the sizing step)
    assert petscale.count(model="bert-tiny", method="toy", budget=10)["options"]["width"] == 10
    # the Python API names the keyword as written (the command line names the flag)
    with pytest.raises(UserError, match="scale= must be positive, got 0"):
        petscale.count(model="bert-tiny", method="toy", scale=0)


def test_a_study_spec_takes_the_toy_and_checks_its_options(toy: typer.Typer) -> None:
    base = {"models": ["bert-tiny"], "tasks": ["rotten_tomatoes"], "untuned": False}
    spec = parse_spec({**base, "methods": {"toy": {"scale": 2.0}}, "budgets": ["default", 7]})
    assert [c["options"] for c in expand(spec)] == [{"scale": 2.0}, {"scale": 2.0, "budget": 7}]
    for options, message in [
        ({"scale": -1}, "methods.toy: --scale must be positive, got -1"),
        ({"scale": "big"}, "methods.toy: --scale takes float, got 'big'"),
        ({"sclae": 1.0}, "methods.toy: --sclae does not apply to method 'toy'"),
    ]:
        with pytest.raises(UserError) as error:
            parse_spec({**base, "methods": {"toy": options}})
        assert message in str(error.value) and "\n" not in str(error.value)
