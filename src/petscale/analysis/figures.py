"""The study's figures, drawn on ``matplotlib.figure.Figure`` (the Agg canvas; pyplot's global
state is never touched). Okabe-Ito colours (colour-blind safe), labelled axes with units, log
x where budgets or model sizes span decades, a legend on every panel with several series.
Each function returns a Figure, or None when the data do not allow the figure.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from petscale.analysis.curves import FIXED, reference_lines, score_vs_params
from petscale.analysis.subspace import spectrum
from petscale.analysis.thresholds import TOLERANCE, thresholds

#: Okabe and Ito (2008), without yellow (too pale on white).
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000")
PANEL = (4.6, 3.4)  # inches per panel
STYLES = ("-", "--", ":", "-.")
POINT_MARKERS = ("D", "s", "P", "X", "*", "h", "p")


def colour(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def _panels(n: int, cols: int = 3) -> tuple[Figure, list]:
    cols = min(cols, n)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(PANEL[0] * cols, PANEL[1] * rows), layout="constrained")
    axes = list(fig.subplots(rows, cols, squeeze=False).flat)
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def _log_if_wide(ax, values: pd.Series | np.ndarray, axis: str = "x") -> None:  # noqa: ANN001
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v) & (v > 0)]
    if len(v) and v.max() / v.min() >= 10:
        (ax.set_xscale if axis == "x" else ax.set_yscale)("log")


def _by_model_size(ax, task: str, cell: pd.DataFrame, ylabel: str) -> None:  # noqa: ANN001
    """A task's panel with model size on x (log when it spans a decade), titled, labelled."""
    _log_if_wide(ax, cell["total_params"])
    ax.set(title=task, xlabel="model size (parameters)", ylabel=ylabel)
    ax.legend(fontsize=7)


def score_vs_params_figure(df: pd.DataFrame) -> Figure | None:
    """The study's Figure 3: per task a row, per model size a panel (smallest left, the y axis
    shared along the row); dev score against trainable parameters, a line per structure with
    its 95% interval, a PET method at its own size as a point with its interval; full
    fine-tuning, the head alone and the floor (the larger of the majority-class share and the
    untuned model's score, ``floors``) as lines; each series' thresholds on its lines, the
    low one (triangle down) at the floor, the high one (triangle up) one point below full
    fine-tuning, with its interval as a horizontal bar (an open end clipped to the axis)."""
    points = score_vs_params(df)
    points = points[~points["structure"].isin(FIXED) & (points["budget"] > 0)]
    if points.empty:
        return None
    refs = reference_lines(df).set_index(["model", "task"])
    thr = thresholds(df)
    tasks = sorted(points["task"].unique())
    sizes = points.groupby("model")["total_params"].max().sort_values()
    models = list(sizes.index)
    structures = sorted(points["structure"].unique())
    colours = {s: colour(i) for i, s in enumerate(structures)}
    # methods at their own size are points: a marker each, as colours repeat past seven
    per_panel = points.groupby(["structure", "model", "task"])["budget"].nunique()
    singles = [s for s in structures if per_panel[s].max() < 2]
    markers = {s: POINT_MARKERS[i % len(POINT_MARKERS)] for i, s in enumerate(singles)}
    metric = df["metric"].dropna().iloc[0] if df["metric"].notna().any() else "score"
    fig = Figure(figsize=(5.2 * len(models), 4.0 * len(tasks) + 0.8), layout="constrained")
    grid = fig.subplots(len(tasks), len(models), squeeze=False, sharey="row")
    for r, task in enumerate(tasks):
        for c, model in enumerate(models):
            ax = grid[r][c]
            cell = points[(points["model"] == model) & (points["task"] == task)]
            ref = refs.loc[(model, task)] if (model, task) in refs.index else None
            _draw_series(ax, cell, colours, markers)
            _draw_references(ax, ref)
            _draw_thresholds(ax, thr[(thr["model"] == model) & (thr["task"] == task)], colours)
            _log_if_wide(ax, points["budget"])
            ax.set_title(f"{task} · {model} ({sizes[model] / 1e6:.0f}M)", fontsize=10)
            ax.set_xlabel("trainable parameters (count)")
            if c == 0:
                ax.set_ylabel(f"dev {metric}")
            ax.grid(alpha=0.3)
    handles, labels = _legend_entries(fig)
    ncol = min(len(labels), 2 * len(models) + 1)
    fig.legend(handles, labels, loc="outside lower center", ncol=ncol, fontsize=8)
    return fig


def _draw_series(  # noqa: ANN001
    ax, cell: pd.DataFrame, colours: dict[str, str], markers: dict[str, str]
) -> None:
    for structure, line in cell.groupby("structure"):
        line = line.sort_values("budget")
        colour_ = colours[structure]
        if len(line) == 1:  # a method at its own size: a point with its interval
            row = line.iloc[0]
            ax.errorbar(
                row["budget"],
                row["mean"],
                yerr=[[row["mean"] - row["ci_low"]], [row["ci_high"] - row["mean"]]],
                fmt=markers.get(structure, "D"),
                color=colour_,
                ms=6,
                capsize=2,
                label=structure,
            )
            continue
        ax.plot(line["budget"], line["mean"], "o-", color=colour_, label=structure, ms=4)
        ax.fill_between(line["budget"], line["ci_low"], line["ci_high"], color=colour_, alpha=0.15)


