"""The ``petscale`` command line: one typer app, one module per command group."""

from __future__ import annotations

import errno
import inspect
import sqlite3
import sys
from collections.abc import Callable
from typing import Any

import typer

from petscale.cli import demo as demo_cli
from petscale.cli import export as export_cli
from petscale.cli import methods as methods_cli
from petscale.cli import models as models_cli
from petscale.cli import report as report_cli
from petscale.cli import study as study_cli
from petscale.cli import tasks as tasks_cli
from petscale.cli import tune as tune_cli
from petscale.errors import UserError

#: Errors of a path the user gave that the system refuses: one line, not a traceback.
REFUSED_PATHS = {
    errno.ENAMETOOLONG,
    errno.ENOTDIR,
    errno.EISDIR,
    errno.EACCES,
    errno.EPERM,
    errno.EROFS,
    errno.ENOENT,
    errno.ENOSPC,
}

app = typer.Typer(
    name="petscale",
    help="Parameter-efficient tuning at any model scale: exact budgets, APET, the scaling study.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _summary(command: Callable[..., Any]) -> str:
    """A command's first docstring paragraph as one line: the listing wraps it to the
    terminal instead of keeping the docstring's line breaks."""
    return " ".join((inspect.getdoc(command) or "").split("\n\n")[0].split())


for _name, _command in (
    ("tune", tune_cli.tune),
    ("count", tune_cli.count),
    ("demo", demo_cli.demo),
    ("models", models_cli.models),
    ("methods", methods_cli.methods),
    ("tasks", tasks_cli.tasks_command),
    ("export", export_cli.export),
    ("report", report_cli.report),
):
    app.command(_name, short_help=_summary(_command))(_command)
app.add_typer(
    study_cli.app,
    name="study",
    help="Run a study grid; refine its thresholds; its status; export results.",
)


def main() -> None:
    """Entry point: bad input ends as one line on stderr and exit status 2, never a traceback."""
    _quiet_libraries()
    command = typer.main.get_command(app)
    try:
        code = command.main(standalone_mode=False, prog_name="petscale")
    except UserError as err:
        _fail(str(err))
    except sqlite3.DatabaseError as err:  # damaged below what the row checks read, or busy
        _fail(f"a study store could not be read ({err}); if it is damaged, restore it from a copy")
    except OSError as err:
        if err.errno not in REFUSED_PATHS:
            raise  # anything else is not the user's input: keep its traceback
        where = f"{err.filename}: " if err.filename else ""
        _fail(f"{where}{err.strerror}")
    except typer.Exit as exit_:
        sys.exit(exit_.exit_code)
    except typer.Abort:
        sys.exit(130)
    except typer.TyperException as err:  # usage errors: bad option, bad value, missing file
        ctx = getattr(err, "ctx", None)
        hint = f" (see: {ctx.command_path} --help)" if ctx else ""
        _fail(err.format_message().replace("\n", " ") + hint)
    sys.exit(code if isinstance(code, int) else 0)


def _quiet_libraries() -> None:
    """transformers' load-time chatter (fresh heads, pad hints) says nothing petscale doesn't;
    petscale's own warnings print as one plain line, not Python's `file:line: Category`."""
    import os
    import warnings

    warnings.formatwarning = lambda message, *_args, **_kwargs: f"warning: {message}\n"

    verbosity = os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if verbosity == "error" and "transformers" in sys.modules:  # it read the variable already
        from transformers.utils import logging as transformers_logging

        transformers_logging.set_verbosity_error()


def _fail(message: str) -> None:
    print(f"error: {' '.join(message.split())}", file=sys.stderr)  # one line, always
    sys.exit(2)
