"""The study's findings (Su et al. 2023), each judged on a study's table from its interval.

Each finding is an effect with a 95% bootstrap interval (seeds and eval examples redrawn
together, :mod:`petscale.analysis.bootstrap`), the number of cases behind it, and a rule
(:mod:`petscale.analysis.verdicts`): ``holds``, ``does not hold``, ``inconclusive`` or
``not tested``. ``docs/ANALYSIS.md`` defines each effect.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from petscale.analysis.bootstrap import DRAWS, Resampled, interval
from petscale.analysis.convergence import convergence
from petscale.analysis.floors import FIXED
from petscale.analysis.stats import aggregate
from petscale.analysis.thresholds import (
    AGREE_FACTOR,
    BRACKETED,
    NOT_REACHED,
    UNKNOWN,
    ThresholdDraws,
    full_cell,
    resampled_cells,
    threshold_draws,
)
from petscale.analysis.verdicts import VERDICTS, Rule, judge

#: A gap or a spread that changes by less than this per decade of model size (score units:
#: half a point) is no trend.
FLAT_SLOPE = 0.005
#: Thresholds that move by less than this many decades per decade of model size do not fall.
FLAT_DECADES = 0.1
#: Same-type transfer must keep this much more of the in-task gain than cross-type transfer.
TRANSFER_EDGE = 0.1
AGREE_DECADES = math.log10(AGREE_FACTOR)
#: A trend over model size needs sizes this many decades apart (3.2x): over MiniLM-L3 and -L6
#: (0.12 decades) a slope multiplies the scores' noise by eight.
MIN_SPAN = 0.5
#: A threshold whose replicates leave the grid more often than this is not located well
#: enough to put on a trend.
LOCATED_SHARE = 0.1
PATTERNS = ("adjacent", "discrete")

__all__ = ["VERDICTS", "Finding", "findings"]


@dataclass(frozen=True)
class Finding:
    key: str
    claim: str
    verdict: str  # one of VERDICTS
    effect: float  # the effect's estimate, in ``unit``
    unit: str
    ci_low: float  # its 95% interval
    ci_high: float
    n: int  # cases behind the effect
    rule: str  # when the verdict is holds / does not hold
    evidence: str  # one sentence with the numbers
    n_seeds: int  # the fewest seeds behind any cell used (0: not tested)

    @property
    def conclusion(self) -> str:
        """What a reader may conclude, in words no stronger than the interval."""
        claim = self.claim[0].lower() + self.claim[1:]
        return {
            "holds": f"Supported on this study: {claim} (the whole interval lies on the "
            "claim's side of its edge).",
            "does not hold": f"Not supported: the interval excludes an effect of the claimed "
            f"size, so on this study it is not the case that {claim}.",
            "inconclusive": f"The data cannot tell whether {claim}: the interval reaches both "
            "sides of the claim's edge, or there are too few cases.",
            "not tested": f"Not tested: this study has no case for whether {claim}.",
        }[self.verdict]


@dataclass
class _Study:
    """What every finding draws on, computed once: cells, their replicates, thresholds."""

    df: pd.DataFrame
    cells: pd.DataFrame
    resampled: Resampled
    thresholds: ThresholdDraws
    draws: int

    def cell_draws(self, cells: pd.Series) -> np.ndarray:
        return np.stack([self.resampled.of(c) for c in cells], axis=1)


@dataclass
class _Effect:
    observed: float
    replicates: np.ndarray
    n: int
    n_seeds: int


def findings(
    df: pd.DataFrame, transfer: pd.DataFrame | None = None, draws: int = DRAWS
) -> list[Finding]:
    """The study's findings on its table ``df``; ``transfer`` is a ``transfer_matrix`` (from
    ``evaluate_transfer``), without which the transfer finding is not tested."""
    resampled = resampled_cells(df, draws=draws)
    cells = aggregate(df, draws=draws)
    thresholds = threshold_draws(df, draws=draws, resampled=resampled, cells=cells)
    study = _Study(df, cells, resampled, thresholds, draws)
    return [
        _finding(
            "methods_converge",
            "Differences among PET methods shrink as models grow",
            _spread_trend(study),
            "points of spread per decade of model size",
            Rule("below", -FLAT_SLOPE * 100),
            "the spread among structures at equal trainable parameters (above the low "
            "threshold) changes by {effect} points per decade of model size",
            scale=100,
        ),
        _finding(
            "gap_shrinks",
            "The gap to full fine-tuning shrinks as models grow",
            _gap_trend(study),
            "points of gap per decade of model size",
            Rule("below", -FLAT_SLOPE * 100),
            "the gap to full fine-tuning above the low threshold changes by {effect} points "
            "per decade of model size",
            scale=100,
        ),
        _finding(
            "thresholds_exist",
            "Low and high thresholds of trainable parameters exist",
            _both_located(study),
            "share of series",
            Rule("above", 0.5),
            "both thresholds lie inside the budget grid in a share {effect} of the series",
            signed=False,
        ),
        _finding(
            "thresholds_alike",
            "The thresholds are about the same whatever the structure (APET's shapes)",
            _spread_over(study, "structure"),
            "decades of spread",
            Rule("below", AGREE_DECADES),
            "the thresholds of APET's structures on one model and task spread over {effect} "
            "decades",
            signed=False,
        ),
        _finding(
            "low_alike_across_tasks",
            "The low threshold is about the same number of parameters on different tasks",
            _spread_over(study, "task"),
            "decades of spread",
            Rule("below", AGREE_DECADES),
            "the low thresholds of one model and structure on different tasks spread over "
            "{effect} decades",
            signed=False,
        ),
        _finding(
            "thresholds_fall",
            "Thresholds fall as models grow",
            _threshold_trend(study),
            "decades per decade of model size",
            Rule("below", -FLAT_DECADES),
            "the thresholds move by {effect} decades per decade of model size",
        ),
        _finding(
            "adjacent_faster",
            "ADJACENT converges faster than DISCRETE",
            *_adjacent_faster(study),
            "DISCRETE takes {effect} more steps than ADJACENT to reach 90% of its best dev score",
        ),
        _transfer(df, transfer, draws),
    ]


def _finding(
    key: str,
    claim: str,
    effect: _Effect,
    unit: str,
    rule: Rule,
    sentence: str,
    scale: float = 1.0,
    signed: bool = True,
) -> Finding:
    observed = effect.observed * scale
    low, high = (v * scale for v in interval(effect.replicates)) if effect.n else (math.nan,) * 2
    verdict = judge(rule, low, high, effect.n, effect.n_seeds)
    if effect.n:
        evidence = (
            sentence.format(effect=_num(observed, signed))
            + f" (95% interval {_num(low, signed)} to {_num(high, signed)}; {effect.n} case(s))"
        )
    else:
        evidence = "no case in this study: " + _NEEDS[key]
    return Finding(
        key,
        claim,
        verdict,
        observed,
        unit,
        low,
        high,
        effect.n,
        rule.describe(unit),
        evidence,
        effect.n_seeds if effect.n else 0,
    )


_NEEDS = {
    "methods_converge": "needs two or more structures at equal budgets above the low "
    "threshold on model sizes at least 3.2x apart",
    "gap_shrinks": "needs full fine-tuning and a structure above its low threshold on model "
    "sizes at least 3.2x apart",
    "thresholds_exist": "needs a structure run at several budgets",
    "thresholds_alike": "needs APET in two structures (op or targets) at several budgets on "
    "one model and task",
    "low_alike_across_tasks": "needs one structure's low threshold on two tasks",
    "thresholds_fall": "needs one structure's thresholds inside the grid on model sizes at "
    "least 3.2x apart",
    "adjacent_faster": "needs APET adjacent and discrete at equal budgets with dev curves",
}


def _empty() -> _Effect:
    return _Effect(math.nan, np.array([]), 0, 0)


def _slope(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least-squares slopes of each row of ``y`` (replicates x points) against ``x``."""
    x = x - x.mean()
    return (y - y.mean(axis=-1, keepdims=True)) @ x / (x @ x)


