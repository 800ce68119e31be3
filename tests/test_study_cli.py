"""`petscale study run | status | export` through typer's CliRunner, with a fake trial."""

from __future__ import annotations

import csv
import json
import os
import sqlite3
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from petscale.cli.study import app

TESTS = Path(__file__).parent
FAKE = "study_fake:trial"
SPEC = {
    "models": ["m"],
    "untuned": False,  # the grid's own trials only
    "tasks": ["t", "boom"],  # the fake trial raises on "boom"
    "methods": {"lora": {"alpha": 32.0}, "apet": {"pattern": "adjacent"}},
    "budgets": [{"geom": [100, 1000, 2]}],
    "steps": 20,
    "eval_every": 10,
}


@pytest.fixture
def study(tmp_path, monkeypatch):
    """A spec file; the fake trial importable here, in spawned workers and in Ray workers."""
    monkeypatch.syspath_prepend(str(TESTS))
    path = os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])
    monkeypatch.setenv("PYTHONPATH", path)
    monkeypatch.setenv("STUDY_FAKE_LOG", str(tmp_path / "runs.log"))
    monkeypatch.setenv("STUDY_FAKE_FIXED", str(tmp_path / "fixed"))
    spec = tmp_path / "scaling.yaml"
    spec.write_text(yaml.safe_dump(SPEC))
    return spec


def invoke(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


def rows(folder: Path) -> list[sqlite3.Row]:
    db = sqlite3.connect(folder / "study.sqlite")
    db.row_factory = sqlite3.Row
    return db.execute("SELECT * FROM trials").fetchall()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"seed": [0]}, "unknown key 'seed'; did you mean 'seeds'?"),
        ({"methods": {"prefix": {}}}, "unknown method 'prefix'"),
        ({"budgets": [0]}, "budgets[0]: 0 is too small"),
        ({"budgets": [{"geom": [100, 1000, 0]}]}, "an empty grid"),
        ({"steps": {"every": 300}}, "steps: expected a number"),  # a list sweeps: fine
    ],
)
def test_a_bad_spec_fails_before_any_trial_with_one_line(study, change, message):
    study.write_text(yaml.safe_dump({**SPEC, **change}))
    result = invoke("run", study, "--trial", FAKE)
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and message in result.stderr
    assert str(study) in result.stderr  # the message names the file
    assert not (study.parent / "runs.log").exists()
    assert not (study.parent / "scaling").exists()


def test_a_failed_trial_is_recorded_and_retry_failed_reruns_it(study):
    result = invoke("run", study, "--trial", FAKE)
    assert result.exit_code == 1, result.output
    folder = study.parent / "scaling"  # default: next to the spec, named after it
    failed = [r for r in rows(folder) if r["status"] == "failed"]
    assert len(failed) == 4 and len(rows(folder)) == 8
    assert failed[0]["error"].startswith("RuntimeError: boom in ")
    assert "Traceback (most recent call last)" in failed[0]["traceback"]

    result = invoke("run", study, "--trial", FAKE)  # without --retry-failed: nothing to do
    assert result.exit_code == 1 and "4 failed" in result.stdout
    result = invoke("run", study, "--trial", FAKE, "--json")
    assert result.exit_code == 1
    assert json.loads(result.stdout) == {
        **{"done": 4, "failed": 4, "running": 0, "pending": 0},
        **{"trials": 8, "store": str(folder)},
    }

    (study.parent / "fixed").touch()
    result = invoke("run", study, "--trial", FAKE, "--retry-failed")
    assert result.exit_code == 0, result.output
    assert {r["status"] for r in rows(folder)} == {"done"}
    assert sorted(r["attempts"] for r in rows(folder)) == [1] * 4 + [2] * 4
    assert all(r["error"] is None for r in rows(folder))
    assert len((study.parent / "runs.log").read_text().splitlines()) == 12  # 8 + 4 reruns


def test_status_and_export(study, tmp_path):
    (tmp_path / "fixed").touch()
    out = tmp_path / "out"
    assert invoke("run", study, "--trial", FAKE, "--out", out, "--workers", "2").exit_code == 0

    result = invoke("status", out, "--json")
    summary = json.loads(result.stdout)
    assert (summary["done"], summary["pending"], summary["total"]) == (8, 0, 8)
    assert summary["mean_trial_seconds"] == pytest.approx(0.02)
    assert summary["estimated_seconds_left"] == 0
    assert "done 8" in invoke("status", out).stdout

    assert invoke("export", out, "--format", "csv").exit_code == 0
    with (out / "trials.csv").open() as f:
        table = list(csv.DictReader(f))
    assert len(table) == 8
    assert {"id", "model", "method", "options.budget", "options.alpha", "seed", "dev_score"} <= set(
        table[0]
    )
    assert json.loads(table[0]["curve"]) == [[0, 0.0], [10, 0.05], [20, 0.1]]

    pq = pytest.importorskip("pyarrow.parquet")
    target = tmp_path / "t.parquet"
    assert invoke("export", out, "-f", "parquet", "--out", target).exit_code == 0
    frame = pq.read_table(target).to_pylist()
    assert len(frame) == 8 and {r["options.budget"] for r in frame} == {100, 1000}
    assert {r["options.pattern"] for r in frame} == {"adjacent", None}


