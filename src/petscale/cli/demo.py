"""``petscale demo``: the study in miniature on the offline default, then its report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from petscale import demo as bundled
from petscale.cli import options as o
from petscale.cli.study import ProgressEvents, user_errors
from petscale.study.workflow import Runner, execute, plan, start

DEMO_FOLDER = Path("runs/demo")


def demo(
    out: Annotated[
        Path, typer.Option(help="The demo's study folder (store, deltas, report).")
    ] = DEMO_FOLDER,
    workers: Annotated[int, typer.Option(help="Trials at once (one CPU thread each).")] = 2,
    json_output: o.Json = False,
) -> None:
    """Run the scaling study in miniature (2 models x 2 tasks x every method, APET over a budget
    grid, head-free), then write its report; a second run shows the report in seconds."""
    # Here, not at the top: the report reads the study with pandas and draws with matplotlib.
    from petscale.report import gather, terminal, write

    with user_errors():
        # a rerun also retries what failed: the demo wants every trial
        runner = Runner(workers=workers, retry_failed=True)
        planned = plan(bundled.demo_spec_path(), out, runner)
        start(planned, runner)
        with ProgressEvents(len(planned.configs)) as events:
            counts = execute(planned, runner, events).counts
        built = gather(out)
        path = write(built, out / "report")
    if json_output:
        print(json.dumps({"report": str(path), "counts": counts, **built.summary()}, default=str))
        return
    terminal.print_summary(built, path)
    if counts["failed"]:
        typer.echo(f"{counts['failed']} trial(s) failed: petscale study status {out}", err=True)
