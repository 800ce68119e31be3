"""A store's rows checked as they are read back: a study folder may come from anyone.

SQLite keeps whatever a hand or another tool wrote (text in a REAL column, a config that is not
JSON), so every row is checked before analysis, reports or exports trust it; a damaged one is
a one-line ``UserError`` naming the trial, and nothing in the store is changed.
"""

from __future__ import annotations

import json
from typing import Any

from petscale.checks import is_count, is_real
from petscale.errors import UserError
from petscale.ids import trial_id
from petscale.results import COLUMNS, REAL_COLUMNS, REQUIRED_KEYS, missing_required
from petscale.results import COUNT_COLUMNS as RESULT_COUNTS

STATUSES = ("pending", "running", "done", "failed")
#: The error ``Store.claim`` records on a row whose config no longer hashes to its id.
TAMPERED = (
    "StoreError: the stored config no longer hashes to this trial's id (the store was edited);"
    " not run. Delete the row, or restore its config, and rerun"
)
TEXT_COLUMNS = tuple(k for k, kind in COLUMNS.items() if kind == "TEXT")
#: Columns holding a count or nothing: the result's counts and the store's own.
COUNT_COLUMNS = (*RESULT_COUNTS, "attempts", "pid")
#: Columns holding a Unix time or nothing; beyond this bound no calendar can show them.
TIME_COLUMNS = ("heartbeat", "started_at", "finished_at", "created_at")
LAST_TIME = 1e11  # about the year 5100


def checked_row(
    record: dict[str, Any], curve: list[list[Any]], where: str
) -> dict[str, Any] | None:
    """``record`` (a ``trials`` row) with its config and result decoded and ``curve`` attached,
    once every value is of its kind; a ``UserError`` naming the row otherwise. A row a run
    already found tampered (failed, ``TAMPERED``) is read as it is, or skipped (None) when its
    config is not even a JSON object: it says what happened itself."""
    if record["status"] == "failed" and record["error"] == TAMPERED:
        config = _json(record["config"])
        return {**record, "config": config, "curve": curve} if isinstance(config, dict) else None
    problem = _problem(record, curve)
    if problem is not None:
        raise UserError(
            f"{where}: trial {str(record.get('id'))[:40]!r} is damaged ({problem}); restore "
            "study.sqlite from a copy, or delete that trial's row and rerun the study"
        )
    return {**record, "config": json.loads(record["config"]), "curve": curve}


def _problem(record: dict[str, Any], curve: list[list[Any]]) -> str | None:
    if record["status"] not in STATUSES:
        return f"its status is {record['status']!r}"
    problem = config_problem(record["config"], record["id"])
    if problem is not None:
        return problem
    if record["result"] is not None and not isinstance(_json(record["result"]), dict):
        return "its result is not a JSON object"
    for key in TEXT_COLUMNS:
        if record[key] is not None and not isinstance(record[key], str):
            return f"its {key} is not a name"
    for key in REAL_COLUMNS:
        if not is_real(record[key]):
            return f"{key} is {record[key]!r}, not a finite number"
    for key in COUNT_COLUMNS:
        if not is_count(record[key]):
            return f"{key} is {record[key]!r}, not a count"
    for key in TIME_COLUMNS:
        value = record[key]
        if value is not None and not (is_real(value) and 0 <= value < LAST_TIME):
            return f"{key} is {value!r}, not a time"
    lacking = [key for key in REQUIRED_KEYS if record[key] is None]
    if record["status"] == "done" and lacking:
        return f"it is done but has no {lacking[0].replace('_', ' ')}"
    for step, score in curve:
        if type(step) is not int or not is_real(score):
            return f"its curve holds step {step!r} with score {score!r}"
    return None


def config_problem(text: Any, tid: str) -> str | None:
    """What is wrong with a stored config (JSON text) for the trial ``tid``, or None."""
    config = _json(text)
    if not isinstance(config, dict):
        return "its config is not a JSON object"
    if trial_id(config) != tid:
        return "its config no longer hashes to its id"
    return None


def result_problem(result: Any) -> str | None:
    """What keeps a trial's returned result from being recorded as done, or None."""
    if not isinstance(result, dict):
        return "the trial returned no result mapping"
    missing = missing_required(result)  # numpy's floats are floats too; a bool is no score
    return None if missing is None else f"the trial returned {missing}, not a finite number"


def _json(text: Any) -> Any:
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return None
