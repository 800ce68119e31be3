"""Analyses of a study's results: pure functions of its table (``load_results``), seeds
aggregated, each usable from Python; ``docs/ANALYSIS.md`` defines every quantity. What reads
kept deltas or loads models (the transfer evaluation, dense deltas) is ``petscale.deltas``."""

from petscale.analysis.convergence import convergence, pattern_speed
from petscale.analysis.curves import reference_lines, score_vs_params
from petscale.analysis.exported import load_table
from petscale.analysis.figures import (
    PALETTE,
    convergence_figure,
    gaps_figure,
    score_vs_params_figure,
    spectra_figure,
    thresholds_figure,
    transfer_figure,
)
from petscale.analysis.findings import Finding, findings
from petscale.analysis.floors import floor_rows
from petscale.analysis.gaps import gap_trend, gaps
from petscale.analysis.matched import matched_comparison
from petscale.analysis.selection import SELECTABLE, select_on_dev
from petscale.analysis.stats import aggregate
from petscale.analysis.subspace import (
    effective_rank,
    numerical_rank,
    principal_angles,
    spectrum,
    subspace_pairs,
)
from petscale.analysis.table import from_records, load_results
from petscale.analysis.task_types import by_task_type
from petscale.analysis.thresholds import AGREE_FACTOR, TOLERANCE, structure_agreement, thresholds
from petscale.analysis.transfer import same_type_vs_cross, transfer_matrix
from petscale.analysis.verdicts import VERDICTS, Rule, judge

__all__ = [
    "AGREE_FACTOR",
    "PALETTE",
    "SELECTABLE",
    "TOLERANCE",
    "VERDICTS",
    "Rule",
    "Finding",
    "aggregate",
    "by_task_type",
    "convergence",
    "convergence_figure",
    "effective_rank",
    "findings",
    "floor_rows",
    "from_records",
    "gap_trend",
    "gaps",
    "gaps_figure",
    "judge",
    "load_table",
    "matched_comparison",
    "numerical_rank",
    "load_results",
    "pattern_speed",
    "principal_angles",
    "reference_lines",
    "same_type_vs_cross",
    "score_vs_params",
    "select_on_dev",
    "score_vs_params_figure",
    "spectra_figure",
    "spectrum",
    "structure_agreement",
    "subspace_pairs",
    "thresholds",
    "thresholds_figure",
    "transfer_figure",
    "transfer_matrix",
]