def _over_cases(effects: list[tuple[float, np.ndarray, int]], center=np.mean) -> _Effect:
    """``center`` (mean or median) over cases of (observed, replicates, seeds)."""
    if not effects:
        return _empty()
    observed = float(center([e[0] for e in effects]))
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a replicate that locates no case
        replicates = center(np.stack([e[1] for e in effects]), axis=0)
    return _Effect(observed, replicates, len(effects), min(e[2] for e in effects))


def _above_low(study: _Study) -> pd.DataFrame:
    """The tuned cells at or above their (model, task)'s low threshold: the largest low
    threshold estimate among its series, so that every structure has left the floor there.
    A structure whose curve never leaves the floor is left out. The selection is made once,
    at the estimates (the replicates are not re-selected)."""
    cells = study.cells[~study.cells["method"].isin(FIXED) & (study.cells["budget"] > 0)]
    thr = study.thresholds.table
    never = set(thr.loc[thr["low_status"].isin([NOT_REACHED, UNKNOWN]), "series"])
    low = thr[~thr["series"].isin(never)].groupby(["model", "task"])["low"].max().to_dict()
    keep = [
        series not in never and math.isfinite(low.get((m, t), math.nan)) and b >= low[(m, t)]
        for m, t, b, series in zip(
            cells["model"], cells["task"], cells["budget"], cells["series"], strict=True
        )
    ]
    return cells[np.array(keep, dtype=bool)]