def _draw_references(ax, ref: pd.Series | None) -> None:  # noqa: ANN001
    if ref is None:
        return
    for key, style, label in (
        ("full", "-", "full fine-tuning"),
        ("probe", "--", "head alone (probe)"),
        ("floor", ":", "floor (majority class or untuned)"),
    ):
        if np.isfinite(ref[key]):
            ax.axhline(ref[key], color="#555555", ls=style, lw=1, label=label)


def _draw_thresholds(ax, thr: pd.DataFrame, colours: dict[str, str]) -> None:  # noqa: ANN001
    """Each located threshold on its reference line, its interval as a horizontal bar."""
    for _, row in thr.iterrows():
        for side, marker, level in (
            ("low", "v", row["floor"]),
            ("high", "^", row["full_score"] - TOLERANCE),
        ):
            value = row[side]
            if not (np.isfinite(value) and np.isfinite(level)):
                continue
            low, high = row[f"{side}_ci_low"], row[f"{side}_ci_high"]
            right = high if np.isfinite(high) else value * 10  # an open end: past the grid
            left = low if np.isfinite(low) else value
            ax.errorbar(
                value,
                level,
                xerr=[[max(value - left, 0)], [max(right - value, 0)]],
                fmt=marker,
                color=colours.get(row["structure"], "#000000"),
                ms=7,
                capsize=3,
                lw=1.5,
            )


def _legend_entries(fig: Figure) -> tuple[list, list[str]]:
    """Every labelled artist of the figure once, in first-seen order."""
    seen: dict[str, object] = {}
    for ax in fig.axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            seen.setdefault(label, handle)
    return list(seen.values()), list(seen)


def gaps_figure(gaps_df: pd.DataFrame) -> Figure | None:
    """Gap to full fine-tuning (points) against model size, per task: a line per structure,
    solid at default budgets, dashed at matched budgets."""
    data = gaps_df.dropna(subset=["gap"])
    if data.empty:
        return None
    tasks = sorted(data["task"].unique())
    structures = sorted(data["structure"].unique())
    fig, axes = _panels(len(tasks))
    for ax, task in zip(axes, tasks, strict=False):
        cell = data[data["task"] == task]
        for i, structure in enumerate(structures):
            for kind, style in (("default", "o-"), ("matched", "s--")):
                line = cell[(cell["structure"] == structure) & (cell["budget_kind"] == kind)]
                line = line.groupby("total_params")["gap"].mean()
                if len(line):
                    ax.plot(
                        line.index,
                        line.to_numpy() * 100,
                        style,
                        color=colour(i),
                        label=f"{structure} ({kind})",
                        ms=4,
                    )
        ax.axhline(0, color="#555555", lw=1)
        _by_model_size(ax, task, cell, "gap to full fine-tuning (points)")
    return fig


def thresholds_figure(thr_df: pd.DataFrame) -> Figure | None:
    """Low (circles) and high (triangles) thresholds against model size, per task, a colour
    per structure, each with its 95% interval as an error bar (an end at infinity, a
    threshold some replicates never reach, is drawn to the edge of the axis); hollow markers
    are not bracketed by the budget grid (at most the smallest budget)."""
    data = thr_df[thr_df["low"].notna() | thr_df["high"].notna()]
    if data.empty:
        return None
    tasks = sorted(data["task"].unique())
    structures = sorted(data["structure"].unique())
    fig, axes = _panels(len(tasks))
    for ax, task in zip(axes, tasks, strict=False):
        cell = data[data["task"] == task]
        bars = []
        for i, structure in enumerate(structures):
            rows = cell[cell["structure"] == structure]
            for side, marker in (("low", "o"), ("high", "^")):
                for bracketed in (True, False):
                    pts = rows[rows[f"{side}_bracketed"] == bracketed].dropna(subset=[side])
                    if pts.empty:
                        continue
                    label = f"{structure} {side}" + ("" if bracketed else " (not bracketed)")
                    ax.scatter(
                        pts["total_params"],
                        pts[side],
                        marker=marker,
                        s=40,
                        label=label,
                        color=colour(i) if bracketed else "none",
                        edgecolors=colour(i),
                    )
                    bars.append((pts, side, colour(i)))
        ax.set_yscale("log")
        _interval_bars(ax, bars)
        _by_model_size(ax, task, cell, "threshold (trainable parameters)")
    return fig


