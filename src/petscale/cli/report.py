"""``petscale report DIR``: a study's findings, thresholds and gaps as a self-contained page."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from petscale.cli import options as o


def report(
    folder: Annotated[Path, typer.Argument(help="The study folder (holds study.sqlite).")],
    out: Annotated[
        Path | None, typer.Option(help="Where the report folder goes. Default: DIR/report.")
    ] = None,
    transfer: Annotated[
        bool,
        typer.Option(help="Evaluate the kept deltas zero-shot on the study's other tasks."),
    ] = False,
    transfer_limit: Annotated[
        int, typer.Option(help="Dev examples per transfer evaluation.", min=1)
    ] = 200,
    subspace: Annotated[
        bool, typer.Option(help="Compare the subspaces of the kept deltas (spectra, angles).")
    ] = False,
    json_output: o.Json = False,
) -> None:
    """Write report.html (figures embedded), figures/*.png|svg, thresholds.csv and gaps.csv."""
    from petscale.report import gather, write

    built = gather(
        folder,
        transfer=transfer,
        transfer_limit=transfer_limit,
        subspace=subspace,
        progress=not json_output,
    )
    path = write(built, out or folder / "report")
    if json_output:
        print(json.dumps({"report": str(path), **built.summary()}))
        return
    from petscale.report.terminal import print_summary

    print_summary(built, path)
