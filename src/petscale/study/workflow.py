"""One path through a study: load the spec and check its names, expand the grid, check every
budget against its model and the runner's options, keep the spec beside the store, run.

``petscale study run``, ``study plan``, ``study thresholds``, ``petscale demo`` and the Python
route (``petscale.study.run``) all come through here; the CLI only parses and prints.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from petscale.study.runners import Events, check_run_options, run_study
from petscale.study.spec import Spec, check_counts, check_names, expand, load_spec
from petscale.study.store import keep_spec
from petscale.study.worker import DEFAULT_TRIAL
from petscale.tracking import Tracking


@dataclass(frozen=True)
class Runner:
    """How a study's trials run: where, how many at once, with what (``study run``'s options)."""

    backend: str = "local"  # local | ray
    workers: int | None = None  # trials at once (default 1; a Ray cluster: its CPUs)
    address: str | None = None  # a Ray cluster's address
    cpus_per_trial: float | None = None  # default: cores // workers
    gpus_per_trial: float = 0.0
    trial: str = DEFAULT_TRIAL  # the trial function, 'package.module:function'
    retry_failed: bool = False
    tracking: Tracking | None = None  # kept out of the trial configs: ids stay the same

    def check(self) -> None:
        check_run_options(self.backend, self.workers, self.cpus_per_trial, self.gpus_per_trial)


@dataclass(frozen=True)
class Plan:
    """A checked study: its spec, its trial configs and the folder it runs into."""

    source: Path  # the spec file
    spec: Spec
    configs: list[dict[str, Any]]
    folder: Path


@dataclass(frozen=True)
class StudyOutcome:
    """What a run left: trials per status over the plan's grid."""

    folder: Path
    trials: int
    counts: Mapping[str, int]  # done, failed, running (elsewhere), pending


def default_folder(spec: str | Path) -> Path:
    """A spec's study folder when none is given: next to the spec, named after it."""
    spec = Path(spec)
    return spec.with_suffix("") if spec.suffix else spec.parent / f"{spec.name}.study"


def plan(spec: str | Path, folder: str | Path | None = None, runner: Runner = Runner()) -> Plan:
    """Every check a study gets before anything is written or run: the spec, its models and
    tasks, every budget against its model (counted on the meta device), the runner's options.
    A trial function other than petscale's own gets the spec's checks only."""
    grid = load_spec(spec)
    own_trial = runner.trial == DEFAULT_TRIAL
    if own_trial:
        check_names(grid)
    configs = expand(grid)
    if own_trial:
        check_counts(configs)
    runner.check()
    return Plan(Path(spec), grid, configs, Path(folder) if folder else default_folder(spec))


def start(planned: Plan, runner: Runner = Runner()) -> None:
    """Keep the spec in the study folder (refused: a folder of other files) and hand the
    runner's tracking to the workers through the environment."""
    keep_spec(planned.source, planned.folder)
    if runner.tracking:
        os.environ.update(runner.tracking.env())


def execute(
    planned: Plan,
    runner: Runner = Runner(),
    events: Events | None = None,
    configs: Iterable[Mapping[str, Any]] | None = None,
) -> StudyOutcome:
    """Run the plan's trials (or ``configs``, a later round of the same study) not yet done."""
    chosen = list(planned.configs if configs is None else configs)
    counts = run_study(
        planned.folder,
        chosen,
        trial=runner.trial,
        backend=runner.backend,
        workers=runner.workers,
        address=runner.address,
        cpus_per_trial=runner.cpus_per_trial,
        gpus_per_trial=runner.gpus_per_trial,
        retry_failed=runner.retry_failed,
        events=events,
        keep_deltas=planned.spec.keep_deltas,
    )
    return StudyOutcome(planned.folder, len(chosen), counts)


def run(
    spec: str | Path,
    folder: str | Path | None = None,
    runner: Runner = Runner(),
    events: Events | None = None,
) -> StudyOutcome:
    """Run every trial of the study ``spec`` not yet done into ``folder`` (default: next to
    the spec); a rerun resumes where the last one stopped."""
    planned = plan(spec, folder, runner)
    start(planned, runner)
    return execute(planned, runner, events)
