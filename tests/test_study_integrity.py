"""A store someone edited: every damaged row is one line naming the trial, and nothing changes."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from petscale.cli.study import app
from petscale.errors import UserError
from petscale.study.runners import run_study
from petscale.study.spec import expand, parse_spec
from petscale.study.store import Owner, Store

SPEC = {"models": ["m"], "tasks": ["t"], "methods": ["lora"], "budgets": [10, 20], "untuned": False}
RESULT = {"dev_score": 0.8, "metric": "accuracy", "seconds": 3.0, "curve": [[5, 0.6], [10, 0.8]]}


def finished_store(folder: Path) -> str:
    """A store with one done trial (with a curve) and one pending; the done one's id."""
    with Store(folder) as store:
        store.queue(expand(parse_spec(SPEC)))
        tid, _ = store.claim(Owner())
        store.finish(tid, RESULT)
    return tid


def damage(folder: Path, sql: str, tid: str) -> None:
    db = sqlite3.connect(folder / "study.sqlite")
    db.execute(sql, (tid,))
    db.commit()
    db.close()


DAMAGES = {
    "config not JSON": ("UPDATE trials SET config = '{oops' WHERE id = ?", "not a JSON object"),
    "config a list": ("UPDATE trials SET config = '[1]' WHERE id = ?", "not a JSON object"),
    "config edited": (
        """UPDATE trials SET config = json_set(config, '$.seed', 7) WHERE id = ?""",
        "no longer hashes",
    ),
    "result a list": ("UPDATE trials SET result = '[1]' WHERE id = ?", "result is not"),
    "dev score -inf": ("UPDATE trials SET dev_score = -1e999 WHERE id = ?", "dev_score is"),
    "dev score gone": ("UPDATE trials SET dev_score = NULL WHERE id = ?", "no dev score"),
    "seconds as text": ("UPDATE trials SET seconds = 'soon' WHERE id = ?", "seconds is"),
    "count negative": ("UPDATE trials SET attempts = -3 WHERE id = ?", "attempts is"),
    "time out of range": ("UPDATE trials SET started_at = 1e300 WHERE id = ?", "not a time"),
    "time as text": ("UPDATE trials SET finished_at = 'noon' WHERE id = ?", "not a time"),
    "curve score text": ("UPDATE curve SET score = 'high' WHERE trial_id = ?", "its curve"),
}


@pytest.mark.parametrize("name", sorted(DAMAGES))
def test_a_damaged_row_is_named_and_the_store_is_left_as_it_was(tmp_path, name):
    tid = finished_store(tmp_path)
    sql, message = DAMAGES[name]
    damage(tmp_path, sql, tid)
    before = (tmp_path / "study.sqlite").read_bytes()
    with Store.existing(tmp_path) as store, pytest.raises(UserError, match=message) as error:
        list(store.rows())
    assert tid in str(error.value) and "\n" not in str(error.value)
    assert (tmp_path / "study.sqlite").read_bytes() == before


def test_export_of_a_damaged_store_ends_in_one_line(tmp_path):
    tid = finished_store(tmp_path)
    damage(tmp_path, "UPDATE trials SET started_at = 'yesterday' WHERE id = ?", tid)
    result = CliRunner().invoke(app, ["export", str(tmp_path)])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert "started_at" in result.stderr
    assert not (tmp_path / "trials.csv").exists()


def test_rows_of_an_untouched_store_pass(tmp_path):
    tid = finished_store(tmp_path)
    with Store(tmp_path) as store:
        rows = {r["id"]: r for r in store.rows()}
    assert rows[tid]["curve"] == [[5, 0.6], [10, 0.8]]
    assert rows[tid]["config"]["method"] == "lora" and len(rows) == 2


def test_a_row_a_run_found_tampered_stays_readable(tmp_path):
    with Store(tmp_path) as store:
        store.queue(expand(parse_spec(SPEC)))
    db = sqlite3.connect(tmp_path / "study.sqlite")
    db.execute("UPDATE trials SET config = json_set(config, '$.seed', 7) WHERE rowid = 1")
    db.commit()
    db.close()
    with Store(tmp_path) as store:
        store.queue(expand(parse_spec(SPEC)))
        while store.claim(Owner()) is not None:
            pass
    with Store.existing(tmp_path) as store:
        rows = list(store.rows())
        assert store.summary()["failed"] == 1
    assert [r["status"] for r in rows].count("failed") == 1


def test_a_result_without_a_finite_score_or_time_is_recorded_failed(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    counts = run_study(tmp_path, expand(parse_spec(SPEC)), trial="study_fake:timeless")
    assert counts["failed"] == 2 and counts["done"] == 0
    with Store.existing(tmp_path) as store:
        errors = {r["error"] for r in store.rows()}
    assert errors == {"StoreError: the trial returned seconds None, not a finite number"}
