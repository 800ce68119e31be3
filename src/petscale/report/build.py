"""Gather a study's analyses into one report, and write its folder whole.

The study is a folder (its store) or a table ``petscale study export`` wrote. The report
folder holds ``report.html`` (self-contained: figures embedded), ``figures/NAME.png`` and
``.svg``, ``thresholds.csv``, ``gaps.csv``, ``matched.csv``, ``trials.csv`` (a row per done
trial) and ``report.json`` (what ``report --json`` prints).
"""

from __future__ import annotations

import errno
import io
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

from petscale import analysis, deltas
from petscale.analysis.exported import is_table, read_table
from petscale.analysis.floors import UNTUNED
from petscale.errors import UserError
from petscale.folders import recover, swap_in
from petscale.report import environment
from petscale.report.contents import Figure, Report
from petscale.report.html import render
from petscale.study.spec import MAX_SPEC_BYTES  # a kept spec larger is not one petscale took
from petscale.study.store import SPEC_NAME, Store, trial_folder

REPORT_NAME = "report.html"


def gather(
    path: str | Path,
    transfer: bool = False,
    transfer_limit: int = 200,
    subspace: bool = False,
    progress: bool = False,
    select: str | None = None,
) -> Report:
    """Every analysis of the study in the folder ``path`` (its store must exist and hold done
    trials), or of the table at ``path`` that ``petscale study export`` wrote (CSV or Parquet).

    ``transfer`` evaluates each kept delta zero-shot on the study's other tasks, and each
    model untuned on them (the floor of the relative score; on the seeded subset of at most
    ``transfer_limit`` dev examples a trial with that eval limit scores:
    :func:`petscale.deltas.evaluate_transfer`); ``subspace`` compares the kept deltas'
    subspaces (:func:`petscale.deltas.subspace_table`).
    Both load models, so they are off by default and need the study folder (a table keeps no
    delta); ``progress`` shows the transfer's bar. ``select`` (a swept training setting, e.g.
    ``lr``) picks its value per cell on dev and reads every analysis on test
    (:func:`petscale.analysis.select_on_dev`).
    """
    path = Path(path)
    from_table = is_table(path)
    if from_table:
        if transfer or subspace:
            asked = (("--transfer", transfer), ("--subspace", subspace))
            flags = " and ".join(flag for flag, on in asked if on)
            verb = "need" if transfer and subspace else "needs"
            raise UserError(
                f"{flags} {verb} the study folder (the kept deltas), not the exported table "
                f"{path}; run `petscale report STUDY_DIR {flags}`"
            )
        table = read_table(path)
        df = table.results
        counts, hosts = table.counts, table.hosts
        spec = config_grid(table.configs, f"the configs of the done trials in {path.name}")
    else:
        with Store.existing(path) as store:
            summary = store.summary()
            done = [r for r in store.rows() if r["status"] == "done"]
        counts = {k: summary[k] for k in ("done", "failed", "running", "pending", "total")}
        hosts = sorted({r["host"] for r in done if r["host"]})
        df = analysis.load_results(path)
        spec = spec_of(path, [r["config"] for r in done])
    if df.empty:
        raise UserError(
            f"the study in {path} has no finished trial yet; run `petscale study run SPEC`"
        )
    if select:
        df = analysis.select_on_dev(df, select)
    thresholds = analysis.thresholds(df)
    gaps = analysis.gaps(df)
    conv = analysis.convergence(df)
    figures = [
        _figure(
            "score_vs_params", "Score vs trainable parameters", analysis.score_vs_params_figure(df)
        ),
        _figure("gaps", "Gap to full fine-tuning", analysis.gaps_figure(gaps)),
        _figure("thresholds", "Low and high thresholds", analysis.thresholds_figure(thresholds)),
        _figure("convergence", "Dev curves", analysis.convergence_figure(df)),
    ]
    matrix = kinds = sub = pd.DataFrame()
    if transfer:
        scores = deltas.evaluate_transfer(
            path, limit=transfer_limit, untuned=True, progress=progress
        )
        matrix = analysis.transfer_matrix(scores)
        types = dict(zip(df["task"], df["task_type"], strict=False))
        kinds = analysis.same_type_vs_cross(matrix, types) if not matrix.empty else kinds
        figures.append(
            _figure("transfer", "Zero-shot task transfer", analysis.transfer_figure(matrix))
        )
    if subspace:
        sub = deltas.subspace_table(path)
        figures.append(_figure("spectra", "Spectra of the deltas", _spectra(path, df)))
    context = {
        "generated": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "input": "table" if from_table else "study",
        "trial_counts": counts,
        "seconds_spent": float(df["seconds"].fillna(0).sum()),
        "heads": sorted(df["head"].dropna().astype(str).unique()),
        "models": sorted(df["model"].unique()),
        "tasks": sorted(df["task"].unique()),
        "seeds": sorted(int(s) for s in df["seed"].unique()),
        "hosts": hosts,
        "versions": environment.versions(),
        "machine": environment.machine(),
        "spec": spec,
        "transfer": transfer,
        "subspace": subspace,
        "selected": select,  # the setting picked per cell on dev (scores then: test)
    }
    return Report(
        folder=path,
        results=df,
        findings=analysis.findings(df, transfer=matrix if transfer else None),
        thresholds=thresholds,
        agreement=analysis.structure_agreement(thresholds),
        gaps=gaps,
        gap_trend=analysis.gap_trend(gaps),
        matched=analysis.matched_comparison(analysis.aggregate(df)),
        pattern_speed=analysis.pattern_speed(conv),
        figures=[f for f in figures if f is not None],
        context=context,
        transfer=matrix,
        transfer_kinds=kinds,
        subspace=sub,
    )


