"""One path through a study: ``petscale.study.run`` and ``plan`` from Python make the same
checks as ``petscale study run``, and ``study plan`` lists the grid without running it."""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

from petscale.cli.study import app
from petscale.errors import UserError
from petscale.ids import trial_id
from petscale.study import Runner, Store, plan, run
from petscale.study.store import SPEC_NAME, STORE_NAME
from test_study_cli import FAKE, SPEC, study  # noqa: F401  (the fixture)

GRID = 2 * 2 * 2  # tasks x methods x budgets, one seed


@pytest.fixture
def spec(study):  # noqa: F811
    return study


def test_run_from_python_runs_the_grid_and_resumes(spec, tmp_path):
    folder = tmp_path / "out"
    outcome = run(spec, folder, Runner(trial=FAKE))
    assert outcome.folder == folder and outcome.trials == GRID
    assert outcome.counts["done"] == GRID // 2 and outcome.counts["failed"] == GRID // 2
    assert (folder / SPEC_NAME).is_file()  # the spec kept beside the store, as the CLI does
    logged = (tmp_path / "runs.log").read_text().splitlines()
    again = run(spec, folder, Runner(trial=FAKE))  # done trials are not run again
    assert again.counts["done"] == GRID // 2
    assert len((tmp_path / "runs.log").read_text().splitlines()) == len(logged)


def test_python_route_checks_what_the_cli_checks_and_writes_nothing(spec, tmp_path):
    folder = tmp_path / "out"
    with pytest.raises(UserError, match="--workers must be at least 1"):
        run(spec, folder, Runner(trial=FAKE, workers=0))
    # petscale's own trial: every model of the grid must exist here, before anything is kept
    with pytest.raises(UserError, match="neither a known name"):
        run(spec, folder, Runner())
    assert not folder.exists()


def test_plan_is_the_grid_the_run_makes(spec, tmp_path):
    planned = plan(spec, tmp_path / "out", Runner(trial=FAKE))
    assert len(planned.configs) == GRID
    run(spec, tmp_path / "out", Runner(trial=FAKE))
    with Store.existing(tmp_path / "out") as store:
        stored = {row["id"] for row in store.rows()}
    assert stored == {trial_id(c) for c in planned.configs}


def test_plan_default_folder_sits_next_to_the_spec(spec):
    assert plan(spec, runner=Runner(trial=FAKE)).folder == spec.with_suffix("")


def test_study_plan_cli_lists_every_trial_and_runs_nothing(tmp_path):
    spec = tmp_path / "grid.yaml"
    grid = {**SPEC, "models": ["minilm-l3"], "tasks": ["rotten_tomatoes"]}
    spec.write_text(yaml.safe_dump({**grid, "budgets": [{"geom": [5000, 50000, 2]}]}))
    result = CliRunner().invoke(app, ["plan", str(spec), "--json"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert shown["trials"] == len(shown["configs"]) == 4
    assert all(
        c["id"] == trial_id({k: v for k, v in c.items() if k != "id"}) for c in shown["configs"]
    )
    text = CliRunner().invoke(app, ["plan", str(spec)])
    assert text.exit_code == 0 and "4 trials" in text.output
    assert all(c["id"] in text.output for c in shown["configs"])  # ids shown whole
    assert not (tmp_path / "grid" / STORE_NAME).exists() and not (tmp_path / "grid").exists()


def test_study_plan_refuses_a_bad_spec_in_one_line(tmp_path):
    spec = tmp_path / "grid.yaml"
    spec.write_text(yaml.safe_dump({**SPEC, "models": ["no-such-model"]}))
    result = CliRunner().invoke(app, ["plan", str(spec)])
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1
