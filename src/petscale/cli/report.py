"""``petscale report PATH``: a study's findings, thresholds and gaps as a self-contained page,
from its folder or from a table ``petscale study export`` wrote."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from petscale.cli import options as o


def report(
    path: Annotated[
        Path,
        typer.Argument(
            help="The study folder (holds study.sqlite) or exported CSV/Parquet table "
            "(`petscale study export`).",
        ),
    ],
    out: Annotated[
        Path | None,
        typer.Option(
            help="Where the report folder goes. Default: DIR/report for a study folder, "
            "NAME-report beside a table NAME.csv."
        ),
    ] = None,
    transfer: Annotated[
        bool,
        typer.Option(
            help="Evaluate the kept deltas zero-shot on the study's other tasks (study folder)."
        ),
    ] = False,
    transfer_limit: Annotated[
        int, typer.Option(help="Dev examples per transfer evaluation.", min=1)
    ] = 200,
    subspace: Annotated[
        bool,
        typer.Option(
            help="Compare the subspaces of the kept deltas (spectra, angles; study folder)."
        ),
    ] = False,
    select: Annotated[
        str | None,
        typer.Option(
            help="A swept training setting (lr, steps, batch_size, weight_decay ...): pick "
            "its value per cell on dev, then read every analysis on test."
        ),
    ] = None,
    json_output: o.Json = False,
) -> None:
    """Write report.html (figures embedded), figures/*.png|svg, thresholds.csv, gaps.csv and
    trials.csv, from a study folder or an exported CSV/Parquet table."""
    # Here, not at the top: the report reads the study with pandas and draws with matplotlib.
    from petscale.report import build, terminal

    built = build.gather(
        path,
        transfer=transfer,
        transfer_limit=transfer_limit,
        subspace=subspace,
        progress=not json_output,
        select=select,
    )
    page = build.write(built, out or build.default_out(path))
    if json_output:
        print(json.dumps({"report": str(page), **built.summary()}, allow_nan=False))
        return
    terminal.print_summary(built, page)
