"""What a report holds: the gathered analyses and figures, and their JSON form."""

from __future__ import annotations

import base64
import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from petscale import analysis
from petscale.analysis.table import SETTINGS

#: The per-trial table's columns, in order: trials.csv, the page's "Trials" and the JSON's.
TRIAL_COLUMNS = (
    "trial_id",
    "model",
    "task",
    "structure",
    "budget",
    "seed",
    "dev_score",
    "test_score",
    "seconds",
)


@dataclass
class Figure:
    name: str
    title: str
    png: bytes
    svg: bytes

    def data_uri(self) -> str:
        """The SVG as a data URI: vector, and isolated from the page's ids and styles."""
        return "data:image/svg+xml;base64," + base64.b64encode(self.svg).decode()


@dataclass
class Report:
    folder: Path
    results: pd.DataFrame
    findings: list[analysis.Finding]
    thresholds: pd.DataFrame
    agreement: pd.DataFrame
    gaps: pd.DataFrame
    gap_trend: pd.DataFrame
    matched: pd.DataFrame  # every tuned cell at its nearest grid budget, the mismatch stated
    pattern_speed: pd.DataFrame
    figures: list[Figure]
    context: dict[str, Any] = field(default_factory=dict)
    # Opt-in analyses that load the kept deltas (slower): empty unless asked for.
    transfer: pd.DataFrame = field(default_factory=pd.DataFrame)
    transfer_kinds: pd.DataFrame = field(default_factory=pd.DataFrame)
    subspace: pd.DataFrame = field(default_factory=pd.DataFrame)

    def subspace_summary(self) -> pd.DataFrame:
        """Per model and what sets two trials apart: mean cosines of the principal angles."""
        if self.subspace.empty:
            return self.subspace
        return self.subspace.groupby(["model", "differs"], as_index=False).agg(
            comparisons=("weight", "size"),  # (pair of trials, shared weight) rows
            mean_cos=("mean_cos", "mean"),
            random_cos=("random_cos", "mean"),
            above_random=("above_random", "mean"),
        )

    def trial_table(self) -> pd.DataFrame:
        """A row per done trial (``TRIAL_COLUMNS``, a column per setting the study swept, and
        ``selected_<setting>`` where a setting was picked on dev; budget: trainable
        parameters), in a fixed order: model, task, structure, budget, seed, then id."""
        results = self.results
        # the settings a study swept (an lr grid) tell its series apart: a column each
        swept = [k for k in SETTINGS if k in results and results[k].astype(str).nunique() > 1]
        picked = [c for c in results.columns if str(c).startswith("selected_")]
        table = results.reindex(columns=[*TRIAL_COLUMNS, *swept, *picked])
        return table.sort_values(
            ["model", "task", "structure", "budget", "seed", "trial_id"],
            kind="mergesort",
            na_position="last",
        ).reset_index(drop=True)

    def summary(self) -> dict[str, Any]:
        """The findings, thresholds, gaps and trials as one JSON-ready object (strict JSON:
        a missing or non-finite number is null)."""
        return _plain(
            {
                "folder": str(self.folder),
                **self.context,
                "findings": [
                    {**dataclasses.asdict(f), "conclusion": f.conclusion} for f in self.findings
                ],
                "thresholds": _records(self.thresholds),
                "structure_agreement": _records(self.agreement),
                "gaps": _records(self.gaps),
                "gap_trend": _records(self.gap_trend),
                "matched": _records(self.matched),
                "pattern_speed": _records(self.pattern_speed),
                "transfer": _records(self.transfer),
                "transfer_kinds": _records(self.transfer_kinds),
                "subspace": _records(self.subspace_summary()),
                "trials": _records(self.trial_table()),
            }
        )


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    # pandas' JSON writer turns NaN into null and numpy scalars into plain numbers; an
    # infinity (an interval that runs past the grid) is kept apart from unknown as "inf".
    return [_plain(record) for record in json.loads(_infinities(df).to_json(orient="records"))]


def _infinities(df: pd.DataFrame) -> pd.DataFrame:
    numeric = df.select_dtypes("number").columns
    if not len(numeric) or not np.isinf(df[numeric].to_numpy(dtype=float)).any():
        return df
    out = df.astype({c: object for c in numeric})
    for column in numeric:
        values = df[column]
        out.loc[np.isposinf(values), column] = "inf"
        out.loc[np.isneginf(values), column] = "-inf"
    return out


def _plain(value: Any) -> Any:
    """``value`` with every NaN as None, an infinity as "inf" or "-inf" (an interval past the
    grid: not unknown) and numpy scalars as Python ones, so that ``json.dumps(...,
    allow_nan=False)`` takes it whatever fields a finding carries."""
    if isinstance(value, dict):
        return {key: _plain(v) for key, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value
