"""`petscale report FILE`: a table `petscale study export` wrote (or a hand-written one) gives
the report of its study; a bad file is one line and exit 2; the per-trial table; strict JSON."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import pickle
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from petscale.analysis import exported
from petscale.analysis.exported import load_table
from petscale.cli import main
from petscale.errors import UserError
from petscale.report import Report, gather, write
from petscale.study.export import export
from petscale.study.store import Owner, Store
from test_report import planted_study

# What a report of the table must share with the report of its folder.
SAME = ("findings", "thresholds", "structure_agreement", "gaps", "gap_trend", "pattern_speed")
MINIMAL = ("model", "task", "method", "seed", "dev_score", "trainable_params")


def _strict(text: str) -> Any:
    """JSON as a strict reader takes it: NaN or Infinity is an error, not a number."""

    def refuse(name: str) -> None:
        raise ValueError(f"{name} in JSON")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The planted study, plus a failed and a pending trial that no report shows."""
    folder = planted_study(tmp_path_factory.mktemp("study"), seeds=2)
    extra = {"model": "tiny-s", "task": "rotten_tomatoes", "method": "lora", "options": {}}
    with Store(folder) as store:
        store.queue([{**extra, "seed": 7}, {**extra, "seed": 8}])
        owner = Owner()
        tid, _ = store.claim(owner)
        store.fail(tid, owner, "RuntimeError: planted", "Traceback ...")
    return folder


@pytest.fixture(scope="module")
def report(study: Path) -> Report:
    return gather(study)  # the figures take a few seconds: gathered once for these tests


@pytest.fixture(scope="module")
def baseline(report: Report) -> dict[str, Any]:
    """The folder's report, as --json prints it."""
    return _strict(json.dumps(report.summary(), allow_nan=False))


