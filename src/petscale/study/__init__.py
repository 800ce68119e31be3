"""Studies: a YAML grid of trials, run by local processes or Ray into a SQLite store."""

from petscale.ids import trial_id
from petscale.study.export import export, table
from petscale.study.runners import Events, run_study
from petscale.study.spec import Spec, expand, load_spec, parse_spec
from petscale.study.store import Owner, Store
from petscale.study.workflow import Plan, Runner, StudyOutcome, default_folder, plan, run

__all__ = [
    "Events",
    "Owner",
    "Plan",
    "Runner",
    "Spec",
    "Store",
    "StudyOutcome",
    "default_folder",
    "expand",
    "export",
    "load_spec",
    "parse_spec",
    "plan",
    "run",
    "run_study",
    "table",
    "trial_id",
]
