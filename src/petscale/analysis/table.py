"""A study's results as one pandas table: a row per done trial, ready for the analyses."""

from __future__ import annotations

import json
import math
from functools import cache
from pathlib import Path
from typing import Any

import pandas as pd

from petscale import methods
from petscale.ids import trial_id
from petscale.results import COLUMNS as RESULT_COLUMNS
from petscale.results import COUNT_COLUMNS, EVALUATION_KEYS, NUMERIC_KEYS
from petscale.settings import FLOOR_SETTINGS, STUDY_SETTINGS
from petscale.study.store import Store
from petscale.tasks import get_task

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
    *EVALUATION_KEYS,
    "series",
    "cell",
    "reference",
)
#: Trial settings that set a configuration apart (with model, task, method and its options);
#: trials that agree on all of them but the seed are one cell, and their seeds are pooled.
SETTINGS = STUDY_SETTINGS
#: The settings that shape an untuned model's score: a series is scored against the floor and
#: the full fine-tuning of its own (model, task) under these.
REFERENCE_SETTINGS = FLOOR_SETTINGS
#: Method options that size a method; a series spans them, so they are not in its key.
SIZING_OPTIONS = (*methods.BUDGET_OPTIONS, "seed")


def load_results(folder: str | Path) -> pd.DataFrame:
    """One row per done trial of the study at ``folder`` (see ``COLUMNS``)."""
    with Store.existing(folder) as store:
        rows = [r for r in store.rows() if r["status"] == "done"]
    return from_records([_record(r) for r in rows])


def from_records(records: list[dict[str, Any]]) -> pd.DataFrame:
    """The same table from plain dicts (model, task, method, seed, dev_score ... at least).

    Missing columns are filled: ``structure`` from method and options, ``budget`` from
    ``trainable_params``, ``default_budget`` (the method at its own default size) True for
    ``full`` and ``probe`` only, ``task_type`` from the task registry, ``curve`` empty, and
    the three keys the analyses group by: ``series`` (every setting but the seed and the
    budget), ``cell`` (the series at one budget: its rows differ only in seed) and
    ``reference`` (model, task and the ``REFERENCE_SETTINGS``: whose floor and full
    fine-tuning a series is held against).
    """
    rows = []
    for i, given in enumerate(records):
        row = {key: given.get(key) for key in COLUMNS} | dict(given)
        row["trial_id"] = row["trial_id"] or f"t{i}"
        options = dict(row.get("options") or {})
        pattern = methods.pattern_of(row["method"], options)  # None: the method has none
        if pattern is not None:
            row["pattern"] = row["pattern"] or pattern
        row["structure"] = row["structure"] or structure_name(
            row["method"], row["pattern"], options
        )
        if row["budget"] is None:
            row["budget"] = row["trainable_params"]
        if row["default_budget"] is None:
            row["default_budget"] = methods.study_role(row["method"]) in ("reference", "baseline")
        if row["task_type"] is None:
            row["task_type"] = task_type(row["task"])
        row["curve"] = [tuple(point) for point in row["curve"] or []]
        row["seed"] = 0 if row["seed"] is None else row["seed"]
        settings = {key: _plain(row.get(key)) for key in SETTINGS}
        sized = {k: _plain(v) for k, v in sorted(options.items()) if k not in SIZING_OPTIONS}
        base = {"model": row["model"], "task": row["task"], "method": row["method"]}
        base["pattern"] = row["pattern"]  # a table may name it in a column of its own
        row["series"] = row["series"] or _key({**base, **settings, "options": sized})
        row["cell"] = row["cell"] or _key(
            {"series": row["series"], "budget": _plain(row["budget"])}
        )
        reference = {k: settings[k] for k in REFERENCE_SETTINGS}
        row["reference"] = row["reference"] or _key(
            {"model": row["model"], "task": row["task"], **reference}
        )
        rows.append(row)
    df = pd.DataFrame(rows, columns=list(dict.fromkeys([*COLUMNS, *(k for r in rows for k in r)])))
    for key in (k for k in NUMERIC_KEYS if k in df):
        df[key] = pd.to_numeric(df[key], errors="coerce").astype(float)
    for key in ("budget", *COUNT_COLUMNS):
        df[key] = pd.to_numeric(df[key], errors="coerce")
    return df


def _plain(value: Any) -> Any:
    """A setting as the keys hash it: NaN, empty cells (a CSV's) and empty maps (no task
    options) are None, 3.0 is 3."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value in ("", {}):
        return None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value.item() if hasattr(value, "item") else value


def _key(parts: dict[str, Any]) -> str:
    return trial_id(parts)


def structure_name(method: str, pattern: str | None, options: dict[str, Any] | None = None) -> str:
    """A method's structure, as the method names it from its options and ``pattern`` (its
    name; APET's ``apet-<pattern>`` at its default op and targets, else
    ``apet-<op>[-<targets>]-<pattern>``: ``apet-plug-discrete``, ...)."""
    return methods.structure_name(method, {**(options or {}), "pattern": pattern})


@cache
def task_type(name: str) -> str:
    """The task's type from its spec; "unknown" for a task that cannot be built here."""
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
        **{key: config.get(key) for key in ("model", "task", "method", "seed", *SETTINGS)},
        "options": config.get("options") or {},
        "pattern": methods.pattern_of(config["method"], options, default=False),
        # No budget and no match option: the method ran at its own default size.
        "default_budget": methods.Budget.of(config.get("options") or {}).is_default,
        **{key: row[key] for key in RESULT_COLUMNS},  # the store's own result columns
        **{key: result.get(key) for key in EVALUATION_KEYS},
        "curve": row["curve"],
    }
