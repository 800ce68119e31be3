"""What a report holds: the gathered analyses and figures, and their JSON form."""

from __future__ import annotations

import base64
import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from petscale import analysis


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

    def summary(self) -> dict[str, Any]:
        """The findings, thresholds and gaps as one JSON-ready object."""
        return {
            "folder": str(self.folder),
            **self.context,
            "findings": [dataclasses.asdict(f) for f in self.findings],
            "thresholds": _records(self.thresholds),
            "structure_agreement": _records(self.agreement),
            "gaps": _records(self.gaps),
            "gap_trend": _records(self.gap_trend),
            "pattern_speed": _records(self.pattern_speed),
            "transfer": _records(self.transfer),
            "transfer_kinds": _records(self.transfer_kinds),
            "subspace": _records(self.subspace_summary()),
        }


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    # pandas' JSON writer turns NaN into null and numpy scalars into plain numbers.
    return json.loads(df.to_json(orient="records"))
