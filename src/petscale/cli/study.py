"""`petscale study run | thresholds | status | export`: run a study spec, refine its thresholds,
watch it, get its table."""

from __future__ import annotations

import json
import math
import shlex
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from petscale.cli import options as o
from petscale.cli.table import print_table
from petscale.errors import UserError
from petscale.formatting import duration, literal
from petscale.ids import trial_id
from petscale.study.export import export as export_table
from petscale.study.runners import Events
from petscale.study.spec import expand, load_spec
from petscale.study.store import Store
from petscale.study.worker import DEFAULT_TRIAL, Outcome
from petscale.study.workflow import Runner, execute, plan, start
from petscale.tracking import Tracking

app = typer.Typer(
    help="Run a grid of trials from a YAML spec into a SQLite store; rerun to resume.",
    no_args_is_help=True,
)


@app.command()
def run(
    spec: Path = typer.Argument(..., help="The study spec (YAML); see docs/STUDY.md."),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Study folder. Default: next to the spec, named after it."
    ),
    workers: int | None = typer.Option(
        None, "--workers", "-w", help="Trials at once. Default 1 (Ray cluster: its CPUs)."
    ),
    backend: str = typer.Option("local", "--backend", help="local | ray"),
    address: str | None = typer.Option(None, "--address", help="Ray cluster address."),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="Rerun failed trials."),
    cpus_per_trial: float | None = typer.Option(
        None, "--cpus-per-trial", help="CPU threads per trial. Default: cores // workers."
    ),
    gpus_per_trial: float = typer.Option(0.0, "--gpus-per-trial", help="GPUs per trial (Ray)."),
    trial: str = typer.Option(
        DEFAULT_TRIAL, "--trial", help="The trial function, as 'package.module:function'."
    ),
    track: list[str] | None = typer.Option(
        None, "--track", help="Log each trial to a tracker: tensorboard, wandb, mlflow."
    ),
    track_dir: Path | None = typer.Option(
        None, "--track-dir", help="Where trackers write (default runs/track)."
    ),
    json_output: o.Json = False,
) -> None:
    """Run every trial of SPEC not yet done; a rerun resumes where the last one stopped."""
    with user_errors():
        runner = Runner(
            backend=backend,
            workers=workers,
            address=address,
            cpus_per_trial=cpus_per_trial,
            gpus_per_trial=gpus_per_trial,
            trial=trial,
            retry_failed=retry_failed,
            tracking=Tracking.of(track, track_dir),
        )
        planned = plan(spec, out, runner)
        start(planned, runner)
        with ProgressEvents(len(planned.configs)) as events:
            outcome = execute(planned, runner, events)
    counts, folder = outcome.counts, outcome.folder
    if json_output:
        typer.echo(json.dumps({**counts, "trials": outcome.trials, "store": str(folder)}))
    else:
        typer.echo(
            f"{counts['done']}/{outcome.trials} done, {counts['failed']} failed, "
            f"{counts['running']} running elsewhere, {counts['pending']} pending; store: {folder}"
        )
    if counts["failed"]:
        where = f" --out {shlex.quote(str(folder))}" if out else ""
        typer.echo(
            f"rerun failed trials: petscale study run {spec}{where} --retry-failed", err=True
        )
        raise typer.Exit(1)


