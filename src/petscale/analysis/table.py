"""A study's results as one pandas table: a row per done trial, ready for the analyses."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import pandas as pd

from petscale.study.store import RESULT_COLUMNS, Store

COLUMNS = (
    "trial_id",
    "model",
    "task",
    "task_type",
    "method",
    "structure",
    "pattern",
    "head",
    "seed",
    "steps",
    "budget",
    "default_budget",
    "trainable_params",
    "head_params",
    "total_params",
    "dev_score",
    "test_score",
    "random_guess",
    "metric",
    "seconds",
    "curve",
)


def load_results(folder: str | Path) -> pd.DataFrame:
    """One row per done trial of the study at ``folder`` (see ``COLUMNS``)."""
    with Store.existing(folder) as store:
        rows = [r for r in store.rows() if r["status"] == "done"]
    return from_records([_record(r) for r in rows])


def from_records(records: list[dict[str, Any]]) -> pd.DataFrame:
    """The same table from plain dicts (model, task, method, seed, dev_score ... at least).

    Missing columns are filled: ``structure`` from method and ``pattern``, ``budget`` from
    ``trainable_params``, ``default_budget`` (the method at its own default size) True for
    ``full`` and ``probe`` only, ``task_type`` from the task registry, ``curve`` empty.
    """
    rows = []
    for i, given in enumerate(records):
        row = {key: given.get(key) for key in COLUMNS} | dict(given)
        row["trial_id"] = row["trial_id"] or f"t{i}"
        if row["method"] == "apet":
            row["pattern"] = row["pattern"] or "discrete"  # APET's default pattern
        row["structure"] = row["structure"] or structure_name(row["method"], row["pattern"])
        if row["budget"] is None:
            row["budget"] = row["trainable_params"]
        if row["default_budget"] is None:
            row["default_budget"] = row["method"] in ("full", "probe")
        if row["task_type"] is None:
            row["task_type"] = task_type(row["task"])
        row["curve"] = [tuple(point) for point in row["curve"] or []]
        row["seed"] = 0 if row["seed"] is None else row["seed"]
        rows.append(row)
    df = pd.DataFrame(rows, columns=list(dict.fromkeys([*COLUMNS, *(k for r in rows for k in r)])))
    for key in ("dev_score", "test_score", "random_guess", "seconds"):
        df[key] = pd.to_numeric(df[key], errors="coerce").astype(float)
    for key in ("budget", "trainable_params", "head_params", "total_params"):
        df[key] = pd.to_numeric(df[key], errors="coerce")
    return df


def structure_name(method: str, pattern: str | None) -> str:
    """A method's structure: its name, or ``apet-adjacent`` / ``apet-discrete`` for APET."""
    return f"apet-{pattern or 'discrete'}" if method == "apet" else method


@cache
def task_type(name: str) -> str:
    """The task's type from its spec; "unknown" for a task that cannot be built here."""
    from petscale.tasks import get_task  # imported late: a planted table needs no task data

    try:
        return get_task(name).spec.type
    except Exception:  # a user file that moved, a hub task without its copy: still analysable
        return "unknown"


def _record(row: dict[str, Any]) -> dict[str, Any]:
    config = row["config"]
    result = json.loads(row["result"] or "{}")
    options = result.get("options") or config.get("options") or {}
    return {
        "trial_id": row["id"],
        "model": config["model"],
        "task": config["task"],
        "method": config["method"],
        "pattern": options.get("pattern") if config["method"] == "apet" else None,
        "head": config.get("head"),
        "seed": config.get("seed"),
        "steps": result.get("steps", config.get("steps")),
        # No budget and no match option: the method ran at its own default size.
        "default_budget": not {"budget", "match"} & set(config.get("options") or {}),
        **{key: row[key] for key in RESULT_COLUMNS},  # the store's own result columns
        "curve": row["curve"],
    }
