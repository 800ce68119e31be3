"""What runs one trial wherever it is sent: a worker process, a Ray task or the driver itself.

The trial function travels as a dotted path ("package.module:function") and is imported where
it runs, so any backend can reach it. ``execute`` never raises for a failing trial: it returns
the error, so a failure is data the driver records.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from petscale.errors import UserError
from petscale.results import TrialResult

DEFAULT_TRIAL = "petscale.trial:run_trial"
TrialFn = Callable[[dict[str, Any]], dict[str, Any]]
# What execute returns: {"ok": True, "result": {...}} or {"ok": False, "error", "traceback"}.
Outcome = dict[str, Any]


def resolve(path: str) -> TrialFn:
    """Import the trial function named by ``path``; a UserError says what is wrong."""
    module_name, _, name = path.partition(":")
    if not module_name or not name:
        raise UserError(f"trial function {path!r}: write it as 'package.module:function'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise UserError(f"trial function {path!r}: cannot import {module_name!r}: {e}") from None
    function = getattr(module, name, None)
    if not callable(function):
        raise UserError(f"trial function {path!r}: {module_name} has no function {name!r}")
    return function


def execute(path: str, config: dict[str, Any], threads: int, out: str | None = None) -> Outcome:
    """Run one trial with ``threads`` CPU threads; errors come back as data.

    With ``out``, a trial function that takes an ``out`` keyword writes its run folder there
    (the default trial does: its trained delta and head); one that does not is called as is.
    """
    try:
        function = resolve(path)
        set_threads(threads)  # after the import, which may be what loads torch
        if out is not None and "out" in inspect.signature(function).parameters:
            result = function(config, out=out)
        else:
            result = function(config)
        if isinstance(result, TrialResult):
            result = result.to_dict()
        if not isinstance(result, dict):
            raise TypeError(f"the trial function returned {type(result).__name__}, not a dict")
        return {"ok": True, "result": result}
    except Exception as e:
        return {
            "ok": False,
            "error": f"{type(e).__name__}: {e}",
            "traceback": traceback.format_exc(),
        }


def set_threads(n: int) -> None:
    """Give this process ``n`` CPU threads, so that workers do not oversubscribe the cores."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(n)  # read by torch if it is imported later
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(n)


def watch_parent(parent_pid: int) -> None:
    """Exit when the driver dies (kill -9 included), instead of finishing an orphaned trial."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="petscale-watch-parent").start()
