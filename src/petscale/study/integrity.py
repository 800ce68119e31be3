"""A store's rows checked as they are read back: a study folder may come from anyone.

SQLite keeps whatever a hand or another tool wrote (text in a REAL column, a config that is not
JSON), so every row is checked before analysis, reports or exports trust it; a damaged one is
a one-line ``UserError`` naming the trial, and nothing in the store is changed.
"""

from __future__ import annotations

import json
import math
from typing import Any

from petscale.errors import UserError
from petscale.ids import trial_id

STATUSES = ("pending", "running", "done", "failed")
#: The error ``Store.claim`` records on a row whose config no longer hashes to its id.
TAMPERED = (
    "StoreError: the stored config no longer hashes to this trial's id (the store was edited);"
    " not run. Delete the row, or restore its config, and rerun"
)
#: Columns holding a real number or nothing.
REAL_COLUMNS = ("dev_score", "test_score", "random_guess", "seconds", "peak_memory_mb")
#: Columns holding a count or nothing.
COUNT_COLUMNS = ("trainable_params", "head_params", "total_params", "attempts", "pid")
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
    if record["metric"] is not None and not isinstance(record["metric"], str):
        return "its metric is not a name"
    for key in REAL_COLUMNS:
        if not _real(record[key]):
            return f"{key} is {record[key]!r}, not a finite number"
    for key in COUNT_COLUMNS:
        value = record[key]
        if value is not None and (type(value) is not int or value < 0):
            return f"{key} is {value!r}, not a count"
    for key in TIME_COLUMNS:
        value = record[key]
        if value is not None and not (_real(value) and 0 <= value < LAST_TIME):
            return f"{key} is {value!r}, not a time"
    if record["status"] == "done" and (record["dev_score"] is None or record["seconds"] is None):
        return "it is done but has no dev score or time"
    for step, score in curve:
        if type(step) is not int or not _real(score):
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
    for key in ("dev_score", "seconds"):
        value = result.get(key)
        # numpy's floats are floats too; a bool is no score
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
        ):
            return f"the trial returned {key} {value!r}, not a finite number"
    return None


def _json(text: Any) -> Any:
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return None


def _real(value: Any) -> bool:
    """None, or a finite int or float (not a bool, not text)."""
    return value is None or (type(value) in (int, float) and math.isfinite(value))
