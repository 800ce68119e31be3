"""``petscale tune`` and ``petscale count``."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

import petscale
from petscale.cli import options as o
from petscale.errors import UserError
from petscale.results import TrialResult
from petscale.settings import DEFAULTS

console = Console(stderr=True)


@o.with_method_options
@o.with_trial_settings
def tune(
    model: o.Model = DEFAULTS["model"],
    task: o.Task = DEFAULTS["task"],
    method: Annotated[str, o.method_option()] = DEFAULTS["method"],
    out: Annotated[
        Path | None, typer.Option(help="Write the trained delta, config and metrics here.")
    ] = None,
    track: Annotated[
        list[str] | None,
        typer.Option(help="Log curves and results to a tracker: tensorboard, wandb, mlflow."),
    ] = None,
    track_dir: Annotated[
        Path | None, typer.Option(help="Where trackers write (default runs/track).")
    ] = None,
    data_dir: o.DataDir = None,
    text_field: o.TextField = None,
    text_pair_field: o.TextPairField = None,
    label_field: o.LabelField = None,
    encoding: Annotated[
        str | None,
        typer.Option(
            help="Text encoding of your files (default utf-8).", rich_help_panel="Task data"
        ),
    ] = None,
    json_output: o.Json = False,
    settings: dict[str, Any] | None = None,
    method_options: dict[str, Any] | None = None,
) -> None:
    """Tune one model on one task with one method, and report dev (and test) scores."""
    # Here, not at the top: export loads torch (the API, petscale.tune, loads on first use).
    from petscale.export import export_problem

    main = int(os.environ.get("RANK", "0")) == 0  # several processes (torchrun): one speaks
    if out is not None and main:
        pooling = (settings or {}).get("pooling") or DEFAULTS["pooling"]
        problem = export_problem(model, method, pooling)
        if problem is not None:  # said now, not after training
            print(f"note: `petscale export` will refuse this run: {problem}", file=sys.stderr)
    result = petscale.tune.__wrapped__(  # unwrapped: its errors name the command line's flags
        model=model,
        task=task,
        method=method,
        out=out,
        # A bar only on a terminal: piped, it would leave a blank line before an error.
        progress=not json_output and sys.stderr.isatty(),
        track=track,
        track_dir=track_dir,
        **(settings or {}),
        data_dir=data_dir,
        text_field=text_field,
        text_pair_field=text_pair_field,
        label_field=label_field,
        encoding=encoding,
        **(method_options or {}),
    )
    if not main:
        return
    if json_output:
        print(json.dumps(result))
    else:
        _summary(TrialResult(**result), out)


@o.with_method_options
def count(
    model: o.Model = DEFAULTS["model"],
    method: Annotated[str, o.method_option()] = DEFAULTS["method"],
    num_labels: Annotated[int, typer.Option(help="Classes of the head (encoders).")] = 2,
    json_output: o.Json = False,
    method_options: dict[str, Any] | None = None,
) -> None:
    """Exact trainable parameters of a method on a model, on the meta device (no weights)."""
    if num_labels < 1:
        raise UserError(f"--num-labels must be at least 1, got {num_labels}")
    options = method_options or {}
    result = petscale.count.__wrapped__(
        model=model, method=method, num_labels=num_labels, **options
    )
    if json_output:
        print(json.dumps(result))
        return
    share = result["trainable_params"] / result["total_params"]
    print(f"{result['model']} / {result['method']} {_options(result['options'])}")
    print(f"  trainable (method): {result['trainable_params']:,} ({share:.4%} of the model)")
    print(f"  head:               {result['head_params']:,}")
    print(f"  model total:        {result['total_params']:,}")


def _options(options: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in options.items())


def _summary(result: TrialResult, out: Path | None) -> None:
    test, guess = result.test_score, result.random_guess
    lines = [
        f"{result.model} / {result.task} / {result.method} {_options(result.options)}",
        f"  trainable: {result.trainable_params:,} (+ head {result.head_params:,}) "
        f"of {result.total_params:,}",
        f"  {result.steps} steps, lr {result.lr:g}, batch {result.batch_size}: "
        f"{result.seconds:.1f} s ({result.step_seconds:.3f} s/step), "
        f"peak memory {result.peak_memory_mb:.0f} MB",
        f"  dev {result.metric}: {result.dev_score:.4f}"
        + (f" (best, step {result.best_step})" if result.best_step else "")
        + (f"   test: {test:.4f}" if test is not None else "")
        + (f"   random guess: {guess:.4f}" if guess else ""),
    ]
    if not result.pretrained:
        lines.append("  NOTE: randomly initialised model (no pretrained weights here)")
    if out is not None:
        lines.append(f"  saved to {out}/ (delta.safetensors, delta.json, trial, task, metrics)")
    print("\n".join(lines))