@app.command("plan")
def plan_(
    spec: Path = typer.Argument(..., help="The study spec (YAML); see docs/STUDY.md."),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Study folder. Default: next to the spec, named after it."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """The trials SPEC expands to and their count, after every check `study run` makes;
    nothing is written or run."""
    with user_errors():
        planned = plan(spec, out)
    if as_json:
        configs = [{"id": trial_id(c), **c} for c in planned.configs]
        typer.echo(
            json.dumps({"trials": len(configs), "folder": str(planned.folder), "configs": configs})
        )
        return
    # the settings the grid varies (a sweep) get a column each: rows that differ show it
    keys = sorted({k for c in planned.configs for k in c} - {"model", "task", "method", "options"})
    varied = [k for k in keys if len({json.dumps(c.get(k)) for c in planned.configs}) > 1]
    varied = [k for k in varied if k != "seed"]
    print_table(
        ("id", "model", "task", "method", "options", *varied, "seed"),
        [
            (
                trial_id(c),
                c["model"],
                c["task"],
                c["method"],
                " ".join(f"{k}={v}" for k, v in c["options"].items()) or "-",
                *(str(c.get(k, "-")) for k in varied),
                str(c["seed"]),
            )
            for c in planned.configs
        ],
    )
    where = f" --out {shlex.quote(str(out))}" if out else ""
    typer.echo(f"{len(planned.configs)} trials; run them: petscale study run {spec}{where}")


@app.command()
def thresholds(
    spec: Path = typer.Argument(..., help="A study spec with apet entries; budgets: the bracket."),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Study folder. Default: next to the spec, named after it."
    ),
    rounds: int = typer.Option(4, "--rounds", help="Rounds of new budgets after the first grid."),
    tolerance: float = typer.Option(
        0.01, "--tolerance", help="High threshold: within this of full fine-tuning's score."
    ),
    resolution: float = typer.Option(
        1.5, "--resolution", help="Stop once the budgets around a threshold are this close."
    ),
    workers: int | None = typer.Option(None, "--workers", "-w", help="Trials at once."),
    as_json: bool = typer.Option(False, "--json", help="Print the thresholds as JSON rows."),
) -> None:
    """Find APET's low and high thresholds by bisection on log budget (few trials, resumable)."""
    # Here, not at the top: search reads the study through analysis (pandas, matplotlib).
    from petscale.search import SearchSettings, search

    with user_errors():
        if rounds < 0 or not 0 < tolerance < 1 or not 1 < resolution < math.inf:
            raise UserError("--rounds >= 0, 0 < --tolerance < 1 and --resolution > 1, please")
        settings = SearchSettings(rounds=rounds, tolerance=tolerance, resolution=resolution)
        found, folder = search(spec, out, settings, Runner(workers=workers), ProgressEvents)
    columns = ["model", "task", "structure", "low", "high", "low_bracketed", "high_bracketed"]
    if as_json:
        typer.echo(found[columns + ["n_seeds"]].to_json(orient="records"))
        return
    typer.echo(found[columns].to_string(index=False))
    typer.echo(f"store: {folder}; the report: petscale report {folder}")


@app.command()
def status(
    folder: Path = typer.Argument(..., help="The study folder."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Trials done / running / failed / pending, time spent and an estimate of the time left."""
    with user_errors(), Store.existing(folder) as store:
        summary = store.summary()
    if as_json:
        typer.echo(json.dumps(summary))
        return
    typer.echo(
        f"done {summary['done']}  running {summary['running']}  failed {summary['failed']}  "
        f"pending {summary['pending']}  (total {summary['total']})"
    )
    if summary["stalled"]:
        typer.echo(
            f"{summary['stalled']} of the running trials have no runner any more (killed); "
            "the next `petscale study run` takes them back"
        )
    typer.echo(f"time spent: {duration(summary['seconds_spent'])} of trial time")
    live = summary["running"] - summary["stalled"]
    if summary["mean_trial_seconds"] is not None:
        pace = f"{live} at once" if live else "one at a time"
        typer.echo(
            f"mean trial: {duration(summary['mean_trial_seconds'])}; estimated time left: "
            f"{duration(summary['estimated_seconds_left'])} ({pace})"
        )


@app.command("export")
def export_(
    folder: Path = typer.Argument(..., help="The study folder."),
    fmt: str = typer.Option("csv", "--format", "-f", help="csv | parquet"),
    out: Path | None = typer.Option(None, "--out", "-o", help="Default: DIR/trials.<format>."),
    spec: Path | None = typer.Option(
        None,
        "--spec",
        help="Only the trials this spec expands to (a sub-study kept in a larger store).",
    ),
) -> None:
    """One row per trial: config columns flattened, then the results."""
    with user_errors():
        ids = {trial_id(c) for c in expand(load_spec(spec))} if spec else None
        path = export_table(folder, fmt, out, only=ids)
    typer.echo(str(path))


class ProgressEvents(Events):
    """A rich progress bar: done / failed counts and the trial last started."""

    def __init__(self, total: int) -> None:
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True),
        )
        self.task = self.progress.add_task("study", total=total)
        self.done = self.failed = 0
        self.current = ""

    def __enter__(self) -> ProgressEvents:
        return self  # the bar starts once the trials are queued: a bad option prints no bar

    def __exit__(self, *exc: object) -> None:
        if self.progress.live.is_started:
            self.progress.stop()

    def queued(self, counts: dict[str, int]) -> None:
        self.progress.start()
        self.done, self.failed = counts["done"], counts["failed"]
        self._update()

    def started(self, tid: str, config: dict[str, Any]) -> None:
        self.current = _label(config)
        self._update()

    def ended(self, tid: str, config: dict[str, Any], outcome: Outcome) -> None:
        if outcome["ok"]:
            self.done += 1
        else:
            self.failed += 1
            self.progress.console.print(
                f"failed {_label(config)}: {literal(str(outcome['error']))}", soft_wrap=True
            )
        self._update()

    def _update(self) -> None:
        self.progress.update(
            self.task,
            completed=self.done + self.failed,
            description=f"done {self.done} failed {self.failed} | {self.current}",
        )


def _label(config: dict[str, Any]) -> str:
    """The trial as one line for the progress bar (names shown as written, never as markup)."""
    options = " ".join(f"{k}={v}" for k, v in config["options"].items())
    return literal(
        f"{config['model']} {config['task']} {config['method']} {options} seed={config['seed']}"
    )


@contextmanager
def user_errors() -> Iterator[None]:
    # Bad input: one line on stderr and exit status 2, no traceback.
    try:
        yield
    except UserError as e:
        typer.echo(f"error: {' '.join(str(e).split())}", err=True)
        raise typer.Exit(2) from None
    except sqlite3.DatabaseError as e:  # a store damaged past what opening it checks
        typer.echo(f"error: the study store is damaged ({e}); restore it from a copy", err=True)
        raise typer.Exit(2) from None
