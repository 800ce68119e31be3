"""A setting picked per cell on dev, and the study then read on test.

A study that sweeps a training setting (``lr: [1.0e-4, 1.0e-3]``) holds one series per value.
``select_on_dev`` keeps, for every cell as it stands without that setting (its method, options,
budget and other settings), the value whose seed-mean dev score is highest, and scores the
kept trials by their test score: dev chose, so dev at the choice would count the choice's luck
as skill. The table that comes back is an ordinary one (one series per configuration, the
setting's column empty, ``selected_<setting>`` holding the pick and ``selected_dev_score``
the dev score that chose it, ``dev_score`` the test score), so every analysis reads it.
"""

from __future__ import annotations

import pandas as pd

from petscale.analysis.table import from_records
from petscale.errors import UserError
from petscale.settings import FLOOR_SETTINGS, STUDY_SETTINGS

#: Training settings a cell may pick on dev; those that shape the floor (head, pooling, max
#: length, eval limit, random init) set the reference itself and are not picked.
SELECTABLE = tuple(s for s in STUDY_SETTINGS if s not in FLOOR_SETTINGS)
#: Dev columns replaced by their test twins once dev has chosen.
_TEST_TWINS = {"dev_score": "test_score", "dev_majority": "test_majority"}
_TEST_TWINS["dev_examples"] = "test_examples"


def select_on_dev(df: pd.DataFrame, setting: str) -> pd.DataFrame:
    """The trials of the value of ``setting`` that scores best on dev (seed mean) in each cell,
    scored on test; ties go to the first value in sorted order."""
    if setting not in SELECTABLE:
        raise UserError(f"--select {setting!r}: pick one of {', '.join(SELECTABLE)}")
    if setting not in df or df[setting].dropna().nunique() < 2:
        raise UserError(f"--select {setting}: the study has one value of {setting}; sweep it")
    untested = df.loc[df["test_score"].isna(), "task"].unique()
    if len(untested):
        raise UserError(
            f"--select reports test scores, and {', '.join(map(str, untested))} has none "
            "(no test split); leave --select out for it"
        )
    plain = df.astype(object).where(df.notna(), None)  # a table's NaN is from_records' None
    cleared = from_records(
        [
            {**row, setting: None, "series": None, "cell": None, "reference": None}
            for row in plain.to_dict("records")
        ]
    )
    value = df[setting].astype(object).where(df[setting].notna(), None)
    means = (
        pd.DataFrame({"cell": cleared["cell"], "value": value.map(repr), "dev": df["dev_score"]})
        .groupby(["cell", "value"], sort=True)["dev"]
        .mean()
        .reset_index()
    )
    best = means.sort_values("dev", ascending=False, kind="stable").drop_duplicates("cell")
    chosen = dict(zip(best["cell"], best["value"], strict=True))
    keep = [
        chosen[cell] == shown for cell, shown in zip(cleared["cell"], value.map(repr), strict=True)
    ]
    out = cleared[keep].copy()
    out[f"selected_{setting}"] = value[keep].to_numpy()
    out["selected_dev_score"] = out["dev_score"]  # what chose; dev_score becomes test's below
    for dev, test in _TEST_TWINS.items():
        if test in out:
            out[dev] = out[test]
    out["curve"] = [[] for _ in range(len(out))]  # the curves are dev's
    return out.reset_index(drop=True)