def _interval_bars(ax, bars: list[tuple[pd.DataFrame, str, str]]) -> None:  # noqa: ANN001
    """Each threshold's 95% interval as a vertical error bar on the log axis: a finite end
    where it has one, the axis' edge for an end at infinity (or one not above zero)."""
    shown = [pts[c] for pts, side, _ in bars for c in (side, f"{side}_ci_low", f"{side}_ci_high")]
    finite = np.asarray(pd.concat(shown), dtype=float) if shown else np.array([])
    finite = finite[np.isfinite(finite) & (finite > 0)]
    if not finite.size:
        return
    # the axis spans the points and the finite ends; an infinite end stops at its edge
    bottom, top = finite.min() / 1.5, finite.max() * 1.5
    for pts, side, color in bars:
        value = pts[side].to_numpy(dtype=float)
        low = pts[f"{side}_ci_low"].to_numpy(dtype=float)
        high = pts[f"{side}_ci_high"].to_numpy(dtype=float)
        known = ~(np.isnan(low) | np.isnan(high))
        if not known.any():
            continue
        low = np.where(np.isfinite(low) & (low > 0), low, bottom)
        high = np.where(np.isfinite(high), high, top)
        ax.errorbar(
            pts["total_params"].to_numpy(dtype=float)[known],
            value[known],
            yerr=[
                np.clip(value - low, 0, None)[known],
                np.clip(high - value, 0, None)[known],
            ],
            fmt="none",
            ecolor=color,
            elinewidth=1,
            capsize=3,
        )
    ax.set_ylim(bottom, top)


def convergence_figure(df: pd.DataFrame) -> Figure | None:
    """Dev curves (mean over seeds) per (model, task), a line per (structure, budget): a
    colour per structure, a dash pattern per budget; APET's two patterns are the comparison
    this figure is for."""
    with_curves = df[df["curve"].map(len) >= 2]
    if with_curves.empty:
        return None
    panels = sorted(set(zip(with_curves["model"], with_curves["task"], strict=False)))
    fig, axes = _panels(len(panels))
    for ax, (model, task) in zip(axes, panels, strict=False):
        cell = with_curves[(with_curves["model"] == model) & (with_curves["task"] == task)]
        structures = sorted(cell["structure"].unique())
        budgets = sorted(cell["budget"].unique())
        for (structure, budget), runs in cell.groupby(["structure", "budget"], sort=True):
            curve = (
                pd.concat([pd.Series(dict(c)) for c in runs["curve"]], axis=1)
                .mean(axis=1)
                .sort_index()
            )
            i = structures.index(structure)
            ax.plot(
                curve.index,
                curve.to_numpy(),
                color=colour(i),
                ls=STYLES[budgets.index(budget) % len(STYLES)],  # a budget: one dash pattern
                lw=1.2,
                label=f"{structure} @ {int(budget):,}",
            )
        ax.set(title=f"{model} · {task}", xlabel="training step", ylabel="dev score")
        ax.legend(fontsize=6)
    return fig


def transfer_figure(matrix: pd.DataFrame) -> Figure | None:
    """Relative transfer score, source task (rows) x target task (columns), per model."""
    data = matrix.dropna(subset=["relative"]) if "relative" in matrix else matrix.iloc[0:0]
    if data.empty:
        return None
    models = sorted(data["model"].unique()) if "model" in data else [None]
    fig, axes = _panels(len(models), cols=2)
    for ax, model in zip(axes, models, strict=False):
        cell = data if model is None else data[data["model"] == model]
        grid = cell.pivot_table(index="source", columns="target", values="relative", aggfunc="mean")
        image = ax.imshow(grid.to_numpy(dtype=float), cmap="cividis", vmin=0, vmax=1)
        ax.set_xticks(range(len(grid.columns)), grid.columns, rotation=45, ha="right")
        ax.set_yticks(range(len(grid.index)), grid.index)
        for (r, c), value in np.ndenumerate(grid.to_numpy(dtype=float)):
            if np.isfinite(value):
                ax.text(
                    c,
                    r,
                    f"{value:.2f}",
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if value < 0.5 else "black",
                )
        ax.set(
            title=model or "", xlabel="target task (evaluated on)", ylabel="source task (tuned on)"
        )
        fig.colorbar(image, ax=ax, label="relative score (0 untuned, 1 in-task)")
    return fig


def spectra_figure(deltas: Mapping[str, Any]) -> Figure | None:
    """Normalised singular values (log y) against their index: label -> a delta matrix or an
    already computed spectrum."""
    if not deltas:
        return None
    fig, (ax,) = _panels(1)
    for i, (label, value) in enumerate(deltas.items()):
        # a torch tensor (the kept deltas) or an array: analysis itself needs no torch
        values = np.asarray(value.detach().cpu() if hasattr(value, "detach") else value)
        s = spectrum(values) if values.ndim == 2 else values
        s = s[s > 0]
        ax.plot(np.arange(1, len(s) + 1), s, color=colour(i), label=label, lw=1.2)
    ax.set_yscale("log")
    ax.set(
        xlabel="singular value index",
        ylabel="singular value / largest",
        title="spectra of the weight deltas",
    )
    ax.legend(fontsize=7)
    return fig