def _trend(
    per_model: dict[tuple, list[tuple[float, float, np.ndarray, int]]], center=np.mean
) -> _Effect:
    """Per case, (total params, observed, replicates, seeds) per model -> slope per case,
    ``center`` over the cases whose sizes span ``MIN_SPAN`` decades or more."""
    slopes = []
    for points in per_model.values():
        sizes = [p[0] for p in points]
        if math.log10(max(sizes) / min(sizes)) < MIN_SPAN:
            continue
        x = np.log10(np.array([p[0] for p in points], dtype=float))
        y_obs = np.array([p[1] for p in points])
        y_reps = np.stack([p[2] for p in points], axis=1)
        slopes.append(
            (float(_slope(x, y_obs[None, :])[0]), _slope(x, y_reps), min(p[3] for p in points))
        )
    return _over_cases(slopes, center)


def _spread_trend(study: _Study) -> _Effect:
    cells = _above_low(study)
    per_task: dict[tuple, list] = {}
    for (model, task, _), group in cells.groupby(["model", "task", "budget"]):
        if group["structure"].nunique() < 2:
            continue
        reps = study.cell_draws(group["cell"])
        spread = float(group["mean"].max() - group["mean"].min())
        per_task.setdefault((task, model), []).append(
            (group["total_params"].max(), spread, reps.max(axis=1) - reps.min(axis=1))
        )
    cases: dict[tuple, list] = {}
    for (task, _), values in per_task.items():
        size = values[0][0]
        mean = float(np.mean([v[1] for v in values]))
        reps = np.mean(np.stack([v[2] for v in values]), axis=0)
        seeds = int(cells[cells["task"] == task]["n"].min())
        cases.setdefault(task, []).append((size, mean, reps, seeds))
    return _trend(cases)


def _gap_trend(study: _Study) -> _Effect:
    cells = _above_low(study)
    cases: dict[tuple, list] = {}
    for (model, task, structure), group in cells.groupby(["model", "task", "structure"]):
        full = full_cell(study.cells, group["reference"].iloc[0], model, task)
        if full is None:
            continue
        gap = study.resampled.mean(full) - float(group["mean"].mean())
        reps = study.resampled.of(full) - study.cell_draws(group["cell"]).mean(axis=1)
        size = group["total_params"].max()
        cases.setdefault((task, structure), []).append((size, gap, reps, int(group["n"].min())))
    return _trend(cases)