def test_export_of_a_sub_study_kept_in_a_larger_store(study, tmp_path):
    (tmp_path / "fixed").touch()
    out = tmp_path / "out"
    assert invoke("run", study, "--trial", FAKE, "--out", out).exit_code == 0
    sub = tmp_path / "sub.yaml"
    sub.write_text(yaml.safe_dump({**SPEC, "tasks": ["t"], "methods": {"lora": {"alpha": 32.0}}}))
    target = tmp_path / "sub.csv"
    assert invoke("export", out, "--spec", sub, "--out", target).exit_code == 0
    with target.open() as f:
        table = list(csv.DictReader(f))
    assert len(table) == 2 and {(r["task"], r["method"]) for r in table} == {("t", "lora")}
    assert invoke("export", out, "--spec", tmp_path / "none.yaml").exit_code == 2


def test_status_and_export_of_a_missing_study_say_so(tmp_path):
    for args in (["status", tmp_path], ["export", tmp_path, "--format", "csv"]):
        result = invoke(*args)
        assert result.exit_code == 2 and "no study store at" in result.stderr
    result = invoke("run", tmp_path / "none.yaml")
    assert result.exit_code == 2 and "cannot read study spec" in result.stderr


@pytest.mark.ray
def test_ray_backend_completes_a_small_study(study, tmp_path):
    pytest.importorskip("ray")
    out = tmp_path / "ray"
    result = invoke("run", study, "--trial", FAKE, "--backend", "ray", "--workers", "2", "-o", out)
    assert result.exit_code == 1, result.output  # the four "boom" trials fail
    statuses = sorted(r["status"] for r in rows(out))
    assert statuses == ["done"] * 4 + ["failed"] * 4
    runs = [line.split()[0] for line in (tmp_path / "runs.log").read_text().splitlines()]
    assert sorted(runs) == sorted(r["id"] for r in rows(out))  # each trial ran once


def test_export_never_replaces_the_store_the_spec_or_a_file_it_did_not_write(study, tmp_path):
    (tmp_path / "fixed").touch()
    out = tmp_path / "out"
    assert invoke("run", study, "--trial", FAKE, "--out", out).exit_code == 0
    store = (out / "study.sqlite").read_bytes()
    mine = tmp_path / "notes.csv"
    mine.write_text("id,text,label\n1,keep me,1\n")  # an id column alone is no export
    for target in (out / "study.sqlite", out / "spec.yaml", mine):
        result = invoke("export", out, "--out", target)
        assert result.exit_code == 2 and result.stderr.count("\n") == 1, result.output
    assert (out / "study.sqlite").read_bytes() == store
    assert mine.read_text() == "id,text,label\n1,keep me,1\n"
    assert invoke("export", out).exit_code == 0
    assert invoke("export", out).exit_code == 0  # an earlier export is replaced
    assert (out / "trials.csv").read_text().startswith("id,")


def test_readers_refuse_an_empty_or_foreign_store_and_write_nothing_to_it(tmp_path):
    folder = tmp_path / "s"
    folder.mkdir()
    (folder / "study.sqlite").write_bytes(b"")
    for command in (["status", str(folder)], ["export", str(folder)]):
        result = invoke(*command)
        assert result.exit_code == 2 and "not a petscale study store" in result.stderr
    assert (folder / "study.sqlite").read_bytes() == b""
    assert sorted(p.name for p in folder.iterdir()) == ["study.sqlite"]


def test_a_failed_trial_s_retry_hint_names_the_out_folder(study, tmp_path):
    out = tmp_path / "elsewhere"
    result = invoke("run", study, "--trial", FAKE, "--out", out)
    assert result.exit_code == 1
    assert f"--out {out} --retry-failed" in result.stderr


@pytest.mark.parametrize("value", ["nan", "inf", "0"])
def test_cpus_per_trial_must_be_a_positive_number(study, tmp_path, value):
    result = invoke(
        "run", study, "--trial", FAKE, "--out", tmp_path / "o", "--cpus-per-trial", value
    )
    assert result.exit_code == 2 and "--cpus-per-trial must be a number > 0" in result.stderr


def test_bad_runner_options_write_nothing(study, tmp_path):
    result = invoke("run", study, "--trial", FAKE, "--out", tmp_path / "new", "--workers", "0")
    assert result.exit_code == 2 and "--workers must be at least 1" in result.stderr
    assert not (tmp_path / "new").exists()
