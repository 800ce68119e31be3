"""The result schema is one dataclass: the store's columns, the integrity checks, the tracker's
final scalars, the export and the analysis table all derive from ``petscale.results``."""

from __future__ import annotations

import dataclasses
import sqlite3

from petscale.results import (
    COLUMNS,
    COUNT_COLUMNS,
    EVALUATION_KEYS,
    FINAL_KEYS,
    REAL_COLUMNS,
    REQUIRED_KEYS,
    TrialResult,
    missing_required,
)
from petscale.study.store import STORE_NAME, Store


def test_the_store_has_a_column_of_its_sql_kind_for_every_result_column(tmp_path):
    Store(tmp_path).close()
    with sqlite3.connect(tmp_path / STORE_NAME) as db:
        declared = {row[1]: row[2] for row in db.execute("PRAGMA table_info(trials)")}
    assert {name: declared[name] for name in COLUMNS} == COLUMNS


def test_every_result_field_reaches_the_json_form():
    names = [f.name for f in dataclasses.fields(TrialResult)]
    values = {name: 1 for name in names} | {"options": {"rank": 8}, "curve": [(0, 0.5)]}
    out = TrialResult(**values).to_dict()
    assert list(out) == names
    assert out["curve"] == [[0, 0.5]] and out["options"] == {"rank": 8}


def test_the_derived_groups_are_the_study_s_own():
    assert REQUIRED_KEYS == ("dev_score", "seconds")
    assert set(REAL_COLUMNS) | set(COUNT_COLUMNS) | {"metric"} == set(COLUMNS)
    assert "dev_majority" in EVALUATION_KEYS and "dev_majority" not in COLUMNS
    assert "peak_memory_mb" in FINAL_KEYS and "dev_score" not in FINAL_KEYS  # dev: its curve


def test_missing_required_names_the_first_bad_field():
    assert missing_required({"dev_score": 0.5, "seconds": 1}) is None
    assert missing_required({"dev_score": float("nan"), "seconds": 1}) == "dev_score nan"
    assert missing_required({"dev_score": True, "seconds": 1}) == "dev_score True"
    assert missing_required({"dev_score": 0.5}) == "seconds None"