def _both_located(study: _Study) -> _Effect:
    thr = study.thresholds.table
    thr = thr[(thr["low_status"] != UNKNOWN) & (thr["high_status"] != UNKNOWN)]
    if thr.empty:
        return _empty()
    first = {s: _first_budget(study, s) for s in thr["series"]}
    located_reps = []
    for series in thr["series"]:
        both = np.ones(study.draws, dtype=bool)
        for side in ("low", "high"):
            r = study.thresholds.draws[series][side]
            both &= np.isfinite(r) & (r > first[series])
        located_reps.append(both)
    observed = float(((thr["low_status"] == BRACKETED) & (thr["high_status"] == BRACKETED)).mean())
    return _Effect(
        observed, np.mean(np.stack(located_reps), axis=0), len(thr), int(thr["n_seeds"].min())
    )


def _first_budget(study: _Study, series: str) -> float:
    cells = study.cells[(study.cells["series"] == series) & (study.cells["budget"] > 0)]
    return float(cells["budget"].min())


def _log_thresholds(study: _Study, side: str) -> tuple[dict, dict]:
    """Per series: the observed log10 threshold and its replicates, each NaN where the grid
    does not locate it (at or below the smallest budget, or not reached: a bound)."""
    thr = study.thresholds.table
    observed, reps = {}, {}
    for _, row in thr.iterrows():
        series = row["series"]
        first = _first_budget(study, series)
        located = row[f"{side}_status"] == BRACKETED and row[side] > first
        observed[series] = math.log10(row[side]) if located else math.nan
        r = study.thresholds.draws[series][side]
        with np.errstate(divide="ignore", invalid="ignore"):
            reps[series] = np.where(np.isfinite(r) & (r > first), np.log10(r), np.nan)
    return observed, reps


def _spread_over(study: _Study, across: str) -> _Effect:
    """The spread in decades of located thresholds across ``across`` (APET's structures of
    one pattern on one model and task; or the tasks of one model and structure), per group,
    the median over groups; the low and high thresholds for structures, the low one for tasks.
    A replicate in which one of a group's thresholds leaves the grid counts as an infinite
    spread: what the grid cannot locate never counts for "alike"."""
    thr = study.thresholds.table
    if across == "structure":
        apet = thr[thr["structure"].str.startswith("apet-")].copy()
        apet["pattern"] = apet["structure"].str.rsplit("-", n=1).str[-1]
        groups = apet.groupby(["model", "task", "pattern"])
        sides = ("low", "high")
    else:
        groups = thr.groupby(["model", "structure"])
        sides = ("low",)
    cases = []
    for side in sides:
        observed, reps = _log_thresholds(study, side)
        for _, group in groups:
            series = [s for s in group["series"] if not math.isnan(observed[s])]
            if group.set_index("series").loc[series, across].nunique() < 2:
                continue  # fewer than two located thresholds to compare
            obs = np.array([observed[s] for s in series])
            r = np.stack([reps[s] for s in series], axis=1)
            with np.errstate(invalid="ignore"):
                spread_reps = np.where(
                    np.isnan(r).any(axis=1), np.inf, r.max(axis=1) - r.min(axis=1)
                )
            seeds = int(group.set_index("series").loc[series, "n_seeds"].min())
            cases.append((float(obs.max() - obs.min()), spread_reps, seeds))
    return _over_cases(cases, np.median)


def _threshold_trend(study: _Study) -> _Effect:
    """Slopes of log10 threshold against log10 model size per (task, structure, side), over
    the sizes whose threshold the grid locates in all but ``LOCATED_SHARE`` of the
    replicates; a replicate that does not locate one leaves that case out of its median."""
    thr = study.thresholds.table
    cases: dict[tuple, list] = {}
    for side in ("low", "high"):
        observed, reps = _log_thresholds(study, side)
        for _, row in thr.iterrows():
            series = row["series"]
            if math.isnan(observed[series]) or np.isnan(reps[series]).mean() > LOCATED_SHARE:
                continue
            cases.setdefault((row["task"], row["structure"], side), []).append(
                (row["total_params"], observed[series], reps[series], row["n_seeds"])
            )
    return _trend(cases, np.nanmedian)