def default_out(path: str | Path) -> Path:
    """Where the report of ``path`` goes by default: ``DIR/report`` for a study folder,
    ``<file stem>-report`` beside an exported table."""
    path = Path(path)
    return path.with_name(f"{path.stem}-report") if is_table(path) else path / "report"


def write(report: Report, out: str | Path) -> Path:
    """Write the report folder at ``out`` whole (a staging folder renamed into place)."""
    out = Path(out)
    recover(out)  # an earlier write stopped mid-swap: its report goes back first
    if out.exists() and (
        not out.is_dir() or (any(out.iterdir()) and not (out / REPORT_NAME).is_file())
    ):
        raise UserError(
            f"--out {out} holds files that are not a petscale report; pass a new folder"
        )
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    except OSError as err:
        raise _unwritten(out, err) from err
    try:
        (staging / "figures").mkdir()
        for fig in report.figures:
            (staging / "figures" / f"{fig.name}.png").write_bytes(fig.png)
            (staging / "figures" / f"{fig.name}.svg").write_bytes(fig.svg)
        report.thresholds.to_csv(staging / "thresholds.csv", index=False)
        report.gaps.to_csv(staging / "gaps.csv", index=False)
        report.matched.to_csv(staging / "matched.csv", index=False)
        report.trial_table().to_csv(staging / "trials.csv", index=False)
        if not report.transfer.empty:
            report.transfer.to_csv(staging / "transfer.csv", index=False)
        if not report.subspace.empty:
            report.subspace.to_csv(staging / "subspace.csv", index=False)
        summary = json.dumps(report.summary(), indent=2, allow_nan=False)
        (staging / "report.json").write_text(summary + "\n")
        (staging / REPORT_NAME).write_text(render(report), encoding="utf-8")
        swap_in(staging, out)
    except OSError as err:  # a full disk, a folder taken away ...
        raise _unwritten(out, err) from err
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out / REPORT_NAME


def _unwritten(out: Path, err: OSError) -> UserError:
    """A report that could not be written: where, why, and that nothing there changed."""
    fix = (
        "free some space or pass another --out"
        if err.errno == errno.ENOSPC
        else "pass another --out"
    )
    return UserError(
        f"could not write the report to {out} ({err.strerror or err}); nothing there was "
        f"changed: {fix}"
    )


SPECTRA_TRIALS = 6  # lines in the spectra figure: more would not be readable


def _spectra(folder: Path, df: pd.DataFrame) -> Any:
    """Spectra of one weight's delta in a few kept trials of the first model that trained a
    weight matrix (None if none)."""
    picked = {}
    trained = df[(df["model"] == df["model"].min()) & (df["method"] != UNTUNED)]
    for row in trained.itertuples():
        run = trial_folder(folder, row.trial_id)
        if (run / "trial.json").is_file() and len(picked) < SPECTRA_TRIALS:
            dense = deltas.dense_deltas(run)
            if dense:  # a delta of no weight matrix (a probe's) has no spectrum
                picked[f"{row.structure} · {Path(row.task).name} · seed {row.seed}"] = dense
    shared = sorted(set.intersection(*(set(d) for d in picked.values()))) if picked else []
    if not shared:
        return None
    weight = shared[0]
    figure = analysis.spectra_figure({label: d[weight] for label, d in picked.items()})
    figure.axes[0].set_title(f"spectra of the deltas of\n{weight}", fontsize=9)
    return figure


def _figure(name: str, title: str, fig: Any) -> Figure | None:
    """A matplotlib figure as PNG and SVG bytes (None when the data allow no figure)."""
    if fig is None:
        return None
    images = {}
    for fmt in ("png", "svg"):
        buffer = io.BytesIO()
        # No date in the SVG: the same study gives the same file.
        fig.savefig(buffer, format=fmt, dpi=150, metadata={"Date": None})
        images[fmt] = buffer.getvalue()
    return Figure(name, title, images["png"], images["svg"])


def spec_of(folder: Path, configs: list[dict[str, Any]]) -> dict[str, Any]:
    """The spec file if the folder keeps one; else every setting's values over the done trials.

    Reports are shared, so only the spec a study wrote is shown: a link (which could point at
    any file of the reader's), an oversized or non-text file falls back to the grid.
    """
    path = folder / SPEC_NAME
    text = _kept_spec_text(path)
    if text is not None:
        return {"source": str(path), "text": text}
    return config_grid(configs)


def config_grid(
    configs: list[dict[str, Any]], source: str = "the configs of the done trials"
) -> dict[str, Any]:
    """Every setting's values over ``configs``, each as JSON text, sorted."""
    values: dict[str, set[str]] = {}
    for config in configs:
        for key, value in _flatten(config):
            values.setdefault(key, set()).add(json.dumps(value))
    grid = {key: sorted(v) for key, v in sorted(values.items())}
    return {"source": source, "grid": grid}


def _kept_spec_text(path: Path) -> str | None:
    if path.is_symlink() or not path.is_file() or path.stat().st_size > MAX_SPEC_BYTES:
        return None
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def _flatten(config: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out = []
    for key, value in config.items():
        if isinstance(value, dict):
            out += _flatten(value, f"{prefix}{key}.")
        else:
            out.append((f"{prefix}{key}", value))
    return out