@pytest.fixture(scope="module")
def table(study: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export(study, "csv", tmp_path_factory.mktemp("exported") / "trials.csv")


def petscale(monkeypatch, capsys, *args: Any) -> tuple[int, str, str]:
    """``petscale ARGS`` in this process, as the console script runs it: (exit, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["petscale", *map(str, args)])
    with pytest.raises(SystemExit) as exit_:
        main()
    captured = capsys.readouterr()
    return exit_.value.code, captured.out, captured.err


def _done_ids(study: Path) -> set[str]:
    with Store.existing(study) as store:
        return {r["id"] for r in store.rows() if r["status"] == "done"}


def _write_csv(path: Path, rows: list[dict[str, Any]], columns: tuple[str, ...]) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_a_csv_export_reports_what_its_folder_reports(table, baseline, monkeypatch, capsys):
    code, out, err = petscale(monkeypatch, capsys, "report", table, "--json")
    assert code == 0, err
    data = _strict(out)  # no NaN in the JSON: a strict reader takes it
    for key in SAME:
        assert data[key] == baseline[key], key
    assert data["findings"] and data["thresholds"] and data["gaps"]
    assert data["trial_counts"] == baseline["trial_counts"]
    assert data["trial_counts"] == {
        "done": len(baseline["trials"]),
        "failed": 1,
        "running": 0,
        "pending": 1,
        "total": len(baseline["trials"]) + 2,
    }
    assert data["trials"] == baseline["trials"]
    assert data["input"] == "table" and baseline["input"] == "study"
    # The report goes beside the file by default, named after it.
    assert Path(data["report"]) == table.parent / "trials-report" / "report.html"
    assert data["spec"]["grid"]["options.pattern"] == ['"adjacent"', '"discrete"']


def test_a_parquet_export_reports_what_its_folder_reports(study, baseline, tmp_path):
    pytest.importorskip("pyarrow")
    path = export(study, "parquet", tmp_path / "t.parquet")
    data = _strict(json.dumps(gather(path).summary(), allow_nan=False))
    for key in (*SAME, "trials", "trial_counts"):
        assert data[key] == baseline[key], key


def test_the_trials_table_holds_every_done_trial_once(study, table, tmp_path):
    out = tmp_path / "r"
    page = write(gather(table), out).read_text()
    rows = _rows(out / "trials.csv")
    assert list(rows[0]) == [
        "trial_id",
        "model",
        "task",
        "structure",
        "budget",
        "seed",
        "dev_score",
        "test_score",
        "seconds",
    ]
    assert sorted(r["trial_id"] for r in rows) == sorted(_done_ids(study))
    with Store.existing(study) as store:
        scores = {r["id"]: r["dev_score"] for r in store.rows() if r["status"] == "done"}
        budgets = {r["id"]: r["trainable_params"] for r in store.rows() if r["status"] == "done"}
    assert all(float(r["dev_score"]) == pytest.approx(scores[r["trial_id"]]) for r in rows)
    assert all(int(float(r["budget"])) == budgets[r["trial_id"]] for r in rows)
    # A fixed order: by model, task, structure, budget, seed.
    keys = [
        (r["model"], r["task"], r["structure"], float(r["budget"]), int(r["seed"])) for r in rows
    ]
    assert keys == sorted(keys)
    assert "<h2>Trials</h2>" in page and "apet-adjacent" in page and "1,000,000" in page
    assert page.count("<tr>") >= len(rows)
    assert "Exported table" in page
    again = tmp_path / "again"
    write(gather(table), again)
    assert (again / "trials.csv").read_bytes() == (out / "trials.csv").read_bytes()


def test_a_hand_written_minimal_csv_is_reported(table, tmp_path, monkeypatch, capsys):
    done = [row for row in _rows(table) if row["status"] == "done"]
    mine = _write_csv(tmp_path / "mine.csv", done, MINIMAL)
    code, out, err = petscale(
        monkeypatch, capsys, "report", mine, "--json", "--out", tmp_path / "r"
    )
    assert code == 0, err
    data = _strict(out)
    assert data["findings"] and all(f["verdict"] for f in data["findings"])
    # No status column: every row is a done trial.
    assert data["trial_counts"]["done"] == data["trial_counts"]["total"] == len(done)
    assert len(data["trials"]) == len(done)
    assert all(t["test_score"] is None for t in data["trials"])  # no test scores: null
    assert (tmp_path / "r" / "trials.csv").is_file()


def test_a_minimal_csv_may_give_budgets_as_options_and_status_filters_rows(tmp_path):
    rows = [
        {"model": "m", "task": "t", "method": "lora", "seed": s, "dev_score": 0.5 + b / 1e4}
        | {"options.budget": b, "status": "done"}
        for s in (0, 1)
        for b in (10, 100, 1000)
    ]
    rows += [{"model": "m", "task": "t", "method": "lora", "seed": 9, "status": "failed"}]
    columns = ("model", "task", "method", "seed", "dev_score", "options.budget", "status")
    df = load_table(_write_csv(tmp_path / "b.csv", rows, columns))
    assert len(df) == 6 and sorted(df["budget"].unique()) == [10, 100, 1000]
    assert not df["default_budget"].any()
    assert list(df["options"].iloc[0]) == ["budget"]
    table = exported.read_table(tmp_path / "b.csv")
    assert table.counts == {"done": 6, "failed": 1, "running": 0, "pending": 0, "total": 7}


def test_apet_rows_take_their_pattern_and_options_their_types(table):
    df = load_table(table)
    apet = df[df["method"] == "apet"]
    assert set(apet["structure"]) == {"apet-adjacent", "apet-discrete"}
    assert set(df.loc[df["method"] != "apet", "pattern"].dropna()) == set()
    assert {type(o["budget"]) for o in apet["options"]} == {int}
    assert all(isinstance(point, tuple) and len(point) == 2 for point in df["curve"].iloc[0])
    assert set(df.loc[df["method"].isin(["full", "lora", "bitfit"]), "default_budget"]) == {True}
    assert set(apet["default_budget"]) == {False}


def _pickled(path: Path) -> Path:
    path.write_bytes(pickle.dumps({"model": ["m"], "dev_score": [0.5]}))
    return path


def _csv_text(text: str):
    def make(path: Path) -> Path:
        path.write_text(text)
        return path

    return make


def _folder(path: Path) -> Path:
    path.mkdir()
    return path


HEADER = "model,task,method,seed,dev_score,trainable_params\n"
BAD = {
    "missing.csv": (
        _csv_text("model,task,method,seed,trainable_params\nm,t,lora,0,100\n"),
        "lacks the column(s) dev_score",
    ),
    "text.csv": (_csv_text(HEADER + "m,t,lora,0,good,100\n"), "dev_score is 'good', not a number"),
    "x.csv": (_folder, "is a folder, not an exported table"),
    "empty.csv": (_csv_text(""), "is empty"),
    "header.csv": (_csv_text(HEADER), "holds no done trial"),
    "pickle.parquet": (_pickled, "is not a Parquet file"),
    "pickle.csv": (_pickled, "is not a CSV table"),
    "notes.txt": (_csv_text(HEADER + "m,t,lora,0,0.5,100\n"), "neither a study folder nor a"),
    "budgetless.csv": (
        _csv_text("model,task,method,seed,dev_score\nm,t,lora,0,0.5\n"),
        "trainable_params (or options.budget)",
    ),
    "nan.csv": (_csv_text(HEADER + "m,t,lora,0,nan,100\n"), "finite dev score"),
    "curve.csv": (
        _csv_text(HEADER.replace("\n", ",curve\n") + 'm,t,lora,0,0.5,100,"[[1, 2, 3]]"\n'),
        "curve is not a JSON list",
    ),
    "cells.csv": (_csv_text(HEADER + "m,t,lora,0,0.5,100,extra\n"), "row 1 has 7 cells"),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_a_bad_file_is_one_line_and_exit_2(name, tmp_path, monkeypatch, capsys):
    make, message = BAD[name]
    path = make(tmp_path / name)
    code, out, err = petscale(monkeypatch, capsys, "report", path)
    assert code == 2, (out, err)
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert message in err
    assert "Traceback" not in err and out == ""
    assert not any(p.name.endswith("-report") for p in tmp_path.iterdir())


def test_an_oversized_table_is_refused_before_it_is_read(table, monkeypatch, capsys):
    monkeypatch.setattr(exported, "MAX_TABLE_BYTES", 1000)
    code, _, err = petscale(monkeypatch, capsys, "report", table)
    assert code == 2 and "a table may be" in err and err.count("\n") == 1


def test_transfer_and_subspace_need_the_study_folder(table, monkeypatch, capsys):
    for flags in (["--transfer"], ["--subspace"], ["--transfer", "--subspace"]):
        code, _, err = petscale(monkeypatch, capsys, "report", table, *flags)
        assert code == 2 and "the study folder" in err and err.count("\n") == 1


def test_a_repeated_id_is_refused(table, tmp_path):
    rows = _rows(table)
    path = _write_csv(tmp_path / "twice.csv", [*rows, rows[0]], tuple(rows[0]))
    with pytest.raises(UserError, match="repeats the id"):
        load_table(path)


@dataclasses.dataclass
class _Finding:
    """A finding with fields this report has never seen, some of them NaN or numpy's."""

    key: str = "planted"
    claim: str = "c"
    verdict: str = "not tested"
    n_seeds: int = 0
    evidence: str = "e"
    effect: float = math.nan
    ci_low: Any = np.float64("nan")
    ci_high: Any = math.inf
    n: Any = np.int64(3)
    band: tuple = (math.nan, 1.0)
    conclusion: str = "w"


def test_new_finding_fields_reach_the_json_and_nan_is_null(report):
    planted = dataclasses.replace(report, findings=[_Finding()])
    text = json.dumps(planted.summary(), allow_nan=False)
    finding = _strict(text)["findings"][0]
    assert finding["effect"] is None and finding["ci_low"] is None  # NaN: unknown
    assert finding["ci_high"] == "inf"  # an interval past the grid is not unknown
    assert finding["n"] == 3 and finding["band"] == [None, 1.0]