def _adjacent_faster(study: _Study) -> tuple[_Effect, str, Rule]:
    conv = convergence(study.df)
    unit = "steps"
    conv = conv[conv["structure"].str.startswith("apet-")]
    conv = conv[conv["structure"].str.rsplit("-", n=1).str[-1].isin(PATTERNS)]
    if conv.empty:
        return _empty(), unit, Rule("above", 0.0)
    conv = conv.assign(
        shape=conv["structure"].str.rsplit("-", n=1).str[0],
        pattern=conv["structure"].str.rsplit("-", n=1).str[-1],
    )
    resampled = Resampled(
        pd.DataFrame({"cell": conv["cell"], "value": conv["steps_to_fraction"]}), study.draws
    )
    cases = []
    for _, pair in conv.groupby(["model", "task", "budget", "shape", "reference"]):
        by_pattern = pair.groupby("pattern")["cell"].unique()
        if set(by_pattern.index) != set(PATTERNS) or by_pattern.map(len).max() > 1:
            continue  # a pattern missing, or several configurations of one: no clean pair
        by_pattern = by_pattern.map(lambda cells: cells[0])
        adj, dis = by_pattern["adjacent"], by_pattern["discrete"]
        diff = resampled.mean(dis) - resampled.mean(adj)
        seeds = int(pair.groupby("cell").size().min())
        cases.append((diff, resampled.of(dis) - resampled.of(adj), seeds))
    # A difference within one evaluation interval is below what the curves can resolve.
    resolution = _eval_interval(study.df)
    effect = _over_cases(cases)
    return effect, unit, Rule("above", resolution)


def _eval_interval(df: pd.DataFrame) -> float:
    gaps = [b[0] - a[0] for curve in df["curve"] for a, b in zip(curve, curve[1:], strict=False)]
    return float(np.median(gaps)) if gaps else 0.0


def _transfer(df: pd.DataFrame, matrix: pd.DataFrame | None, draws: int) -> Finding:
    claim = "Task transfer works within a task type, not across types"
    rule = Rule("above", TRANSFER_EDGE)
    unit = "relative score (same type minus cross type)"

    def empty(evidence: str) -> Finding:
        return Finding(
            "transfer_within_type",
            claim,
            "not tested",
            math.nan,
            unit,
            math.nan,
            math.nan,
            0,
            rule.describe(unit),
            evidence,
            0,
        )

    if matrix is None or matrix.empty:
        return empty(
            "no transfer evaluation: `petscale report DIR --transfer` (or evaluate_transfer) "
            "scores a study's kept deltas on its other tasks"
        )
    types = dict(zip(df["task"], df["task_type"], strict=False))
    pairs = matrix[(matrix["source"] != matrix["target"]) & matrix["relative"].notna()]
    same = np.array(
        [
            types.get(s) == types.get(t)
            for s, t in zip(pairs["source"], pairs["target"], strict=True)
        ],
        dtype=bool,
    )
    values = pairs["relative"].to_numpy(dtype=float)
    if not same.any() or same.all():
        return empty("needs transfer pairs both within a task type and across types")
    # Pairs that share a source task are not independent: the source tasks are redrawn.
    rng = np.random.default_rng(0)
    sources = pairs["source"].to_numpy()
    names = np.unique(sources)
    replicates = np.full(draws, np.nan)
    for b in range(draws):
        picked = rng.choice(names, size=len(names))
        rows = np.concatenate([np.flatnonzero(sources == name) for name in picked])
        kinds, scores = same[rows], values[rows]
        if kinds.any() and not kinds.all():
            replicates[b] = scores[kinds].mean() - scores[~kinds].mean()
    seeds = int(pairs["n_seeds"].min())
    effect = _Effect(
        float(values[same].mean() - values[~same].mean()), replicates, len(names), seeds
    )
    found = _finding(
        "transfer_within_type",
        claim,
        effect,
        unit,
        rule,
        "same-type pairs keep {effect} more of the in-task gain over the floor than "
        f"cross-type pairs ({values[same].mean():.2f} against {values[~same].mean():.2f})",
    )
    return found


def _num(value: float, signed: bool = True) -> str:
    if not np.isfinite(value):
        return "n/a" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    sign = "+" if signed else ""
    return f"{value:{sign}.2g}" if abs(value) < 1 else f"{value:{sign}.3g}"
