"""The ``petscale`` command line: one typer app, one module per command group.

A command's module is imported only when that command runs or shows its help (``LazyGroup``):
``petscale --help`` lists the commands from ``COMMANDS`` and imports none of them, and each
command module imports nothing heavy at its top (torch, transformers, pandas are reached when
the command runs), so ``--help``, ``models``, ``methods`` and ``tasks`` answer at once.
"""

from __future__ import annotations

import errno
import importlib
import inspect
import os
import sqlite3
import sys
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import typer
from typer.core import TyperCommand, TyperGroup

from petscale.errors import UserError

if TYPE_CHECKING:
    from typer._click import Command, HelpFormatter  # the click typer carries

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

#: Every command, in the order ``petscale --help`` lists them: name -> (module, the function
#: or typer app in it, its one-line help). The help of a function is its docstring's first
#: paragraph (tests/test_cli_fast.py checks each line against it); a group's is its help.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "tune": (
        "petscale.cli.tune",
        "tune",
        "Tune one model on one task with one method, and report dev (and test) scores.",
    ),
    "count": (
        "petscale.cli.tune",
        "count",
        "Exact trainable parameters of a method on a model, on the meta device (no weights).",
    ),
    "demo": (
        "petscale.cli.demo",
        "demo",
        "Run the scaling study in miniature (2 models x 2 tasks x every method, APET over a "
        "budget grid, head-free), then write its report; a second run shows the report in "
        "seconds.",
    ),
    "models": (
        "petscale.cli.models",
        "models",
        "List the known models: family, layers, hidden size, parameters, whether their weights "
        "are here, and the hub id each stands for (counting takes either name).",
    ),
    "methods": (
        "petscale.cli.methods",
        "methods",
        "List the methods: what each trains, its options and defaults, what --budget sizes.",
    ),
    "tasks": (
        "petscale.cli.tasks",
        "tasks_command",
        "List the tasks: type, labels, metric, random-guess and majority scores, sizes, and "
        "whether the data is available here.",
    ),
    "export": (
        "petscale.cli.export",
        "export",
        "Write a LoRA or prompt-tuning delta as a PEFT adapter (PeftModel.from_pretrained), with "
        "a model card (README.md: what was trained, the label names, how to load it).",
    ),
    "report": (
        "petscale.cli.report",
        "report",
        "Write report.html (figures embedded), figures/*.png|svg, thresholds.csv, gaps.csv and "
        "trials.csv, from a study folder or an exported CSV/Parquet table.",
    ),
    "study": (
        "petscale.cli.study",
        "app",
        "Run a study grid; refine its thresholds; its status; export results.",
    ),
}

#: The typer settings of the app and of every command built from it.
_SETTINGS: dict[str, Any] = {"pretty_exceptions_enable": False, "add_completion": False}


def _summary(command: Callable[..., Any]) -> str:
    """A command's first docstring paragraph as one line: the listing wraps it to the
    terminal instead of keeping the docstring's line breaks."""
    return " ".join((inspect.getdoc(command) or "").split("\n\n")[0].split())


def load_command(name: str) -> Command:
    """The command ``name`` as typer builds it, its module imported now."""
    module, attribute, help_ = COMMANDS[name]
    target = getattr(importlib.import_module(module), attribute)
    holder = typer.Typer(**_SETTINGS)
    if isinstance(target, typer.Typer):
        holder.add_typer(target, name=name, help=help_)
    else:
        holder.command(name, short_help=_summary(target))(target)
    return typer.main.get_group(holder).commands[name]


class LazyGroup(TyperGroup):
    """The top-level group: a command is built (its module imported) when it runs or shows its
    help; the group's own help (its command list) and its typo suggestions read ``COMMANDS``."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        # What the listing shows: a name and its one-line help, nothing imported.
        self.commands = {
            name: TyperCommand(name=name, short_help=help_)
            for name, (_, _, help_) in COMMANDS.items()
        }
        self._built: dict[str, Command] = {}
        self._listing = False

    def get_command(self, ctx: typer.Context, cmd_name: str) -> Command | None:
        if cmd_name not in self.commands or self._listing:
            return self.commands.get(cmd_name)
        if cmd_name not in self._built:
            self._built[cmd_name] = load_command(cmd_name)
        return self._built[cmd_name]

    def format_help(self, ctx: typer.Context, formatter: HelpFormatter) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False


app = typer.Typer(
    cls=LazyGroup,
    name="petscale",
    help="Parameter-efficient tuning at any model scale: exact budgets, APET, the scaling study.",
    no_args_is_help=True,
    **_SETTINGS,
)


@app.callback()
def _petscale() -> None:
    """Nothing to do before a command; a callback makes typer build the app as a group (its
    commands come from ``COMMANDS``, not from registrations)."""


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
    warnings.formatwarning = lambda message, *_args, **_kwargs: f"warning: {message}\n"

    verbosity = os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    transformers = sys.modules.get("transformers")  # imported already: it read the variable
    if verbosity == "error" and transformers is not None:
        transformers.logging.set_verbosity_error()


def _fail(message: str) -> None:
    print(f"error: {' '.join(message.split())}", file=sys.stderr)  # one line, always
    sys.exit(2)
